/*
 * test_policy.c - the authorisation policy (security.md "Authorisation").
 *
 * Parser: every kind of bad line is refused with its line number and the
 * problem; nothing is half-built on failure. Decisions: default deny,
 * deny wins wherever it sits, the first matching allow gives the caps,
 * patterns on identities and topics, fail-closed inputs. The subscription
 * filter is compared with brute force over small patterns and topics.
 * Files: loading, missing, oversized, directories, errors naming the path.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "pubsub/topic.h"
#include "security/policy.h"

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

#define A "spiffe://td-a.test/"
#define B "spiffe://td-b.test/"

static tsm__policy *parse_ok(const char *text)
{
	tsm__policy *p = NULL;
	tsm__err_clear();
	tsm_err err = tsm__policy_parse(text, strlen(text), &p);
	ck_assert_msg(err == TSM_OK, "parse: %s", tsm_err_detail());
	ck_assert_ptr_nonnull(p);
	return p;
}

static tsm_err parse(const char *text)
{
	tsm__policy *p = (tsm__policy *)(uintptr_t)0x1; /* must stay as is */
	tsm_err err = tsm__policy_parse(text, strlen(text), &p);
	if (err == TSM_OK)
		tsm__policy_free(p);
	else
		ck_assert_ptr_eq(p, (tsm__policy *)(uintptr_t)0x1);
	return err;
}

static bool allowed(const tsm__policy *p, const char *id, int act,
                    const char *topic)
{
	return tsm__policy_check(p, id, act, topic).allowed;
}

/* ---- parser ------------------------------------------------------------- */

START_TEST(parse_valid)
{
	tsm__policy *p = parse_ok(
		"# libtsm policy\n"
		"\n"
		"   \t  \n"
		"allow publish " A "pub infer/frames\n"
		"allow\tsubscribe\t" A "sub\tinfer/**\t# trailing comment\n"
		"deny subscribe " A "* secret/**\r\n"
		"allow publish * public/* max_priority=3 max_bytes=1024 "
		"protection=integrity\n"
		"  allow  publish  " B "**  b/*  protection=none  \n"
		"#allow publish * everything/**\n"
		"allow publish " A "x a max_bytes=1099511627776 max_priority=7\n"
		"allow publish " A "y a max_priority=0 max_bytes=1");
	ck_assert_uint_eq(tsm__policy_rules(p), 7);
	tsm__policy_free(p);
	p = parse_ok("");
	ck_assert_uint_eq(tsm__policy_rules(p), 0);
	ck_assert(!allowed(p, A "pub", TSM_ACT_PUBLISH, "a"));
	tsm__policy_free(p);
	p = parse_ok("# only comments\n\n#\n");
	ck_assert_uint_eq(tsm__policy_rules(p), 0);
	tsm__policy_free(p);
	/* text need not be NUL-terminated: len is the truth */
	const char *t = "allow publish * a\nGARBAGE";
	ck_assert_int_eq(tsm__policy_parse(t, 18, &p), TSM_OK);
	ck_assert_uint_eq(tsm__policy_rules(p), 1);
	tsm__policy_free(p);
	tsm__policy_free(NULL);
	ck_assert_uint_eq(tsm__policy_rules(NULL), 0);
}
END_TEST

