/* Unit tests for platform/mpmc.c: bounds, FIFO order, and concurrency. */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "platform/mpmc.h"

START_TEST(bounded_fifo)
{
	tsm__mpmc q;
	ck_assert_int_eq(tsm__mpmc_init(&q, 5), TSM_OK); /* rounds up to 8 */
	for (uintptr_t i = 1; i <= 8; i++)
		ck_assert(tsm__mpmc_push(&q, (void *)i));
	ck_assert(!tsm__mpmc_push(&q, (void *)9)); /* full: refused */
	ck_assert_uint_eq(tsm__mpmc_size(&q), 8);
	void *v;
	for (uintptr_t i = 1; i <= 8; i++) {
		ck_assert(tsm__mpmc_pop(&q, &v));
		ck_assert_uint_eq((uintptr_t)v, i);
	}
	ck_assert(!tsm__mpmc_pop(&q, &v));
	tsm__mpmc_fini(&q);
}
END_TEST

#define PER 50000
static tsm__mpmc cq;

static void *producer(void *arg)
{
	uintptr_t base = (uintptr_t)arg;
	for (uintptr_t i = 0; i < PER; i++)
		while (!tsm__mpmc_push(&cq, (void *)(base + i)))
			;
	return NULL;
}

START_TEST(concurrent_no_loss_no_dup)
{
	pthread_t t[3];
	ck_assert_int_eq(tsm__mpmc_init(&cq, 1024), TSM_OK);
	for (uintptr_t i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, producer, (void *)((i + 1) << 24));
	uintptr_t next[3] = {0, 0, 0};
	for (long n = 0; n < 3L * PER;) {
		void *v;
		if (!tsm__mpmc_pop(&cq, &v))
			continue;
		uintptr_t x = (uintptr_t)v, p = (x >> 24) - 1;
		ck_assert_uint_lt(p, 3);
		ck_assert_uint_eq(x & 0xffffff, next[p]); /* per-producer order */
		next[p]++;
		n++;
	}
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	tsm__mpmc_fini(&cq);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mpmc");
	TCase *tc = tcase_create("mpmc");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, bounded_fifo);
	tcase_add_test(tc, concurrent_no_loss_no_dup);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
