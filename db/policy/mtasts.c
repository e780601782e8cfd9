/*
 * mtasts.c - MTA-STS TXT and policy grammars (RFC 8461 3.1, 3.2, 4.1).
 */
#include "db/policy/mtasts.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/text.h"

const char *sts_mode_name(enum sts_mode m)
{
	switch (m) {
	case STS_MODE_ENFORCE: return "enforce";
	case STS_MODE_TESTING: return "testing";
	case STS_MODE_NONE: return "none";
	default: return NULL;
	}
}

static int is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * sts-text-record = sts-version 1*(*WSP ";" *WSP sts-field) [";"]
 * sts-version = %s"v=STSv1", fields: "id=" 1*32(ALPHA/DIGIT), extensions
 * name=value with printable values.
 */
int sts_txt_parse(const char *txt, size_t len, struct sts_txt *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (len < 7 || memcmp(txt, "v=STSv1", 7) != 0) {
		snprintf(err, errlen, "record does not start with v=STSv1");
		return -1;
	}
	size_t i = 7;
	int have_id = 0;
	while (i < len) {
		while (i < len && is_wsp(txt[i]))
			i++;
		if (i >= len)
			break;
		if (txt[i] != ';') {
			snprintf(err, errlen, "expected ';' at offset %zu", i);
			return -1;
		}
		i++;
		while (i < len && is_wsp(txt[i]))
			i++;
		if (i >= len)
			break; /* trailing ';' */
		size_t name = i;
		while (i < len &&
		       (is_alnum(txt[i]) || txt[i] == '_' || txt[i] == '-' || txt[i] == '.'))
			i++;
		size_t name_len = i - name;
		if (name_len == 0 || i >= len || txt[i] != '=') {
			snprintf(err, errlen, "malformed field at offset %zu", name);
			return -1;
		}
		i++;
		size_t val = i;
		while (i < len && txt[i] != ';' && txt[i] > 0x20 && txt[i] < 0x7f && txt[i] != '=')
			i++;
		size_t val_len = i - val;
		if (name_len == 2 && memcmp(txt + name, "id", 2) == 0) {
			if (have_id) {
				snprintf(err, errlen, "more than one id field");
				return -1;
			}
			if (val_len == 0 || val_len > STS_MAX_ID) {
				snprintf(err, errlen, "id must be 1 to %d letters or digits",
					 STS_MAX_ID);
				return -1;
			}
			for (size_t k = 0; k < val_len; k++) {
				if (!is_alnum(txt[val + k])) {
					char q[8];
					snprintf(err, errlen, "id contains '%s'",
						 text_escape(q, sizeof(q), txt + val + k, 1));
					return -1;
				}
			}
			memcpy(out->id, txt + val, val_len);
			out->id[val_len] = 0;
			have_id = 1;
		} else if (val_len == 0) {
			snprintf(err, errlen, "empty value at offset %zu", val);
			return -1;
		}
		/* Stopped on a byte that is neither ';' nor the end: bad value. */
		if (i < len && txt[i] != ';' && !is_wsp(txt[i])) {
			snprintf(err, errlen, "invalid character in value at offset %zu", i);
			return -1;
		}
	}
	if (!have_id) {
		snprintf(err, errlen, "no id field");
		return -1;
	}
	return 0;
}

int sts_txt_select(const char *const *texts, const size_t *lens, int n, struct sts_txt *out,
		   char *err, size_t errlen)
{
	int found = -1, count = 0;
	for (int i = 0; i < n; i++) {
		if (lens[i] >= 7 && memcmp(texts[i], "v=STSv1", 7) == 0) {
			count++;
			found = i;
		}
	}
	if (count == 0) {
		snprintf(err, errlen, "no v=STSv1 TXT record");
		return -1;
	}
	if (count > 1) {
		snprintf(err, errlen, "%d v=STSv1 TXT records (exactly one allowed)", count);
		return -1;
	}
	return sts_txt_parse(texts[found], lens[found], out, err, errlen);
}