/* Every kind of bad line, at a known line number, with what is wrong. */
START_TEST(parse_errors)
{
	static const struct {
		const char *line, *frag;
	} bad[] = {
		{"permit publish * a", "unknown effect 'permit'"},
		{"Allow publish * a", "unknown effect 'Allow'"},
		{"allowx publish * a", "unknown effect 'allowx'"},
		{"allow", "missing action"},
		{"deny", "missing action"},
		{"allow read * a", "unknown action 'read'"},
		{"allow Publish * a", "unknown action 'Publish'"},
		{"allow publish", "missing identity pattern"},
		{"allow publish *", "missing topic pattern"},
		{"allow publish spiffe://TD/x a", "bad identity pattern"},
		{"allow publish spiffe://td:1/x a", "port in trust domain"},
		{"allow publish spiffe://*/x a", "wildcard in trust domain"},
		{"allow publish spiffe://td/**/x a", "'**' not last"},
		{"allow publish td/x a", "scheme is not 'spiffe://'"},
		{"allow publish ** a", "bad identity pattern"},
		{"allow publish * a//b", "bad topic pattern"},
		{"allow publish * a/**/b", "bad topic pattern"},
		{"allow publish * /a", "bad topic pattern"},
		{"allow publish * a*", "bad topic pattern"},
		{"allow publish * a foo", "unknown option 'foo'"},
		{"allow publish * a foo=1", "unknown option 'foo'"},
		{"allow publish * a =1", "unknown option ''"},
		{"allow publish * a max_priority", "option 'max_priority' needs"},
		{"allow publish * a max_priority=", "has an empty value"},
		{"allow publish * a max_priority=8", "max_priority=8 out of range 0..7"},
		{"allow publish * a max_priority=-1", "not a decimal number"},
		{"allow publish * a max_priority=+1", "not a decimal number"},
		{"allow publish * a max_priority=0x1", "not a decimal number"},
		{"allow publish * a max_priority=1.0", "not a decimal number"},
		{"allow publish * a max_bytes=0", "max_bytes=0 out of range 1..1099511627776"},
		{"allow publish * a max_bytes=1099511627777", "out of range"},
		{"allow publish * a max_bytes=99999999999999999999999999",
		 "out of range"},
		{"allow publish * a max_bytes=1k", "not a decimal number"},
		{"allow publish * a protection=aes", "protection=aes (want"},
		{"allow publish * a protection=", "protection= (want"},
		{"allow publish * a protection=NONE", "protection=NONE"},
		{"allow publish * a max_bytes=1 max_bytes=2",
		 "option 'max_bytes' given twice"},
		{"deny publish * a max_bytes=5", "deny rule with option 'max_bytes=5'"},
		{"deny publish * a protection=none", "deny rule with option"},
		{"allow publish * a b", "unknown option 'b'"},
		{"allow publish * a max_priority=1 max_bytes=1 protection=none x",
		 "more than 7 fields"},
		{"allow publish * a\x01", "bad topic pattern"},
	};
	char text[512];
	for (size_t i = 0; i < TSM_ARRAY_LEN(bad); i++) {
		/* the bad line comes 7th, after good lines and comments */
		snprintf(text, sizeof(text),
		         "# header\nallow publish * ok\n\n  # note\n"
		         "deny subscribe * x/**\n\n%s\nallow publish * later\n",
		         bad[i].line);
		CK_ERR(parse(text), TSM_ERR_BAD_PARAMS);
		ck_assert_msg(strncmp(tsm_err_detail(), "policy line 7: ", 15) == 0,
		              "'%s': detail '%s'", bad[i].line, tsm_err_detail());
		CK_DETAIL(bad[i].frag);
	}
}
END_TEST

START_TEST(parse_error_lines)
{
	CK_ERR(parse("bogus"), TSM_ERR_BAD_PARAMS);
	CK_DETAIL("policy line 1: ");
	CK_ERR(parse("\n\n\nallow publish * a bad"), TSM_ERR_BAD_PARAMS);
	CK_DETAIL("policy line 4: ");
	CK_ERR(parse("allow publish * a\r\n\r\nnope\r\n"), TSM_ERR_BAD_PARAMS);
	CK_DETAIL("policy line 3: unknown effect 'nope'");
	/* only the first bad line is reported */
	CK_ERR(parse("allow publish * a\nx\ny\n"), TSM_ERR_BAD_PARAMS);
	CK_DETAIL("policy line 2: ");
	/* a NUL byte is an error, not an end of text */
	CK_ERR(tsm__policy_parse("allow publish * a\nallow\0 publish * b", 35,
	                         &(tsm__policy *){NULL}),
	       TSM_ERR_BAD_PARAMS);
	CK_DETAIL("policy line 2: NUL byte at column 6");
	CK_ERR(tsm__policy_parse(NULL, 3, &(tsm__policy *){NULL}),
	       TSM_ERR_BAD_PARAMS);
	CK_ERR(tsm__policy_parse("", 0, NULL), TSM_ERR_BAD_PARAMS);
	tsm__policy *p = NULL;
	CK_ERR(tsm__policy_parse(NULL, 0, &p), TSM_OK);
	ck_assert_uint_eq(tsm__policy_rules(p), 0);
	tsm__policy_free(p);
}
END_TEST

