/*
 * test_spiffe.c - SPIFFE ID grammar, identity patterns and the X.509-SVID
 * leaf rules (security.md "Identity", "What the tests must show").
 *
 * Grammar tables pin every rule of spiffe.h, with the byte offset the
 * detail must name. Pattern matching is checked on a table and against a
 * naive recursive reference over every small pattern/ID pair. The leaf
 * rules run on the test PKI of tests/support/pki.sh (made once per tcase
 * in a temporary directory: TSM_SRC_DIR must name the source root) and on
 * certificates built here with the OpenSSL API for the variations the PKI
 * has no file for (duplicate extensions, NUL inside the URI, no keyUsage).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/common.h"
#include "security/spiffe.h"

#define CK_ERR(call, want)                                                     \
	do {                                                                   \
		tsm__err_clear();                                              \
		tsm_err e_ = (call);                                           \
		ck_assert_msg(e_ == (want), "%s: got %s (%s), want %s", #call, \
		              tsm_err_name(e_), tsm_err_detail(),              \
		              tsm_err_name(want));                             \
		if ((want) != TSM_OK)                                          \
			ck_assert_msg(tsm_err_detail()[0] != '\0',             \
			              "%s: no detail", #call);                 \
	} while (0)

#define CK_DETAIL(frag)                                                        \
	ck_assert_msg(strstr(tsm_err_detail(), (frag)) != NULL,                \
	              "detail '%s' lacks '%s'", tsm_err_detail(), (frag))

static tsm_err id(const char *s)
{
	return tsm__spiffe_check(s, strlen(s));
}

static tsm_err pat(const char *s)
{
	return tsm__id_pattern_check(s, strlen(s));
}

/* ---- ID grammar --------------------------------------------------------- */

START_TEST(id_valid)
{
	static const char *const ok[] = {
		"spiffe://td/a",
		"spiffe://td-a.test/pub",
		"spiffe://example.org/ns/prod/sa/web",
		"spiffe://a-b_c.d9/X.Y-z_0",
		"spiffe://1/2",
		"spiffe://td/..a",
		"spiffe://td/.a",
		"spiffe://td/a..",
		"spiffe://td/...",
		"spiffe://td/UPPER/Case",
		"spiffe://.../x",
		"spiffe://td/a/b/c/d/e/f/g/h",
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(ok); i++)
		CK_ERR(id(ok[i]), TSM_OK);
}
END_TEST

START_TEST(id_invalid)
{
	static const char *const bad[] = {
		"spiffe://", "spiffe://td", "spiffe://td/", "spiffe:///a",
		"SPIFFE://td/a", "Spiffe://td/a", "spiffe:/td/a", "spiffe:td/a",
		"http://td/a", "spiffe//td/a", "://td/a", "spiffe://TD/a",
		"spiffe://Td/a", "spiffe://td:443/a", "spiffe://td:/a",
		"spiffe://user@td/a", "spiffe://u:p@td/a", "spiffe://td/a?x=1",
		"spiffe://td/a?", "spiffe://td/a#f", "spiffe://td/a#",
		"spiffe://td/a%2Fb", "spiffe://td%2e/a", "spiffe://td/./a",
		"spiffe://td/../a", "spiffe://td/a/.", "spiffe://td/a/..",
		"spiffe://td//a", "spiffe://td/a//b", "spiffe://td/a/",
		"spiffe://td/a b", "spiffe://td /a", "spiffe://td/\xc3\xa9",
		"spiffe://t\xc3\xa9/a", "spiffe://td/*", "spiffe://*/a",
		"spiffe://td/a*", "spiffe://td/**", " spiffe://td/a",
		"spiffe://td/a\n", "spiffe://td/a:b", "spiffe://td/a@b",
		"spiffe://[::1]/a", "spiffe://td/a\\b", "*", "spiffe://td/a\t",
		"spiffe://td/a;b", "spiffe://td/a,b", "spiffe://td/~", "/a",
		"spiffe://td/a+b", "spiffe://td\\/a",
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(bad); i++)
		CK_ERR(id(bad[i]), TSM_ERR_SPIFFE_MALFORMED);
	CK_ERR(tsm__spiffe_check("", 0), TSM_ERR_SPIFFE_MALFORMED);
	CK_ERR(tsm__spiffe_check(NULL, 0), TSM_ERR_SPIFFE_MALFORMED);
	/* len is the truth: a shorter len cuts a valid ID into an invalid one */
	CK_ERR(tsm__spiffe_check("spiffe://td/a", 12), TSM_ERR_SPIFFE_MALFORMED);
	CK_ERR(tsm__spiffe_check("spiffe://td/ab", 13), TSM_OK);
}
END_TEST

