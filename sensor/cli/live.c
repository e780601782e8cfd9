/*
 * live.c - `mxwatch capture`: the SPAN-port daemon. Opens libpcap handles on
 * one or more interfaces and the database as root, drops to an unprivileged
 * user (optionally in a chroot) before the first packet, then runs the
 * pipeline until SIGTERM/SIGINT, which push every open session through the
 * rules and sinks. SIGHUP reloads configuration and policy cache without
 * losing flows; SIGUSR1 and a timer report capture statistics.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/if_packet.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "capture/packet.h"
#include "cli/cmd.h"
#include "cli/options.h"
#include "run/pipeline.h"
#include "run/shard.h"
#include "util/units.h"

#define LIVE_MAX_IFACES     8
#define LIVE_DEFAULT_FILTER "tcp port 25 or tcp port 587 or tcp port 465 or port 53"

enum {
	OPT_FILTER = 256,
	OPT_SNAPLEN,
	OPT_BUFFER,
	OPT_NO_PROMISC,
	OPT_TIMEOUT,
	OPT_USER,
	OPT_CHROOT,
	OPT_STATS
};

static volatile sig_atomic_t got_term, got_hup, got_usr1;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else if (sig == SIGUSR1)
		got_usr1 = 1;
	else
		got_term = 1;
}

/* One capture thread: a handle per interface (joined to that interface's
 * fanout group when there are several threads) and its own shard. */
struct worker {
	pthread_t thread;
	int index;
	int n_if;
	pcap_t *h[LIVE_MAX_IFACES];
	int linktype[LIVE_MAX_IFACES];
	struct shard *shard;
	struct capture_counters counters;
	/* statistics asked for by the main thread */
	pthread_mutex_t stats_mu;
	struct pcap_stat st[LIVE_MAX_IFACES];
	unsigned stats_done;
};

static atomic_uint stats_wanted; /* bumped by the main thread */
static atomic_int workers_stop;

struct frame_ctx {
	struct worker *w;
	int linktype;
};

static void usage(FILE *out)
{
	fprintf(out,
		"NAME\n"
		"    mxwatch capture - watch SMTP on live interfaces (SPAN/mirror port)\n\n"
		"SYNOPSIS\n"
		"    mxwatch capture -i IFACE [-i IFACE...] [options]\n\n"
		"DESCRIPTION\n"
		"    Captures with libpcap, runs in the foreground (for systemd), and gives the\n"
		"    same outputs as analyze. Interfaces and the database are opened first, then\n"
		"    privileges are dropped to --user (and --chroot) before any packet is read.\n"
		"    SIGHUP reloads the configuration and the policy cache, keeping every flow,\n"
		"    and reopens --output (after log rotation);\n"
		"    SIGTERM and SIGINT end all open sessions through the rules and sinks, then\n"
		"    exit; SIGUSR1 logs capture statistics (received, dropped, dropped by the\n"
		"    interface), which are also logged every --stats-interval and at exit.\n"
		"    With several --workers, each worker opens every interface and joins the\n"
		"    interface's AF_PACKET fanout group (PACKET_FANOUT_HASH): the kernel gives\n"
		"    both directions of a connection to the same worker.\n\n"
		"OPTIONS\n"
		"    -i, --interface IFACE\n"
		"                         capture here (repeatable, up to %d)\n"
		"    --filter BPF         capture filter (default \"%s\")\n"
		"    --snaplen BYTES      bytes kept per packet (default 65535)\n"
		"    --buffer SIZE        kernel capture buffer per interface, shared by the\n"
		"                         workers' handles (at least 4M each), k/M/G suffix\n"
		"                         (default 64M)\n"
		"    --no-promisc         do not put interfaces in promiscuous mode\n"
		"    --timeout MS         packet buffer timeout (default 100)\n"
		"    --user NAME          drop root to this user after opening everything\n"
		"    --chroot DIR         and confine the process to DIR\n"
		"    --stats-interval SEC\n"
		"                         log capture statistics this often (default 300, 0 off)\n"
		"%s"
		"    -h, --help           this text\n\n"
		"EXIT STATUS\n"
		"    0 stopped by a signal, 1 a finding at or above --fail-on, 2 usage or\n"
		"    start-up error, or some results could not be stored\n",
		LIVE_MAX_IFACES, LIVE_DEFAULT_FILTER, pipeline_options_help);
}

