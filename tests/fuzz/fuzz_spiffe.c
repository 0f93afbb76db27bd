/*
 * tests/fuzz/fuzz_spiffe.c - the SPIFFE ID grammar, identity patterns and
 * the identity matcher (security/spiffe.h) against the reference of
 * ref_names.h.
 *
 * The input is split at its first '\n' into a pattern and an ID (one line:
 * the same bytes serve as both). The library and the reference must agree
 * on tsm__spiffe_check, tsm__id_pattern_check and tsm__id_match (which
 * takes C strings, so both see the bytes up to the first NUL). Also: the
 * trust domain tsm__spiffe_td extracts is the reference's, a too small
 * buffer is BAD_PARAMS and leaves it alone, every valid ID is a pattern
 * that matches itself, "*" matches every valid ID, and a pattern never
 * matches an ID of another trust domain.
 */
#include "fuzz_util.h"
#include "ref_names.h"

#include "security/spiffe.h"
#include "tsm/tsm.h"

static const char *show(size_t n)
{
	return n > 200 ? "... (long)" : "";
}

static bool check_grammar(const char *s, size_t n, bool pattern)
{
	tsm_err e = pattern ? tsm__id_pattern_check(s, n) : tsm__spiffe_check(s, n);
	bool ref = pattern ? ref_id_pattern_valid(s, n) : ref_spiffe_valid(s, n);
	FUZZ_CHECK((e == TSM_OK) == ref, "%s '%.*s%s' (%zu bytes): library %s, "
	           "reference %s", pattern ? "pattern" : "ID",
	           (int)(n > 200 ? 200 : n), s, show(n), n,
	           e == TSM_OK ? "accepts" : "refuses", ref ? "accepts" : "refuses");
	if (e != TSM_OK) {
		FUZZ_CHECK(e == TSM_ERR_SPIFFE_MALFORMED, "refused with %s",
		           tsm_err_name(e));
		FUZZ_CHECK(tsm_err_detail()[0] != '\0', "refusal without a detail");
	}
	return e == TSM_OK;
}

/* tsm__spiffe_td on a C string id of n bytes. */
static void check_td(const char *id, size_t n, bool valid)
{
	char td[TSM_SPIFFE_TD_MAX + 1], small[4] = "xyz";
	tsm_err e = tsm__spiffe_td(id, td, sizeof(td));
	if (!valid) {
		FUZZ_CHECK(e == TSM_ERR_SPIFFE_MALFORMED, "td of an invalid ID: %s",
		           tsm_err_name(e));
		return;
	}
	FUZZ_CHECK(e == TSM_OK, "td of a valid ID: %s", tsm_err_name(e));
	const char *start = id + 9, *slash = memchr(start, '/', n - 9);
	FUZZ_CHECK(slash && strlen(td) == (size_t)(slash - start) &&
	                   memcmp(td, start, strlen(td)) == 0,
	           "td '%s' is not the ID's trust domain", td);
	if (strlen(td) >= sizeof(small)) {
		e = tsm__spiffe_td(id, small, sizeof(small));
		FUZZ_CHECK(e == TSM_ERR_BAD_PARAMS && strcmp(small, "xyz") == 0,
		           "small td buffer: %s, buffer '%s'", tsm_err_name(e), small);
	}
}

static void check_match(const char *pat, const char *id)
{
	size_t pn = strlen(pat), in = strlen(id);
	bool lib = tsm__id_match(pat, id);
	bool ref = ref_id_pattern_valid(pat, pn) && ref_id_match(pat, pn, id, in);
	FUZZ_CHECK(lib == ref, "pattern '%.*s%s' ID '%.*s%s': library %d, "
	           "reference %d", (int)(pn > 200 ? 200 : pn), pat, show(pn),
	           (int)(in > 200 ? 200 : in), id, show(in), lib, ref);
	if (!ref_spiffe_valid(id, in))
		return;
	FUZZ_CHECK(tsm__id_match(id, id), "valid ID does not match itself");
	FUZZ_CHECK(tsm__id_match("*", id), "'*' does not match a valid ID");
	if (lib && !(pn == 1 && pat[0] == '*')) /* same trust domain */
		FUZZ_CHECK(strncmp(pat, id, strcspn(id + 9, "/") + 10) == 0,
		           "pattern matched an ID of another trust domain");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p, *i;
	size_t pn, in;
	fz_split(data, size, &p, &pn, &i, &in);
	check_grammar(p, pn, true);
	bool id_ok = check_grammar(i, in, false);
	if (id_ok)
		FUZZ_CHECK(tsm__id_pattern_check(i, in) == TSM_OK,
		           "valid ID is not a valid pattern");
	char *pc = fz_cstr(p, pn), *ic = fz_cstr(i, in);
	size_t icn = strlen(ic);
	check_td(ic, icn, ref_spiffe_valid(ic, icn));
	check_match(pc, ic);
	free(pc);
	free(ic);
	return 0;
}
