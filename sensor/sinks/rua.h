/*
 * rua.h - delivery of RFC 8460 reports to the destinations a domain's TLSRPT
 * record names: gzip, HTTPS POST (libcurl) and mail through the local MTA's
 * sendmail interface (section 5.3's headers and attachment).
 */
#ifndef MXW_RUA_H
#define MXW_RUA_H

#include <stddef.h>
#include <stdint.h>

struct rua_config {
	const char *ca_bundle; /* NULL: the system's */
	long timeout_s;
	const char *sendmail;  /* command and arguments, split at spaces */
	const char *mail_from; /* envelope and From: */
	const char *submitter; /* TLS-Report-Submitter, a domain */
};

/* gzip of n bytes: malloc'ed, *out_len bytes; NULL when out of memory. */
unsigned char *rua_gzip(const char *data, size_t n, size_t *out_len);

/* The RFC 8460 5.3 attachment name:
 * submitter!policy-domain!begin!end!report-id.json.gz */
void rua_filename(char *out, size_t cap, const char *submitter, const char *domain,
		  int64_t begin, int64_t end, const char *report_id);

/* Sends the gzipped report to one destination ("https://..." or
 * "mailto:..."). 0 when delivered (an HTTP 2xx, or the MTA took the
 * message); -1 when it failed and may work later; RUA_PERMANENT when it
 * never can (a destination that is not one address, say). detail says
 * what happened. */
#define RUA_PERMANENT -2
int rua_send(const struct rua_config *c, const char *uri, const char *domain,
	     const char *report_id, int64_t begin, int64_t end, const unsigned char *gz,
	     size_t gz_len, char *detail, size_t cap);

#endif
