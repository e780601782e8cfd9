/*
 * policy_cmd.c - `mxwatch policy`: fill and inspect the policy cache.
 * fetch (DNS with DNSSEC + HTTPS), import/export (text format), show, list.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cmd.h"
#include "util/text.h"
#include "cli/options.h"
#include "db/policy/policyfile.h"
#include "db/refresh/refresh.h"
#include "db/sql/db.h"

static void policy_usage(FILE *out)
{
	fprintf(
	    out,
	    "NAME\n"
	    "    mxwatch policy - the MTA-STS / DANE policy cache\n\n"
	    "SYNOPSIS\n"
	    "    mxwatch policy fetch  [--db PATH] [fetch options] DOMAIN...\n"
	    "    mxwatch policy import [--db PATH] FILE\n"
	    "    mxwatch policy export [--db PATH]\n"
	    "    mxwatch policy show   [--db PATH] DOMAIN...\n"
	    "    mxwatch policy list   [--db PATH]\n\n"
	    "DESCRIPTION\n"
	    "    fetch looks up each domain's MX hosts, their addresses and TLSA records\n"
	    "    (_25._tcp.HOST) and its _mta-sts TXT record through a DNSSEC-validating\n"
	    "    resolver, then downloads https://mta-sts.DOMAIN/.well-known/mta-sts.txt\n"
	    "    (no redirects, certificate checked, 64 KiB at most) when the TXT id changed or\n"
	    "    the cached policy's max_age ran out. Results, with their DNSSEC status, and\n"
	    "    failures, with their RFC 8460 result type, go to the database.\n"
	    "    import reads the text format below (also used by the demo policy); export\n"
	    "    writes the cache in it. show prints what is cached for a domain; list one\n"
	    "    line per domain.\n\n"
	    "OPTIONS\n"
	    "    --db PATH              database file (default: $MXWATCH_DB, else\n"
	    "                           ~/.local/share/mxwatch/mxwatch.db); created on first use\n"
	    "    --trust-anchor FILE    DNSSEC trust anchor, DS or DNSKEY records in zone-file\n"
	    "                           format (default %s)\n"
	    "    --stub ZONE@ADDR[@PORT]\n"
	    "                           ask this server for names in ZONE (repeatable)\n"
	    "    --resolver ADDR[@PORT] forward queries to this resolver (repeatable); answers\n"
	    "                           are still validated locally\n"
	    "    --ca-bundle FILE       CA certificates for the policy host (default: system)\n"
	    "    --force                download policies even when the TXT id is unchanged\n"
	    "    --queued               fetch the domains that on-demand discovery queued\n"
	    "                           (see [discovery] in etc/mxwatch.conf), then unqueue them\n"
	    "    --timeout SECONDS      HTTPS timeout (default 60)\n"
	    "    -h, --help             this text\n\n"
	    "FILE FORMAT (import/export)\n"
	    "    mx       DOMAIN PREFERENCE HOST               [dnssec=secure|insecure]\n"
	    "    address  HOST ADDRESS                         [dnssec=...]\n"
	    "    mta-sts  DOMAIN mode=enforce|testing|none max_age=SECONDS mx=PATTERN... [id=ID]\n"
	    "    tlsa     HOST PORT USAGE SELECTOR MTYPE HEX   [dnssec=...]\n"
	    "    tlsrpt   DOMAIN rua=URI[,URI...]              [dnssec=...]\n"
	    "             (where DOMAIN wants its RFC 8460 reports: mailto: and https: URIs)\n"
	    "    '#' starts a comment. Imported records count as DNSSEC-secure unless marked.\n\n"
	    "EXIT STATUS\n"
	    "    0 done, 2 usage error, bad file or database error\n",
	    REFRESH_DEFAULT_ANCHOR);
}

static void fmt_time(int64_t t, char *buf, size_t len)
{
	time_t s = (time_t)t;
	struct tm tm;
	if (t <= 0 || !gmtime_r(&s, &tm)) {
		snprintf(buf, len, "never");
		return;
	}
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

struct show_ctx {
	struct db *d;
	FILE *out;
	int count;
	int fetches; /* log lines printed: the header comes with the first */
};

static int show_addr(void *ctx, const struct db_addr *r)
{
	struct show_ctx *c = ctx;
	fprintf(c->out, "      address %-39s %-9s %s\n", r->address, r->dnssec, r->source);
	return 0;
}

static int show_tlsa(void *ctx, const struct db_tlsa *r)
{
	struct show_ctx *c = ctx;
	fprintf(c->out, "      tlsa    %s %d %d %d %.64s%s  %s %s\n", r->name, r->usage,
		r->selector, r->mtype, r->data, strlen(r->data) > 64 ? "..." : "", r->dnssec,
		r->source);
	return 0;
}

