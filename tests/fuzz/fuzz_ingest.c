/*
 * fuzz_ingest.c - record lines from sensors into an in-memory collector
 * database (`mxwatch ingest`): every byte may come from a hostile sensor
 * or a damaged transport.
 */
#include <stdint.h>
#include <stdio.h>

#include "db/sql/db.h"
#include "ingest/ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct db *d;
	static struct ingest *g;
	char err[256], why[256];
	if (!d) {
		if (!(d = db_open(":memory:", err, sizeof(err))) ||
		    !(g = ingest_new(d, INGEST_MATCH_WINDOW)))
			return 0;
	}
	/* line by line, as the command reads them */
	const char *p = (const char *)data, *end = p + size;
	if (db_begin(d))
		return 0;
	while (p < end) {
		const char *nl = p;
		while (nl < end && *nl != '\n')
			nl++;
		ingest_line(g, p, (size_t)(nl - p), why, sizeof(why));
		p = nl + 1;
	}
	db_commit(d);
	return 0;
}