/* NUL anywhere is refused, also where C string functions would stop. */
START_TEST(id_nul)
{
	CK_ERR(tsm__spiffe_check("spiffe://td/a\0", 14), TSM_ERR_SPIFFE_MALFORMED);
	CK_DETAIL("NUL byte at byte 13");
	CK_ERR(tsm__spiffe_check("spiffe://t\0d/a", 14), TSM_ERR_SPIFFE_MALFORMED);
	CK_DETAIL("NUL byte at byte 10");
	CK_ERR(tsm__spiffe_check("spiffe://td/a\0/b", 16),
	       TSM_ERR_SPIFFE_MALFORMED);
	CK_ERR(tsm__spiffe_check("spiffe://td/\0", 13), TSM_ERR_SPIFFE_MALFORMED);
	CK_ERR(tsm__id_pattern_check("spiffe://td/*\0", 14),
	       TSM_ERR_SPIFFE_MALFORMED);
	CK_ERR(tsm__id_pattern_check("*\0", 2), TSM_ERR_SPIFFE_MALFORMED);
}
END_TEST

/* fill: "spiffe://td/" then 'x' segments of 100 bytes up to len bytes. */
static char *long_id(size_t len)
{
	char *s = malloc(len + 1);
	ck_assert_ptr_nonnull(s);
	memcpy(s, "spiffe://td/", 12);
	for (size_t i = 12; i < len; i++)
		s[i] = (i % 100 == 0 && i + 1 < len) ? '/' : 'x';
	s[len] = '\0';
	return s;
}

START_TEST(id_length)
{
	char *s = long_id(TSM_SPIFFE_ID_MAX);
	CK_ERR(id(s), TSM_OK);
	CK_ERR(pat(s), TSM_OK);
	free(s);
	s = long_id(TSM_SPIFFE_ID_MAX + 1);
	CK_ERR(id(s), TSM_ERR_SPIFFE_MALFORMED);
	CK_DETAIL("2049 bytes, longer than 2048");
	CK_ERR(pat(s), TSM_ERR_SPIFFE_MALFORMED);
	ck_assert(!tsm__id_match("*", s));
	free(s);
	/* one long segment is fine as long as the whole fits */
	char one[TSM_SPIFFE_ID_MAX + 1];
	memcpy(one, "spiffe://td/", 12);
	memset(one + 12, 'y', TSM_SPIFFE_ID_MAX - 12);
	CK_ERR(tsm__spiffe_check(one, TSM_SPIFFE_ID_MAX), TSM_OK);
}
END_TEST

/* A trust domain is 1..255 bytes (TSM_SPIFFE_TD_MAX). */
START_TEST(id_td_length)
{
	char s[300 + 20];
	memcpy(s, "spiffe://", 9);
	memset(s + 9, 'd', 255);
	memcpy(s + 9 + 255, "/a", 3);
	CK_ERR(id(s), TSM_OK);
	char td[TSM_SPIFFE_TD_MAX + 1];
	CK_ERR(tsm__spiffe_td(s, td, sizeof(td)), TSM_OK);
	ck_assert_uint_eq(strlen(td), 255);
	memset(s + 9, 'd', 256);
	memcpy(s + 9 + 256, "/a", 3);
	CK_ERR(id(s), TSM_ERR_SPIFFE_MALFORMED);
	CK_DETAIL("trust domain longer than 255 bytes");
}
END_TEST

/* The detail names the rule and the byte offset. */
START_TEST(id_detail_offsets)
{
	static const struct {
		const char *s, *frag;
	} cases[] = {
		{"spiffe://td:443/a", "port in trust domain at byte 11"},
		{"spiffe://user@td/a", "userinfo in trust domain at byte 13"},
		{"spiffe://Td/a", "uppercase letter in trust domain at byte 9"},
		{"spiffe://tD/a", "uppercase letter in trust domain at byte 10"},
		{"spiffe://td/a?x", "query not allowed at byte 13"},
		{"spiffe://td/a#x", "fragment not allowed at byte 13"},
		{"spiffe://td/a%2F", "percent-encoding not allowed at byte 13"},
		{"spiffe://td/a//b", "empty segment at byte 14"},
		{"spiffe://td/a/", "trailing slash at byte 14"},
		{"spiffe://td/./a", "'.' or '..' segment at byte 12"},
		{"spiffe://td/a/..", "'.' or '..' segment at byte 14"},
		{"spiffe:///a", "empty trust domain at byte 9"},
		{"spiffe://td", "no path"},
		{"spiffe:/x", "scheme is not 'spiffe://' at byte 8"},
		{"SPIFFE://td/a", "scheme is not 'spiffe://' at byte 0"},
		{"spiffe://*/a", "wildcard in trust domain at byte 9"},
		{"spiffe://td/a b", "byte not in [A-Za-z0-9._-] in path at byte 13"},
		{"spiffe://t d/a", "byte not in [a-z0-9._-] in trust domain"},
		{"spiffe://td/*", "at byte 12"},
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(cases); i++) {
		CK_ERR(id(cases[i].s), TSM_ERR_SPIFFE_MALFORMED);
		CK_DETAIL(cases[i].frag);
		CK_DETAIL("SPIFFE ID: ");
	}
	/* only the accepted prefix is echoed: no control bytes reach logs */
	CK_ERR(id("spiffe://td/ok\x1b[31m"), TSM_ERR_SPIFFE_MALFORMED);
	ck_assert_ptr_null(strchr(tsm_err_detail(), '\x1b'));
	CK_DETAIL("after \"spiffe://td/ok\"");
}
END_TEST