static void on_frame(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
	struct frame_ctx *fc = (struct frame_ctx *)user;
	struct capture_counters *c = &fc->w->counters;
	c->frames++;
	c->bytes += h->caplen;
	struct packet pkt;
	pkt.ts_ns = (uint64_t)h->ts.tv_sec * NS_PER_S + (uint64_t)h->ts.tv_usec * NS_PER_US;
	enum packet_result r = packet_decode(fc->linktype, data, h->caplen, &pkt);
	c->by_result[r]++;
	if (r != PKT_OK)
		return;
	c->udp += pkt.ip_proto == 17;
	shard_packet(fc->w->shard, &pkt);
}

static uint64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static void read_handles(struct worker *w)
{
	for (int i = 0; i < w->n_if; i++) {
		struct frame_ctx fc = {w, w->linktype[i]};
		/* Read on every wake-up: the buffer timeout can hold packets
		 * back from poll on some kernels. */
		if (pcap_dispatch(w->h[i], -1, on_frame, (u_char *)&fc) < 0)
			fprintf(stderr, "mxwatch capture: %s\n", pcap_geterr(w->h[i]));
	}
}

static void take_stats(struct worker *w, unsigned gen)
{
	pthread_mutex_lock(&w->stats_mu);
	for (int i = 0; i < w->n_if; i++)
		if (pcap_stats(w->h[i], &w->st[i]) != 0)
			memset(&w->st[i], 0, sizeof(w->st[i]));
	w->stats_done = gen;
	pthread_mutex_unlock(&w->stats_mu);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pollfd pfd[LIVE_MAX_IFACES];
	for (int i = 0; i < w->n_if; i++) {
		pfd[i].fd = pcap_get_selectable_fd(w->h[i]);
		pfd[i].events = POLLIN;
	}
	unsigned seen = 0;
	while (!atomic_load(&workers_stop)) {
		poll(pfd, (nfds_t)w->n_if, 200);
		read_handles(w);
		/* Idle flows end on time even when the link is quiet. */
		shard_tick(w->shard, wall_ns());
		shard_publish(w->shard);
		unsigned want = atomic_load(&stats_wanted);
		if (want != seen) {
			seen = want;
			take_stats(w, want);
		}
	}
	/* Drain what the kernel still holds, then end every session. */
	read_handles(w);
	take_stats(w, atomic_load(&stats_wanted));
	shard_finish(w->shard);
	return NULL;
}

/* Opens and activates one interface; exits the process with a message on
 * failure (start-up only). */
static pcap_t *xopen_iface(const char *name, int snaplen, int buffer, int promisc, int timeout,
			   const char *filter)
{
	char err[PCAP_ERRBUF_SIZE];
	pcap_t *h = pcap_create(name, err);
	if (!h) {
		fprintf(stderr, "mxwatch capture: %s: %s\n", name, err);
		exit(EXIT_USAGE);
	}
	pcap_set_snaplen(h, snaplen);
	pcap_set_promisc(h, promisc);
	pcap_set_timeout(h, timeout);
	pcap_set_buffer_size(h, buffer);
	int rc = pcap_activate(h);
	if (rc < 0) {
		fprintf(stderr, "mxwatch capture: %s: %s\n", name, pcap_geterr(h));
		exit(EXIT_USAGE);
	}
	if (rc > 0)
		fprintf(stderr, "mxwatch capture: %s: warning: %s\n", name, pcap_geterr(h));
	if (!packet_linktype_supported(pcap_datalink(h))) {
		fprintf(stderr, "mxwatch capture: %s: unsupported link type %d\n", name,
			pcap_datalink(h));
		exit(EXIT_USAGE);
	}
	struct bpf_program prog;
	if (pcap_compile(h, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) < 0 ||
	    pcap_setfilter(h, &prog) < 0) {
		fprintf(stderr, "mxwatch capture: %s: filter \"%s\": %s\n", name, filter,
			pcap_geterr(h));
		exit(EXIT_USAGE);
	}
	pcap_freecode(&prog);
	if (pcap_setnonblock(h, 1, err) < 0) {
		fprintf(stderr, "mxwatch capture: %s: %s\n", name, err);
		exit(EXIT_USAGE);
	}
	return h;
}

