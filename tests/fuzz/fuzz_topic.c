/*
 * tests/fuzz/fuzz_topic.c - topic and pattern grammar and matcher
 * (pubsub/topic.h, docs/wire.md §8.1) against the reference of
 * ref_names.h.
 *
 * The input is split at its first '\n' into a pattern and a topic (one
 * line: the same bytes serve as both). The library and the reference must
 * agree on which names are valid and, for a valid pair, on whether the
 * pattern matches the topic. Also: a refusal is BAD_TOPIC / BAD_PATTERN
 * with a detail, every valid topic is a valid pattern that matches itself,
 * and "**" matches every valid topic.
 */
#include "fuzz_util.h"
#include "ref_names.h"

#include "pubsub/topic.h"
#include "tsm/tsm.h"

static bool check_name(const char *s, size_t n, bool pattern)
{
	tsm_err e = pattern ? tsm__pattern_check(s, n) : tsm__topic_check(s, n);
	bool ref = pattern ? ref_pattern_valid(s, n) : ref_topic_valid(s, n);
	const char *what = pattern ? "pattern" : "topic";
	FUZZ_CHECK((e == TSM_OK) == ref, "%s '%.*s' (%zu bytes): library %s, "
	           "reference %s", what, (int)(n > 300 ? 300 : n), s, n,
	           e == TSM_OK ? "accepts" : "refuses",
	           ref ? "accepts" : "refuses");
	if (e != TSM_OK) {
		FUZZ_CHECK(e == (pattern ? TSM_ERR_BAD_PATTERN : TSM_ERR_BAD_TOPIC),
		           "%s refused with %s", what, tsm_err_name(e));
		FUZZ_CHECK(tsm_err_detail()[0] != '\0', "%s refusal without a "
		           "detail", what);
	}
	return e == TSM_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p, *t;
	size_t pn, tn;
	fz_split(data, size, &p, &pn, &t, &tn);
	bool pok = check_name(p, pn, true);
	bool tok = check_name(t, tn, false);
	if (tok) {
		FUZZ_CHECK(tsm__pattern_check(t, tn) == TSM_OK,
		           "valid topic '%.*s' is not a valid pattern", (int)tn, t);
		FUZZ_CHECK(tsm__topic_match(t, tn, t, tn),
		           "topic '%.*s' does not match itself", (int)tn, t);
		FUZZ_CHECK(tsm__topic_match("**", 2, t, tn),
		           "'**' does not match '%.*s'", (int)tn, t);
	}
	if (pok && tok) {
		bool lib = tsm__topic_match(p, pn, t, tn);
		bool ref = ref_topic_match(p, pn, t, tn);
		FUZZ_CHECK(lib == ref, "pattern '%.*s' topic '%.*s': library %d, "
		           "reference %d", (int)pn, p, (int)tn, t, lib, ref);
	}
	return 0;
}