START_TEST(td_extract)
{
	char td[TSM_SPIFFE_TD_MAX + 1];
	CK_ERR(tsm__spiffe_td("spiffe://td-a.test/pub/x", td, sizeof(td)),
	       TSM_OK);
	ck_assert_str_eq(td, "td-a.test");
	CK_ERR(tsm__spiffe_td("spiffe://t/p", td, 2), TSM_OK); /* exact fit */
	ck_assert_str_eq(td, "t");
	memcpy(td, "keep", 5);
	CK_ERR(tsm__spiffe_td("spiffe://td-a.test/pub", td, 9),
	       TSM_ERR_BAD_PARAMS);
	ck_assert_str_eq(td, "keep");
	CK_ERR(tsm__spiffe_td("spiffe://td-a.test/pub", NULL, 64),
	       TSM_ERR_BAD_PARAMS);
	CK_ERR(tsm__spiffe_td("spiffe://TD/pub", td, sizeof(td)),
	       TSM_ERR_SPIFFE_MALFORMED);
	ck_assert_str_eq(td, "keep");
	CK_ERR(tsm__spiffe_td("spiffe://td", td, sizeof(td)),
	       TSM_ERR_SPIFFE_MALFORMED);
	CK_ERR(tsm__spiffe_td(NULL, td, sizeof(td)), TSM_ERR_SPIFFE_MALFORMED);
	CK_ERR(tsm__spiffe_td("*", td, sizeof(td)), TSM_ERR_SPIFFE_MALFORMED);
}
END_TEST

/* ---- patterns ----------------------------------------------------------- */

START_TEST(pattern_valid)
{
	static const char *const ok[] = {
		"*", "spiffe://td/*", "spiffe://td/**", "spiffe://td/a/*/c",
		"spiffe://td/a/**", "spiffe://td/*/**", "spiffe://td/a",
		"spiffe://td/*/*", "spiffe://td-a.test/ns/*/sa/**",
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(ok); i++)
		CK_ERR(pat(ok[i]), TSM_OK);
}
END_TEST

START_TEST(pattern_invalid)
{
	static const char *const bad[] = {
		"**", "spiffe://*/a", "spiffe://**/a", "spiffe://td*/a",
		"spiffe://*.td/a", "spiffe://td/**/a", "spiffe://td/a*",
		"spiffe://td/*a", "spiffe://td", "spiffe://td/", "*/a",
		"spiffe://td/***", "spiffe://td/**/", "spiffe://td/*/",
		"spiffe://td//*", "spiffe://TD/*", "spiffe://td:1/*",
		"spiffe://td/a?*", "spiffe://td/./*", " *", "* ", "*/**",
		"spiffe://td/**/**",
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(bad); i++)
		CK_ERR(pat(bad[i]), TSM_ERR_SPIFFE_MALFORMED);
	CK_ERR(tsm__id_pattern_check(NULL, 0), TSM_ERR_SPIFFE_MALFORMED);
	CK_ERR(tsm__id_pattern_check("", 0), TSM_ERR_SPIFFE_MALFORMED);
	CK_ERR(pat("spiffe://td/**/a"), TSM_ERR_SPIFFE_MALFORMED);
	CK_DETAIL("'**' not last at byte 12");
	CK_DETAIL("identity pattern: ");
	CK_ERR(pat("spiffe://td*/a"), TSM_ERR_SPIFFE_MALFORMED);
	CK_DETAIL("wildcard in trust domain at byte 11");
}
END_TEST

