/*
 * Unit tests of what keeps an urgent message from queueing behind bulk
 * below the lanes (docs/design/qos.md "Below the lanes"): the kernel
 * send-queue budget (send_backlog_us, session/tx.c) and the lane shares
 * of the publish-ring and session byte budgets (tsm__lane_limit).
 *
 * No timing assertion: a subscriber that takes nothing stalls the
 * session (its queue is full, so the session stops reading), TCP's
 * window closes, and the publisher's socket fills up to whatever bounds
 * it. The tests look at that bound from outside, by reading the
 * publisher socket's unsent bytes (SIOCOUTQNSD) themselves.
 */
#include <check.h>
#include <pthread.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/internal.h"
#include "session/session.h"

#define KQ_MIN_BUDGET (8u * 1024u)  /* tx.c's smallest budget */
/* what a send may add past the budget: the one fragment sent after the
 * socket said writable (2 KiB and its headers), control frames */
#define SLACK (8u * 1024u)

static uint64_t stat(tsm_ctx *c, const char *n)
{
	uint64_t v = 0;
	ck_assert_int_eq(tsm_stats_get(c, n, &v), TSM_OK);
	return v;
}

struct stall {
	tsm_ctx *a, *b;
	tsm_pub *bulk, *urgent;
	tsm_sub *sub;
	size_t size;   /* of a bulk message */
	int n;         /* bulk messages to publish */
	pthread_t th;
};

/* A publishes to B over TCP on loopback; B's subscriber holds one
 * message and waits for as long as it takes (block, 60 s), so once it
 * is full B's session stops reading. backlog: A's send_backlog_us. Bulk
 * blocks when its ring is full (60 s); urgent never waits (a full ring
 * would refuse it at once). */
static void stall_open(struct stall *st, const char *backlog,
                       uint64_t queue_bytes)
{
	char url[128];
	tsm_ctx_params p;
	tsm_ctx_params_init(&p);
	p.insecure = 1;
	p.log_level = TSM_LOG_ERROR;
	p.publish_queue_bytes = queue_bytes;
	p.session_queue_bytes = queue_bytes;
	if (backlog)
		ck_assert_int_eq(tsm_ctx_params_set(&p, "send_backlog_us", backlog),
		                 TSM_OK);
	ck_assert_int_eq(tsm_ctx_open(&st->a, &p), TSM_OK);
	ck_assert_int_eq(tsm_ctx_listen(st->a, "tcp://127.0.0.1:0", url, sizeof(url)),
	                 TSM_OK);
	tsm_ctx_params_init(&p);
	p.insecure = 1;
	p.log_level = TSM_LOG_ERROR;
	ck_assert_int_eq(tsm_ctx_open(&st->b, &p), TSM_OK);
	tsm_qos q;
	tsm_qos_init(&q);
	q.queue_depth = 1;
	q.block_timeout = 60 * TSM_SEC;
	ck_assert_int_eq(tsm_sub_open(&st->sub, st->b, "p/**", &q), TSM_OK);
	ck_assert_int_eq(tsm_ctx_dial(st->b, url), TSM_OK);
	tsm_qos_init(&q);
	q.block_timeout = 60 * TSM_SEC;
	ck_assert_int_eq(tsm_pub_open(&st->bulk, st->a, "p/bulk", &q), TSM_OK);
	tsm_qos_init(&q);
	q.backpressure = TSM_BP_DROP_NEWEST;
	ck_assert_int_eq(tsm_pub_open(&st->urgent, st->a, "p/urgent", &q), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(st->bulk, 1, 10 * TSM_SEC), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(st->urgent, 1, 10 * TSM_SEC),
	                 TSM_OK);
}

static void stall_close(struct stall *st)
{
	tsm_pub_close(st->bulk);
	tsm_pub_close(st->urgent);
	tsm_sub_close(st->sub);
	tsm_ctx_close(st->b);
	tsm_ctx_close(st->a);
}

static tsm_err publish(tsm_pub *pub, const void *buf, size_t n, uint8_t prio)
{
	tsm_pub_opts o;
	tsm_pub_opts_init(&o);
	o.flags = TSM_OPT_PRIORITY;
	o.priority = prio;
	return tsm_publish(pub, buf, n, &o);
}

