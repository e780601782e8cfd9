/*
 * ingest_cmd.c - `mxwatch ingest`: the collector reads the JSON records of
 * many sensors (files an rsyslog collector writes, or standard input) into
 * one database for `report`. The checks and the storing are ingest/'s; this
 * reads lines of bounded length, batches them into transactions and says
 * what became of each file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "db/sql/db.h"
#include "ingest/ingest.h"
#include "util/text.h"

#define LINES_PER_TRANSACTION 10000
#define MESSAGES_PER_FILE     50 /* rejections named on standard error */

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "NAME\n"
	    "    mxwatch ingest - store the records of many sensors in one database\n\n"
	    "SYNOPSIS\n"
	    "    mxwatch ingest [--db PATH] [--match-window SECONDS] FILE...|-\n\n"
	    "DESCRIPTION\n"
	    "    Reads JSON records, one per line, as `mxwatch analyze --json` and `mxwatch\n"
	    "    capture --json` write them (on a collector: the files rsyslog writes from\n"
	    "    what the sensors send; etc/rsyslog-collector-relp.conf), and stores the\n"
	    "    session and finding records for `mxwatch report`; flow records are counted\n"
	    "    and not stored.\n\n"
	    "    Every stored field is checked for its type and form (names, addresses,\n"
	    "    times, ports, verdicts, finding ids); a line that is not UTF-8 JSON, is\n"
	    "    longer than 1 MiB, or has a field of the wrong type or form is rejected with\n"
	    "    its file and line number, and nothing of it is stored.\n\n"
	    "    Storing is idempotent: a record read again (a file ingested twice, a\n"
	    "    record the transport delivered twice) changes nothing. A session two\n"
	    "    sensors saw (two mirror ports on one path) is stored once: a session record\n"
	    "    with the Community ID of a stored session of another sensor, starting within\n"
	    "    --match-window seconds of it, is kept as a second sighting of it; reports\n"
	    "    count the session and its findings once, and the summary of `mxwatch\n"
	    "    report` breaks sessions and findings down by sensor.\n\n"
	    "OPTIONS\n"
	    "    --db PATH              database (default as for analyze); created if needed\n"
	    "    --match-window SECONDS start times of two sightings of one session differ\n"
	    "                           by at most this (default %d)\n"
	    "    -h, --help             this text\n\n"
	    "EXIT STATUS\n"
	    "    0 every line stored or known, 1 some lines rejected (the others stored),\n"
	    "    2 usage error, a file that cannot be read, or a database error (what was\n"
	    "    committed before it stays)\n",
	    INGEST_MATCH_WINDOW);
}

/* Lines of at most INGEST_MAX_LINE bytes from a file descriptor; a longer
 * line is read past, not held. Before a read that would wait (a pipe, a
 * socket), `idle` runs: what was read so far is committed then, not held
 * back until more comes. */
struct line_reader {
	int fd;
	char *buf;
	size_t cap, start, end;
	int eof;
	int (*idle)(void *ctx);
	void *ctx;
};

enum { LINE_OK, LINE_TOO_LONG, LINE_END, LINE_ERROR };

static int next_line(struct line_reader *r, const char **line, size_t *len)
{
	int too_long = 0;
	for (;;) {
		char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
		if (nl) {
			*line = r->buf + r->start;
			*len = (size_t)(nl - *line);
			r->start += *len + 1;
			return too_long ? LINE_TOO_LONG : LINE_OK;
		}
		if (r->eof) {
			if (r->start == r->end)
				return too_long ? LINE_TOO_LONG : LINE_END;
			*line = r->buf + r->start; /* the last line, without a newline */
			*len = r->end - r->start;
			r->start = r->end;
			return too_long ? LINE_TOO_LONG : LINE_OK;
		}
		if (r->end - r->start > INGEST_MAX_LINE) {
			too_long = 1; /* drop what is held; keep reading to the newline */
			r->start = r->end = 0;
		} else if (r->start) {
			memmove(r->buf, r->buf + r->start, r->end - r->start);
			r->end -= r->start;
			r->start = 0;
		}
		struct pollfd p = {r->fd, POLLIN, 0};
		errno = 0;
		if (r->idle && poll(&p, 1, 0) == 0 && r->idle(r->ctx))
			return LINE_ERROR;
		ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return LINE_ERROR;
		if (n == 0)
			r->eof = 1;
		r->end += (size_t)n;
	}
}