/* Gives the database files to the user the process becomes. */
static void chown_db(const char *path, uid_t uid, gid_t gid)
{
	static const char *const suffix[] = {"", "-wal", "-shm"};
	char p[4200];
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
		if (chown(p, uid, gid) != 0 && errno != ENOENT)
			fprintf(stderr, "mxwatch capture: warning: chown %s: %s\n", p,
				strerror(errno));
	}
}

static void xdrop_privileges(const char *user, const char *dir, const char *db_path)
{
	if (!user && !dir)
		return;
	struct passwd *pw = user ? getpwnam(user) : NULL;
	if (user && !pw) {
		fprintf(stderr, "mxwatch capture: --user %s: no such user\n", user);
		exit(EXIT_USAGE);
	}
	if (pw && db_path && db_path[0])
		chown_db(db_path, pw->pw_uid, pw->pw_gid);
	if (dir && (chroot(dir) != 0 || chdir("/") != 0)) {
		fprintf(stderr, "mxwatch capture: --chroot %s: %s\n", dir, strerror(errno));
		exit(EXIT_USAGE);
	}
	if (pw && (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
		   setuid(pw->pw_uid) != 0)) {
		fprintf(stderr, "mxwatch capture: dropping to %s: %s\n", user, strerror(errno));
		exit(EXIT_USAGE);
	}
	/* Paranoia: the drop must be irreversible. */
	if (pw && pw->pw_uid != 0 && setuid(0) == 0) {
		fprintf(stderr, "mxwatch capture: could regain root after dropping privileges\n");
		exit(EXIT_USAGE);
	}
}

/* Sums per interface over the capture threads. */
static void log_stats(struct worker *ws, int n_workers, const char *const *names, int n_if,
		      int use_syslog)
{
	for (int i = 0; i < n_if; i++) {
		unsigned long long recv = 0, drop = 0, ifdrop = 0;
		for (int k = 0; k < n_workers; k++) {
			pthread_mutex_lock(&ws[k].stats_mu);
			recv += ws[k].st[i].ps_recv;
			drop += ws[k].st[i].ps_drop;
			ifdrop += ws[k].st[i].ps_ifdrop;
			pthread_mutex_unlock(&ws[k].stats_mu);
		}
		fprintf(stderr,
			"capture %s: received %llu, dropped %llu, dropped by interface %llu\n",
			names[i], recv, drop, ifdrop);
		if (use_syslog)
			syslog(LOG_INFO,
			       "stats interface=%s received=%llu dropped=%llu ifdropped=%llu",
			       names[i], recv, drop, ifdrop);
	}
}

static int stats_all_done(struct worker *ws, int n, unsigned gen)
{
	int done = 1;
	for (int k = 0; k < n; k++) {
		pthread_mutex_lock(&ws[k].stats_mu);
		done &= ws[k].stats_done == gen;
		pthread_mutex_unlock(&ws[k].stats_mu);
	}
	return done;
}

/* Several handles on one interface share its packets out by flow: the
 * kernel hashes both directions of a connection alike. The first handle of
 * an interface asks the kernel for a group id no other socket uses
 * (group < 0), the others join that id; returns it. */
static int xjoin_fanout(pcap_t *h, const char *name, int group)
{
	const int flags = PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG;
	int fd = pcap_fileno(h);
	int val = group < 0 ? (flags | PACKET_FANOUT_FLAG_UNIQUEID) << 16
			    : (group & 0xffff) | flags << 16;
	if (setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &val, sizeof(val)) != 0) {
		fprintf(stderr,
			"mxwatch capture: %s: joining a fanout group: %s (try --workers 1)\n", name,
			strerror(errno));
		exit(EXIT_USAGE);
	}
	if (group >= 0)
		return group;
	socklen_t len = sizeof(val);
	if (getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &val, &len) != 0) {
		fprintf(stderr, "mxwatch capture: %s: reading the fanout group: %s\n", name,
			strerror(errno));
		exit(EXIT_USAGE);
	}
	return val & 0xffff;
}

