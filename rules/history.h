/*
 * history.h - what mxwatch learned about servers from earlier sessions:
 * whether each server address ever offered STARTTLS, and when it was seen.
 * Kept in memory while running (bounded), loaded from and saved to the
 * database by the one writer at start and end.
 */
#ifndef MXW_HISTORY_H
#define MXW_HISTORY_H

#include <stdint.h>

#include "db/sql/db.h"

#define HISTORY_MAX_ENTRIES (1u << 20)

struct history_entry {
	char address[64];
	uint8_t starttls_offered; /* ever offered */
	uint8_t tls_versions;     /* bit per version seen: 1.0=1, 1.1=2, 1.2=4, 1.3=8 */
	uint8_t dirty;
	int64_t first_seen, last_seen;
	int64_t known_until; /* last_seen as the database had it: older sessions were counted */
	uint64_t sessions;
	uint64_t hash; /* of address: growing the table needs no rehashing */
};

struct history;

struct history *history_new(void);
void history_free(struct history *h);

/* NULL when unknown. */
const struct history_entry *history_get(const struct history *h, const char *address);
/* Records a session to `address` at time `ts` (seconds). */
void history_note(struct history *h, const char *address, int64_t ts, int starttls_offered,
		  uint16_t tls_version);

int history_load(struct history *h, struct db *d);
int history_save(struct history *h, struct db *d);

#endif