static int show_mx(void *ctx, const struct db_mx *r)
{
	struct show_ctx *c = ctx;
	char t[32];
	fmt_time(r->fetched_at, t, sizeof(t));
	fprintf(c->out, "  mx %5d %-40s %-9s %-7s ttl %u, %s\n", r->preference, r->host, r->dnssec,
		r->source, r->ttl, t);
	db_each_addr(c->d, r->host, show_addr, c);
	db_each_tlsa(c->d, r->host, show_tlsa, c);
	c->count++;
	return 0;
}

static int show_sts(void *ctx, const struct db_sts *r)
{
	struct show_ctx *c = ctx;
	char f[32], k[32];
	fmt_time(r->policy_fetched_at, f, sizeof(f));
	fmt_time(r->checked_at, k, sizeof(k));
	fprintf(c->out, "  mta-sts: ");
	if (r->mode[0])
		fprintf(c->out, "mode %s, max_age %lld, id %s (txt %s), fetched %s, checked %s\n",
			r->mode, (long long)r->max_age, r->txt_id[0] ? r->txt_id : "-",
			r->txt_dnssec[0] ? r->txt_dnssec : "-", f, k);
	else
		fprintf(c->out, "no policy, checked %s\n", k);
	const char *p = r->mx_patterns;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		fprintf(c->out, "    mx pattern %.*s\n", (int)n, p);
		p += n + (nl ? 1 : 0);
	}
	if (r->result[0] && strcmp(r->result, "ok"))
		fprintf(c->out, "    last result: %s: %s\n", r->result, r->error_detail);
	c->count++;
	return 0;
}

/* The domain's TLSRPT destinations; what came from DNS is escaped. */
static int show_tlsrpt(void *ctx, const struct db_tlsrpt *r)
{
	struct show_ctx *c = ctx;
	char f[32], k[32], e[1100];
	fmt_time(r->fetched_at, f, sizeof(f));
	fmt_time(r->checked_at, k, sizeof(k));
	if (r->rua[0])
		fprintf(c->out, "  tlsrpt: %s (txt %s, %s), fetched %s, checked %s\n",
			strcmp(r->result, "ok") ? "destinations of an earlier fetch"
						: "reports go to",
			r->dnssec[0] ? r->dnssec : "-", r->source, f, k);
	else
		fprintf(c->out, "  tlsrpt: no reports wanted (%s), checked %s\n", r->result, k);
	for (const char *p = r->rua; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		fprintf(c->out, "    rua %s\n", text_escape(e, sizeof(e), p, n));
		p += n + (nl ? 1 : 0);
	}
	if (r->result[0] && strcmp(r->result, "ok"))
		fprintf(c->out, "    last result: %s: %s\n", r->result,
			text_escape_str(e, sizeof(e), r->detail));
	c->count++;
	return 0;
}

static int show_log(void *ctx, int64_t ts, const char *domain, const char *what, const char *result,
		    const char *detail)
{
	struct show_ctx *c = ctx;
	char t[32];
	(void)domain;
	if (!c->fetches++)
		fprintf(c->out, "  recent fetches:\n");
	fmt_time(ts, t, sizeof(t));
	fprintf(c->out, "    %s %-7s %s%s%s\n", t, what, result, detail ? ": " : "",
		detail ? detail : "");
	return 0;
}

static int cmd_show(struct db *d, int argc, char **argv)
{
	int status = EXIT_CLEAN;
	for (int i = 0; i < argc; i++) {
		struct show_ctx c = {d, stdout, 0, 0};
		printf("domain %s\n", argv[i]);
		db_each_mx(d, argv[i], show_mx, &c);
		db_each_sts(d, argv[i], show_sts, &c);
		db_each_tlsrpt(d, argv[i], show_tlsrpt, &c);
		if (!c.count) {
			printf("  nothing cached\n");
			status = EXIT_USAGE;
		}
		db_each_log(d, argv[i], 8, show_log, &c);
	}
	return status;
}

struct list_ctx {
	struct db *d;
};

static int count_mx(void *ctx, const struct db_mx *r)
{
	(void)r;
	(*(int *)ctx)++;
	return 0;
}

static int list_sts(void *ctx, const struct db_sts *r)
{
	snprintf(ctx, 96, "%s%s%s", r->mode[0] ? r->mode : "-",
		 r->result[0] && strcmp(r->result, "ok") ? " / " : "",
		 r->result[0] && strcmp(r->result, "ok") ? r->result : "");
	return 0;
}

