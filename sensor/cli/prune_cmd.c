/*
 * prune_cmd.c - `mxwatch prune`: retention. Deletes the stored sessions
 * older than a number of days, their findings, and the server history not
 * seen since, in one transaction; the policy cache, its fetch log and
 * observed DNS stay. The SQL is db/sql/db.c's (db_prune).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cmd.h"
#include "cli/options.h"
#include "db/sql/db.h"
#include "util/text.h"

#define PRUNE_DEFAULT_WAIT_S 30

static void usage(FILE *out)
{
	fprintf(out,
		"NAME\n"
		"    mxwatch prune - delete stored results older than a number of days\n\n"
		"SYNOPSIS\n"
		"    mxwatch prune --older-than DAYS [--db PATH] [--db-wait SEC] [--dry-run]\n"
		"                  [--vacuum]\n\n"
		"DESCRIPTION\n"
		"    Deletes the sessions that started more than DAYS days (of 86,400 s) before\n"
		"    now, with their findings and the domains they were tied to, and the learned\n"
		"    server history last seen before then, all in one transaction: either all of\n"
		"    it goes or nothing does. The policy cache (MX, addresses, TLSA, MTA-STS),\n"
		"    its fetch log, observed DNS and the discovery queue are left as they are.\n"
		"    Prints how many rows of each it deleted and how many are left; `mxwatch\n"
		"    report` afterwards counts only what is left.\n\n"
		"    The file does not shrink: the space freed is reused by later writes, so a\n"
		"    daily prune keeps the database at about DAYS days of results. --vacuum\n"
		"    rewrites the file to its smallest size instead (it needs free disk space\n"
		"    about the database's size and blocks other writers while it runs).\n\n"
		"    Another process writing (a running `mxwatch capture`) is waited for, up to\n"
		"    --db-wait seconds; while prune holds the lock the capture queues its\n"
		"    results and stores them afterwards. The capture keeps the server history\n"
		"    it loaded at start until it is restarted.\n\n"
		"OPTIONS\n"
		"    --older-than DAYS    delete what is older than DAYS days (a whole number,\n"
		"                         1 or more); required\n"
		"    --db PATH            database (default: $MXWATCH_DB, else\n"
		"                         ~/.local/share/mxwatch/mxwatch.db); it must exist\n"
		"    --db-wait SEC        how long a database locked by another process is\n"
		"                         retried (default %d)\n"
		"    --dry-run            count what would be deleted, delete nothing\n"
		"    --vacuum             then rewrite the file without its free space (VACUUM)\n"
		"    -h, --help           this text\n\n"
		"EXIT STATUS\n"
		"    0 done, 2 usage error, missing or damaged database, or the database stayed\n"
		"    locked (nothing deleted)\n",
		PRUNE_DEFAULT_WAIT_S);
}

/* A positive whole number of days: digits only, no sign, no suffix. */
static int parse_days(const char *s, unsigned long long *out)
{
	errno = 0;
	if (!*s)
		return -1;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return -1;
	unsigned long long v = strtoull(s, NULL, 10);
	if (errno || v == 0)
		return -1;
	*out = v;
	return 0;
}