/* A policy mx value: a host name, optionally "*." then a host name. */
static int valid_mx_pattern(const char *p, size_t n)
{
	char name[STS_MAX_NAME];
	size_t skip = n >= 2 && p[0] == '*' && p[1] == '.' ? 2 : 0;
	if (n - skip == 0 || n >= STS_MAX_NAME || memchr(p, 0, n))
		return 0;
	memcpy(name, p + skip, n - skip);
	name[n - skip] = 0;
	return hostname_valid(name);
}

/* State of one policy parse: the policy so far and where errors go. */
struct policy_parse {
	struct sts_policy *out;
	int have_version, have_max_age;
	int line;
	char *err;
	size_t errlen;
};

#define CLIP(n, max)          (int)((n) > (max) ? (max) : (n))
/* Policy text comes off the network: what an error quotes of it is escaped. */
#define QUOTE(buf, v, n, max) text_escape(buf, sizeof(buf), v, (size_t)CLIP(n, max))

static int field_version(struct policy_parse *pp, const char *val, size_t vl)
{
	if (pp->have_version)
		return 0; /* first occurrence wins */
	if (vl != 5 || memcmp(val, "STSv1", 5) != 0) {
		char q[164];
		snprintf(pp->err, pp->errlen, "line %d: version: unknown value '%s'", pp->line,
			 QUOTE(q, val, vl, 40));
		return -1;
	}
	pp->have_version = 1;
	return 0;
}

static int field_mode(struct policy_parse *pp, const char *val, size_t vl)
{
	static const struct {
		const char *name;
		enum sts_mode mode;
	} modes[] = {
	    {"enforce", STS_MODE_ENFORCE}, {"testing", STS_MODE_TESTING}, {"none", STS_MODE_NONE}};
	if (pp->out->mode != STS_MODE_NONE_SET)
		return 0;
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (vl == strlen(modes[i].name) && !memcmp(val, modes[i].name, vl)) {
			pp->out->mode = modes[i].mode;
			return 0;
		}
	}
	char q[164];
	snprintf(pp->err, pp->errlen, "line %d: mode: unknown value '%s'", pp->line,
		 QUOTE(q, val, vl, 40));
	return -1;
}

static int field_max_age(struct policy_parse *pp, const char *val, size_t vl)
{
	if (pp->have_max_age)
		return 0;
	uint64_t a = 0;
	if (vl == 0 || vl > 10) {
		snprintf(pp->err, pp->errlen, "line %d: max_age: not a number of at most 10 digits",
			 pp->line);
		return -1;
	}
	for (size_t d = 0; d < vl; d++) {
		if (val[d] < '0' || val[d] > '9') {
			char q[164];
			snprintf(pp->err, pp->errlen, "line %d: max_age: '%s' is not a number",
				 pp->line, QUOTE(q, val, vl, 40));
			return -1;
		}
		a = a * 10 + (uint64_t)(val[d] - '0');
	}
	if (a > STS_MAX_AGE) {
		snprintf(pp->err, pp->errlen, "line %d: max_age: %llu exceeds %d", pp->line,
			 (unsigned long long)a, STS_MAX_AGE);
		return -1;
	}
	pp->out->max_age = (uint32_t)a;
	pp->have_max_age = 1;
	return 0;
}

static int field_mx(struct policy_parse *pp, const char *val, size_t vl)
{
	struct sts_policy *out = pp->out;
	if (!valid_mx_pattern(val, vl)) {
		char q[244];
		snprintf(pp->err, pp->errlen, "line %d: mx: invalid pattern '%s'", pp->line,
			 QUOTE(q, val, vl, 60));
		return -1;
	}
	/* Dropping patterns silently would turn a large policy into false mx
	 * mismatches: refuse it instead. */
	if (out->n_mx == STS_MAX_MX) {
		snprintf(pp->err, pp->errlen, "line %d: mx: more than %d patterns", pp->line,
			 STS_MAX_MX);
		return -1;
	}
	memcpy(out->mx[out->n_mx], val, vl);
	out->mx[out->n_mx][vl] = 0;
	out->n_mx++;
	return 0;
}