/* Hostile bytes in a token are echoed as '?' and cut short. */
START_TEST(parse_error_echo)
{
	CK_ERR(parse("allow publish * a \x1b[31mfoo\x7f=1"), TSM_ERR_BAD_PARAMS);
	ck_assert_ptr_null(strchr(tsm_err_detail(), '\x1b'));
	ck_assert_ptr_null(strchr(tsm_err_detail(), '\x7f'));
	CK_DETAIL("unknown option '?[31mfoo?'");
	char text[600];
	memset(text, 'q', 500);
	text[500] = '\0';
	CK_ERR(parse(text), TSM_ERR_BAD_PARAMS);
	CK_DETAIL("...'");
	ck_assert_uint_lt(strlen(tsm_err_detail()), 200);
}
END_TEST

/* ---- decisions ---------------------------------------------------------- */

START_TEST(default_deny)
{
	tsm__policy *p = parse_ok("allow publish " A "pub infer/frames\n");
	ck_assert(allowed(p, A "pub", TSM_ACT_PUBLISH, "infer/frames"));
	/* anything not written is denied */
	ck_assert(!allowed(p, A "pub", TSM_ACT_SUBSCRIBE, "infer/frames"));
	ck_assert(!allowed(p, A "pub", TSM_ACT_PUBLISH, "infer/frames/x"));
	ck_assert(!allowed(p, A "pub", TSM_ACT_PUBLISH, "infer"));
	ck_assert(!allowed(p, A "sub", TSM_ACT_PUBLISH, "infer/frames"));
	ck_assert(!allowed(p, A "pub/x", TSM_ACT_PUBLISH, "infer/frames"));
	ck_assert(!allowed(p, B "pub", TSM_ACT_PUBLISH, "infer/frames"));
	tsm__grant g = tsm__policy_check(p, A "sub", TSM_ACT_PUBLISH, "x");
	ck_assert(!g.allowed);
	ck_assert_uint_eq(g.max_bytes, 0);
	tsm__policy_free(p);
}
END_TEST