static void fmt_utc(int64_t t, char *buf, size_t len)
{
	time_t s = (time_t)t;
	struct tm tm;
	if (t < 0 || !gmtime_r(&s, &tm))
		snprintf(buf, len, "the epoch");
	else
		strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void print_space(struct db *d, const char *when)
{
	int64_t pages, free_pages, page_size;
	if (db_space(d, &pages, &free_pages, &page_size))
		return;
	printf("file %s: %lld pages of %lld bytes, %lld of them free (%lld KiB)\n", when,
	       (long long)pages, (long long)page_size, (long long)free_pages,
	       (long long)(free_pages * page_size / 1024));
}

int cmd_prune(int argc, char **argv)
{
	enum {
		OPT_DB = 256,
		OPT_OLDER,
		OPT_WAIT,
		OPT_DRY,
		OPT_VACUUM
	};
	static const struct option opts[] = {
	    {"older-than", required_argument, NULL, OPT_OLDER},
	    {"db", required_argument, NULL, OPT_DB},
	    {"db-wait", required_argument, NULL, OPT_WAIT},
	    {"dry-run", no_argument, NULL, OPT_DRY},
	    {"vacuum", no_argument, NULL, OPT_VACUUM},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db_path = NULL;
	unsigned long long days = 0, wait_s = PRUNE_DEFAULT_WAIT_S;
	int dry_run = 0, vacuum = 0;
	char q[256];
	optind = 1;
	opterr = 0;
	for (;;) {
		int c = getopt_long(argc, argv, "h", opts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case OPT_DB: db_path = optarg; break;
		case OPT_DRY: dry_run = 1; break;
		case OPT_VACUUM: vacuum = 1; break;
		case OPT_OLDER:
			if (parse_days(optarg, &days)) {
				fprintf(stderr,
					"mxwatch prune: --older-than: '%s' is not a positive whole "
					"number of days%s\n",
					text_escape_str(q, sizeof(q), optarg),
					errno == ERANGE ? " (too large)" : "");
				return EXIT_USAGE;
			}
			break;
		case OPT_WAIT:
			if (parse_size_option("--db-wait", optarg, &wait_s))
				return EXIT_USAGE;
			if (wait_s > 86400) {
				fprintf(stderr,
					"mxwatch prune: --db-wait: at most 86400 seconds\n");
				return EXIT_USAGE;
			}
			break;
		case 'h': usage(stdout); return EXIT_CLEAN;
		default:
			fprintf(stderr,
				"mxwatch prune: unknown or incomplete option '%s'; see 'mxwatch "
				"prune --help'\n",
				text_escape_str(q, sizeof(q), argv[optind - 1]));
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mxwatch prune: unexpected argument '%s'\n",
			text_escape_str(q, sizeof(q), argv[optind]));
		return EXIT_USAGE;
	}
	if (!days) {
		fprintf(stderr, "mxwatch prune: --older-than DAYS is required (a whole number of "
				"days, 1 or more)\n");
		return EXIT_USAGE;
	}

	char pathbuf[4096], err[512];
	if (!db_path)
		db_path = db_default_path(pathbuf, sizeof(pathbuf));
	struct db *d = db_open_existing(db_path, err, sizeof(err));
	if (!d) {
		fprintf(stderr, "mxwatch prune: %s\n", err);
		return EXIT_USAGE;
	}
	db_set_busy_wait(d, (int)wait_s * 1000);

	int64_t now = (int64_t)time(NULL);
	/* More days than since 1970: nothing is that old. */
	int64_t before = days > (unsigned long long)(now / 86400) + 1 ? -1
								      : now - (int64_t)days * 86400;
	char when[64];
	fmt_utc(before, when, sizeof(when));
	struct db_prune_counts n;
	int rc = db_prune(d, before, dry_run, &n, err, sizeof(err));
	if (rc) {
		if (rc > 0)
			fprintf(stderr,
				"mxwatch prune: %s: another process held the database's write lock "
				"for more than %llu s (%s); nothing deleted: try again, or raise "
				"--db-wait\n",
				db_path, wait_s, err);
		else
			fprintf(stderr, "mxwatch prune: %s: %s; nothing deleted\n", db_path, err);
		db_close(d);
		return EXIT_USAGE;
	}
	printf("%s %s: sessions that started before %s (%llu days ago)\n",
	       dry_run ? "would prune" : "pruned", db_path, when, days);
	printf("%s: %lld sessions, %lld findings, %lld session domains, %lld server history\n",
	       dry_run ? "would delete" : "deleted", (long long)n.sessions, (long long)n.findings,
	       (long long)n.session_domains, (long long)n.history);
	printf("%s: %lld sessions, %lld findings, %lld server history; policies, fetch log and "
	       "observed DNS untouched\n",
	       dry_run ? "would keep" : "kept", (long long)n.sessions_kept,
	       (long long)n.findings_kept, (long long)n.history_kept);
	int status = EXIT_CLEAN;
	if (vacuum && !dry_run) {
		print_space(d, "before VACUUM");
		if (db_vacuum(d, err, sizeof(err))) {
			fprintf(stderr,
				"mxwatch prune: %s: VACUUM failed: %s (the deletions stand; the "
				"freed space is reused by later writes)\n",
				db_path, err);
			status = EXIT_USAGE;
		}
		print_space(d, "after VACUUM");
	} else {
		print_space(d, "now");
	}
	db_close(d);
	return status;
}