static int list_domain(void *ctx, const char *domain)
{
	struct list_ctx *c = ctx;
	int n = 0;
	char sts[96] = "-";
	db_each_mx(c->d, domain, count_mx, &n);
	db_each_sts(c->d, domain, list_sts, sts);
	printf("%-40s %4d %s\n", domain, n, sts);
	return 0;
}

struct queued {
	char **names;
	int n;
};

static int collect_queued(void *ctx, const char *const *c, int n)
{
	struct queued *q = ctx;
	if (n < 1 || !c[0])
		return 0;
	char **names = realloc(q->names, (size_t)(q->n + 1) * sizeof(*names));
	if (!names)
		return 1;
	q->names = names;
	q->names[q->n++] = strdup(c[0]);
	return 0;
}

static int cmd_fetch(struct db *d, struct refresh_config *cfg, int argc, char **argv, int queued)
{
	struct queued q = {0};
	if (queued) {
		if (db_discovery_each(d, collect_queued, &q)) {
			fprintf(stderr, "mxwatch policy fetch: %s\n", db_errmsg(d));
			return EXIT_USAGE;
		}
		argc = q.n;
		argv = q.names;
	}
	char err[512];
	struct refresher *r = refresher_new(cfg, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "mxwatch policy fetch: %s\n", err);
		for (int i = 0; i < q.n; i++)
			free(q.names[i]);
		free(q.names);
		return EXIT_USAGE;
	}
	int status = EXIT_CLEAN;
	for (int i = 0; i < argc; i++) {
		int rc = refresher_fetch(r, d, argv[i], stdout);
		if (rc < 0) {
			fprintf(stderr, "mxwatch policy fetch: %s: database: %s\n", argv[i],
				db_errmsg(d));
			status = EXIT_USAGE;
		} else if (rc > 0) {
			/* Not an all-clear: the cache kept what it had. */
			fprintf(stderr, "mxwatch policy fetch: %s: %s (cached data kept)\n",
				argv[i], refresher_failure(r));
			status = EXIT_FETCH_FAILED;
		} else if (queued) {
			db_discovery_done(d, argv[i]);
		}
	}
	refresher_free(r);
	for (int i = 0; i < q.n; i++)
		free(q.names[i]);
	free(q.names);
	return status;
}

/* The options of every policy subcommand (most use only --db). */
struct policy_args {
	struct refresh_config cfg;
	const char *db_path;
	int queued;
	int nargs;
	char **args;
};

enum {
	OPT_DB = 256,
	OPT_TA,
	OPT_STUB,
	OPT_RESOLVER,
	OPT_CA,
	OPT_FORCE,
	OPT_TIMEOUT,
	OPT_HTTPS_PORT,
	OPT_QUEUED
};

/* One option; 0 when taken, else the exit status. */
static int policy_opt(struct policy_args *a, int c, const char *arg, const char *opt_text)
{
	struct refresh_config *cfg = &a->cfg;
	unsigned long long v;
	switch (c) {
	case OPT_DB: a->db_path = arg; return 0;
	case OPT_TA: cfg->trust_anchor = arg; return 0;
	case OPT_CA: cfg->ca_bundle = arg; return 0;
	case OPT_FORCE: cfg->force = 1; return 0;
	case OPT_QUEUED: a->queued = 1; return 0;
	case OPT_STUB:
	case OPT_RESOLVER:
		if ((c == OPT_STUB ? cfg->n_stubs : cfg->n_forwarders) >= REFRESH_MAX_SERVERS) {
			fprintf(stderr, "mxwatch policy: at most %d --stub/--resolver each\n",
				REFRESH_MAX_SERVERS);
			return EXIT_USAGE;
		}
		if (c == OPT_STUB)
			cfg->stubs[cfg->n_stubs++] = arg;
		else
			cfg->forwarders[cfg->n_forwarders++] = arg;
		return 0;
	case OPT_TIMEOUT:
		if (parse_size_option("--timeout", arg, &v) || v == 0 || v > 3600) {
			fprintf(stderr, "mxwatch policy: --timeout: 1..3600 seconds\n");
			return EXIT_USAGE;
		}
		cfg->timeout_s = (long)v;
		return 0;
	case OPT_HTTPS_PORT:
		if (parse_size_option("--https-port", arg, &v) || v == 0 || v > 65535) {
			fprintf(stderr, "mxwatch policy: --https-port: 1..65535\n");
			return EXIT_USAGE;
		}
		cfg->https_port = (int)v;
		return 0;
	case 'h': policy_usage(stdout); return EXIT_CLEAN;
	default:
		fprintf(stderr, "mxwatch policy: unknown or incomplete option '%s'\n", opt_text);
		return EXIT_USAGE;
	}
}

