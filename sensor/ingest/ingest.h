/*
 * ingest.h - the collector's side of many sensors: the JSON records sensors
 * write (analyze/capture --json), checked field by field and stored
 * idempotently. A record delivered twice is stored once; a session seen by
 * two sensors (two mirror ports on one path) is stored once, matched by
 * Community ID and start time, and both sightings are kept.
 */
#ifndef MXW_INGEST_H
#define MXW_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "db/sql/db.h"

/* Longest record line taken; longer ones are rejected. */
#define INGEST_MAX_LINE (1u << 20)
/* Start times of two sightings of one session differ by at most this
 * (seconds): the sensors' clocks and their capture points. */
#define INGEST_MATCH_WINDOW 2

enum ingest_result {
	INGEST_SESSION,   /* a session stored */
	INGEST_SIGHTING,  /* another sensor's sighting of a stored session */
	INGEST_FINDING,   /* a finding stored */
	INGEST_DUPLICATE, /* delivered before: nothing changed */
	INGEST_SKIPPED,   /* a flow record: not stored */
	INGEST_BLANK,     /* an empty line */
	INGEST_REJECTED,  /* malformed or hostile: nothing stored, why says why */
	INGEST_ERROR      /* the database failed: why says how */
};

struct ingest;

struct ingest *ingest_new(struct db *d, int64_t match_window_s);
/* One line, without its newline, inside the caller's transaction. After
 * INGEST_ERROR the caller must roll the transaction back: the record may be
 * partly written. */
enum ingest_result ingest_line(struct ingest *g, const char *line, size_t len, char *why,
			       size_t cap);
void ingest_free(struct ingest *g);

#endif