/* Bulk messages 0..n-1 at priority 7: an index in the first 4 bytes,
 * the rest a pattern of it. On a thread: it blocks once the rings are
 * full, until B reads. */
static void *bulk_thread(void *arg)
{
	struct stall *st = arg;
	uint8_t *buf = malloc(st->size);
	for (int i = 0; i < st->n; i++) {
		memset(buf, (uint8_t)(i * 37 + 1), st->size);
		memcpy(buf, &i, sizeof(i));
		ck_assert_int_eq(publish(st->bulk, buf, st->size, 7), TSM_OK);
	}
	free(buf);
	return NULL;
}

static void bulk_start(struct stall *st, size_t size, int n)
{
	st->size = size;
	st->n = n;
	ck_assert_int_eq(pthread_create(&st->th, NULL, bulk_thread, st), 0);
}

/* Bytes A's socket to B holds that TCP has not sent. White-box: A's one
 * session, read from this thread while A's progress thread sends. */
static int unsent(struct stall *st)
{
	int q = -1;
	ck_assert_ptr_nonnull(st->a->sessions);
	ck_assert_int_eq(ioctl(st->a->sessions->conn.fd, SIOCOUTQNSD, &q), 0);
	return q;
}

/* B takes everything: the bulk intact and in order, and (when urgent)
 * one 4-byte priority-0 message somewhere among it. */
static void drain(struct stall *st, bool urgent)
{
	int next = 0;
	bool got_urgent = false;
	while (next < st->n || (urgent && !got_urgent)) {
		tsm_msg *m;
		ck_assert_int_eq(tsm_sub_recv(st->sub, &m, 20 * TSM_SEC), TSM_OK);
		const uint8_t *d = tsm_msg_data(m);
		if (tsm_msg_size(m) == 4) {
			ck_assert(urgent && !got_urgent);
			ck_assert_uint_eq(tsm_msg_priority(m), 0);
			got_urgent = true;
		} else {
			int i;
			ck_assert_uint_eq(tsm_msg_size(m), st->size);
			memcpy(&i, d, sizeof(i));
			ck_assert_int_eq(i, next);
			for (size_t k = sizeof(i); k < st->size; k += 4093)
				ck_assert_uint_eq(d[k], (uint8_t)(i * 37 + 1));
			next++;
		}
		tsm_msg_free(m);
	}
	ck_assert_int_eq(pthread_join(st->th, NULL), 0);
	ck_assert_uint_eq(stat(st->a, "drop.queue_full"), 0);
	ck_assert_uint_eq(stat(st->b, "drop.queue_full"), 0);
}

/*
 * With the budget on (1 µs: the smallest budget, 16 KiB, at any rate
 * this machine reaches), the socket never holds more unsent bytes than
 * the budget: the rest waits in the lanes, and the session says so.
 */
static void budget_bounds_unsent(const char *engine)
{
	struct stall st;
	stall_open(&st, "1", 0);
	ck_assert_str_eq(tsm_ctx_transport(st.a), engine);
	bulk_start(&st, 1u << 20, 24);
	/* The session found the socket at its budget and waited. */
	for (int i = 0; i < 1000 && stat(st.a, "tx.backlog_waits") == 0; i++)
		usleep(10000);
	ck_assert_uint_ge(stat(st.a, "tx.backlog_waits"), 1);
	/* the budget follows the rate from the first sample on */
	ck_assert_uint_eq(stat(st.a, "tx.backlog_budget"), KQ_MIN_BUDGET);
	int most = 0;
	for (int i = 0; i < 200; i++) {
		int q = unsent(&st);
		most = q > most ? q : most;
		usleep(1000);
	}
	ck_assert_int_le(most, (int)(KQ_MIN_BUDGET + SLACK));
	drain(&st, false); /* the rest waited in A's lanes, not lost */
	stall_close(&st);
}

START_TEST(budget_bounds_unsent_bytes)
{
	budget_bounds_unsent("io_uring");
}
END_TEST

