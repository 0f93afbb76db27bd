/*
 * security/spiffe.c - SPIFFE ID grammar, identity patterns and the
 * X.509-SVID leaf rules (security.md "Identity"; SPIFFE-ID spec §2,
 * X509-SVID spec §4).
 *
 * One scanner serves IDs and patterns. It walks the string once and stops
 * at the first byte that breaks a rule, returning the rule and the offset
 * without touching the thread's error detail, so that tsm__id_match can
 * fail closed silently while the check functions report. A report echoes
 * only bytes before the offset: the scanner has accepted them, so they hold
 * no control characters (IDs come from peers' certificates).
 */
#include <string.h>

#include <openssl/x509v3.h>

#include "core/common.h"
#include "security/spiffe.h"

#define SCHEME "spiffe://"
#define SCHEME_LEN (sizeof(SCHEME) - 1)
#define ECHO_MAX 40 /* bytes of accepted prefix quoted in a detail */

/* Where and why a scan stopped. */
struct id_fault {
	const char *rule;
	size_t at;
};

static bool id_fail(struct id_fault *f, size_t at, const char *rule)
{
	f->rule = rule;
	f->at = at;
	return false;
}

/* Spelled out: isalnum() and friends would depend on the locale. */
static bool td_char_ok(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '-' || ch == '_';
}

static bool path_char_ok(unsigned char ch)
{
	return td_char_ok(ch) || (ch >= 'A' && ch <= 'Z');
}

/*
 * The URI parts SPIFFE forbids (security.md "Identity": no port, userinfo,
 * query, fragment) get rules of their own, so that a refusal says which
 * one was tried rather than "bad byte".
 */
static const char *id_byte_rule(unsigned char ch, bool in_td)
{
	switch (ch) {
	case '\0': return "NUL byte";
	case ':': return in_td ? "port in trust domain" : "':' in path";
	case '@': return in_td ? "userinfo in trust domain" : "'@' in path";
	case '?': return "query not allowed";
	case '#': return "fragment not allowed";
	case '%': return "percent-encoding not allowed";
	case '*': return in_td ? "wildcard in trust domain"
	                       : "'*' (only patterns, only whole segments)";
	}
	if (in_td && ch >= 'A' && ch <= 'Z')
		return "uppercase letter in trust domain";
	return in_td ? "byte not in [a-z0-9._-] in trust domain"
	             : "byte not in [A-Za-z0-9._-] in path";
}

/* seg_len: bytes from off to the next '/' or the end. */
static size_t seg_len(const char *s, size_t len, size_t off)
{
	const char *slash = memchr(s + off, '/', len - off);
	return slash ? (size_t)(slash - (s + off)) : len - off;
}

static bool seg_is(const char *s, size_t off, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(s + off, lit, n) == 0;
}

/* On success *end is the offset of the '/' that starts the path. */
static bool id_scan_td(const char *s, size_t len, size_t *end,
                       struct id_fault *f)
{
	size_t i = SCHEME_LEN;
	for (; i < len && s[i] != '/'; i++)
		if (!td_char_ok((unsigned char)s[i]))
			return id_fail(f, i, id_byte_rule((unsigned char)s[i],
			                                  true));
	if (i == SCHEME_LEN)
		return id_fail(f, i, "empty trust domain");
	if (i - SCHEME_LEN > TSM_SPIFFE_TD_MAX)
		return id_fail(f, SCHEME_LEN + TSM_SPIFFE_TD_MAX,
		               "trust domain longer than 255 bytes");
	if (i == len)
		return id_fail(f, i, "no path (a workload ID needs one)");
	*end = i;
	return true;
}

static bool id_scan_seg(const char *s, size_t len, size_t off, size_t n,
                        bool pattern, struct id_fault *f)
{
	if (n == 0)
		return id_fail(f, off, off == len ? "trailing slash"
		                                  : "empty segment");
	if (seg_is(s, off, n, ".") || seg_is(s, off, n, ".."))
		return id_fail(f, off, "'.' or '..' segment");
	if (pattern && seg_is(s, off, n, "*"))
		return true;
	if (pattern && seg_is(s, off, n, "**"))
		return off + n == len || id_fail(f, off, "'**' not last");
	for (size_t i = off; i < off + n; i++)
		if (!path_char_ok((unsigned char)s[i]))
			return id_fail(f, i, id_byte_rule((unsigned char)s[i],
			                                  false));
	return true;
}

/* off is the offset of a '/'; every segment after it is checked. */
static bool id_scan_path(const char *s, size_t len, size_t off, bool pattern,
                         struct id_fault *f)
{
	while (off < len) {
		size_t start = off + 1;
		size_t n = seg_len(s, len, start);
		if (!id_scan_seg(s, len, start, n, pattern, f))
			return false;
		off = start + n;
	}
	return true;
}

