/* Unit tests for core/params.c: fields set by name, and refusals. */
#include <check.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

START_TEST(ctx_params_by_name)
{
	tsm_ctx_params p;
	ck_assert_uint_eq(tsm_ctx_params_size(), sizeof(p));
	tsm_ctx_params_init(&p);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "name", "n1"), TSM_OK);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "listen", "tcp://127.0.0.1:1"), TSM_OK);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "listen", "inproc://x"), TSM_OK);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "connect", "tcp://127.0.0.1:2"), TSM_OK);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "insecure", "1"), TSM_OK);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "progress", "busy_poll"), TSM_OK);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "log_level", "debug"), TSM_OK);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "fragment_size", "4096"), TSM_OK);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "linger_ms", "250"), TSM_OK);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "cert_file", "/c.pem"), TSM_OK);
	ck_assert_str_eq(p.name, "n1");
	ck_assert_str_eq(p.listen[1], "inproc://x");
	ck_assert_ptr_null(p.listen[2]);
	ck_assert_str_eq(p.connect[0], "tcp://127.0.0.1:2");
	ck_assert_int_eq(p.insecure, 1);
	ck_assert_int_eq(p.progress, TSM_PROGRESS_BUSY_POLL);
	ck_assert_int_eq(p.log_level, TSM_LOG_DEBUG);
	ck_assert_uint_eq(p.fragment_size, 4096);
	ck_assert_int_eq(p.linger, 250 * TSM_MSEC);
	ck_assert_str_eq(p.cert_file, "/c.pem");
}
END_TEST

START_TEST(ctx_params_refused)
{
	tsm_ctx_params p;
	tsm_ctx_params_init(&p);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "nope", "1"), TSM_ERR_BAD_PARAMS);
	ck_assert_ptr_nonnull(strstr(tsm_err_detail(), "nope"));
	ck_assert_int_eq(tsm_ctx_params_set(&p, "insecure", "yes"), TSM_ERR_BAD_PARAMS);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "fragment_size", "-1"), TSM_ERR_BAD_PARAMS);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "fragment_size", "12x"), TSM_ERR_BAD_PARAMS);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "fragment_size", ""), TSM_ERR_BAD_PARAMS);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "fragment_size", "99999999999"),
	                 TSM_ERR_BAD_PARAMS);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "progress", "fast"), TSM_ERR_BAD_PARAMS);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "lane_dscp", "1,2,3"), TSM_ERR_BAD_PARAMS);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "lane_dscp", "1,2,3,4,5,6,7,64"),
	                 TSM_ERR_BAD_PARAMS);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "lane_dscp", "1,2,3,4,5,6,7,8,9"),
	                 TSM_ERR_BAD_PARAMS);
	ck_assert_int_eq(p.lane_dscp[0], -1); /* refused sets change nothing */
	ck_assert_int_eq(tsm_ctx_params_set(&p, "lane_dscp", "46,-1,3,4,5,6,7,8"), TSM_OK);
	ck_assert_int_eq(p.lane_dscp[0], 46);
	ck_assert_int_eq(p.lane_dscp[1], -1);
	ck_assert_int_eq(tsm_ctx_params_set(NULL, "name", "x"), TSM_EINVAL);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "name", NULL), TSM_EINVAL);
	for (int i = 0; i < TSM_MAX_URLS - 1; i++)
		ck_assert_int_eq(tsm_ctx_params_set(&p, "connect", "inproc://a"), TSM_OK);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "connect", "inproc://a"),
	                 TSM_ERR_BAD_PARAMS); /* the list stays NULL-terminated */
	ck_assert_ptr_null(p.connect[TSM_MAX_URLS - 1]);
}
END_TEST

START_TEST(older_smaller_structs_still_work)
{
	/* A caller built against an older header passes a smaller struct:
	 * the fields it knows are used, the others take their defaults. */
	tsm_ctx_params p;
	tsm_ctx *c;
	tsm_ctx_params_init(&p);
	p.insecure = 1;
	p.log_level = TSM_LOG_ERROR;
	p.size = (uint32_t)offsetof(tsm_ctx_params, publish_queue_bytes);
	ck_assert_int_eq(tsm_ctx_open(&c, &p), TSM_OK);
	tsm_qos q;
	tsm_qos_init(&q);
	q.size = (uint32_t)offsetof(tsm_qos, timestamps);
	q.priority = 2;
	tsm_pub *pb;
	ck_assert_int_eq(tsm_pub_open(&pb, c, "old", &q), TSM_OK);
	tsm_ctx_close(c);
	/* a newer (bigger) or nonsensical size is refused */
	p.size = (uint32_t)sizeof(p) + 8;
	ck_assert_int_eq(tsm_ctx_open(&c, &p), TSM_ERR_BAD_PARAMS);
	p.size = 0;
	ck_assert_int_eq(tsm_ctx_open(&c, &p), TSM_ERR_BAD_PARAMS);
	ck_assert_int_eq(tsm_ctx_open(&c, NULL), TSM_EINVAL);
}
END_TEST

START_TEST(qos_by_name)
{
	tsm_qos q;
	ck_assert_uint_eq(tsm_qos_size(), sizeof(q));
	tsm_qos_init(&q);
	ck_assert_int_eq(tsm_qos_set(&q, "priority", "2"), TSM_OK);
	ck_assert_int_eq(tsm_qos_set(&q, "deadline_budget_us", "1500"), TSM_OK);
	ck_assert_int_eq(tsm_qos_set(&q, "reliability", "best_effort"), TSM_OK);
	ck_assert_int_eq(tsm_qos_set(&q, "backpressure", "latest_only"), TSM_OK);
	ck_assert_int_eq(tsm_qos_set(&q, "queue_depth", "7"), TSM_OK);
	ck_assert_uint_eq(q.priority, 2);
	ck_assert_int_eq(q.deadline_budget, 1500 * TSM_USEC);
	ck_assert_int_eq(q.reliability, TSM_BEST_EFFORT);
	ck_assert_int_eq(q.backpressure, TSM_BP_LATEST_ONLY);
	ck_assert_uint_eq(q.queue_depth, 7);
	ck_assert_int_eq(tsm_qos_set(&q, "priority", "8"), TSM_ERR_BAD_PRIORITY);
	ck_assert_int_eq(tsm_qos_set(&q, "backpressure", "drop"), TSM_ERR_BAD_PARAMS);
	ck_assert_int_eq(tsm_qos_set(&q, "colour", "red"), TSM_ERR_BAD_PARAMS);
	ck_assert_uint_eq(q.priority, 2); /* a refused set changes nothing */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("params");
	TCase *tc = tcase_create("params");
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, ctx_params_by_name);
	tcase_add_test(tc, ctx_params_refused);
	tcase_add_test(tc, qos_by_name);
	tcase_add_test(tc, older_smaller_structs_still_work);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