START_TEST(budget_bounds_unsent_bytes_epoll)
{
	setenv("TSM_NO_URING", "1", 1); /* CK_FORK: this case only */
	budget_bounds_unsent("epoll");
}
END_TEST

/* Off: the fixed 128 KiB TCP_NOTSENT_LOWAT of before, and no waits. */
START_TEST(off_keeps_the_fixed_lowat)
{
	struct stall st;
	stall_open(&st, "off", 0);
	bulk_start(&st, 1u << 20, 24);
	int most = 0;
	for (int i = 0; i < 1000 && most <= (int)(KQ_MIN_BUDGET + SLACK); i++) {
		int q = unsent(&st);
		most = q > most ? q : most;
		usleep(10000);
	}
	ck_assert_int_gt(most, (int)(KQ_MIN_BUDGET + SLACK));
	ck_assert_uint_eq(stat(st.a, "tx.backlog_waits"), 0);
	ck_assert_uint_eq(stat(st.a, "tx.backlog_budget"), 0);
	drain(&st, false);
	stall_close(&st);
}
END_TEST

/*
 * Bulk fills the publish rings (16 MiB) behind a session whose queue
 * (16 MiB) is full because B reads nothing, until the bulk publisher
 * blocks. An urgent message is still taken at once, and not held at the
 * session, because bulk may fill only its lane's share of either budget
 * (tsm__lane_limit); its publisher would be refused, not blocked, by a
 * full ring, and would lose its copy at a congested session. Everything
 * arrives once B reads.
 */
START_TEST(urgent_publish_not_refused_behind_bulk)
{
	struct stall st;
	stall_open(&st, NULL, 16u << 20);
	bulk_start(&st, 256u * 1024u, 200);
	for (int i = 0; i < 2000 && atomic_load(&st.a->pubq_waiters_a) == 0; i++)
		usleep(10000);
	ck_assert_uint_eq(atomic_load(&st.a->pubq_waiters_a), 1);
	uint32_t urgent = 0xfeed;
	ck_assert_int_eq(publish(st.urgent, &urgent, sizeof(urgent), 0), TSM_OK);
	drain(&st, true);
	stall_close(&st);
}
END_TEST

START_TEST(lane_limit_shares)
{
	ck_assert_uint_eq(tsm__lane_limit(64u << 20, 0), 64u << 20);
	ck_assert_uint_eq(tsm__lane_limit(64u << 20, 7), (64u << 20) - 7 * (1u << 20));
	for (unsigned p = 1; p < 8; p++)
		ck_assert_uint_lt(tsm__lane_limit(1u << 20, p),
		                  tsm__lane_limit(1u << 20, p - 1));
}
END_TEST

START_TEST(params_send_backlog)
{
	tsm_ctx_params p;
	tsm_ctx_params_init(&p);
	ck_assert_uint_eq(p.send_backlog_us, 0); /* the default (200 µs) */
	ck_assert_int_eq(tsm_ctx_params_set(&p, "send_backlog_us", "500"), TSM_OK);
	ck_assert_uint_eq(p.send_backlog_us, 500);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "send_backlog_us", "off"), TSM_OK);
	ck_assert_uint_eq(p.send_backlog_us, TSM_SEND_BACKLOG_OFF);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "send_backlog_us", "-1"),
	                 TSM_ERR_BAD_PARAMS);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "send_backlog_us", "2000000"),
	                 TSM_ERR_BAD_PARAMS);
	ck_assert_int_eq(tsm_ctx_params_set(&p, "send_backlog_us", "x"),
	                 TSM_ERR_BAD_PARAMS);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pacing");
	TCase *tc = tcase_create("pacing");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, params_send_backlog);
	tcase_add_test(tc, lane_limit_shares);
	tcase_add_test(tc, budget_bounds_unsent_bytes);
	tcase_add_test(tc, budget_bounds_unsent_bytes_epoll);
	tcase_add_test(tc, off_keeps_the_fixed_lowat);
	tcase_add_test(tc, urgent_publish_not_refused_behind_bulk);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
