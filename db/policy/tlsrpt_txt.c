/*
 * tlsrpt_txt.c - RFC 8460 section 3 record grammar:
 *   tlsrpt-record = "v=TLSRPTv1" 1*(field-delim tlsrpt-field) [field-delim]
 *   field-delim   = *WSP ";" *WSP
 *   tlsrpt-field  = "rua=" uri *(*WSP "," *WSP uri) / ext-name "=" ext-value
 */
#include "db/policy/tlsrpt_txt.h"

#include <stdio.h>
#include <string.h>

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static int is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int printable_run(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

static int prefix(const char *s, size_t n, const char *p)
{
	size_t l = strlen(p);
	if (n < l)
		return 0;
	for (size_t i = 0; i < l; i++) {
		char c = s[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != p[i])
			return 0;
	}
	return 1;
}

int tlsrpt_uri_usable(const char *s, size_t n)
{
	if (n == 0 || n >= TLSRPT_MAX_URI || !printable_run(s, n))
		return 0;
	if (prefix(s, n, "mailto:")) {
		const char *at = memchr(s + 7, '@', n - 7);
		size_t end = n;
		const char *q = memchr(s + 7, '?', n - 7);
		if (q)
			end = (size_t)(q - s); /* ?subject=... is the sender's to ignore */
		return at && at > s + 7 && (size_t)(at - s) + 1 < end;
	}
	if (prefix(s, n, "https://")) {
		size_t i = 8;
		size_t host = i;
		while (i < n && s[i] != '/' && s[i] != ':' && s[i] != '?' && s[i] != '#')
			i++;
		return i > host;
	}
	return 0;
}

/* One field-delim: *WSP ";" *WSP. */
static int delim(const char *s, size_t n, size_t *i)
{
	size_t j = *i;
	while (j < n && is_wsp(s[j]))
		j++;
	if (j == n || s[j] != ';')
		return 0;
	j++;
	while (j < n && is_wsp(s[j]))
		j++;
	*i = j;
	return 1;
}

static int parse_rua(const char *s, size_t n, struct tlsrpt_txt *out, char *err, size_t errlen)
{
	size_t i = 0;
	while (i < n) {
		size_t start = i;
		while (i < n && s[i] != ',' && !is_wsp(s[i]))
			i++;
		size_t len = i - start;
		while (i < n && is_wsp(s[i]))
			i++;
		if (i < n && s[i] != ',') {
			snprintf(err, errlen, "rua: a space inside a URI");
			return -1;
		}
		if (i < n)
			i++; /* the comma */
		while (i < n && is_wsp(s[i]))
			i++;
		if (len == 0) {
			snprintf(err, errlen, "rua: an empty URI");
			return -1;
		}
		if (!tlsrpt_uri_usable(s + start, len)) {
			out->ignored++;
			continue;
		}
		if (out->n_rua == TLSRPT_MAX_RUA) {
			out->ignored++;
			continue;
		}
		memcpy(out->rua[out->n_rua], s + start, len);
		out->rua[out->n_rua][len] = 0;
		out->n_rua++;
	}
	return 0;
}

int tlsrpt_txt_parse(const char *s, size_t n, struct tlsrpt_txt *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	static const char version[] = "v=TLSRPTv1";
	size_t i = sizeof(version) - 1;
	if (n < i || memcmp(s, version, i) != 0) {
		snprintf(err, errlen, "does not begin with v=TLSRPTv1");
		return -1;
	}
	int have_rua = 0, fields = 0;
	while (i < n) {
		if (!delim(s, n, &i)) {
			snprintf(err, errlen, "expected ';' at byte %zu", i);
			return -1;
		}
		if (i == n)
			break; /* a trailing delimiter */
		size_t name = i;
		while (i < n && s[i] != '=')
			i++;
		size_t name_len = i - name;
		if (i == n || name_len == 0 || name_len > 32 || !is_alnum(s[name])) {
			snprintf(err, errlen, "a field without a name=value form at byte %zu", name);
			return -1;
		}
		for (size_t k = name; k < name + name_len; k++)
			if (!is_alnum(s[k]) && s[k] != '_' && s[k] != '-' && s[k] != '.') {
				snprintf(err, errlen, "a field name with '%c'", s[k]);
				return -1;
			}
		i++; /* '=' */
		size_t value = i;
		int is_rua = name_len == 3 && memcmp(s + name, "rua", 3) == 0;
		/* rua takes spaces around its commas; an extension value none */
		while (i < n && s[i] != ';') {
			if (!is_rua && ((unsigned char)s[i] <= 0x20 || s[i] == '=' ||
					(unsigned char)s[i] >= 0x7f))
				break;
			i++;
		}
		size_t vend = i;
		while (is_rua && vend > value && is_wsp(s[vend - 1]))
			vend--;
		if (vend == value) {
			snprintf(err, errlen, "field %.*s has no value", (int)name_len, s + name);
			return -1;
		}
		fields++;
		if (is_rua && !have_rua) {
			have_rua = 1;
			if (parse_rua(s + value, vend - value, out, err, errlen))
				return -1;
		}
	}
	if (!fields || !have_rua) {
		snprintf(err, errlen, "no rua field");
		return -1;
	}
	if (!out->n_rua) {
		snprintf(err, errlen, "rua names no mailto: or https: URI");
		return -1;
	}
	return 0;
}

int tlsrpt_txt_select(const char *const *txt, const size_t *len, int n, struct tlsrpt_txt *out,
		      int *chosen, char *err, size_t errlen)
{
	int found = -1, count = 0;
	for (int i = 0; i < n; i++) {
		if (len[i] >= 10 && memcmp(txt[i], "v=TLSRPTv1", 10) == 0 &&
		    (len[i] == 10 || txt[i][10] == ';' || is_wsp(txt[i][10]))) {
			found = i;
			count++;
		}
	}
	if (count == 0) {
		snprintf(err, errlen, "no TLSRPTv1 record");
		return -1;
	}
	if (count > 1) {
		snprintf(err, errlen, "%d TLSRPTv1 records (one is required)", count);
		return -1;
	}
	*chosen = found;
	return tlsrpt_txt_parse(txt[found], len[found], out, err, errlen);
}