struct totals {
	uint64_t lines, sessions, sightings, findings, duplicates, skipped, rejected;
};

static void print_totals(const char *name, const struct totals *t)
{
	printf("%s: %" PRIu64 " lines: %" PRIu64 " sessions stored, %" PRIu64
	       " seen by another sensor too, %" PRIu64 " findings stored, %" PRIu64
	       " already stored, %" PRIu64 " flow records not stored, %" PRIu64 " rejected\n",
	       name, t->lines, t->sessions, t->sightings, t->findings, t->duplicates, t->skipped,
	       t->rejected);
}

struct batch {
	struct db *d;
	uint64_t *uncommitted;
};

/* Input would wait: commit what was read, so that a collector fed through a
 * pipe stores records as they come and holds no lock while it waits. */
static int commit_now(void *ctx)
{
	struct batch *b = ctx;
	if (!*b->uncommitted)
		return 0;
	if (db_commit(b->d) || db_begin(b->d))
		return -1;
	*b->uncommitted = 0;
	return 0;
}

/* 0 done, 1 the database failed (the current transaction rolled back). */
static int ingest_file(struct ingest *g, struct db *d, const char *name, int fd, char *buf,
		       size_t cap, struct totals *t, uint64_t *uncommitted)
{
	struct batch b = {d, uncommitted};
	struct line_reader r = {fd, buf, cap, 0, 0, 0, commit_now, &b};
	const char *line;
	size_t len;
	char why[256], shown[512];
	unsigned messages = 0;
	for (;;) {
		int rc = next_line(&r, &line, &len);
		if (rc == LINE_END)
			break;
		if (rc == LINE_ERROR) {
			fprintf(stderr, "mxwatch ingest: %s: line %" PRIu64 ": %s\n", name,
				t->lines + 1, errno ? strerror(errno) : db_errmsg(d));
			return 1;
		}
		t->lines++;
		enum ingest_result res;
		if (rc == LINE_TOO_LONG) {
			snprintf(why, sizeof(why), "longer than %u bytes", INGEST_MAX_LINE);
			res = INGEST_REJECTED;
		} else {
			res = ingest_line(g, line, len, why, sizeof(why));
		}
		switch (res) {
		case INGEST_SESSION: t->sessions++; break;
		case INGEST_SIGHTING: t->sightings++; break;
		case INGEST_FINDING: t->findings++; break;
		case INGEST_DUPLICATE: t->duplicates++; break;
		case INGEST_SKIPPED: t->skipped++; break;
		case INGEST_BLANK: break;
		case INGEST_REJECTED:
			t->rejected++;
			if (++messages <= MESSAGES_PER_FILE)
				fprintf(stderr, "mxwatch ingest: %s: line %" PRIu64 ": rejected: %s\n",
					name, t->lines, text_escape_str(shown, sizeof(shown), why));
			else if (messages == MESSAGES_PER_FILE + 1)
				fprintf(stderr,
					"mxwatch ingest: %s: further rejected lines are only counted\n",
					name);
			break;
		case INGEST_ERROR:
			fprintf(stderr, "mxwatch ingest: %s: line %" PRIu64 ": %s\n", name, t->lines,
				why);
			return 1;
		}
		if (++*uncommitted >= LINES_PER_TRANSACTION) {
			if (db_commit(d) || db_begin(d)) {
				fprintf(stderr, "mxwatch ingest: %s: line %" PRIu64 ": database: %s\n",
					name, t->lines, db_errmsg(d));
				return 1;
			}
			*uncommitted = 0;
		}
	}
	return 0;
}