/* A NULL policy, or anything invalid, denies: fail closed. */
START_TEST(fail_closed)
{
	tsm__policy *p = parse_ok("allow publish * ** \nallow subscribe * **");
	ck_assert(allowed(p, A "pub", TSM_ACT_PUBLISH, "a/b"));
	ck_assert(!allowed(NULL, A "pub", TSM_ACT_PUBLISH, "a/b"));
	ck_assert(!allowed(p, NULL, TSM_ACT_PUBLISH, "a/b"));
	ck_assert(!allowed(p, A "pub", TSM_ACT_PUBLISH, NULL));
	ck_assert(!allowed(p, A "pub", 0, "a/b"));
	ck_assert(!allowed(p, A "pub", 3, "a/b"));
	ck_assert(!allowed(p, A "pub", -1, "a/b"));
	/* invalid names never match, not even "*" and "**" */
	ck_assert(!allowed(p, "spiffe://TD-A.test/pub", TSM_ACT_PUBLISH, "a"));
	ck_assert(!allowed(p, A "pub/", TSM_ACT_PUBLISH, "a"));
	ck_assert(!allowed(p, "", TSM_ACT_PUBLISH, "a"));
	ck_assert(!allowed(p, "*", TSM_ACT_PUBLISH, "a"));
	ck_assert(!allowed(p, A "pub", TSM_ACT_PUBLISH, "a//b"));
	ck_assert(!allowed(p, A "pub", TSM_ACT_PUBLISH, "a/*"));
	ck_assert(!allowed(p, A "pub", TSM_ACT_PUBLISH, "**"));
	ck_assert(!allowed(p, A "pub", TSM_ACT_PUBLISH, ""));
	char big[TSM_TOPIC_MAX + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert(!allowed(p, A "pub", TSM_ACT_PUBLISH, big));
	big[TSM_TOPIC_MAX] = '\0';
	ck_assert(allowed(p, A "pub", TSM_ACT_PUBLISH, big));
	tsm__policy_free(p);
}
END_TEST

/* security.md: deny wins over allow, before or after it in the file. */
START_TEST(deny_wins)
{
	static const char *const texts[] = {
		"allow publish * **\ndeny publish " A "evil **\n",
		"deny publish " A "evil **\nallow publish * **\n",
		"allow publish " A "evil a max_priority=0\n"
		"deny publish " A "* a\n",
		"deny publish * a\nallow publish " A "evil a\n",
		"allow publish " A "** **\ndeny publish " A "evil a/**\n",
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(texts); i++) {
		tsm__policy *p = parse_ok(texts[i]);
		tsm__grant g =
			tsm__policy_check(p, A "evil", TSM_ACT_PUBLISH, "a");
		ck_assert_msg(!g.allowed, "text %zu", i);
		ck_assert_uint_eq(g.max_bytes, 0);
		tsm__policy_free(p);
	}
	/* a deny for another action, identity or topic does not apply */
	tsm__policy *p = parse_ok("allow publish * **\n"
	                          "deny subscribe " A "evil **\n"
	                          "deny publish " A "other **\n"
	                          "deny publish " A "evil b/**\n");
	ck_assert(allowed(p, A "evil", TSM_ACT_PUBLISH, "a"));
	ck_assert(!allowed(p, A "evil", TSM_ACT_PUBLISH, "b"));
	ck_assert(!allowed(p, A "evil", TSM_ACT_PUBLISH, "b/c"));
	ck_assert(!allowed(p, A "evil", TSM_ACT_SUBSCRIBE, "a"));
	ck_assert(!allowed(p, A "other", TSM_ACT_PUBLISH, "a"));
	tsm__policy_free(p);
}
END_TEST

START_TEST(caps_defaults_and_options)
{
	tsm__policy *p = parse_ok(
		"allow publish " A "d a\n"
		"allow publish " A "o a max_priority=3 max_bytes=4096 "
		"protection=integrity\n"
		"allow publish " A "n a protection=none max_priority=7\n"
		"allow subscribe " A "e a protection=encrypt max_bytes="
		"1099511627776\n");
	tsm__grant g = tsm__policy_check(p, A "d", TSM_ACT_PUBLISH, "a");
	ck_assert(g.allowed);
	ck_assert_uint_eq(g.max_priority, 0);
	ck_assert_uint_eq(g.max_bytes, 16u << 20);
	ck_assert_uint_eq(g.protection, TSM_PROT_ENCRYPT);
	g = tsm__policy_check(p, A "o", TSM_ACT_PUBLISH, "a");
	ck_assert(g.allowed);
	ck_assert_uint_eq(g.max_priority, 3);
	ck_assert_uint_eq(g.max_bytes, 4096);
	ck_assert_uint_eq(g.protection, TSM_PROT_INTEGRITY);
	g = tsm__policy_check(p, A "n", TSM_ACT_PUBLISH, "a");
	ck_assert_uint_eq(g.max_priority, 7);
	ck_assert_uint_eq(g.max_bytes, 16u << 20);
	ck_assert_uint_eq(g.protection, TSM_PROT_NONE);
	g = tsm__policy_check(p, A "e", TSM_ACT_SUBSCRIBE, "a");
	ck_assert_uint_eq(g.max_bytes, 1ull << 40);
	ck_assert_uint_eq(g.protection, TSM_PROT_ENCRYPT);
	ck_assert(!tsm__policy_check(p, A "e", TSM_ACT_PUBLISH, "a").allowed);
	tsm__policy_free(p);
}
END_TEST

/* Several matching allows: the first in the file gives the caps, also when
 * a later one is more permissive (policy.h says why). */
START_TEST(first_allow_wins)
{
	tsm__policy *p = parse_ok(
		"allow publish " A "pub t/hot max_priority=5 max_bytes=100\n"
		"allow publish " A "** t/** max_priority=0 max_bytes=9999 "
		"protection=none\n"
		"allow publish * ** max_bytes=7\n");
	tsm__grant g = tsm__policy_check(p, A "pub", TSM_ACT_PUBLISH, "t/hot");
	ck_assert(g.allowed);
	ck_assert_uint_eq(g.max_priority, 5);
	ck_assert_uint_eq(g.max_bytes, 100);
	ck_assert_uint_eq(g.protection, TSM_PROT_ENCRYPT);
	g = tsm__policy_check(p, A "pub", TSM_ACT_PUBLISH, "t/cold");
	ck_assert_uint_eq(g.max_priority, 0);
	ck_assert_uint_eq(g.max_bytes, 9999);
	ck_assert_uint_eq(g.protection, TSM_PROT_NONE);
	g = tsm__policy_check(p, B "pub", TSM_ACT_PUBLISH, "t/hot");
	ck_assert(g.allowed);
	ck_assert_uint_eq(g.max_bytes, 7);
	tsm__policy_free(p);
}
END_TEST

START_TEST(identity_patterns)
{
	tsm__policy *p = parse_ok("allow publish " A "ns/*/pub a\n"
	                          "allow publish " A "fleet/** b\n"
	                          "allow publish * c\n"
	                          "allow publish " B "pub d\n");
	ck_assert(allowed(p, A "ns/x/pub", TSM_ACT_PUBLISH, "a"));
	ck_assert(!allowed(p, A "ns/x/y/pub", TSM_ACT_PUBLISH, "a"));
	ck_assert(!allowed(p, A "ns/pub", TSM_ACT_PUBLISH, "a"));
	ck_assert(!allowed(p, B "ns/x/pub", TSM_ACT_PUBLISH, "a"));
	ck_assert(allowed(p, A "fleet/1", TSM_ACT_PUBLISH, "b"));
	ck_assert(allowed(p, A "fleet/1/gpu/7", TSM_ACT_PUBLISH, "b"));
	ck_assert(!allowed(p, A "fleet", TSM_ACT_PUBLISH, "b"));
	ck_assert(!allowed(p, A "fleetx/1", TSM_ACT_PUBLISH, "b"));
	ck_assert(allowed(p, A "anything", TSM_ACT_PUBLISH, "c"));
	ck_assert(allowed(p, B "anything/else", TSM_ACT_PUBLISH, "c"));
	/* trust domains compare exactly: B's rule admits no A identity */
	ck_assert(allowed(p, B "pub", TSM_ACT_PUBLISH, "d"));
	ck_assert(!allowed(p, A "pub", TSM_ACT_PUBLISH, "d"));
	ck_assert(!allowed(p, "spiffe://td-b.test.evil/pub", TSM_ACT_PUBLISH,
	                   "d"));
	tsm__policy_free(p);
}
END_TEST

START_TEST(topic_patterns)
{
	tsm__policy *p = parse_ok("allow subscribe * infer/*/frames\n"
	                          "allow subscribe * logs/**\n"
	                          "allow subscribe * exact\n");
	ck_assert(allowed(p, A "s", TSM_ACT_SUBSCRIBE, "infer/cam0/frames"));
	ck_assert(!allowed(p, A "s", TSM_ACT_SUBSCRIBE, "infer/frames"));
	ck_assert(!allowed(p, A "s", TSM_ACT_SUBSCRIBE, "infer/a/b/frames"));
	ck_assert(allowed(p, A "s", TSM_ACT_SUBSCRIBE, "logs"));
	ck_assert(allowed(p, A "s", TSM_ACT_SUBSCRIBE, "logs/a/b"));
	ck_assert(!allowed(p, A "s", TSM_ACT_SUBSCRIBE, "logsx"));
	ck_assert(allowed(p, A "s", TSM_ACT_SUBSCRIBE, "exact"));
	ck_assert(!allowed(p, A "s", TSM_ACT_SUBSCRIBE, "exact/x"));
	ck_assert(!allowed(p, A "s", TSM_ACT_SUBSCRIBE, "Exact"));
	tsm__policy_free(p);
}
END_TEST

/* The handshake's ACL gate: some allow rule of either action names it. */
START_TEST(admits)
{
	tsm__policy *p = parse_ok("allow publish " A "pub a\n"
	                          "allow subscribe " A "sub/** a\n"
	                          "deny publish " A "evil **\n"
	                          "deny subscribe * secret\n");
	ck_assert(tsm__policy_admits(p, A "pub"));
	ck_assert(tsm__policy_admits(p, A "sub/x"));
	ck_assert(!tsm__policy_admits(p, A "sub"));
	ck_assert(!tsm__policy_admits(p, A "evil")); /* only denies name it */
	ck_assert(!tsm__policy_admits(p, B "pub"));
	ck_assert(!tsm__policy_admits(p, "spiffe://TD-A.test/pub"));
	ck_assert(!tsm__policy_admits(p, NULL));
	ck_assert(!tsm__policy_admits(NULL, A "pub"));
	tsm__policy_free(p);
	p = parse_ok("");
	ck_assert(!tsm__policy_admits(p, A "pub"));
	tsm__policy_free(p);
}
END_TEST

/* ---- subscription filter ------------------------------------------------ */

START_TEST(may_subscribe_table)
{
	tsm__policy *p = parse_ok("allow subscribe " A "sub infer/**\n"
	                          "deny subscribe " A "sub infer/secret/**\n"
	                          "allow publish " A "pub **\n"
	                          "allow subscribe " A "two a/*/c\n");
	const char *s = A "sub";
	ck_assert(tsm__policy_may_subscribe_pattern(p, s, "infer/x"));
	ck_assert(tsm__policy_may_subscribe_pattern(p, s, "infer"));
	ck_assert(tsm__policy_may_subscribe_pattern(p, s, "**"));
	ck_assert(tsm__policy_may_subscribe_pattern(p, s, "*/x"));
	ck_assert(tsm__policy_may_subscribe_pattern(p, s, "infer/*"));
	ck_assert(!tsm__policy_may_subscribe_pattern(p, s, "other/**"));
	ck_assert(!tsm__policy_may_subscribe_pattern(p, s, "infer/secret"));
	ck_assert(!tsm__policy_may_subscribe_pattern(p, s, "infer/secret/**"));
	ck_assert(!tsm__policy_may_subscribe_pattern(p, s, "infer/secret/*/z"));
	/* publish rules grant no subscription */
	ck_assert(!tsm__policy_may_subscribe_pattern(p, A "pub", "**"));
	ck_assert(tsm__policy_may_subscribe_pattern(p, A "two", "a/b/c"));
	ck_assert(tsm__policy_may_subscribe_pattern(p, A "two", "*/*/*"));
	ck_assert(!tsm__policy_may_subscribe_pattern(p, A "two", "a/b"));
	ck_assert(!tsm__policy_may_subscribe_pattern(p, A "two", "a/b/c/d"));
	ck_assert(!tsm__policy_may_subscribe_pattern(NULL, s, "**"));
	ck_assert(!tsm__policy_may_subscribe_pattern(p, NULL, "**"));
	ck_assert(!tsm__policy_may_subscribe_pattern(p, s, NULL));
	ck_assert(!tsm__policy_may_subscribe_pattern(p, s, "infer//x"));
	ck_assert(!tsm__policy_may_subscribe_pattern(p, "spiffe://TD/x", "**"));
	tsm__policy_free(p);
}
END_TEST

/* Small patterns and topics over {a,b} (and "c", in no pattern). */
#define NPAT 84 /* 4 + 16 + 64 patterns of 1..3 segments */
static char pats[NPAT][16];
static char tops[40][16];
static size_t ntops;

static void gen_names(void)
{
	static const char *const ps[] = {"a", "b", "*", "**"};
	static const char *const ts[] = {"a", "b", "c"};
	size_t n = 0;
	for (unsigned len = 1; len <= 3; len++)
		for (unsigned c = 0; c < (1u << (2 * len)); c++, n++) {
			pats[n][0] = '\0';
			for (unsigned i = 0; i < len; i++) {
				if (i)
					strcat(pats[n], "/");
				strcat(pats[n], ps[(c >> (2 * i)) & 3]);
			}
		}
	ntops = 0;
	for (unsigned len = 1; len <= 3; len++) {
		unsigned total = len == 1 ? 3 : len == 2 ? 9 : 27;
		for (unsigned c = 0, v = 0; c < total; c++, ntops++) {
			tops[ntops][0] = '\0';
			v = c;
			for (unsigned i = 0; i < len; i++, v /= 3) {
				if (i)
					strcat(tops[ntops], "/");
				strcat(tops[ntops], ts[v % 3]);
			}
		}
	}
}

static bool tmatch(const char *p, const char *t)
{
	return tsm__topic_match(p, strlen(p), t, strlen(t));
}

/* Witnesses up to 3 segments (+1 for "**" taking one more) suffice for
 * patterns of up to 3 segments; "a/b/c/a" stands in for "longer". */
static bool brute(const char *x, const char *y, bool cover)
{
	static const char *const longer[] = {"a/b/c/a", "c/c/c/c", "a/a/a/a",
	                                     "b/b/b/b", "a/b/a/b"};
	for (size_t i = 0; i < ntops + TSM_ARRAY_LEN(longer); i++) {
		const char *t = i < ntops ? tops[i] : longer[i - ntops];
		bool mx = tmatch(x, t), my = tmatch(y, t);
		if (!cover && mx && my)
			return true;
		if (cover && my && !mx)
			return false;
	}
	return cover;
}

START_TEST(may_subscribe_brute)
{
	char text[128];
	unsigned yes = 0, no = 0;
	gen_names();
	for (size_t i = 0; i < NPAT; i++) {
		if (tsm__pattern_check(pats[i], strlen(pats[i])) != TSM_OK)
			continue;
		/* only an allow: the filter is overlap */
		snprintf(text, sizeof(text), "allow subscribe * %s\n", pats[i]);
		tsm__policy *pa = parse_ok(text);
		/* allow everything, deny one pattern: the filter is !cover */
		snprintf(text, sizeof(text),
		         "allow subscribe * **\ndeny subscribe * %s\n", pats[i]);
		tsm__policy *pd = parse_ok(text);
		for (size_t j = 0; j < NPAT; j++) {
			if (tsm__pattern_check(pats[j], strlen(pats[j])) != TSM_OK)
				continue;
			bool ov = tsm__policy_may_subscribe_pattern(pa, A "s",
			                                            pats[j]);
			ck_assert_msg(ov == brute(pats[i], pats[j], false),
			              "overlap '%s' '%s'", pats[i], pats[j]);
			bool nc = tsm__policy_may_subscribe_pattern(pd, A "s",
			                                            pats[j]);
			ck_assert_msg(nc == !brute(pats[i], pats[j], true),
			              "cover '%s' '%s'", pats[i], pats[j]);
			yes += ov + nc;
			no += !ov + !nc;
		}
		tsm__policy_free(pa);
		tsm__policy_free(pd);
	}
	ck_assert_uint_gt(yes, 200);
	ck_assert_uint_gt(no, 200);
}
END_TEST

/* ---- files -------------------------------------------------------------- */

static char tmp_path[64];

static const char *write_tmp(const char *text, size_t len)
{
	strcpy(tmp_path, "/tmp/tsm-policy-XXXXXX");
	int fd = mkstemp(tmp_path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	return tmp_path;
}

START_TEST(load_file)
{
	const char *text = "allow publish " A "pub a/**\n# end\n";
	const char *path = write_tmp(text, strlen(text));
	tsm__policy *p = NULL;
	CK_ERR(tsm__policy_load(path, &p), TSM_OK);
	ck_assert_uint_eq(tsm__policy_rules(p), 1);
	ck_assert(allowed(p, A "pub", TSM_ACT_PUBLISH, "a/b"));
	tsm__policy_free(p);
	unlink(path);
}
END_TEST

START_TEST(load_errors)
{
	tsm__policy *p = (tsm__policy *)(uintptr_t)0x1;
	CK_ERR(tsm__policy_load("/nonexistent/tsm.policy", &p),
	       TSM_ERR_BAD_PARAMS);
	CK_DETAIL("policy file '/nonexistent/tsm.policy'");
	CK_DETAIL("No such file");
	CK_ERR(tsm__policy_load("/tmp", &p), TSM_ERR_BAD_PARAMS);
	CK_DETAIL("policy file '/tmp'");
	CK_ERR(tsm__policy_load(NULL, &p), TSM_ERR_BAD_PARAMS);
	CK_ERR(tsm__policy_load("/dev/null", NULL), TSM_ERR_BAD_PARAMS);
	/* a parse error names the file and the line */
	const char *text = "allow publish * a\n\nallow publish * b foo=1\n";
	const char *path = write_tmp(text, strlen(text));
	CK_ERR(tsm__policy_load(path, &p), TSM_ERR_BAD_PARAMS);
	CK_DETAIL(path);
	CK_DETAIL("policy line 3: unknown option 'foo'");
	unlink(path);
	ck_assert_ptr_eq(p, (tsm__policy *)(uintptr_t)0x1);
	/* an endless file is cut off at the cap, not read into memory */
	CK_ERR(tsm__policy_load("/dev/zero", &p), TSM_ERR_BAD_PARAMS);
	CK_DETAIL("larger than 1048576 bytes");
	/* an empty file is an empty policy */
	CK_ERR(tsm__policy_load("/dev/null", &p), TSM_OK);
	ck_assert_uint_eq(tsm__policy_rules(p), 0);
	tsm__policy_free(p);
}
END_TEST

/* Exactly the cap loads; one byte more does not. */
START_TEST(load_cap)
{
	size_t cap = TSM_POLICY_FILE_MAX;
	char *text = malloc(cap + 1);
	ck_assert_ptr_nonnull(text);
	memset(text, ' ', cap + 1);
	const char *rule = "allow publish * a\n";
	memcpy(text, rule, strlen(rule));
	tsm__policy *p = NULL;
	const char *path = write_tmp(text, cap);
	CK_ERR(tsm__policy_load(path, &p), TSM_OK);
	ck_assert_uint_eq(tsm__policy_rules(p), 1);
	tsm__policy_free(p);
	unlink(path);
	path = write_tmp(text, cap + 1);
	CK_ERR(tsm__policy_load(path, &p), TSM_ERR_BAD_PARAMS);
	CK_DETAIL("larger than");
	unlink(path);
	free(text);
}
END_TEST

/* ---- random text: never crashes, errors always name a line ------------ */

static unsigned long long rng_state = 0x243f6a8885a308d3ull;

static unsigned long long rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

START_TEST(random_text)
{
	static const char *const toks[] = {
		"allow", "deny", "publish", "subscribe", "*", "**", A "x",
		A "*", B "**", "a", "a/*", "a/**", "max_priority=3",
		"max_bytes=10", "protection=none", "#", "\n", " ", "\t", "=",
		"max_priority=99", "x\x01", "\0", "spiffe://", "a//b",
	};
	char text[512];
	unsigned ok = 0;
	for (int iter = 0; iter < 20000; iter++) {
		size_t n = 0, ntok = 1 + rng() % 12;
		for (size_t i = 0; i < ntok; i++) {
			const char *t = toks[rng() % TSM_ARRAY_LEN(toks)];
			size_t tl = t[0] ? strlen(t) : 1;
			memcpy(text + n, t, tl);
			n += tl;
			text[n++] = (rng() % 3) ? ' ' : '\n';
		}
		tsm__policy *p = NULL;
		tsm__err_clear();
		tsm_err err = tsm__policy_parse(text, n, &p);
		if (err == TSM_OK) {
			ok++;
			tsm__policy_check(p, A "x", TSM_ACT_PUBLISH, "a");
			tsm__policy_free(p);
			continue;
		}
		ck_assert_int_eq(err, TSM_ERR_BAD_PARAMS);
		ck_assert_ptr_null(p);
		ck_assert_msg(strncmp(tsm_err_detail(), "policy line ", 12) == 0,
		              "detail '%s'", tsm_err_detail());
	}
	ck_assert_uint_gt(ok, 100);
}
END_TEST

static Suite *policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *parser = tcase_create("parser");
	TCase *decide = tcase_create("decisions");
	TCase *files = tcase_create("files");
	tcase_set_timeout(parser, 30);
	tcase_set_timeout(decide, 60);
	tcase_set_timeout(files, 30);
	tcase_add_test(parser, parse_valid);
	tcase_add_test(parser, parse_errors);
	tcase_add_test(parser, parse_error_lines);
	tcase_add_test(parser, parse_error_echo);
	tcase_add_test(parser, random_text);
	tcase_add_test(decide, default_deny);
	tcase_add_test(decide, fail_closed);
	tcase_add_test(decide, deny_wins);
	tcase_add_test(decide, caps_defaults_and_options);
	tcase_add_test(decide, first_allow_wins);
	tcase_add_test(decide, identity_patterns);
	tcase_add_test(decide, topic_patterns);
	tcase_add_test(decide, admits);
	tcase_add_test(decide, may_subscribe_table);
	tcase_add_test(decide, may_subscribe_brute);
	tcase_add_test(files, load_file);
	tcase_add_test(files, load_errors);
	tcase_add_test(files, load_cap);
	suite_add_tcase(s, parser);
	suite_add_tcase(s, decide);
	suite_add_tcase(s, files);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(policy_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
