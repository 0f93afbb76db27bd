/*
 * Busy-poll progress (docs/design/progress.md): in TSM_PROGRESS_BUSY_POLL
 * an application thread inside tsm_publish or tsm_sub_recv runs the
 * context's loop itself while the progress thread naps. Over every
 * transport that takes a URL here (io_uring TCP, epoll TCP, ofi+tcp,
 * ofi+shm), with real contexts:
 *
 *  - echo: round trips, small and large (fragmented), in order and
 *    intact; progress.inline > 0 shows the application threads ran the
 *    loop (and = 0 in blocking mode: echo_blocking);
 *  - publisher_goes_away: a busy publisher sends 4 MiB and stops calling
 *    libtsm: the progress thread takes over and the message arrives;
 *  - close_while_spinning: one thread spins in tsm_sub_recv while another
 *    closes the subscriber and the context: ECLOSED, no use after free
 *    (this suite runs under ASan in tests/sanitize/run.sh).
 */
#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tsm/tsm.h"
#include "unit_support.h"

struct tp {
	const char *name, *fmt;
	bool epoll;
};

static const struct tp tps[] = {
	{"tcp-io_uring", "tcp://127.0.0.1:%d", false},
	{"tcp-epoll", "tcp://127.0.0.1:%d", true},
	{"ofi-tcp", "ofi+tcp://127.0.0.1:%d", false},
	{"ofi-shm", "ofi+shm://tsmbusy%d", false},
};
static const struct tp *cur;
static int seq;

static void url_of(char *buf, size_t cap)
{
	int n = 20000 + (getpid() % 700) * 16 + (seq++ % 16);
	if (strncmp(cur->fmt, "ofi+shm://", 10) == 0)
		n = (int)(getpid() % 100000) * 16 + (seq % 16);
	snprintf(buf, cap, cur->fmt, n);
}

static tsm_ctx *open_ctx(const char *listen, const char *connect, bool busy)
{
	tsm_ctx_params p;
	us_params(&p, listen, connect);
	p.progress = busy ? TSM_PROGRESS_BUSY_POLL : TSM_PROGRESS_BLOCKING;
	return us_open(cur->name, &p);
}

static void setup_tp(int i)
{
	cur = &tps[i];
	if (cur->epoll)
		setenv("TSM_NO_URING", "1", 1);
	else
		unsetenv("TSM_NO_URING");
}

/* --- echo ---------------------------------------------------------------- */

#define ROUNDS 400
#define BIG (2u << 20)

static size_t size_of(uint32_t k)
{
	return k % 100 == 99 ? BIG : 64; /* every hundredth: fragmented */
}

struct echo {
	tsm_ctx *ctx;
	tsm_sub *in;
	tsm_pub *out;
};

static void *echo_main(void *arg)
{
	struct echo *e = arg;
	for (uint32_t k = 0; k < ROUNDS; k++) {
		tsm_msg *m;
		if (tsm_sub_recv(e->in, &m, 10 * TSM_SEC) != TSM_OK)
			return (void *)1;
		tsm_err r = tsm_publish(e->out, tsm_msg_data(m), tsm_msg_size(m), NULL);
		tsm_msg_free(m);
		if (r != TSM_OK)
			return (void *)2;
	}
	return NULL;
}

