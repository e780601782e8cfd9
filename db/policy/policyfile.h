/*
 * policyfile.h - the text format of `mxwatch policy import` / `export`, for
 * offline use and for the bundled demo policy. One record per line, '#'
 * starts a comment, fields separated by blanks:
 *
 *   mx       DOMAIN PREFERENCE HOST               [dnssec=secure|insecure]
 *   address  HOST ADDRESS                         [dnssec=...]
 *   mta-sts  DOMAIN mode=MODE max_age=SECONDS mx=PATTERN... [id=ID]
 *   tlsa     HOST PORT USAGE SELECTOR MTYPE HEX   [dnssec=...]
 *
 * Imported data is the operator's word: dnssec defaults to "secure", and an
 * imported MTA-STS policy counts as fetched at import time.
 */
#ifndef MXW_POLICYFILE_H
#define MXW_POLICYFILE_H

#include <stdio.h>

#include "db/sql/db.h"

/* Imports every record of `f` in one transaction. On the first bad line
 * returns -1 with "NAME:LINE: FIELD: problem" in err and stores nothing. */
int policyfile_import(struct db *d, FILE *f, const char *name, char *err, size_t errlen,
		      int *records);

/* Writes every cached record in the same format. */
int policyfile_export(struct db *d, FILE *out);

#endif
