/*
 * mtasts.h - RFC 8461 grammars: the `_mta-sts` TXT record and the policy
 * file. Pure parsers over (pointer, length), used by the refresher and the
 * import command; errors name the offending line and say which RFC 8460
 * result type applies.
 */
#ifndef MXW_MTASTS_H
#define MXW_MTASTS_H

#include <stddef.h>
#include <stdint.h>

#define STS_MAX_ID           32 /* RFC 8461: 1*32(ALPHA / DIGIT) */
#define STS_MAX_MX           64 /* mx patterns kept per policy */
#define STS_MAX_NAME         256
#define STS_MAX_AGE          31557600 /* RFC 8461 3.2: at most one year */
#define STS_MAX_POLICY_BYTES (64 * 1024)

enum sts_mode {
	STS_MODE_NONE_SET = 0,
	STS_MODE_ENFORCE,
	STS_MODE_TESTING,
	STS_MODE_NONE
};

const char *sts_mode_name(enum sts_mode m);

struct sts_txt {
	char id[STS_MAX_ID + 1];
};

struct sts_policy {
	enum sts_mode mode;
	uint32_t max_age;
	int n_mx;
	char mx[STS_MAX_MX][STS_MAX_NAME];
};

/* Parses one TXT record's text (the strings concatenated). Returns 0, or -1
 * with a message in err. */
int sts_txt_parse(const char *txt, size_t len, struct sts_txt *out, char *err, size_t errlen);

/* From all TXT records at _mta-sts.<domain>: exactly one must start with
 * "v=STSv1" (RFC 8461 3.1). `n` texts of given lengths. Returns 0 or -1. */
int sts_txt_select(const char *const *texts, const size_t *lens, int n, struct sts_txt *out,
		   char *err, size_t errlen);

/* Parses a policy file. Returns 0, or -1 with "line N: ..." in err (the
 * RFC 8460 type of any failure here is sts-policy-invalid). */
int sts_policy_parse(const char *text, size_t len, struct sts_policy *out, char *err,
		     size_t errlen);

/* A host or domain name as policies use them: letters, digits, '-', '_',
 * labels of 1..63 bytes, 253 bytes at most, an optional final dot. Used
 * wherever a name from a file or off the wire may become a policy key. */
int hostname_valid(const char *name);

/* RFC 8461 4.1: does the pattern ("mx.example.com" or "*.example.com")
 * cover host? A wildcard matches exactly one left-most label. Case and a
 * trailing dot are ignored. */
int sts_mx_match(const char *pattern, const char *host);

#endif
