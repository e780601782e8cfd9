/*
 * tlsrpt_txt.h - the SMTP TLS Reporting record (RFC 8460 section 3): the TXT
 * record at _smtp._tls.DOMAIN that says where a domain wants its daily
 * reports ("v=TLSRPTv1; rua=mailto:...,https://..."). Text from DNS or an
 * imported file: every parser takes (pointer, length).
 */
#ifndef MXW_TLSRPT_TXT_H
#define MXW_TLSRPT_TXT_H

#include <stddef.h>

#define TLSRPT_MAX_RUA 8
#define TLSRPT_MAX_URI 512

struct tlsrpt_txt {
	int n_rua;
	char rua[TLSRPT_MAX_RUA][TLSRPT_MAX_URI]; /* mailto: and https: URIs, in order */
	int ignored;                              /* URIs of other schemes, skipped */
};

/* One record. 0 when it is a valid TLSRPTv1 record with at least one
 * mailto: or https: destination; -1 with err set otherwise. */
int tlsrpt_txt_parse(const char *s, size_t n, struct tlsrpt_txt *out, char *err, size_t errlen);

/* The TXT strings of one lookup: those not beginning with "v=TLSRPTv1" are
 * discarded and exactly one must remain (RFC 8460 3: otherwise the domain
 * is taken not to implement TLSRPT). 0 and *chosen set, or -1 with err. */
int tlsrpt_txt_select(const char *const *txt, const size_t *len, int n, struct tlsrpt_txt *out,
		      int *chosen, char *err, size_t errlen);

/* 1 when the URI is one the reports can go to: mailto:LOCAL@DOMAIN or
 * https://HOST[:PORT][/PATH], printable ASCII without spaces. */
int tlsrpt_uri_usable(const char *uri, size_t n);

#endif
