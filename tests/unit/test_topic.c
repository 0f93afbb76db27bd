/*
 * test_topic.c - topic and pattern grammar and matching (docs/wire.md §8.1).
 *
 * Fixed tables pin the rules the header states; then a deliberately
 * naive reference (split on '/', recursive matcher that lets "**" take
 * any number of segments) is compared with the real code over every
 * small pattern/topic pair and over random strings, including bytes the
 * grammar refuses.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "pubsub/topic.h"

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

static tsm_err topic(const char *s)
{
	return tsm__topic_check(s, strlen(s));
}

static tsm_err pattern(const char *s)
{
	return tsm__pattern_check(s, strlen(s));
}

static bool match(const char *p, const char *t)
{
	ck_assert_int_eq(tsm__pattern_check(p, strlen(p)), TSM_OK);
	ck_assert_int_eq(tsm__topic_check(t, strlen(t)), TSM_OK);
	return tsm__topic_match(p, strlen(p), t, strlen(t));
}

/* ---- grammar tables ----------------------------------------------------- */

START_TEST(topic_valid)
{
	static const char *const ok[] = {
		"a", "a/b", "infer/frames", "A-Z_a.z-0.9", "x/y/z/w",
		".", "a/../b", "_", "-", "0", "a.b/c-d/e_f",
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(ok); i++)
		CK_ERR(topic(ok[i]), TSM_OK);
	char max[TSM_TOPIC_MAX + 1];
	memset(max, 'a', TSM_TOPIC_MAX);
	for (size_t i = 1; i < TSM_TOPIC_MAX; i += 2)
		max[i] = '/';
	max[TSM_TOPIC_MAX - 1] = 'z';
	max[TSM_TOPIC_MAX] = '\0';
	CK_ERR(topic(max), TSM_OK);
}
END_TEST

START_TEST(topic_invalid)
{
	static const char *const bad[] = {
		"/", "/a", "a/", "a//b", "//", "a b", "a*", "*", "**", "a/*",
		"a/**", "a\\b", "a:b", "a#b", "a+b", "a?b", "\xc3\xa9",
		"a\tb", "a\nb", "a/b/", "%2F", "a,b", "~",
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(bad); i++)
		CK_ERR(topic(bad[i]), TSM_ERR_BAD_TOPIC);
	CK_ERR(tsm__topic_check("", 0), TSM_ERR_BAD_TOPIC);
	CK_ERR(tsm__topic_check(NULL, 0), TSM_ERR_BAD_TOPIC);
	CK_ERR(tsm__topic_check("a\0b", 3), TSM_ERR_BAD_TOPIC); /* NUL inside */
	ck_assert_ptr_nonnull(strstr(tsm_err_detail(), "NUL"));
	CK_ERR(tsm__topic_check("ab\0", 3), TSM_ERR_BAD_TOPIC);
	char big[TSM_TOPIC_MAX + 2];
	memset(big, 'a', sizeof(big));
	CK_ERR(tsm__topic_check(big, TSM_TOPIC_MAX), TSM_OK);
	CK_ERR(tsm__topic_check(big, TSM_TOPIC_MAX + 1), TSM_ERR_BAD_TOPIC);
}
END_TEST

/* The detail names the byte where the rule broke. */
START_TEST(topic_detail_offsets)
{
	CK_ERR(topic("a//b"), TSM_ERR_BAD_TOPIC);
	ck_assert_ptr_nonnull(strstr(tsm_err_detail(), "empty segment"));
	ck_assert_ptr_nonnull(strstr(tsm_err_detail(), "byte 2"));
	CK_ERR(topic("ab/c d"), TSM_ERR_BAD_TOPIC);
	ck_assert_ptr_nonnull(strstr(tsm_err_detail(), "byte 4"));
	CK_ERR(pattern("a/**/b"), TSM_ERR_BAD_PATTERN);
	ck_assert_ptr_nonnull(strstr(tsm_err_detail(), "byte 2"));
	/* only the checked prefix is echoed: no control bytes in logs */
	CK_ERR(topic("ok/\x1b[31m"), TSM_ERR_BAD_TOPIC);
	ck_assert_ptr_null(strchr(tsm_err_detail(), '\x1b'));
}
END_TEST

