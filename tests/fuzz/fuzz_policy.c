/*
 * fuzz_policy.c - text that reaches the policy parsers: an MTA-STS policy
 * file and TXT record (from the network), and a policy file for `policy
 * import` into an in-memory database, and the TXT strings of a TLSRPT lookup.
 * The first byte picks the parser.
 */
#include <stdio.h>

#include "db/policy/mtasts.h"
#include "db/policy/policyfile.h"
#include "db/policy/tlsrpt_txt.h"
#include "db/sql/db.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	char err[256];
	switch (data[0] % 4) {
	case 0: {
		static struct sts_policy p;
		sts_policy_parse(text, len, &p, err, sizeof(err));
		break;
	}
	case 1: {
		struct sts_txt t;
		sts_txt_parse(text, len, &t, err, sizeof(err));
		break;
	}
	case 3: {
		/* a TLSRPT lookup's TXT strings, split at NUL bytes */
		static struct tlsrpt_txt r;
		const char *p[8];
		size_t l[8];
		int n = 0, chosen;
		for (size_t i = 0, start = 0; i <= len && n < 8; i++)
			if (i == len || text[i] == 0) {
				p[n] = text + start;
				l[n++] = i - start;
				start = i + 1;
			}
		tlsrpt_txt_select(p, l, n, &r, &chosen, err, sizeof(err));
		break;
	}
	default: {
		static struct db *d;
		if (!d && !(d = db_open(":memory:", err, sizeof(err))))
			return 0;
		FILE *f = fmemopen((void *)text, len ? len : 1, "r");
		if (!f)
			return 0;
		int records = 0;
		policyfile_import(d, f, "fuzz", err, sizeof(err), &records);
		fclose(f);
	}
	}
	return 0;
}