/* id_scan: true if s is a valid ID (or pattern); else *f says why. */
static bool id_scan(const char *s, size_t len, bool pattern,
                    struct id_fault *f)
{
	if (s == NULL || len == 0)
		return id_fail(f, 0, "empty");
	if (len > TSM_SPIFFE_ID_MAX)
		return id_fail(f, 0, "longer than 2048 bytes");
	if (pattern && len == 1 && s[0] == '*')
		return true;
	size_t i = 0;
	while (i < SCHEME_LEN && i < len && s[i] == SCHEME[i])
		i++;
	if (i < SCHEME_LEN)
		return id_fail(f, i, "scheme is not 'spiffe://'");
	size_t td_end;
	if (!id_scan_td(s, len, &td_end, f))
		return false;
	return id_scan_path(s, len, td_end, pattern, f);
}

static tsm_err id_report(const char *what, const char *s, size_t len,
                         const struct id_fault *f)
{
	if (len > TSM_SPIFFE_ID_MAX)
		return tsm__err_set(TSM_ERR_SPIFFE_MALFORMED,
		                    "%s: %zu bytes, longer than %d", what, len,
		                    TSM_SPIFFE_ID_MAX);
	if (f->at == 0)
		return tsm__err_set(TSM_ERR_SPIFFE_MALFORMED, "%s: %s at byte 0",
		                    what, f->rule);
	size_t n = TSM_MIN(f->at, (size_t)ECHO_MAX);
	return tsm__err_set(TSM_ERR_SPIFFE_MALFORMED,
	                    "%s: %s at byte %zu (after \"%s%.*s\")", what,
	                    f->rule, f->at, n < f->at ? "..." : "", (int)n,
	                    s + f->at - n);
}

static tsm_err id_check_as(const char *what, const char *s, size_t len,
                           bool pattern)
{
	struct id_fault f;
	return id_scan(s, len, pattern, &f) ? TSM_OK
	                                    : id_report(what, s, len, &f);
}

tsm_err tsm__spiffe_check(const char *s, size_t len)
{
	return id_check_as("SPIFFE ID", s, len, false);
}

tsm_err tsm__id_pattern_check(const char *p, size_t len)
{
	return id_check_as("identity pattern", p, len, true);
}

/* td_end: offset of the '/' after the trust domain of a valid ID. */
static size_t td_end(const char *s, size_t len)
{
	return SCHEME_LEN + seg_len(s, len, SCHEME_LEN);
}

tsm_err tsm__spiffe_td(const char *id, char *td, size_t cap)
{
	size_t len = id ? strnlen(id, TSM_SPIFFE_ID_MAX + 1) : 0;
	tsm_err err = tsm__spiffe_check(id, len);
	if (err != TSM_OK)
		return err;
	size_t n = td_end(id, len) - SCHEME_LEN;
	if (td == NULL || cap <= n)
		return tsm__err_set(TSM_ERR_BAD_PARAMS,
		                    "tsm__spiffe_td: %zu-byte trust domain does "
		                    "not fit a %zu-byte buffer", n, cap);
	memcpy(td, id + SCHEME_LEN, n);
	td[n] = '\0';
	return TSM_OK;
}

/*
 * Both offsets start at the '/' before a segment and step past it and the
 * segment. "**" is last by the grammar and needs at least one segment left
 * in the id (security.md "Authorisation": patterns on identities).
 */
static bool id_match_path(const char *p, size_t plen, size_t po,
                          const char *id, size_t ilen, size_t io)
{
	while (po < plen) {
		size_t pn = seg_len(p, plen, po + 1);
		if (seg_is(p, po + 1, pn, "**"))
			return io < ilen;
		if (io >= ilen)
			return false;
		size_t in = seg_len(id, ilen, io + 1);
		if (!seg_is(p, po + 1, pn, "*") &&
		    (pn != in || memcmp(p + po + 1, id + io + 1, pn) != 0))
			return false;
		po += pn + 1;
		io += in + 1;
	}
	return io == ilen;
}

bool tsm__id_match(const char *pattern, const char *id)
{
	if (pattern == NULL || id == NULL)
		return false;
	size_t plen = strnlen(pattern, TSM_SPIFFE_ID_MAX + 1);
	size_t ilen = strnlen(id, TSM_SPIFFE_ID_MAX + 1);
	struct id_fault f;
	if (!id_scan(id, ilen, false, &f) || !id_scan(pattern, plen, true, &f))
		return false;
	if (plen == 1) /* the only valid one-byte pattern is "*" */
		return true;
	size_t pt = td_end(pattern, plen), it = td_end(id, ilen);
	/* Scheme and trust domain compare exactly: no wildcard there. */
	if (pt != it || memcmp(pattern, id, pt) != 0)
		return false;
	return id_match_path(pattern, plen, pt, id, ilen, it);
}

