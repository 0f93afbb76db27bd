/* Unit tests for session/fsm.c: the transition table, every cell. */
#include <check.h>
#include <stdlib.h>

#include "session/fsm.h"

struct edge {
	tsm__sstate from;
	tsm__sevent ev;
	tsm__sstate to;
};

/* The allowed transitions, written out independently of the table. */
static const struct edge allowed[] = {
	{SS_IDLE, SE_START, SS_PREFACE},
	{SS_IDLE, SE_RX_CLOSE, SS_CLOSED},
	{SS_IDLE, SE_CLOSE, SS_CLOSED},
	{SS_IDLE, SE_ERROR, SS_CLOSED},
	{SS_PREFACE, SE_RX_PREFACE, SS_HANDSHAKING},
	{SS_PREFACE, SE_RX_REJECT, SS_CLOSED},
	{SS_PREFACE, SE_RX_CLOSE, SS_CLOSED},
	{SS_PREFACE, SE_CLOSE, SS_CLOSED},
	{SS_PREFACE, SE_TIMEOUT, SS_CLOSED},
	{SS_PREFACE, SE_ERROR, SS_CLOSED},
	{SS_HANDSHAKING, SE_RX_HS, SS_HANDSHAKING},
	{SS_HANDSHAKING, SE_HS_DONE, SS_VERIFYING},
	{SS_HANDSHAKING, SE_RX_ACCEPT, SS_HANDSHAKING},
	{SS_HANDSHAKING, SE_RX_REJECT, SS_CLOSED},
	{SS_HANDSHAKING, SE_RX_CLOSE, SS_CLOSED},
	{SS_HANDSHAKING, SE_CLOSE, SS_CLOSED},
	{SS_HANDSHAKING, SE_TIMEOUT, SS_CLOSED},
	{SS_HANDSHAKING, SE_ERROR, SS_CLOSED},
	{SS_VERIFYING, SE_RX_ACCEPT, SS_VERIFYING},
	{SS_VERIFYING, SE_VERIFY_OK, SS_ESTABLISHED},
	{SS_VERIFYING, SE_RX_REJECT, SS_CLOSED},
	{SS_VERIFYING, SE_RX_CLOSE, SS_CLOSED},
	{SS_VERIFYING, SE_CLOSE, SS_CLOSED},
	{SS_VERIFYING, SE_TIMEOUT, SS_CLOSED},
	{SS_VERIFYING, SE_ERROR, SS_CLOSED},
	{SS_ESTABLISHED, SE_RX_DATA, SS_ESTABLISHED},
	{SS_ESTABLISHED, SE_RX_CTRL, SS_ESTABLISHED},
	{SS_ESTABLISHED, SE_RX_REKEY, SS_REKEYING},
	{SS_ESTABLISHED, SE_RX_CLOSE, SS_DRAINING},
	{SS_ESTABLISHED, SE_CLOSE, SS_DRAINING},
	{SS_ESTABLISHED, SE_TIMEOUT, SS_CLOSED},
	{SS_ESTABLISHED, SE_ERROR, SS_CLOSED},
	{SS_REKEYING, SE_RX_DATA, SS_REKEYING},
	{SS_REKEYING, SE_RX_CTRL, SS_REKEYING},
	{SS_REKEYING, SE_REKEY_DONE, SS_ESTABLISHED},
	{SS_REKEYING, SE_RX_CLOSE, SS_DRAINING},
	{SS_REKEYING, SE_CLOSE, SS_DRAINING},
	{SS_REKEYING, SE_TIMEOUT, SS_CLOSED},
	{SS_REKEYING, SE_ERROR, SS_CLOSED},
	{SS_DRAINING, SE_RX_DATA, SS_DRAINING},
	{SS_DRAINING, SE_RX_CTRL, SS_DRAINING},
	{SS_DRAINING, SE_RX_CLOSE, SS_DRAINING},
	{SS_DRAINING, SE_CLOSE, SS_DRAINING},
	{SS_DRAINING, SE_DRAINED, SS_CLOSED},
	{SS_DRAINING, SE_TIMEOUT, SS_CLOSED},
	{SS_DRAINING, SE_ERROR, SS_CLOSED},
	{SS_CLOSED, SE_CLOSE, SS_CLOSED},
};

static const struct edge *find(tsm__sstate st, tsm__sevent ev)
{
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (allowed[i].from == st && allowed[i].ev == ev)
			return &allowed[i];
	return NULL;
}

START_TEST(every_cell)
{
	int legal = 0, illegal = 0;
	for (int st = 0; st < SS__COUNT; st++) {
		for (int ev = 0; ev < SE__COUNT; ev++) {
			tsm__sstate next = SS__COUNT;
			tsm_err e = tsm__fsm_next(st, ev, &next);
			const struct edge *a = find(st, ev);
			if (a) {
				ck_assert_msg(e == TSM_OK, "%s/%s refused", tsm__sstate_name(st),
				              tsm__sevent_name(ev));
				ck_assert_int_eq(next, a->to);
				legal++;
			} else {
				ck_assert_msg(e == TSM_ERR_OUT_OF_STATE, "%s/%s allowed",
				              tsm__sstate_name(st), tsm__sevent_name(ev));
				ck_assert_int_eq(next, SS__COUNT); /* untouched */
				illegal++;
			}
		}
	}
	ck_assert_int_eq(legal, (int)(sizeof(allowed) / sizeof(allowed[0])));
	ck_assert_int_gt(illegal, 0);
}
END_TEST

START_TEST(no_data_before_established)
{
	tsm__sstate n;
	const tsm__sstate pre[] = {SS_IDLE, SS_PREFACE, SS_HANDSHAKING, SS_VERIFYING};
	for (size_t i = 0; i < 4; i++) {
		ck_assert_int_eq(tsm__fsm_next(pre[i], SE_RX_DATA, &n), TSM_ERR_OUT_OF_STATE);
		ck_assert_int_eq(tsm__fsm_next(pre[i], SE_RX_CTRL, &n), TSM_ERR_OUT_OF_STATE);
	}
}
END_TEST

START_TEST(out_of_range)
{
	tsm__sstate n;
	ck_assert_int_eq(tsm__fsm_next(SS__COUNT, SE_START, &n), TSM_ERR_OUT_OF_STATE);
	ck_assert_int_eq(tsm__fsm_next(SS_IDLE, SE__COUNT, &n), TSM_ERR_OUT_OF_STATE);
	ck_assert_str_eq(tsm__sstate_name(SS__COUNT), "?");
}
END_TEST

START_TEST(waiting_states_have_timeouts)
{
	/* Every state that waits on the peer must accept SE_TIMEOUT. */
	tsm__sstate n;
	for (int st = 0; st < SS__COUNT; st++)
		if (tsm__fsm_waits(st))
			ck_assert_int_eq(tsm__fsm_next(st, SE_TIMEOUT, &n), TSM_OK);
	ck_assert(!tsm__fsm_waits(SS_IDLE));
	ck_assert(!tsm__fsm_waits(SS_CLOSED));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fsm");
	TCase *tc = tcase_create("table");
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, every_cell);
	tcase_add_test(tc, no_data_before_established);
	tcase_add_test(tc, out_of_range);
	tcase_add_test(tc, waiting_states_have_timeouts);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