START_TEST(pattern_valid)
{
	static const char *const ok[] = {
		"a", "*", "**", "a/*", "*/b", "a/**", "*/*/**", "a/*/c",
		"*/*", "a/b/c", "x.y/*/z-w/**",
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(ok); i++)
		CK_ERR(pattern(ok[i]), TSM_OK);
}
END_TEST

START_TEST(pattern_invalid)
{
	static const char *const bad[] = {
		"a*", "*a", "***", "**/a", "a/**/b", "a/**/", "/**", "**/",
		"a//*", "a/*/", "/", "*/", "/*", "a/ *", "a/*b", "**/**",
		"*/**/*", "a/b*/c", "a/+", "a/#", "a/**a",
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(bad); i++)
		CK_ERR(pattern(bad[i]), TSM_ERR_BAD_PATTERN);
	CK_ERR(tsm__pattern_check("", 0), TSM_ERR_BAD_PATTERN);
	CK_ERR(tsm__pattern_check(NULL, 0), TSM_ERR_BAD_PATTERN);
	CK_ERR(tsm__pattern_check("*\0", 2), TSM_ERR_BAD_PATTERN);
	CK_ERR(tsm__pattern_check("a/\0/b", 5), TSM_ERR_BAD_PATTERN);
	char big[TSM_TOPIC_MAX + 2];
	memset(big, 'a', sizeof(big));
	big[TSM_TOPIC_MAX - 3] = '/';
	big[TSM_TOPIC_MAX - 2] = '*';
	big[TSM_TOPIC_MAX - 1] = '*';
	CK_ERR(tsm__pattern_check(big, TSM_TOPIC_MAX), TSM_OK);
	big[TSM_TOPIC_MAX - 2] = 'a';
	big[TSM_TOPIC_MAX - 1] = 'a';
	CK_ERR(tsm__pattern_check(big, TSM_TOPIC_MAX + 1),
	       TSM_ERR_BAD_PATTERN);
}
END_TEST

/* ---- matching table ----------------------------------------------------- */

START_TEST(match_table)
{
	static const struct {
		const char *p, *t;
		bool m;
	} cases[] = {
		{"a", "a", true},          {"a", "b", false},
		{"a", "a/b", false},       {"a/b", "a", false},
		{"a/b", "a/bc", false},    {"a/bc", "a/b", false},
		{"*", "a", true},          {"*", "a/b", false},
		{"a/*", "a/b", true},      {"a/*", "a", false},
		{"a/*", "a/b/c", false},   {"*/b", "a/b", true},
		{"*/b", "a/c", false},     {"a/*/c", "a/x/c", true},
		{"a/*/c", "a/x/y/c", false},
		{"a/**", "a", true},       {"a/**", "a/b", true},
		{"a/**", "a/b/c", true},   {"a/**", "ab", false},
		{"a/**", "b/a", false},    {"ab/**", "a/b", false},
		{"**", "a", true},         {"**", "a/b/c/d", true},
		{"*/**", "a", true},       {"*/**", "a/b/c", true},
		{"*/*/**", "a", false},    {"*/*/**", "a/b", true},
		{"a/b/**", "a/b", true},   {"a/b/**", "a/c", false},
		{"infer/**", "infer/frames/0", true},
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(cases); i++)
		ck_assert_msg(match(cases[i].p, cases[i].t) == cases[i].m,
		              "'%s' vs '%s'", cases[i].p, cases[i].t);
}
END_TEST

/* ---- reference model ---------------------------------------------------- */

#define REF_SEGS 300