START_TEST(match_table)
{
	static const struct {
		const char *p, *id;
		bool m;
	} cases[] = {
		{"*", "spiffe://td/a", true},
		{"*", "spiffe://other.td/x/y/z", true},
		{"spiffe://td/a", "spiffe://td/a", true},
		{"spiffe://td/a", "spiffe://td/b", false},
		{"spiffe://td/a", "spiffe://td/a/b", false},
		{"spiffe://td/a", "spiffe://td/ab", false},
		{"spiffe://td/ab", "spiffe://td/a", false},
		{"spiffe://td/a", "spiffe://tdx/a", false},
		{"spiffe://tdx/a", "spiffe://td/a", false},
		{"spiffe://td-a.test/pub", "spiffe://td-b.test/pub", false},
		{"spiffe://td-a.test/pub", "spiffe://td-a.test.evil/pub", false},
		{"spiffe://td/A", "spiffe://td/a", false},
		{"spiffe://td/*", "spiffe://td/a", true},
		{"spiffe://td/*", "spiffe://td/a/b", false},
		{"spiffe://td/*", "spiffe://other/a", false},
		{"spiffe://td/**", "spiffe://td/a", true},
		{"spiffe://td/**", "spiffe://td/a/b/c", true},
		{"spiffe://td/**", "spiffe://td2/a", false},
		{"spiffe://td/a/**", "spiffe://td/a", false}, /* one or more */
		{"spiffe://td/a/**", "spiffe://td/a/b", true},
		{"spiffe://td/a/**", "spiffe://td/a/b/c", true},
		{"spiffe://td/a/**", "spiffe://td/ab/c", false},
		{"spiffe://td/a/**", "spiffe://td/b/a", false},
		{"spiffe://td/a/*/c", "spiffe://td/a/x/c", true},
		{"spiffe://td/a/*/c", "spiffe://td/a/c", false},
		{"spiffe://td/a/*/c", "spiffe://td/a/x/y/c", false},
		{"spiffe://td/*/**", "spiffe://td/a", false},
		{"spiffe://td/*/**", "spiffe://td/a/b", true},
		{"spiffe://td/*/*", "spiffe://td/a/b", true},
		{"spiffe://td/*/*", "spiffe://td/a/b/c", false},
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(cases); i++)
		ck_assert_msg(tsm__id_match(cases[i].p, cases[i].id) ==
		                      cases[i].m,
		              "'%s' vs '%s'", cases[i].p, cases[i].id);
}
END_TEST

/* Fails closed on anything invalid, and never sets the error detail. */
START_TEST(match_fails_closed)
{
	tsm__err_clear();
	ck_assert(!tsm__id_match("*", "spiffe://TD/a"));
	ck_assert(!tsm__id_match("*", "spiffe://td/a/"));
	ck_assert(!tsm__id_match("*", ""));
	ck_assert(!tsm__id_match("*", "*"));
	ck_assert(!tsm__id_match("spiffe://td/*", "spiffe://td/*"));
	ck_assert(!tsm__id_match("spiffe://td/**", "spiffe://td/**"));
	ck_assert(!tsm__id_match("spiffe://*/a", "spiffe://td/a"));
	ck_assert(!tsm__id_match("spiffe://td/**/a", "spiffe://td/x/a"));
	ck_assert(!tsm__id_match("**", "spiffe://td/a"));
	ck_assert(!tsm__id_match("spiffe://td/a/", "spiffe://td/a"));
	ck_assert(!tsm__id_match(NULL, "spiffe://td/a"));
	ck_assert(!tsm__id_match("*", NULL));
	ck_assert(!tsm__id_match("spiffe://td/a?", "spiffe://td/a"));
	ck_assert_str_eq(tsm_err_detail(), "");
}
END_TEST

/* ref_match: "**" takes one or more segments, tried one by one. */
static bool ref_match(const char **p, size_t np, const char **t, size_t nt)
{
	if (np == 0)
		return nt == 0;
	if (strcmp(p[0], "**") == 0) {
		for (size_t k = 1; k <= nt; k++)
			if (ref_match(p + 1, np - 1, t + k, nt - k))
				return true;
		return false;
	}
	if (nt == 0)
		return false;
	if (strcmp(p[0], "*") != 0 && strcmp(p[0], t[0]) != 0)
		return false;
	return ref_match(p + 1, np - 1, t + 1, nt - 1);
}

static void join(char *buf, const char *td, const char **seg, size_t n)
{
	sprintf(buf, "spiffe://%s", td);
	for (size_t i = 0; i < n; i++) {
		strcat(buf, "/");
		strcat(buf, seg[i]);
	}
}

/* Every pattern of 1..3 segments over {a,b,*,**} against every id of
 * 1..4 segments over {a,b}, in the same and in another trust domain. */