static void discard_frame(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
	(void)user, (void)h, (void)data;
}

/* What `capture` was asked to do, beyond the pipeline's own options. */
struct capture_args {
	struct pipeline_opts o;
	const char *ifnames[LIVE_MAX_IFACES];
	int n_if;
	const char *filter, *user, *chroot_dir;
	int snaplen, promisc, timeout;
	unsigned long long buffer, stats_every;
};

/* An option value in [min, max]; -1 after a message naming the option. */
static int ranged(const char *opt, const char *val, unsigned long long min, unsigned long long max,
		  const char *range, unsigned long long *out)
{
	if (parse_size_option(opt, val, out))
		return -1;
	if (*out < min || *out > max) {
		fprintf(stderr, "mxwatch capture: %s: %s\n", opt, range);
		return -1;
	}
	return 0;
}

/* One of capture's own options; 1 handled, 0 not one of them, -1 bad. */
static int capture_opt(struct capture_args *a, int c, const char *arg)
{
	unsigned long long v;
	switch (c) {
	case 'i':
		if (a->n_if == LIVE_MAX_IFACES) {
			fprintf(stderr, "mxwatch capture: at most %d interfaces\n",
				LIVE_MAX_IFACES);
			return -1;
		}
		a->ifnames[a->n_if++] = arg;
		return 1;
	case 'q': a->o.quiet = 1; return 1;
	case OPT_FILTER: a->filter = arg; return 1;
	case OPT_NO_PROMISC: a->promisc = 0; return 1;
	case OPT_USER: a->user = arg; return 1;
	case OPT_CHROOT: a->chroot_dir = arg; return 1;
	case OPT_SNAPLEN:
		if (ranged("--snaplen", arg, 96, 262144, "96..262144", &v))
			return -1;
		a->snaplen = (int)v;
		return 1;
	case OPT_BUFFER:
		if (ranged("--buffer", arg, 65536, 1ull << 31, "64k..2G", &a->buffer))
			return -1;
		return 1;
	case OPT_TIMEOUT:
		if (ranged("--timeout", arg, 1, 10000, "1..10000 ms", &v))
			return -1;
		a->timeout = (int)v;
		return 1;
	case OPT_STATS: return parse_size_option("--stats-interval", arg, &a->stats_every) ? -1 : 1;
	default: return 0;
	}
}

/* Returns 1 to go on, or 0 to exit with *status (help shown, usage error). */
static int parse_args(int argc, char **argv, struct capture_args *a, int *status)
{
	struct option opts[40];
	int n = 0;
	for (int i = 0; i < pipeline_n_options; i++)
		opts[n++] = pipeline_options[i];
	static const struct option own[] = {
	    {"interface", required_argument, NULL, 'i'},
	    {"filter", required_argument, NULL, OPT_FILTER},
	    {"snaplen", required_argument, NULL, OPT_SNAPLEN},
	    {"buffer", required_argument, NULL, OPT_BUFFER},
	    {"no-promisc", no_argument, NULL, OPT_NO_PROMISC},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"user", required_argument, NULL, OPT_USER},
	    {"chroot", required_argument, NULL, OPT_CHROOT},
	    {"stats-interval", required_argument, NULL, OPT_STATS},
	    {"help", no_argument, NULL, 'h'},
	};
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		opts[n++] = own[i];
	opts[n] = (struct option){NULL, 0, NULL, 0};

	memset(a, 0, sizeof(*a));
	pipeline_opts_defaults(&a->o);
	a->filter = LIVE_DEFAULT_FILTER;
	a->snaplen = 65535;
	a->promisc = 1;
	a->timeout = 100;
	a->buffer = 64ull << 20;
	a->stats_every = 300;
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "i:qh", opts, NULL)) != -1) {
		*status = EXIT_CLEAN;
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		*status = EXIT_USAGE;
		int r = capture_opt(a, c, optarg);
		if (r == 0)
			r = pipeline_opt(&a->o, c, optarg, "capture");
		if (r < 0)
			return 0;
		if (r == 0) {
			fprintf(stderr, "mxwatch capture: unknown or incomplete option '%s'\n",
				argv[optind - 1]);
			return 0;
		}
	}
	if (a->n_if == 0 || optind < argc) {
		fprintf(stderr, "mxwatch capture: %s\nsee 'mxwatch capture --help'\n",
			a->n_if ? "unexpected argument" : "no interface given (-i IFACE)");
		*status = EXIT_USAGE;
		return 0;
	}
	return 1;
}