static void run_echo(bool busy)
{
	char url[128];
	url_of(url, sizeof(url));
	struct echo b = {.ctx = open_ctx(url, NULL, busy)};
	tsm_ctx *a = open_ctx(NULL, url, busy);
	tsm_sub *back;
	tsm_pub *there;
	ck_assert_int_eq(tsm_sub_open(&b.in, b.ctx, "there", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&b.out, b.ctx, "back", NULL), TSM_OK);
	ck_assert_int_eq(tsm_sub_open(&back, a, "back", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&there, a, "there", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(there, 1, 10 * TSM_SEC), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(b.out, 1, 10 * TSM_SEC), TSM_OK);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, echo_main, &b), 0);
	uint8_t *buf = malloc(BIG);
	ck_assert_ptr_nonnull(buf);
	for (uint32_t k = 0; k < ROUNDS; k++) {
		us_fill(buf, size_of(k), k);
		ck_assert_int_eq(tsm_publish(there, buf, size_of(k), NULL), TSM_OK);
		tsm_msg *m;
		tsm_err e = tsm_sub_recv(back, &m, 10 * TSM_SEC);
		ck_assert_msg(e == TSM_OK, "%s: round %u: %s %s", cur->name, k,
		              tsm_err_name(e), tsm_err_detail());
		us_expect_fill(m, size_of(k), k, cur->name);
		tsm_msg_free(m);
	}
	void *rc;
	pthread_join(th, &rc);
	ck_assert_ptr_null(rc);
	uint64_t ia = us_stat(a, "progress.inline"), ib = us_stat(b.ctx, "progress.inline");
	if (busy) {
		ck_assert_msg(ia > 0 && ib > 0, "%s: inline runs %llu / %llu", cur->name,
		              (unsigned long long)ia, (unsigned long long)ib);
	} else {
		ck_assert_uint_eq(ia, 0);
		ck_assert_uint_eq(ib, 0);
	}
	free(buf);
	tsm_ctx_close(a);
	tsm_ctx_close(b.ctx);
}

START_TEST(echo_busy)
{
	setup_tp(_i);
	run_echo(true);
}
END_TEST

START_TEST(echo_blocking)
{
	setup_tp(_i);
	run_echo(false);
}
END_TEST

/* --- the progress thread takes over -------------------------------------- */

START_TEST(publisher_goes_away)
{
	setup_tp(_i);
	char url[128];
	url_of(url, sizeof(url));
	tsm_ctx *b = open_ctx(url, NULL, false);
	tsm_ctx *a = open_ctx(NULL, url, true);
	tsm_sub *s;
	tsm_pub *p;
	ck_assert_int_eq(tsm_sub_open(&s, b, "away", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&p, a, "away", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(p, 1, 10 * TSM_SEC), TSM_OK);
	size_t n = 4u << 20; /* far more than one loop run sends */
	uint8_t *buf = malloc(n);
	ck_assert_ptr_nonnull(buf);
	us_fill(buf, n, 7);
	ck_assert_int_eq(tsm_publish(p, buf, n, NULL), TSM_OK);
	/* a's application thread is gone from libtsm from here on */
	tsm_msg *m;
	tsm_err e = tsm_sub_recv(s, &m, 10 * TSM_SEC);
	ck_assert_msg(e == TSM_OK, "%s: %s %s", cur->name, tsm_err_name(e),
	              tsm_err_detail());
	us_expect_fill(m, n, 7, cur->name);
	tsm_msg_free(m);
	free(buf);
	tsm_ctx_close(a);
	tsm_ctx_close(b);
}
END_TEST

/* --- close while another thread spins ------------------------------------ */

static void *spin_main(void *arg)
{
	tsm_msg *m = NULL;
	tsm_err e = tsm_sub_recv(arg, &m, 20 * TSM_SEC);
	return (void *)(intptr_t)e;
}

START_TEST(close_while_spinning)
{
	setup_tp(_i);
	char url[128];
	url_of(url, sizeof(url));
	tsm_ctx *b = open_ctx(url, NULL, true);
	tsm_ctx *a = open_ctx(NULL, url, true);
	tsm_sub *s;
	ck_assert_int_eq(tsm_sub_open(&s, b, "quiet", NULL), TSM_OK);
	ck_assert_int_eq(tsm_ctx_wait_peers(b, 1, 10 * TSM_SEC), TSM_OK);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, spin_main, s), 0);
	usleep(100 * 1000); /* it spins and runs b's loop */
	tsm_sub_close(s);
	tsm_ctx_close(b);
	void *rc;
	pthread_join(th, &rc);
	ck_assert_int_eq((tsm_err)(intptr_t)rc, TSM_ECLOSED);
	tsm_ctx_close(a);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("busy");
	TCase *tc = tcase_create("busy");
	tcase_set_timeout(tc, 60);
	int n = (int)(sizeof(tps) / sizeof(tps[0]));
	tcase_add_loop_test(tc, echo_busy, 0, n);
	tcase_add_loop_test(tc, echo_blocking, 0, n);
	tcase_add_loop_test(tc, publisher_goes_away, 0, n);
	tcase_add_loop_test(tc, close_while_spinning, 0, n);
	suite_add_tcase(su, tc);
	return us_run(su);
}