START_TEST(match_exhaustive_small)
{
	static const char *const pa[] = {"a", "b", "*", "**"};
	static const char *const ia[] = {"a", "b"};
	const char *ps[3], *is[4];
	char pbuf[128], ibuf[128];
	unsigned hits = 0, total = 0;
	for (size_t np = 1; np <= 3; np++)
	for (unsigned pc = 0; pc < (1u << (2 * np)); pc++) {
		for (size_t i = 0; i < np; i++)
			ps[i] = pa[(pc >> (2 * i)) & 3];
		join(pbuf, "td", ps, np);
		bool valid = pat(pbuf) == TSM_OK;
		for (size_t i = 0; i + 1 < np; i++)
			ck_assert(!valid || strcmp(ps[i], "**") != 0);
		for (size_t ni = 1; ni <= 4; ni++)
		for (unsigned ic = 0; ic < (1u << ni); ic++) {
			for (size_t i = 0; i < ni; i++)
				is[i] = ia[(ic >> i) & 1];
			join(ibuf, "td", is, ni);
			bool want = valid && ref_match(ps, np, is, ni);
			ck_assert_msg(tsm__id_match(pbuf, ibuf) == want,
			              "'%s' vs '%s'", pbuf, ibuf);
			join(ibuf, "tx", is, ni);
			ck_assert(!tsm__id_match(pbuf, ibuf));
			hits += want;
			total++;
		}
	}
	ck_assert_uint_gt(hits, 100);
	ck_assert_uint_gt(total - hits, 100);
}
END_TEST

/* ---- leaf rules on the test PKI ---------------------------------------- */

static char pki_dir[256];

static void pki_setup(void)
{
	const char *src = getenv("TSM_SRC_DIR");
	ck_assert_msg(src != NULL, "TSM_SRC_DIR must name the source root");
	strcpy(pki_dir, "/tmp/tsm-spiffe-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(pki_dir));
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "'%s/tests/support/pki.sh' '%s' >/dev/null",
	         src, pki_dir);
	ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
}

static void pki_teardown(void)
{
	char cmd[512];
	if (strncmp(pki_dir, "/tmp/tsm-spiffe-", 16) != 0)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pki_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", pki_dir);
}

static X509 *pki_cert(const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s.crt", pki_dir, name);
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "no %s", path);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_msg(x != NULL, "cannot read %s", path);
	return x;
}

/* pki_id: run the leaf rules on NAME.crt; out keeps "unset" on failure. */
static tsm_err pki_id(const char *name, char *out, size_t cap)
{
	X509 *x = pki_cert(name);
	snprintf(out, cap, "unset");
	tsm__err_clear();
	tsm_err err = tsm__spiffe_from_cert(x, out, cap);
	X509_free(x);
	if (err != TSM_OK)
		ck_assert_str_eq(out, "unset");
	return err;
}

START_TEST(pki_good_leaves)
{
	static const struct {
		const char *name, *id;
	} good[] = {
		{"a-pub", "spiffe://td-a.test/pub"},
		{"a-sub", "spiffe://td-a.test/sub"},
		{"a-sub2", "spiffe://td-a.test/sub2"},
		{"a-pub-rot", "spiffe://td-a.test/pub"},
		{"b-pub", "spiffe://td-b.test/pub"},
		/* dates, revocation, chain and trust domain are the TLS
		 * verifier's checks; the leaf rules alone pass these */
		{"a-expired", "spiffe://td-a.test/expired"},
		{"a-notyet", "spiffe://td-a.test/notyet"},
		{"a-revoked", "spiffe://td-a.test/revoked"},
		{"a-self-signed", "spiffe://td-a.test/self-signed"},
		{"b-forged-a", "spiffe://td-a.test/pub"},
	};
	char out[TSM_SPIFFE_ID_MAX + 1];
	for (size_t i = 0; i < TSM_ARRAY_LEN(good); i++) {
		tsm_err err = pki_id(good[i].name, out, sizeof(out));
		ck_assert_msg(err == TSM_OK, "%s: %s", good[i].name,
		              tsm_err_detail());
		ck_assert_str_eq(out, good[i].id);
	}
}
END_TEST

START_TEST(pki_bad_leaves)
{
	static const struct {
		const char *name, *frag;
	} bad[] = {
		{"a-wrong-eku", "extendedKeyUsage lacks clientAuth"},
		{"a-ca-leaf", "is a CA"},
		{"a-bad-spiffe", "uppercase letter in trust domain at byte 9"},
		{"a-two-uris", "2 URI subjectAltNames"},
		{"a-no-uri", "no subjectAltName (the CN is never used)"},
		{"a-int", "is a CA"},
		{"a-root", "is a CA"},
		{"b-int", "is a CA"},
	};
	char out[TSM_SPIFFE_ID_MAX + 1];
	for (size_t i = 0; i < TSM_ARRAY_LEN(bad); i++) {
		tsm_err err = pki_id(bad[i].name, out, sizeof(out));
		ck_assert_msg(err == TSM_ERR_SPIFFE_MALFORMED, "%s: got %s",
		              bad[i].name, tsm_err_name(err));
		CK_DETAIL(bad[i].frag);
	}
}
END_TEST