/* ref_split cuts s at every '/'; empty segments are kept, to be judged. */
static size_t ref_split(const char *s, size_t len, const char **seg,
                        size_t *seglen)
{
	size_t n = 0, start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '/') {
			seg[n] = s + start;
			seglen[n++] = i - start;
			start = i + 1;
		}
	}
	return n;
}

static bool ref_eq(const char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

static bool ref_valid(const char *s, size_t len, bool is_pattern)
{
	const char *seg[REF_SEGS];
	size_t sl[REF_SEGS];
	if (len == 0 || len > 256)
		return false;
	size_t n = ref_split(s, len, seg, sl);
	for (size_t i = 0; i < n; i++) {
		if (sl[i] == 0)
			return false;
		if (is_pattern && ref_eq(seg[i], sl[i], "*"))
			continue;
		if (is_pattern && ref_eq(seg[i], sl[i], "**") && i == n - 1)
			continue;
		for (size_t j = 0; j < sl[i]; j++)
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
			            "OPQRSTUVWXYZ0123456789._-",
			            seg[i][j]) || seg[i][j] == '\0')
				return false;
	}
	return true;
}

/* ref_match: "**" may take any number of segments, tried one by one. */
static bool ref_match_segs(const char **p, const size_t *pl, size_t np,
                           const char **t, const size_t *tl, size_t nt)
{
	if (np == 0)
		return nt == 0;
	if (ref_eq(p[0], pl[0], "**")) {
		for (size_t k = 0; k <= nt; k++)
			if (ref_match_segs(p + 1, pl + 1, np - 1, t + k, tl + k,
			                   nt - k))
				return true;
		return false;
	}
	if (nt == 0)
		return false;
	if (!ref_eq(p[0], pl[0], "*") &&
	    (pl[0] != tl[0] || memcmp(p[0], t[0], pl[0]) != 0))
		return false;
	return ref_match_segs(p + 1, pl + 1, np - 1, t + 1, tl + 1, nt - 1);
}

static bool ref_match(const char *p, const char *t)
{
	const char *ps[REF_SEGS], *ts[REF_SEGS];
	size_t pl[REF_SEGS], tl[REF_SEGS];
	size_t np = ref_split(p, strlen(p), ps, pl);
	size_t nt = ref_split(t, strlen(t), ts, tl);
	return ref_match_segs(ps, pl, np, ts, tl, nt);
}

/* join builds "s0/s1/..." from the digits of code in base n. */
static void join(char *out, size_t cap, const char *const *alpha, size_t n,
                 unsigned code, unsigned segs)
{
	out[0] = '\0';
	for (unsigned i = 0; i < segs; i++, code /= (unsigned)n) {
		if (i)
			strncat(out, "/", cap - strlen(out) - 1);
		strncat(out, alpha[code % n], cap - strlen(out) - 1);
	}
}

static unsigned ipow(unsigned b, unsigned e)
{
	unsigned r = 1;
	while (e--)
		r *= b;
	return r;
}

/*
 * Every pattern of 1..4 segments over {a, b, ab, *, **} against every
 * topic of 1..4 segments over {a, b, ab}: the grammar check must agree
 * with the reference on validity, and the matcher on every valid pair.
 */
START_TEST(match_exhaustive_small)
{
	static const char *const pa[] = {"a", "b", "ab", "*", "**"};
	static const char *const ta[] = {"a", "b", "ab"};
	char p[64], t[64];
	unsigned pairs = 0, hits = 0;
	for (unsigned ps = 1; ps <= 4; ps++)
	for (unsigned pc = 0; pc < ipow(5, ps); pc++) {
		join(p, sizeof(p), pa, 5, pc, ps);
		bool valid = ref_valid(p, strlen(p), true);
		ck_assert_msg((pattern(p) == TSM_OK) == valid, "pattern %s", p);
		ck_assert_msg(topic(p) == TSM_OK ||
		              strchr(p, '*') != NULL, "topic %s", p);
		if (!valid)
			continue;
		for (unsigned ts = 1; ts <= 4; ts++)
		for (unsigned tc = 0; tc < ipow(3, ts); tc++) {
			join(t, sizeof(t), ta, 3, tc, ts);
			bool want = ref_match(p, t);
			ck_assert_msg(match(p, t) == want, "'%s' vs '%s'", p, t);
			pairs++;
			hits += want;
		}
	}
	ck_assert_uint_gt(pairs, 20000);
	ck_assert_uint_gt(hits, 1000);
	ck_assert_uint_lt(hits, pairs);
}
END_TEST