/* RFC 8461 3.2: unknown fields are ignored; their names must still be well
 * formed. */
static int field_unknown(struct policy_parse *pp, const char *key, size_t klen)
{
	for (size_t c = 0; c < klen; c++) {
		if (!is_alnum(key[c]) && key[c] != '_' && key[c] != '-' && key[c] != '.') {
			snprintf(pp->err, pp->errlen, "line %d: malformed field name", pp->line);
			return -1;
		}
	}
	return 0;
}

static const struct {
	const char *name;
	int (*parse)(struct policy_parse *pp, const char *val, size_t vl);
} policy_fields[] = {
    {"version", field_version},
    {"mode", field_mode},
    {"max_age", field_max_age},
    {"mx", field_mx},
};

/* One "key: value" line (without its line break). */
static int policy_line(struct policy_parse *pp, const char *l, size_t ll)
{
	/* Blank lines (e.g. a final newline) carry nothing. */
	size_t k = 0;
	while (k < ll && is_wsp(l[k]))
		k++;
	if (k == ll)
		return 0;
	const char *colon = memchr(l, ':', ll);
	if (!colon) {
		char q[244];
		snprintf(pp->err, pp->errlen, "line %d: no ':' in \"%s\"", pp->line,
			 QUOTE(q, l, ll, 60));
		return -1;
	}
	size_t klen = (size_t)(colon - l);
	size_t v = klen + 1;
	while (v < ll && is_wsp(l[v]))
		v++;
	size_t vend = ll;
	while (vend > v && is_wsp(l[vend - 1]))
		vend--;
	for (size_t f = 0; f < sizeof(policy_fields) / sizeof(policy_fields[0]); f++)
		if (klen == strlen(policy_fields[f].name) &&
		    !memcmp(l, policy_fields[f].name, klen))
			return policy_fields[f].parse(pp, l + v, vend - v);
	return field_unknown(pp, l, klen);
}

int sts_policy_parse(const char *text, size_t len, struct sts_policy *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	struct policy_parse pp = {.out = out, .err = err, .errlen = errlen};
	size_t i = 0;
	for (pp.line = 1; i < len; pp.line++) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - text) : len;
		size_t e = end;
		if (e > i && text[e - 1] == '\r')
			e--;
		if (policy_line(&pp, text + i, e - i))
			return -1;
		i = nl ? end + 1 : len;
	}
	const char *missing = !pp.have_version ? "line 1: version: missing (must be STSv1)"
			      : out->mode == STS_MODE_NONE_SET ? "mode: missing"
			      : !pp.have_max_age               ? "max_age: missing"
			      : out->mode != STS_MODE_NONE && out->n_mx == 0
				  ? "mx: missing (required unless mode is none)"
				  : NULL;
	if (missing) {
		snprintf(err, errlen, "%s", missing);
		return -1;
	}
	return 0;
}

static size_t trim_dot(const char *s)
{
	size_t n = strlen(s);
	return n && s[n - 1] == '.' ? n - 1 : n;
}

int sts_mx_match(const char *pattern, const char *host)
{
	size_t pl = trim_dot(pattern), hl = trim_dot(host);
	if (pl >= 2 && pattern[0] == '*' && pattern[1] == '.') {
		const char *dot = memchr(host, '.', hl);
		if (!dot || dot == host)
			return 0;
		size_t rest = hl - (size_t)(dot + 1 - host);
		return rest == pl - 2 && rest > 0 && strncasecmp(dot + 1, pattern + 2, rest) == 0;
	}
	return pl == hl && strncasecmp(pattern, host, pl) == 0;
}

int hostname_valid(const char *h)
{
	size_t n = strlen(h), label = 0;
	if (n == 0 || n > 254 || (n == 254 && h[253] != '.'))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = h[i];
		if (c == '.') {
			if (!label)
				return 0;
			label = 0;
		} else if (is_alnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return 1;
}
