/*
 * rua.c - sending a report to a TLSRPT destination. HTTPS: one POST of the
 * gzipped JSON as application/tlsrpt+gzip, certificate checked, no
 * redirects (RFC 8460 5.4), bounded in time. Mail: a multipart/report
 * message with the gzipped JSON as a base64 attachment, handed to the
 * local MTA's sendmail with the recipient as an argument, never through a
 * shell.
 */
#include "sinks/rua.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

unsigned char *rua_gzip(const char *data, size_t n, size_t *out_len)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	/* 15 + 16: a gzip wrapper, not zlib's */
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	size_t cap = deflateBound(&z, (uLong)n) + 32;
	unsigned char *out = malloc(cap);
	if (!out) {
		deflateEnd(&z);
		return NULL;
	}
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	int rc = deflate(&z, Z_FINISH);
	*out_len = cap - z.avail_out;
	deflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(out);
		return NULL;
	}
	return out;
}

void rua_filename(char *out, size_t cap, const char *submitter, const char *domain,
		  int64_t begin, int64_t end, const char *report_id)
{
	/* RFC 8460 5.1: the unique-id of the name is letters and digits */
	char id[160];
	size_t o = 0;
	for (const char *p = report_id; *p && o + 1 < sizeof(id); p++)
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
			id[o++] = *p;
	id[o] = 0;
	snprintf(out, cap, "%s!%s!%lld!%lld!%s.json.gz", submitter, domain, (long long)begin,
		 (long long)end, id);
}

static size_t discard(char *p, size_t size, size_t nmemb, void *ctx)
{
	(void)p;
	(void)ctx;
	return size * nmemb;
}

static int post_https(const struct rua_config *c, const char *url, const unsigned char *gz,
		      size_t n, char *detail, size_t cap)
{
	CURL *h = curl_easy_init();
	if (!h) {
		snprintf(detail, cap, "cannot start an HTTPS client");
		return -1;
	}
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/tlsrpt+gzip");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_bundle)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_bundle);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, (const char *)gz);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "mxwatch-tlsrpt");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->timeout_s);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	CURLcode rc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(headers);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK) {
		snprintf(detail, cap, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
		return -1;
	}
	if (status < 200 || status > 299) {
		snprintf(detail, cap, "HTTP status %ld", status);
		return -1;
	}
	snprintf(detail, cap, "HTTP status %ld", status);
	return 0;
}

/* The address of a mailto: URI: percent-escapes decoded, a ?query
 * dropped; -1 unless it is one plain address. */
static int mailto_address(const char *uri, char *out, size_t cap)
{
	const char *p = uri + 7;
	size_t o = 0;
	for (; *p && *p != '?'; p++) {
		int ch = (unsigned char)*p;
		if (ch == '%' && p[1] && p[2]) {
			char hex[3] = {p[1], p[2], 0};
			char *end;
			ch = (int)strtol(hex, &end, 16);
			if (*end)
				return -1;
			p += 2;
		}
		if (ch <= 0x20 || ch >= 0x7f || ch == ',' || ch == '<' || ch == '>' || ch == '(' ||
		    ch == ')' || ch == ';' || ch == '"' || ch == '\\' || o + 1 >= cap)
			return -1;
		out[o++] = (char)ch;
	}
	out[o] = 0;
	const char *at = strchr(out, '@');
	return at && at > out && at[1] && !strchr(at + 1, '@') ? 0 : -1;
}

static void base64_lines(FILE *f, const unsigned char *p, size_t n)
{
	/* 57 bytes make a 76-character line (RFC 2045 6.8) */
	for (size_t off = 0; off < n; off += 57) {
		size_t chunk = n - off < 57 ? n - off : 57;
		unsigned char line[80];
		int k = EVP_EncodeBlock(line, p + off, (int)chunk);
		fprintf(f, "%.*s\r\n", k, line);
	}
}