int cmd_ingest(int argc, char **argv)
{
	enum { OPT_DB = 256, OPT_WINDOW };
	static const struct option opts[] = {
	    {"db", required_argument, NULL, OPT_DB},
	    {"match-window", required_argument, NULL, OPT_WINDOW},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db_path = NULL;
	long window = INGEST_MATCH_WINDOW;
	optind = 1;
	opterr = 0;
	for (;;) {
		int c = getopt_long(argc, argv, "h", opts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case OPT_DB: db_path = optarg; break;
		case OPT_WINDOW: {
			char *end;
			errno = 0;
			window = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || window < 0 || window > 3600) {
				fprintf(stderr,
					"mxwatch ingest: --match-window: '%s' is not a number of "
					"seconds from 0 to 3600\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		}
		case 'h': usage(stdout); return EXIT_CLEAN;
		default:
			fprintf(stderr, "mxwatch ingest: unknown or incomplete option '%s'\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "mxwatch ingest: no file to read (name files, or - for standard "
				"input)\n");
		return EXIT_USAGE;
	}
	char pathbuf[4096], err[512];
	if (!db_path)
		db_path = db_default_path(pathbuf, sizeof(pathbuf));
	struct db *d = db_open(db_path, err, sizeof(err));
	if (!d) {
		fprintf(stderr, "mxwatch ingest: %s\n", err);
		return EXIT_USAGE;
	}
	db_set_busy_wait(d, 30000);
	/* SQLite's JSON functions take and give back a large block per line:
	 * without this, every line returns it to the system and faults it in
	 * again (half the run). */
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	size_t cap = INGEST_MAX_LINE + (64u << 10);
	char *buf = malloc(cap);
	struct ingest *g = buf ? ingest_new(d, window) : NULL;
	if (!g) {
		fprintf(stderr, "mxwatch ingest: %s: cannot prepare: %s\n", db_path,
			buf ? db_errmsg(d) : "out of memory");
		free(buf);
		db_close(d);
		return EXIT_USAGE;
	}
	int status = EXIT_CLEAN;
	struct totals all = {0};
	uint64_t uncommitted = 0;
	if (db_begin(d)) {
		fprintf(stderr, "mxwatch ingest: %s: %s\n", db_path, db_errmsg(d));
		status = EXIT_USAGE;
	}
	for (int i = optind; i < argc && status != EXIT_USAGE; i++) {
		const char *name = argv[i];
		int is_stdin = strcmp(name, "-") == 0;
		int fd = is_stdin ? 0 : open(name, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "mxwatch ingest: %s: cannot open: %s\n", name,
				strerror(errno));
			status = EXIT_USAGE;
			break;
		}
		struct totals t = {0};
		int failed = ingest_file(g, d, is_stdin ? "standard input" : name, fd, buf, cap, &t,
					 &uncommitted);
		if (!is_stdin)
			close(fd);
		/* what a file's line says was stored is committed before it is said */
		struct batch b = {d, &uncommitted};
		if (!failed && commit_now(&b)) {
			fprintf(stderr, "mxwatch ingest: %s: database: %s\n", name, db_errmsg(d));
			failed = 1;
		}
		if (failed) {
			status = EXIT_USAGE;
			break;
		}
		print_totals(is_stdin ? "standard input" : name, &t);
		all.lines += t.lines;
		all.sessions += t.sessions;
		all.sightings += t.sightings;
		all.findings += t.findings;
		all.duplicates += t.duplicates;
		all.skipped += t.skipped;
		all.rejected += t.rejected;
	}
	if (status == EXIT_USAGE) {
		db_rollback(d);
		fprintf(stderr,
			"mxwatch ingest: stopped; the last %" PRIu64 " lines read were not stored "
			"(the files reported above were), ingest the file again to store the rest\n",
			uncommitted);
	} else if (db_commit(d)) {
		fprintf(stderr, "mxwatch ingest: %s: %s; the last %" PRIu64 " lines are not stored\n",
			db_path, db_errmsg(d), uncommitted);
		status = EXIT_USAGE;
	} else {
		if (argc - optind > 1)
			print_totals("all files", &all);
		if (all.rejected)
			status = EXIT_REJECTED;
	}
	ingest_free(g);
	free(buf);
	db_close(d);
	return status;
}