/* Every worker's handle on every interface, in fanout groups when there
 * are several workers; exits on failure (start-up only). */
static void xopen_handles(const struct capture_args *a, struct worker *ws, int n_workers)
{
	/* The buffer is the interface's: its handles share it, as they share
	 * its traffic. */
	unsigned long long per_handle = a->buffer / (unsigned long long)n_workers;
	if (per_handle < (4ull << 20))
		per_handle = a->buffer < (4ull << 20) ? a->buffer : 4ull << 20;
	int group[LIVE_MAX_IFACES];
	for (int i = 0; i < a->n_if; i++)
		group[i] = -1;
	for (int k = 0; k < n_workers; k++) {
		struct worker *w = &ws[k];
		w->index = k;
		w->n_if = a->n_if;
		pthread_mutex_init(&w->stats_mu, NULL);
		for (int i = 0; i < a->n_if; i++) {
			w->h[i] = xopen_iface(a->ifnames[i], a->snaplen, (int)per_handle,
					      a->promisc, a->timeout, a->filter);
			w->linktype[i] = pcap_datalink(w->h[i]);
			/* Workers join every interface's group in the same order,
			 * so member k of each group is worker k: with one mirror
			 * port per direction, the kernel's symmetric flow hash still
			 * sends both directions of a connection to one worker. */
			if (n_workers > 1)
				group[i] = xjoin_fanout(w->h[i], a->ifnames[i], group[i]);
		}
	}
	/* Until it joined its group a handle saw every packet, which another
	 * worker may have seen too: start from empty rings. */
	for (int k = 0; n_workers > 1 && k < n_workers; k++)
		for (int i = 0; i < a->n_if; i++)
			/* Bounded: on a busy link the ring never runs dry. */
			for (int pass = 0; pass < 64; pass++)
				if (pcap_dispatch(ws[k].h[i], -1, discard_frame, NULL) <= 0)
					break;
}

/* Installs the signal handlers and starts the capture threads with the
 * signals blocked (they are the main thread's); returns how many started. */
static int start_workers(struct pipeline *p, struct worker *ws, int n_workers)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigset_t block, old;
	sigemptyset(&block);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sigaction(sigs[i], &sa, NULL);
		sigaddset(&block, sigs[i]);
	}
	signal(SIGPIPE, SIG_IGN);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	int started = 0;
	for (; started < n_workers; started++) {
		ws[started].shard = pipeline_shard(p, started);
		if (pthread_create(&ws[started].thread, NULL, worker_main, &ws[started]) != 0)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return started;
}

/* The main thread's work until SIGTERM/SIGINT: results to the sinks,
 * reloads, statistics (the store's writer commits by itself). */
static void serve(struct pipeline *p, const struct capture_args *a, struct worker *ws, int started)
{
	char err[512];
	time_t last_stats = time(NULL);
	unsigned stats_gen = 0;
	int stats_pending = 0;
	while (!got_term) {
		pipeline_drain(p, 200);
		if (got_hup) {
			got_hup = 0;
			if (pipeline_reopen_output(p, err, sizeof(err)))
				fprintf(stderr, "mxwatch capture: %s\n", err);
			if (pipeline_reload(p, err, sizeof(err)))
				fprintf(stderr,
					"mxwatch capture: reload failed, keeping the old "
					"configuration: %s\n",
					err);
			else
				fprintf(stderr,
					"mxwatch capture: configuration and policy reloaded\n");
		}
		time_t now = time(NULL);
		if (got_usr1 || (a->stats_every && now - last_stats >= (time_t)a->stats_every)) {
			got_usr1 = 0;
			last_stats = now;
			stats_gen = atomic_fetch_add(&stats_wanted, 1) + 1;
			stats_pending = 1;
		}
		if (stats_pending && stats_all_done(ws, started, stats_gen)) {
			stats_pending = 0;
			log_stats(ws, started, a->ifnames, a->n_if, a->o.syslog_on);
		}
		fflush(stdout);
	}
}

