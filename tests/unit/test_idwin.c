/*
 * Unit tests for session/idwin.c: the window of delivered message ids
 * that drops copies a sender sent again after a loss (resume.c).
 * The random case checks every answer against a plain set of every id
 * ever marked (the reference), so a slide that forgets too much (a copy
 * delivered twice) or too little (a new message dropped) is caught.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "session/idwin.h"

static tsm__idwin w;

static void reset(void)
{
	memset(&w, 0, sizeof(w));
}

START_TEST(in_order_then_copies)
{
	reset();
	for (uint64_t id = 1; id <= 1000; id++) {
		ck_assert_int_eq(tsm__idwin_check(&w, id), TSM_IDWIN_NEW);
		tsm__idwin_mark(&w, id);
	}
	for (uint64_t id = 1; id <= 1000; id++)
		ck_assert_int_eq(tsm__idwin_check(&w, id), TSM_IDWIN_SEEN);
	ck_assert_int_eq(tsm__idwin_check(&w, 1001), TSM_IDWIN_NEW);
	ck_assert_int_eq(tsm__idwin_check(&w, 0), TSM_IDWIN_NEW);
	tsm__idwin_mark(&w, 0); /* no id: never marked */
	ck_assert_int_eq(tsm__idwin_check(&w, 0), TSM_IDWIN_NEW);
	ck_assert_uint_eq(w.top, 1000);
}
END_TEST

START_TEST(gaps_and_out_of_order)
{
	reset();
	/* Ids of other topics never come: gaps; EDF lanes: disorder. */
	tsm__idwin_mark(&w, 10);
	tsm__idwin_mark(&w, 30);
	tsm__idwin_mark(&w, 20);
	ck_assert_int_eq(tsm__idwin_check(&w, 20), TSM_IDWIN_SEEN);
	ck_assert_int_eq(tsm__idwin_check(&w, 25), TSM_IDWIN_NEW);
	ck_assert_int_eq(tsm__idwin_check(&w, 9), TSM_IDWIN_NEW);
	ck_assert_uint_eq(w.top, 30);
}
END_TEST

START_TEST(slide_forgets_only_the_oldest)
{
	reset();
	uint64_t base = 5;
	tsm__idwin_mark(&w, base);
	tsm__idwin_mark(&w, base + 100);
	/* base is TSM_IDWIN_IDS - 1 behind the new top: still inside */
	tsm__idwin_mark(&w, base + TSM_IDWIN_IDS - 1);
	ck_assert_int_eq(tsm__idwin_check(&w, base), TSM_IDWIN_SEEN);
	ck_assert_int_eq(tsm__idwin_check(&w, base + 100), TSM_IDWIN_SEEN);
	/* one more: base falls out, its bit now stands for the new top */
	ck_assert_int_eq(tsm__idwin_check(&w, base + TSM_IDWIN_IDS), TSM_IDWIN_NEW);
	tsm__idwin_mark(&w, base + TSM_IDWIN_IDS + 1);
	ck_assert_int_eq(tsm__idwin_check(&w, base), TSM_IDWIN_OLD);
	ck_assert_int_eq(tsm__idwin_check(&w, base + TSM_IDWIN_IDS), TSM_IDWIN_NEW);
	ck_assert_int_eq(tsm__idwin_check(&w, base + 100), TSM_IDWIN_SEEN);
	/* marking an id older than the window changes nothing */
	tsm__idwin_mark(&w, base);
	ck_assert_int_eq(tsm__idwin_check(&w, base + TSM_IDWIN_IDS), TSM_IDWIN_NEW);
}
END_TEST

START_TEST(jump_beyond_the_window_clears_all)
{
	reset();
	for (uint64_t id = 1; id <= 5000; id += 3)
		tsm__idwin_mark(&w, id);
	tsm__idwin_mark(&w, 1ull << 40);
	for (uint64_t id = (1ull << 40) - TSM_IDWIN_IDS + 1; id < (1ull << 40); id += 7)
		ck_assert_int_eq(tsm__idwin_check(&w, id), TSM_IDWIN_NEW);
	ck_assert_int_eq(tsm__idwin_check(&w, 4), TSM_IDWIN_OLD);
	ck_assert_int_eq(tsm__idwin_check(&w, 1ull << 40), TSM_IDWIN_SEEN);
}
END_TEST

/* A reference: every id ever marked, in a bitmap over the id range. */
#define REF_IDS (1u << 26) /* 8 MiB: room for the 400 000 steps */
static uint8_t *ref;

static int ref_has(uint64_t id)
{
	return (ref[id / 8] >> (id % 8)) & 1;
}

START_TEST(random_against_a_reference)
{
	reset();
	ref = calloc(REF_IDS / 8, 1);
	ck_assert_ptr_nonnull(ref);
	srandom(1000 + (unsigned)_i);
	uint64_t top = 0;
	for (int step = 0; step < 400000; step++) {
		/* mostly small steps forward (word-wise clears at every
		 * alignment), some jumps of up to two windows, some ids behind */
		long r = random() % 1000;
		uint64_t id;
		if (r < 700)
			id = top + 1 + (uint64_t)(random() % 70);
		else if (r < 701)
			id = top + 1 + (uint64_t)(random() % (2 * TSM_IDWIN_IDS));
		else
			id = top > 1 ? 1 + (uint64_t)random() % top : 1;
		if (id >= REF_IDS)
			ck_abort_msg("id %llu beyond the reference", (unsigned long long)id);
		tsm__idwin_res got = tsm__idwin_check(&w, id);
		tsm__idwin_res want = id > top                       ? TSM_IDWIN_NEW
		                      : top - id >= TSM_IDWIN_IDS     ? TSM_IDWIN_OLD
		                      : ref_has(id)                   ? TSM_IDWIN_SEEN
		                                                      : TSM_IDWIN_NEW;
		/* (if first: every ck_assert writes to the runner's pipe) */
		if (got != want)
			ck_abort_msg("id %llu top %llu: got %d want %d",
			             (unsigned long long)id, (unsigned long long)top, got,
			             want);
		if (random() % 4) { /* not every id that comes is delivered */
			tsm__idwin_mark(&w, id);
			ref[id / 8] |= (uint8_t)(1u << (id % 8));
			if (id > top)
				top = id;
		}
		if (w.top != top)
			ck_abort_msg("top %llu, want %llu", (unsigned long long)w.top,
			             (unsigned long long)top);
		/* A slide must keep the oldest ids still inside: the window's
		 * bottom edge, where a clear of one bit too many would show. */
		for (uint64_t e = top > TSM_IDWIN_IDS ? top - TSM_IDWIN_IDS + 1 : 1;
		     e <= top && e < (top > TSM_IDWIN_IDS ? top - TSM_IDWIN_IDS + 72 : 72);
		     e++)
			if (tsm__idwin_check(&w, e) !=
			    (ref_has(e) ? TSM_IDWIN_SEEN : TSM_IDWIN_NEW))
				ck_abort_msg("edge id %llu top %llu", (unsigned long long)e,
				             (unsigned long long)top);
	}
	free(ref);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("idwin");
	TCase *tc = tcase_create("idwin");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, in_order_then_copies);
	tcase_add_test(tc, gaps_and_out_of_order);
	tcase_add_test(tc, slide_forgets_only_the_oldest);
	tcase_add_test(tc, jump_beyond_the_window_clears_all);
	tcase_add_loop_test(tc, random_against_a_reference, 0, 3);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
