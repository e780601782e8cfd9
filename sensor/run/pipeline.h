/*
 * pipeline.h - one whole analysis pipeline, shared by `analyze` (files) and
 * `capture` (live): flow table -> decoders -> rules -> sinks (JSON, syslog,
 * SQLite, summary), with the policy cache and learned history loaded from
 * the database at start and swapped on reload.
 */
#ifndef MXW_PIPELINE_H
#define MXW_PIPELINE_H

#include <stdio.h>

#include "capture/capture.h"
#include "run/session.h"
#include "stream/flow.h"

struct pipeline_opts {
	int json, quiet, flows, syslog_on, no_store;
	int findings_only; /* print only findings (JSON) or sessions with findings (table) */
	int fail_on; /* severity, -1 never */
	enum session_ndpi_mode ndpi;
	int workers; /* decoding threads; 0: one per core */
#define PIPELINE_MAX_WORKERS 64
	int live;            /* shards driven by the caller's threads */
	const char *db_path; /* NULL: the default path when it exists */
	const char *config_path;
	int db_wait_s; /* offline: seconds a busy database is retried; -1 default */
#define PIPELINE_MAX_KEYLOGS 8
	const char *keylogs[PIPELINE_MAX_KEYLOGS]; /* --tls-keylog files */
	int n_keylogs;
	int keylog_wait_s; /* live: how long a TLS 1.3 session waits for its keys */
	const char *sensor;      /* --sensor; NULL: the host name */
	const char *output_path; /* --output; NULL: standard output */
	struct flow_config flow;
};

void pipeline_opts_defaults(struct pipeline_opts *o);

struct pipeline;
struct shard;

/* Worker threads for `o` (resolves 0 to the number of cores). */
int pipeline_workers(const struct pipeline_opts *o);

/* Opens the database, loads config, cache and history, builds every stage.
 * NULL with err set on failure. */
struct pipeline *pipeline_new(const struct pipeline_opts *o, char *err, size_t errlen);
/* capture_packet_fn adapter */
void pipeline_on_packet(void *ctx, const struct packet *pkt);
struct capture_counters *pipeline_counters(struct pipeline *p);
/* --output: closes the file and opens it again by name (after logrotate
 * moved it), everything written so far flushed; 0 without --output. On
 * failure the old file stays in use. */
int pipeline_reopen_output(struct pipeline *p, char *err, size_t errlen);
/* Re-reads the configuration and the policy cache; flows are kept. */
int pipeline_reload(struct pipeline *p, char *err, size_t errlen);
/* Ends every flow through the rules and sinks, commits the database, prints
 * the summary (unless quiet) and the counters to `counters_out`. */
void pipeline_finish(struct pipeline *p, FILE *counters_out);
/* Live (opts.live): shard i of pipeline_workers(), for capture thread i,
 * which feeds it packets, ticks and publishes, and finishes it at the end;
 * the main thread hands their results to the sinks with pipeline_drain()
 * (1 once every shard has finished). */
struct shard *pipeline_shard(struct pipeline *p, int i);
int pipeline_drain(struct pipeline *p, int wait_ms);
/* Offline: the next capture file's name, before it is read (records
 * name the file their flow began in). Returns -1 without memory. */
int pipeline_name_input(struct pipeline *p, const char *name);
/* `fn(ctx)` runs before each session or finding is printed (and before
 * the summary): the caller clears a progress line there. */
void pipeline_before_output(struct pipeline *p, void (*fn)(void *ctx), void *ctx);
/* 1 when the session output (stdout) could not be written in full
 * (after pipeline_finish). */
int pipeline_output_failed(const struct pipeline *p);
/* 1 when some result was not stored (after pipeline_finish). */
int pipeline_store_failed(const struct pipeline *p);
/* 1 when a finding reached --fail-on. */
int pipeline_failed(const struct pipeline *p);
void pipeline_free(struct pipeline *p);

#endif