static int64_t monotonic_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void rfc5322_date(char *out, size_t cap)
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(out, cap, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* Writes the whole message to the MTA's standard input. */
static void write_message(FILE *f, const struct rua_config *c, const char *rcpt,
			  const char *domain, const char *report_id, int64_t begin, int64_t end,
			  const unsigned char *gz, size_t n)
{
	char date[64], name[600], boundary[64];
	rfc5322_date(date, sizeof(date));
	rua_filename(name, sizeof(name), c->submitter, domain, begin, end, report_id);
	unsigned char rnd[8];
	FILE *u = fopen("/dev/urandom", "r");
	if (!u || fread(rnd, 1, sizeof(rnd), u) != sizeof(rnd))
		memset(rnd, 0x5a, sizeof(rnd));
	if (u)
		fclose(u);
	snprintf(boundary, sizeof(boundary), "tlsrpt-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0],
		 rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	fprintf(f, "From: %s\r\n", c->mail_from);
	fprintf(f, "To: %s\r\n", rcpt);
	fprintf(f, "Date: %s\r\n", date);
	fprintf(f, "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\r\n", domain,
		c->submitter, report_id);
	fprintf(f, "Message-ID: <%s@%s>\r\n", boundary, c->submitter);
	fprintf(f, "TLS-Report-Domain: %s\r\n", domain);
	fprintf(f, "TLS-Report-Submitter: %s\r\n", c->submitter);
	fprintf(f, "MIME-Version: 1.0\r\n");
	fprintf(f, "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
		   "\tboundary=\"%s\"\r\n\r\n",
		boundary);
	fprintf(f, "This is a multipart message in MIME format.\r\n\r\n");
	fprintf(f, "--%s\r\nContent-Type: text/plain; charset=\"us-ascii\"\r\n\r\n", boundary);
	fprintf(f,
		"This is an aggregate TLS report (RFC 8460) from %s for %s,\r\n"
		"covering %lld to %lld (seconds since 1970, UTC).\r\n\r\n",
		c->submitter, domain, (long long)begin, (long long)end);
	fprintf(f, "--%s\r\nContent-Type: application/tlsrpt+gzip\r\n", boundary);
	fprintf(f, "Content-Transfer-Encoding: base64\r\n");
	fprintf(f, "Content-Disposition: attachment;\r\n\tfilename=\"%s\"\r\n\r\n", name);
	base64_lines(f, gz, n);
	fprintf(f, "\r\n--%s--\r\n", boundary);
}

static int send_mail(const struct rua_config *c, const char *uri, const char *domain,
		     const char *report_id, int64_t begin, int64_t end, const unsigned char *gz,
		     size_t n, char *detail, size_t cap)
{
	char rcpt[320];
	if (mailto_address(uri, rcpt, sizeof(rcpt))) {
		snprintf(detail, cap, "not one plain mail address");
		return RUA_PERMANENT;
	}
	if (!c->mail_from || !c->mail_from[0] || !c->submitter || !c->submitter[0]) {
		snprintf(detail, cap, "no sender address ([report] from) or submitter");
		return -1;
	}
	/* argv: the configured command split at spaces, then -i -f FROM -- RCPT */
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "%s", c->sendmail);
	char *argv[40];
	int argc = 0;
	for (char *save = NULL, *t = strtok_r(cmd, " \t", &save); t && argc < 32;
	     t = strtok_r(NULL, " \t", &save))
		argv[argc++] = t;
	if (!argc) {
		snprintf(detail, cap, "no sendmail command");
		return -1;
	}
	argv[argc++] = "-i";
	argv[argc++] = "-f";
	argv[argc++] = (char *)c->mail_from;
	argv[argc++] = "--";
	argv[argc++] = rcpt;
	argv[argc] = NULL;
	/* The message is made first, then written and waited for within the
	 * timeout: an MTA that hangs costs the run that long, not for ever. */
	char *msg = NULL;
	size_t msg_len = 0;
	FILE *mem = open_memstream(&msg, &msg_len);
	if (!mem) {
		snprintf(detail, cap, "out of memory");
		return -1;
	}
	write_message(mem, c, rcpt, domain, report_id, begin, end, gz, n);
	if (fclose(mem) != 0 || !msg) {
		free(msg);
		snprintf(detail, cap, "out of memory");
		return -1;
	}
	int fds[2];
	if (pipe2(fds, O_CLOEXEC)) {
		free(msg);
		snprintf(detail, cap, "pipe: %s", strerror(errno));
		return -1;
	}
	/* An inherited SIG_IGN for SIGCHLD would reap the child behind our
	 * back, and its status would be lost. */
	struct sigaction dfl = {.sa_handler = SIG_DFL}, old_chld, old_pipe;
	sigaction(SIGCHLD, &dfl, &old_chld);
	pid_t pid = fork();
	if (pid < 0) {
		sigaction(SIGCHLD, &old_chld, NULL);
		close(fds[0]);
		close(fds[1]);
		free(msg);
		snprintf(detail, cap, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		dup2(fds[0], 0);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[0]);
	/* A sendmail that exits early must not kill us with SIGPIPE. */
	struct sigaction ign = {.sa_handler = SIG_IGN};
	sigaction(SIGPIPE, &ign, &old_pipe);
	fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
	int64_t deadline = monotonic_ms() + (int64_t)c->timeout_s * 1000;
	size_t off = 0;
	int write_failed = 0, timed_out = 0;
	while (off < msg_len) {
		ssize_t w = write(fds[1], msg + off, msg_len - off);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR) {
			write_failed = 1;
			break;
		}
		int64_t left = deadline - monotonic_ms();
		struct pollfd pf = {fds[1], POLLOUT, 0};
		if (left <= 0 || poll(&pf, 1, (int)left) == 0) {
			timed_out = 1;
			break;
		}
	}
	close(fds[1]);
	free(msg);
	int status = 0, reaped = 0;
	while (!timed_out) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid) {
			reaped = 1;
			break;
		}
		if (r < 0 && errno != EINTR)
			break; /* the status is lost: not a success */
		if (monotonic_ms() >= deadline) {
			timed_out = 1;
			break;
		}
		struct timespec ts = {0, 20 * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (timed_out) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	sigaction(SIGPIPE, &old_pipe, NULL);
	sigaction(SIGCHLD, &old_chld, NULL);
	if (timed_out) {
		snprintf(detail, cap, "%s did not finish within %ld s (stopped)", argv[0],
			 c->timeout_s);
		return -1;
	}
	if (!reaped) {
		snprintf(detail, cap, "%s: its exit status was lost", argv[0]);
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
			snprintf(detail, cap, "%s could not be run", argv[0]);
		else
			snprintf(detail, cap, "%s failed (status %d)", argv[0],
				 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return -1;
	}
	if (write_failed) {
		snprintf(detail, cap, "writing the message to %s failed", argv[0]);
		return -1;
	}
	snprintf(detail, cap, "handed to %s for %s", argv[0], rcpt);
	return 0;
}

/* The domain goes into headers and a file name as it is. */
static int header_safe_name(const char *s)
{
	if (!*s || strlen(s) > 253)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
}

int rua_send(const struct rua_config *c, const char *uri, const char *domain,
	     const char *report_id, int64_t begin, int64_t end, const unsigned char *gz,
	     size_t gz_len, char *detail, size_t cap)
{
	if (!header_safe_name(domain) || !header_safe_name(c->submitter ? c->submitter : "x")) {
		snprintf(detail, cap, "a domain or submitter name that cannot go into a header");
		return RUA_PERMANENT;
	}
	if (!strncasecmp(uri, "https://", 8))
		return post_https(c, uri, gz, gz_len, detail, cap);
	if (!strncasecmp(uri, "mailto:", 7))
		return send_mail(c, uri, domain, report_id, begin, end, gz, gz_len, detail, cap);
	snprintf(detail, cap, "neither https: nor mailto:");
	return RUA_PERMANENT;
}