/* Stops the capture threads, pushes every open session through, and
 * returns the exit status. */
static int finish(struct pipeline *p, const struct capture_args *a, struct worker *ws, int started,
		  int n_workers)
{
	atomic_store(&workers_stop, 1);
	/* Shards never started must still count as finished. */
	for (int k = started; k < n_workers; k++)
		shard_finish(pipeline_shard(p, k));
	/* The threads' last sessions need the writer: drain while they end. */
	while (!pipeline_drain(p, 100))
		;
	for (int k = 0; k < started; k++)
		pthread_join(ws[k].thread, NULL);
	log_stats(ws, started, a->ifnames, a->n_if, a->o.syslog_on);
	struct capture_counters *total = pipeline_counters(p);
	for (int k = 0; k < started; k++) {
		total->frames += ws[k].counters.frames;
		total->bytes += ws[k].counters.bytes;
		total->udp += ws[k].counters.udp;
		for (int r = 0; r < PKT_RESULT_COUNT; r++)
			total->by_result[r] += ws[k].counters.by_result[r];
	}
	pipeline_finish(p, stderr);
	if (pipeline_store_failed(p))
		return EXIT_USAGE;
	return pipeline_failed(p) ? EXIT_FINDINGS : EXIT_CLEAN;
}

int cmd_capture(int argc, char **argv)
{
	struct capture_args a;
	int status;
	if (!parse_args(argc, argv, &a, &status))
		return status;
	if (getuid() == 0 && !a.user)
		fprintf(stderr, "mxwatch capture: warning: running as root; give --user to drop "
				"privileges after start\n");
	a.o.live = 1;
	int n_workers = pipeline_workers(&a.o);
	struct worker *ws = calloc((size_t)n_workers, sizeof(*ws));
	if (!ws) {
		fprintf(stderr, "mxwatch capture: out of memory\n");
		return EXIT_USAGE;
	}
	xopen_handles(&a, ws, n_workers);
	char err[512];
	struct pipeline *p = pipeline_new(&a.o, err, sizeof(err));
	if (!p) {
		/* The usual cause under a hardened unit: root without
		 * CAP_DAC_OVERRIDE cannot open what its user owns. */
		int hint = getuid() == 0 && strstr(err, "unable to open database file");
		fprintf(stderr, "mxwatch capture: %s%s\n", err,
			hint
			    ? " (root needs CAP_DAC_OVERRIDE to open a database another user owns; "
			      "see etc/mxwatch.service)"
			    : "");
		return EXIT_USAGE;
	}
	char db_path[4096] = "";
	if (a.o.db_path)
		snprintf(db_path, sizeof(db_path), "%s", a.o.db_path);
	xdrop_privileges(a.user, a.chroot_dir, db_path);

	int started = start_workers(p, ws, n_workers);
	if (started < n_workers) {
		fprintf(stderr, "mxwatch capture: cannot start capture thread %d\n", started + 1);
		got_term = 1;
	} else {
		fprintf(stderr,
			"mxwatch capture: running on %d interface(s) with %d capture "
			"thread(s) as uid %u\n",
			a.n_if, n_workers, (unsigned)getuid());
	}
	serve(p, &a, ws, started);
	status = finish(p, &a, ws, started, n_workers);
	pipeline_free(p);
	for (int k = 0; k < n_workers; k++) {
		for (int i = 0; i < a.n_if; i++)
			pcap_close(ws[k].h[i]);
		pthread_mutex_destroy(&ws[k].stats_mu);
	}
	free(ws);
	return status;
}