START_TEST(pki_params)
{
	char out[TSM_SPIFFE_ID_MAX + 1];
	/* "spiffe://td-a.test/pub" is 22 bytes: 23 fits, 22 does not */
	CK_ERR(pki_id("a-pub", out, 22), TSM_ERR_BAD_PARAMS);
	CK_ERR(pki_id("a-pub", out, 23), TSM_OK);
	ck_assert_str_eq(out, "spiffe://td-a.test/pub");
	CK_ERR(tsm__spiffe_from_cert(NULL, out, sizeof(out)),
	       TSM_ERR_BAD_PARAMS);
	X509 *x = pki_cert("a-pub");
	CK_ERR(tsm__spiffe_from_cert(x, NULL, 64), TSM_ERR_BAD_PARAMS);
	X509_free(x);
}
END_TEST

/* ---- leaf rules on certificates built here ---------------------------- */

struct ext {
	int nid;
	const char *value; /* X509V3 config syntax */
};

#define GOOD_BC {NID_basic_constraints, "critical,CA:FALSE"}
#define GOOD_KU {NID_key_usage, "critical,digitalSignature"}
#define GOOD_EKU {NID_ext_key_usage, "clientAuth,serverAuth"}
#define GOOD_SAN {NID_subject_alt_name, "URI:spiffe://td-a.test/w"}

static EVP_PKEY *mk_key(void)
{
	static EVP_PKEY *key;
	if (key == NULL)
		key = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(key);
	return key;
}

static X509 *mk_blank(void)
{
	X509 *x = X509_new();
	ck_assert_ptr_nonnull(x);
	ck_assert(X509_set_version(x, 2));
	ck_assert(ASN1_INTEGER_set(X509_get_serialNumber(x), 7));
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	X509_NAME *n = X509_get_subject_name(x);
	ck_assert(X509_NAME_add_entry_by_txt(
		n, "CN", MBSTRING_ASC,
		(const unsigned char *)"spiffe://td-a.test/cn", -1, -1, 0));
	ck_assert(X509_set_issuer_name(x, n));
	ck_assert(X509_set_pubkey(x, mk_key()));
	return x;
}

static void mk_add(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	ck_assert_msg(e != NULL, "extension %d '%s'", nid, value);
	ck_assert(X509_add_ext(x, e, -1));
	X509_EXTENSION_free(e);
}

static X509 *mk_sign(X509 *x)
{
	ck_assert(X509_sign(x, mk_key(), EVP_sha256()) > 0);
	return x;
}

static X509 *mk_cert(const struct ext *exts, size_t n)
{
	X509 *x = mk_blank();
	for (size_t i = 0; i < n; i++)
		mk_add(x, exts[i].nid, exts[i].value);
	return mk_sign(x);
}

/* mk_check: the leaf rules on a certificate made of exts. */
static tsm_err mk_check(const struct ext *exts, size_t n, char *out)
{
	X509 *x = mk_cert(exts, n);
	strcpy(out, "unset");
	tsm__err_clear();
	tsm_err err = tsm__spiffe_from_cert(x, out, TSM_SPIFFE_ID_MAX + 1);
	X509_free(x);
	if (err != TSM_OK)
		ck_assert_str_eq(out, "unset");
	return err;
}

#define MK(out, ...)                                                           \
	mk_check((const struct ext[]){__VA_ARGS__},                           \
	         sizeof((const struct ext[]){__VA_ARGS__}) /                  \
	                 sizeof(struct ext),                                   \
	         out)

START_TEST(mk_accepted)
{
	char out[TSM_SPIFFE_ID_MAX + 1];
	CK_ERR(MK(out, GOOD_BC, GOOD_KU, GOOD_EKU, GOOD_SAN), TSM_OK);
	ck_assert_str_eq(out, "spiffe://td-a.test/w");
	/* extendedKeyUsage and basicConstraints are optional */
	CK_ERR(MK(out, GOOD_BC, GOOD_KU, GOOD_SAN), TSM_OK);
	CK_ERR(MK(out, GOOD_KU, GOOD_EKU, GOOD_SAN), TSM_OK);
	/* other SAN types may sit beside the one URI */
	CK_ERR(MK(out, GOOD_BC, GOOD_KU,
	          {NID_subject_alt_name,
	           "DNS:w.example,URI:spiffe://td-a.test/w,email:a@b.c"}),
	       TSM_OK);
	ck_assert_str_eq(out, "spiffe://td-a.test/w");
	/* more key usages are fine as long as no CA ones */
	CK_ERR(MK(out, GOOD_BC, GOOD_SAN,
	          {NID_key_usage, "digitalSignature,keyEncipherment"}),
	       TSM_OK);
	CK_ERR(MK(out, GOOD_KU, GOOD_SAN,
	          {NID_ext_key_usage, "serverAuth,codeSigning,clientAuth"}),
	       TSM_OK);
}
END_TEST