static uint64_t rng_state = 0x452821e638d01377ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Longer random pairs, up to 12 segments, against the reference. */
START_TEST(match_random_long)
{
	static const char *const pa[] = {"x", "y", "xy", "*", "*", "**"};
	static const char *const ta[] = {"x", "y", "xy"};
	char p[128], t[128];
	unsigned hits = 0;
	for (int iter = 0; iter < 50000; iter++) {
		unsigned np = 1 + (unsigned)(rng() % 12);
		unsigned nt = 1 + (unsigned)(rng() % 12);
		p[0] = t[0] = '\0';
		for (unsigned i = 0; i < np; i++) {
			if (i)
				strcat(p, "/");
			strcat(p, pa[rng() % (i == np - 1 ? 6 : 5)]);
		}
		for (unsigned i = 0; i < nt; i++) {
			if (i)
				strcat(t, "/");
			strcat(t, ta[rng() % 3]);
		}
		bool want = ref_match(p, t);
		ck_assert_msg(match(p, t) == want, "'%s' vs '%s'", p, t);
		hits += want;
	}
	ck_assert_uint_gt(hits, 100);
}
END_TEST

/* Random strings over a hostile alphabet: both checks agree with ref. */
START_TEST(grammar_random_bytes)
{
	static const char alpha[] = {'a', 'Z', '9', '/', '/', '*', '.', '-',
	                             '\0', ' ', (char)0xff, '\\'};
	char s[300];
	unsigned valid_t = 0, valid_p = 0;
	for (int iter = 0; iter < 100000; iter++) {
		size_t len = (size_t)(rng() % 14);
		if (iter % 1000 == 0)
			len = 250 + (size_t)(rng() % 12); /* around the limit */
		for (size_t i = 0; i < len; i++)
			s[i] = alpha[rng() % sizeof(alpha)];
		if (iter % 1000 == 0)
			for (size_t i = 0; i < len; i++)
				s[i] = (i % 2) ? '/' : 'a';
		bool vt = ref_valid(s, len, false);
		bool vp = ref_valid(s, len, true);
		tsm__err_clear();
		ck_assert_msg((tsm__topic_check(s, len) == TSM_OK) == vt,
		              "topic of %zu bytes", len);
		ck_assert(vt || tsm_err_detail()[0] != '\0');
		ck_assert_msg((tsm__pattern_check(s, len) == TSM_OK) == vp,
		              "pattern of %zu bytes", len);
		valid_t += vt;
		valid_p += vp;
	}
	ck_assert_uint_gt(valid_t, 100);
	ck_assert_uint_gt(valid_p, valid_t);
}
END_TEST

static Suite *topic_suite(void)
{
	Suite *s = suite_create("topic");
	TCase *gram = tcase_create("grammar");
	TCase *mat = tcase_create("match");
	tcase_set_timeout(gram, 30);
	tcase_set_timeout(mat, 60);
	tcase_add_test(gram, topic_valid);
	tcase_add_test(gram, topic_invalid);
	tcase_add_test(gram, topic_detail_offsets);
	tcase_add_test(gram, pattern_valid);
	tcase_add_test(gram, pattern_invalid);
	tcase_add_test(gram, grammar_random_bytes);
	tcase_add_test(mat, match_table);
	tcase_add_test(mat, match_exhaustive_small);
	tcase_add_test(mat, match_random_long);
	suite_add_tcase(s, gram);
	suite_add_tcase(s, mat);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(topic_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
