/*
 * test_auto_efa.c - auto:// reaching EFA (issue 6 item 5, docs/transports.md
 * "auto"). An auto URL names HOST:PORT, and an EFA endpoint has no IP
 * address, so a listener with an EFA device tells its dialers its EFA
 * name in a CTRL TIERS frame; the dialer dials again over EFA and the new
 * session replaces the first one.
 *
 * There is no EFA device here. TSM_AUTO_EFA_PROVIDER runs auto's efa tier
 * over udp;ofi_rxd instead: the names, the offer, the move and the
 * make-before-break are the code that runs on EFA hardware; only the
 * provider underneath differs. ofi_ep.c's "no efa device" error is
 * checked by test_ofi and the conformance suite.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "transport/ofi/ofi.h"
#include "tsm/tsm.h"
#include "unit_support.h"

#define N_MSGS 2000

extern const tsm__io_cbs tsm__loop_cbs; /* core/loop.c; none fire here */

static tsm_ctx *open_ctx(const char *listen, const char *connect)
{
	tsm_ctx_params p;
	us_params(&p, listen, connect);
	return us_open("auto", &p);
}

/* A listener on a free port (other suites run beside this one and take
 * ports from the same range): the next port while it is in use. */
static tsm_ctx *open_listener(char *url, size_t cap)
{
	static int seq;
	tsm_ctx_params p;
	tsm_ctx *c = NULL;
	tsm_err e = TSM_ERR_ADDR_IN_USE;
	for (int i = 0; i < 16 && e == TSM_ERR_ADDR_IN_USE; i++) {
		snprintf(url, cap, "auto://127.0.0.1:%d",
		         20000 + (int)(getpid() % 1000) * 8 + seq++ % 8);
		us_params(&p, url, NULL);
		e = tsm_ctx_open(&c, &p);
	}
	ck_assert_msg(e == TSM_OK, "listen: %s %s", tsm_err_name(e), tsm_err_detail());
	return c;
}

/* A publishes 0..N_MSGS-1 over about a second while B's session may
 * move; B must get each once, in order. Returns B (A closed, its count
 * of replaced sessions in *a_dup: whichever side sees the new session
 * up first retires the old one). */
static tsm_ctx *run_pair(uint64_t *a_dup)
{
	char url[64];
	tsm_ctx *a = open_listener(url, sizeof(url)), *b = open_ctx(NULL, url);
	tsm_sub *s;
	tsm_pub *p;
	ck_assert_int_eq(tsm_sub_open(&s, b, "efa/t", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&p, a, "efa/t", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(p, 1, 10 * TSM_SEC), TSM_OK);
	for (uint32_t i = 0; i < N_MSGS; i++) {
		ck_assert_int_eq(tsm_publish(p, &i, sizeof(i), NULL), TSM_OK);
		if (i % 4 == 0)
			usleep(2000);
	}
	us_recv_seq(s, N_MSGS, "across the move");
	tsm_msg *extra = NULL;
	ck_assert_int_eq(tsm_sub_recv(s, &extra, 300 * TSM_MSEC), TSM_ETIMEDOUT);
	*a_dup = us_stat(a, "session.duplicate");
	tsm_ctx_close(a);
	return b;
}

START_TEST(moves_to_efa)
{
	uint64_t a_dup;
	setenv("TSM_AUTO_EFA_PROVIDER", "udp;ofi_rxd", 1);
	tsm_ctx *b = run_pair(&a_dup);
	/* first over TCP (same process: no shm), then over "efa"; the
	 * first session was replaced, not lost */
	ck_assert_uint_eq(us_stat(b, "transport.chosen_tcp"), 1);
	ck_assert_uint_eq(us_stat(b, "transport.chosen_efa"), 1);
	ck_assert_uint_eq(us_stat(b, "transport.chosen"), 2); /* the latest: efa */
	ck_assert_uint_ge(a_dup + us_stat(b, "session.duplicate"), 1);
	ck_assert_uint_eq(us_stat(b, "session.timeout"), 0);
	tsm_ctx_close(b);
	unsetenv("TSM_AUTO_EFA_PROVIDER");
}
END_TEST

START_TEST(stays_without_efa)
{
	uint64_t a_dup;
	unsetenv("TSM_AUTO_EFA_PROVIDER"); /* the real efa provider: no device */
	tsm_ctx *b = run_pair(&a_dup);
	ck_assert_uint_eq(us_stat(b, "transport.chosen_efa"), 0);
	ck_assert_uint_eq(us_stat(b, "transport.chosen_tcp"), 1);
	ck_assert_uint_ge(us_stat(b, "transport.fallback_efa"), 1);
	ck_assert_uint_eq(a_dup + us_stat(b, "session.duplicate"), 0);
	tsm_ctx_close(b);
}
END_TEST

/* The offer is a peer's text: it is checked before it is used. */
START_TEST(learn_checks_the_offer)
{
	setenv("TSM_AUTO_EFA_PROVIDER", "udp;ofi_rxd", 1);
	tsm_ctx *c = calloc(1, sizeof(*c));
	ck_assert_ptr_nonnull(c);
	c->p.log_level = TSM_LOG_ERROR;
	ck_assert_int_eq(tsm__ofi_auto_open(c, &tsm__loop_cbs), TSM_OK);
	static const char *bad[] = {
		"efa", "efa=", "verbs=127.0.0.1:1", "efa=zz", "efa=127.0.0.1:1 x",
		"efa=127.0.0.1:99999",
		"efa=000000000000000000000000000000000000000000000000000000000000"
		"000000000000000000000000000000000000000000000000000000000000000000"
		"00000000000000000000",
	};
	bool move = true;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tsm_err e = tsm__ofi_auto_learn(c->io, -1, "127.0.0.1:7000",
		                                (const uint8_t *)bad[i], strlen(bad[i]),
		                                &move);
		ck_assert_msg(e == TSM_ERR_BAD_FIELD, "'%s' gave %s", bad[i],
		              tsm_err_name(e));
		ck_assert(!move);
	}
	const char *ok = "efa=127.0.0.1:7001";
	ck_assert_int_eq(tsm__ofi_auto_learn(c->io, -1, "127.0.0.1:7000",
	                                     (const uint8_t *)ok, strlen(ok), &move),
	                 TSM_OK);
	ck_assert(!move); /* handle -1: no session on a lower tier to move */
	char ad[64];
	ck_assert(!tsm__ofi_auto_advert(c->io, ad, sizeof(ad))); /* no listener */
	c->io_ops->fini(c->io);
	free(c);
	unsetenv("TSM_AUTO_EFA_PROVIDER");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("auto_efa");
	TCase *tc = tcase_create("auto_efa");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, moves_to_efa);
	tcase_add_test(tc, stays_without_efa);
	tcase_add_test(tc, learn_checks_the_offer);
	suite_add_tcase(s, tc);
	return us_run(s);
}