START_TEST(mk_refused)
{
	static const struct {
		struct ext e[4];
		const char *frag;
	} cases[] = {
		{{GOOD_BC, GOOD_EKU, GOOD_SAN}, "no keyUsage"},
		{{GOOD_BC, GOOD_SAN, {NID_key_usage, "keyEncipherment"}},
		 "lacks digitalSignature"},
		{{GOOD_BC, GOOD_SAN,
		  {NID_key_usage, "digitalSignature,keyCertSign"}},
		 "keyCertSign or cRLSign"},
		{{GOOD_BC, GOOD_SAN, {NID_key_usage, "digitalSignature,cRLSign"}},
		 "keyCertSign or cRLSign"},
		{{GOOD_KU, GOOD_SAN, {NID_basic_constraints, "critical,CA:TRUE"}},
		 "is a CA"},
		{{GOOD_KU, GOOD_SAN, {NID_ext_key_usage, "clientAuth"}},
		 "lacks clientAuth or serverAuth"},
		{{GOOD_KU, GOOD_SAN, {NID_ext_key_usage, "serverAuth"}},
		 "lacks clientAuth or serverAuth"},
		{{GOOD_KU, GOOD_SAN, {NID_ext_key_usage, "anyExtendedKeyUsage"}},
		 "lacks clientAuth or serverAuth"},
		{{GOOD_KU, GOOD_SAN, {NID_ext_key_usage, "codeSigning"}},
		 "lacks clientAuth or serverAuth"},
		{{GOOD_BC, GOOD_KU}, "no subjectAltName"},
		{{GOOD_BC, GOOD_KU, {NID_subject_alt_name, "DNS:td-a.test"}},
		 "no URI subjectAltName"},
		{{GOOD_KU,
		  {NID_subject_alt_name, "URI:spiffe://td-a.test/a?x=1"}},
		 "query not allowed at byte 20"},
		{{GOOD_KU, {NID_subject_alt_name, "URI:https://td-a.test/a"}},
		 "scheme is not 'spiffe://'"},
		{{GOOD_KU,
		  {NID_subject_alt_name,
		   "URI:spiffe://td-a.test/a,URI:https://x.test/"}},
		 "2 URI subjectAltNames"},
		{{GOOD_KU, {NID_subject_alt_name, "URI:spiffe://td-a.test"}},
		 "no path"},
	};
	char out[TSM_SPIFFE_ID_MAX + 1];
	for (size_t i = 0; i < TSM_ARRAY_LEN(cases); i++) {
		size_t n = 0;
		while (n < 4 && cases[i].e[n].value != NULL)
			n++;
		tsm_err err = mk_check(cases[i].e, n, out);
		ck_assert_msg(err == TSM_ERR_SPIFFE_MALFORMED,
		              "case %zu: got %s", i, tsm_err_name(err));
		CK_DETAIL(cases[i].frag);
		CK_DETAIL("X.509-SVID");
	}
}
END_TEST

/* Two copies of one extension could be read differently by two parsers. */
START_TEST(mk_duplicate_extensions)
{
	char out[TSM_SPIFFE_ID_MAX + 1];
	CK_ERR(MK(out, GOOD_KU, GOOD_SAN,
	          {NID_subject_alt_name, "URI:spiffe://td-a.test/other"}),
	       TSM_ERR_SPIFFE_MALFORMED);
	CK_ERR(MK(out, GOOD_KU, GOOD_SAN, GOOD_KU), TSM_ERR_SPIFFE_MALFORMED);
	CK_DETAIL("malformed or repeated");
	CK_ERR(MK(out, GOOD_KU, GOOD_SAN, GOOD_BC, GOOD_BC),
	       TSM_ERR_SPIFFE_MALFORMED);
}
END_TEST

/* mk_uri_raw: a leaf whose single URI SAN holds exactly these bytes. */
static X509 *mk_uri_raw(const char *bytes, int len)
{
	X509 *x = mk_blank();
	mk_add(x, NID_key_usage, "critical,digitalSignature");
	GENERAL_NAMES *names = GENERAL_NAMES_new();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();
	ck_assert(names && gn && s);
	ck_assert(ASN1_STRING_set(s, bytes, len));
	GENERAL_NAME_set0_value(gn, GEN_URI, s);
	ck_assert(sk_GENERAL_NAME_push(names, gn));
	ck_assert(X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, 0));
	GENERAL_NAMES_free(names);
	return mk_sign(x);
}

static tsm_err mk_uri_check(const char *bytes, int len, char *out, size_t cap)
{
	X509 *x = mk_uri_raw(bytes, len);
	tsm__err_clear();
	tsm_err err = tsm__spiffe_from_cert(x, out, cap);
	X509_free(x);
	return err;
}