/* Parses the options after the subcommand; 1 to go on, 0 to exit with
 * *status. */
static int parse_policy_args(int argc, char **argv, struct policy_args *a, int *status)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, OPT_DB},
	    {"trust-anchor", required_argument, NULL, OPT_TA},
	    {"stub", required_argument, NULL, OPT_STUB},
	    {"resolver", required_argument, NULL, OPT_RESOLVER},
	    {"ca-bundle", required_argument, NULL, OPT_CA},
	    {"force", no_argument, NULL, OPT_FORCE},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"https-port", required_argument, NULL, OPT_HTTPS_PORT},
	    {"queued", no_argument, NULL, OPT_QUEUED},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	memset(a, 0, sizeof(*a));
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		*status = policy_opt(a, c, optarg, argv[optind - 1]);
		if (*status != 0 || c == 'h')
			return 0;
	}
	a->nargs = argc - optind;
	a->args = argv + optind;
	return 1;
}

static int sub_fetch(struct db *d, struct policy_args *a)
{
	return cmd_fetch(d, &a->cfg, a->nargs, a->args, a->queued);
}

static int sub_show(struct db *d, struct policy_args *a)
{
	return cmd_show(d, a->nargs, a->args);
}

static int sub_list(struct db *d, struct policy_args *a)
{
	(void)a;
	struct list_ctx c = {d};
	printf("%-40s %4s %s\n", "domain", "mx", "mta-sts");
	db_each_domain(d, list_domain, &c);
	return EXIT_CLEAN;
}

static int sub_export(struct db *d, struct policy_args *a)
{
	(void)a;
	return policyfile_export(d, stdout) ? EXIT_USAGE : EXIT_CLEAN;
}

static int sub_import(struct db *d, struct policy_args *a)
{
	char err[512];
	for (int i = 0; i < a->nargs; i++) {
		const char *name = a->args[i];
		FILE *f = strcmp(name, "-") ? fopen(name, "r") : stdin;
		int n = 0, rc = 0;
		if (!f) {
			fprintf(stderr, "mxwatch policy import: %s: cannot open\n", name);
			return EXIT_USAGE;
		}
		rc = policyfile_import(d, f, name, err, sizeof(err), &n);
		if (f != stdin)
			fclose(f);
		if (rc) {
			fprintf(stderr, "mxwatch policy import: %s\n", err);
			return EXIT_USAGE;
		}
		printf("%s: %d records imported\n", name, n);
	}
	return EXIT_CLEAN;
}

static const struct {
	const char *name;
	const char *needs; /* the operand it cannot do without, or NULL */
	int writes;        /* else the database is opened read-only */
	int (*run)(struct db *d, struct policy_args *a);
} subcommands[] = {
    {"fetch", "DOMAIN", 1, sub_fetch}, {"import", "FILE", 1, sub_import},
    {"export", NULL, 0, sub_export},   {"show", "DOMAIN", 0, sub_show},
    {"list", NULL, 0, sub_list},
};

int cmd_policy(int argc, char **argv)
{
	if (argc < 2) {
		policy_usage(stderr);
		return EXIT_USAGE;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
		policy_usage(stdout);
		return EXIT_CLEAN;
	}
	struct policy_args a;
	int status = EXIT_CLEAN;
	if (!parse_policy_args(argc - 1, argv + 1, &a, &status))
		return status;
	size_t k = 0, n_sub = sizeof(subcommands) / sizeof(subcommands[0]);
	while (k < n_sub && strcmp(subcommands[k].name, sub))
		k++;
	if (k == n_sub) {
		fprintf(stderr, "mxwatch policy: '%s' is not fetch, import, export, show or list\n",
			sub);
		return EXIT_USAGE;
	}
	/* fetch --queued takes its domains from the database. */
	if (subcommands[k].needs && a.nargs == 0 &&
	    !(a.queued && subcommands[k].run == sub_fetch)) {
		fprintf(stderr, "mxwatch policy %s: missing %s\n", sub, subcommands[k].needs);
		return EXIT_USAGE;
	}
	char pathbuf[4096], err[512];
	if (!a.db_path)
		a.db_path = db_default_path(pathbuf, sizeof(pathbuf));
	struct db *d = subcommands[k].writes ? db_open(a.db_path, err, sizeof(err))
					     : db_open_readonly(a.db_path, err, sizeof(err));
	if (!d) {
		fprintf(stderr, "mxwatch policy: %s\n", err);
		return EXIT_USAGE;
	}
	status = subcommands[k].run(d, &a);
	db_close(d);
	return status;
}