/* ---- X.509-SVID leaf rules (X509-SVID spec §4) -------------------------- */

static tsm_err svid_bad(const char *rule)
{
	return tsm__err_set(TSM_ERR_SPIFFE_MALFORMED, "X.509-SVID leaf: %s",
	                    rule);
}

/*
 * OpenSSL caches the decoded extensions in flags; EXFLAG_INVALID covers an
 * extension that does not decode or appears twice, either of which could
 * make two parsers disagree about what the certificate says.
 */
static tsm_err svid_usage(X509 *leaf)
{
	uint32_t flags = X509_get_extension_flags(leaf);
	if (flags & EXFLAG_INVALID)
		return svid_bad("an extension is malformed or repeated");
	if (flags & EXFLAG_CA)
		return svid_bad("is a CA (basicConstraints CA:TRUE)");
	if (!(flags & EXFLAG_KUSAGE))
		return svid_bad("no keyUsage extension");
	uint32_t ku = X509_get_key_usage(leaf);
	if (!(ku & KU_DIGITAL_SIGNATURE))
		return svid_bad("keyUsage lacks digitalSignature");
	if (ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN))
		return svid_bad("keyUsage has keyCertSign or cRLSign");
	if (!(flags & EXFLAG_XKUSAGE))
		return TSM_OK;
	uint32_t xku = X509_get_extended_key_usage(leaf);
	if ((xku & (XKU_SSL_CLIENT | XKU_SSL_SERVER)) !=
	    (XKU_SSL_CLIENT | XKU_SSL_SERVER))
		return svid_bad("extendedKeyUsage lacks clientAuth or serverAuth");
	return TSM_OK;
}

/* svid_one_uri: the single URI among the SANs; other SAN types may exist. */
static tsm_err svid_one_uri(const GENERAL_NAMES *names,
                            const ASN1_IA5STRING **uri)
{
	int count = 0;
	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		if (gn->type == GEN_URI) {
			*uri = gn->d.uniformResourceIdentifier;
			count++;
		}
	}
	if (count == 0)
		return svid_bad("no URI subjectAltName (the CN is never used)");
	if (count > 1)
		return tsm__err_set(TSM_ERR_SPIFFE_MALFORMED,
		                    "X.509-SVID leaf: %d URI subjectAltNames, "
		                    "want exactly one", count);
	return TSM_OK;
}

static tsm_err svid_copy_id(const ASN1_IA5STRING *uri, char *out, size_t cap)
{
	const char *s = (const char *)ASN1_STRING_get0_data(uri);
	int n = ASN1_STRING_length(uri);
	tsm_err err = id_check_as("X.509-SVID URI SAN", s, n > 0 ? (size_t)n : 0,
	                          false);
	if (err != TSM_OK)
		return err;
	if (cap <= (size_t)n)
		return tsm__err_set(TSM_ERR_BAD_PARAMS,
		                    "tsm__spiffe_from_cert: %d-byte ID does not "
		                    "fit a %zu-byte buffer", n, cap);
	memcpy(out, s, (size_t)n);
	out[n] = '\0';
	return TSM_OK;
}

static tsm_err svid_id(X509 *leaf, char *out, size_t cap)
{
	int crit = -1;
	GENERAL_NAMES *names =
		X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
	if (names == NULL && crit == -1)
		return svid_bad("no subjectAltName (the CN is never used)");
	if (names == NULL)
		return svid_bad(crit == -2 ? "more than one subjectAltName "
		                             "extension"
		                           : "subjectAltName does not decode");
	const ASN1_IA5STRING *uri = NULL;
	tsm_err err = svid_one_uri(names, &uri);
	if (err == TSM_OK)
		err = svid_copy_id(uri, out, cap);
	GENERAL_NAMES_free(names);
	return err;
}

tsm_err tsm__spiffe_from_cert(X509 *leaf, char *out, size_t cap)
{
	if (leaf == NULL || out == NULL)
		return tsm__err_set(TSM_ERR_BAD_PARAMS,
		                    "tsm__spiffe_from_cert: NULL %s",
		                    leaf ? "out" : "leaf");
	tsm_err err = svid_usage(leaf);
	return err != TSM_OK ? err : svid_id(leaf, out, cap);
}