START_TEST(mk_uri_bytes)
{
	char out[TSM_SPIFFE_ID_MAX + 1];
	/* a NUL inside the URI: a C string would stop at "spiffe://td/a" */
	CK_ERR(mk_uri_check("spiffe://td/a\0.evil", 19, out, sizeof(out)),
	       TSM_ERR_SPIFFE_MALFORMED);
	CK_DETAIL("NUL byte at byte 13");
	CK_ERR(mk_uri_check("", 0, out, sizeof(out)), TSM_ERR_SPIFFE_MALFORMED);
	CK_ERR(mk_uri_check("spiffe://td/\xff", 13, out, sizeof(out)),
	       TSM_ERR_SPIFFE_MALFORMED);
	char *big = long_id(TSM_SPIFFE_ID_MAX + 1);
	CK_ERR(mk_uri_check(big, TSM_SPIFFE_ID_MAX + 1, out, sizeof(out)),
	       TSM_ERR_SPIFFE_MALFORMED);
	CK_ERR(mk_uri_check(big, TSM_SPIFFE_ID_MAX, out, sizeof(out)), TSM_OK);
	ck_assert_uint_eq(strlen(out), TSM_SPIFFE_ID_MAX);
	ck_assert_int_eq(memcmp(out, big, TSM_SPIFFE_ID_MAX), 0);
	CK_ERR(mk_uri_check(big, TSM_SPIFFE_ID_MAX, out, TSM_SPIFFE_ID_MAX),
	       TSM_ERR_BAD_PARAMS);
	free(big);
}
END_TEST

/* ---- random input: no crash, and check agrees with match -------------- */

static unsigned long long rng_state = 0x9e3779b97f4a7c15ull;

static unsigned long long rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

START_TEST(random_bytes)
{
	static const char alpha[] = "spiffe:/tdTD.-_*?#%@:\0\x80 a/";
	char s[64];
	unsigned valid = 0;
	for (int iter = 0; iter < 200000; iter++) {
		size_t n = (size_t)(rng() % 40);
		size_t pre = (rng() & 1) ? 9 : 0;
		memcpy(s, "spiffe://", 9);
		for (size_t i = pre; i < n; i++)
			s[i] = alpha[rng() % (sizeof(alpha) - 1)];
		n = n < pre ? pre : n;
		tsm_err e = tsm__spiffe_check(s, n);
		ck_assert(e == TSM_OK || e == TSM_ERR_SPIFFE_MALFORMED);
		tsm_err pe = tsm__id_pattern_check(s, n);
		/* every valid ID is also a valid pattern matching itself */
		ck_assert(e != TSM_OK || pe == TSM_OK);
		if (e == TSM_OK && memchr(s, '\0', n) == NULL) {
			s[n] = '\0';
			ck_assert(tsm__id_match(s, s));
			ck_assert(tsm__id_match("*", s));
			valid++;
		}
	}
	ck_assert_uint_gt(valid, 100);
}
END_TEST

static Suite *spiffe_suite(void)
{
	Suite *s = suite_create("spiffe");
	TCase *gram = tcase_create("grammar");
	TCase *pattern = tcase_create("pattern");
	TCase *pki = tcase_create("pki");
	TCase *mk = tcase_create("built");
	tcase_set_timeout(gram, 30);
	tcase_set_timeout(pattern, 30);
	tcase_set_timeout(pki, 60);
	tcase_set_timeout(mk, 30);
	tcase_add_test(gram, id_valid);
	tcase_add_test(gram, id_invalid);
	tcase_add_test(gram, id_nul);
	tcase_add_test(gram, id_length);
	tcase_add_test(gram, id_td_length);
	tcase_add_test(gram, id_detail_offsets);
	tcase_add_test(gram, td_extract);
	tcase_add_test(gram, random_bytes);
	tcase_add_test(pattern, pattern_valid);
	tcase_add_test(pattern, pattern_invalid);
	tcase_add_test(pattern, match_table);
	tcase_add_test(pattern, match_fails_closed);
	tcase_add_test(pattern, match_exhaustive_small);
	/* one PKI for the whole tcase, made before the cases fork */
	tcase_add_unchecked_fixture(pki, pki_setup, pki_teardown);
	tcase_add_test(pki, pki_good_leaves);
	tcase_add_test(pki, pki_bad_leaves);
	tcase_add_test(pki, pki_params);
	tcase_add_test(mk, mk_accepted);
	tcase_add_test(mk, mk_refused);
	tcase_add_test(mk, mk_duplicate_extensions);
	tcase_add_test(mk, mk_uri_bytes);
	suite_add_tcase(s, gram);
	suite_add_tcase(s, pattern);
	suite_add_tcase(s, pki);
	suite_add_tcase(s, mk);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(spiffe_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
