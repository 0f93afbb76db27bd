/*
 * test_forward.c - tsm_publish_msg, a pipeline stage forwarding what it
 * received (docs/reference/pubsub.md): ownership on success and failure,
 * the payload handed over without a copy where the message has a block
 * of its own (and copied where it shares one), the deadline kept end to
 * end, metadata forwarded. Real contexts over io_uring TCP on loopback:
 * A publishes "fw/in", stage B forwards to "fw/out", C receives.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tsm/tsm.h"
#include "unit_support.h"

static const uint8_t meta_k1[] = {0x81, 0xa1, 'k', 0x01}; /* {"k": 1} */

static tsm_ctx *open_at(const char *listen, const char *connect, char *bound,
                        size_t cap)
{
	tsm_ctx_params p;
	us_params(&p, NULL, connect);
	tsm_ctx *c = us_open("forward", &p);
	if (listen)
		ck_assert_int_eq(tsm_ctx_listen(c, listen, bound, cap), TSM_OK);
	return c;
}

struct chain {
	tsm_ctx *a, *b, *c;
	tsm_pub *in, *out;
	tsm_sub *stage, *sink;
};

/* A -> B (stage) -> C; both hops subscribed before anything is sent. */
static void chain_open(struct chain *ch)
{
	char url_a[128], url_b[128];
	ch->a = open_at("tcp://127.0.0.1:0", NULL, url_a, sizeof(url_a));
	ch->b = open_at("tcp://127.0.0.1:0", url_a, url_b, sizeof(url_b));
	ch->c = open_at(NULL, url_b, NULL, 0);
	ck_assert_int_eq(tsm_sub_open(&ch->stage, ch->b, "fw/in", NULL), TSM_OK);
	ck_assert_int_eq(tsm_sub_open(&ch->sink, ch->c, "fw/out", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&ch->in, ch->a, "fw/in", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&ch->out, ch->b, "fw/out", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(ch->in, 1, 10 * TSM_SEC), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(ch->out, 1, 10 * TSM_SEC), TSM_OK);
}

/* The same four handles within one context (a; b and c stay NULL). */
static void chain_local(struct chain *ch, const char *what)
{
	tsm_ctx_params p;
	us_params(&p, NULL, NULL);
	*ch = (struct chain){.a = us_open(what, &p)};
	ck_assert_int_eq(tsm_sub_open(&ch->stage, ch->a, "fw/in", NULL), TSM_OK);
	ck_assert_int_eq(tsm_sub_open(&ch->sink, ch->a, "fw/out", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&ch->in, ch->a, "fw/in", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&ch->out, ch->a, "fw/out", NULL), TSM_OK);
}

static void chain_close(struct chain *ch)
{
	tsm_ctx_close(ch->c);
	tsm_ctx_close(ch->b);
	tsm_ctx_close(ch->a);
}

/* Sizes that take each path: inline (own block), one frame inside the
 * shared receive block (copied), fragmented (own block). */
static const size_t sizes[] = {100, 32u << 10, 1u << 20, 100, 3u << 20};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

START_TEST(forwards_intact_and_in_order)
{
	struct chain ch;
	chain_open(&ch);
	size_t big = 3u << 20;
	uint8_t *buf = malloc(big);
	for (uint32_t k = 0; k < NSIZES; k++) {
		us_fill(buf, sizes[k], k);
		tsm_pub_opts o;
		tsm_pub_opts_init(&o);
		o.meta = meta_k1;
		o.meta_len = sizeof(meta_k1);
		ck_assert_int_eq(tsm_publish(ch.in, buf, sizes[k], &o), TSM_OK);
	}
	for (uint32_t k = 0; k < NSIZES; k++) {
		tsm_msg *m;
		ck_assert_int_eq(tsm_sub_recv(ch.stage, &m, 10 * TSM_SEC), TSM_OK);
		tsm_pub_opts o;
		tsm_pub_opts_init(&o);
		ck_assert_int_eq(tsm_publish_msg(ch.out, m, &o), TSM_OK);
		ck_assert_uint_ne(o.msg_id, 0); /* reported, as by tsm_publish */
	}
	for (uint32_t k = 0; k < NSIZES; k++) {
		tsm_msg *m;
		size_t ml = 0;
		ck_assert_int_eq(tsm_sub_recv(ch.sink, &m, 10 * TSM_SEC), TSM_OK);
		us_expect_fill(m, sizes[k], k, "forward");
		const void *meta = tsm_msg_meta(m, &ml); /* went along */
		ck_assert_uint_eq(ml, sizeof(meta_k1));
		ck_assert(memcmp(meta, meta_k1, ml) == 0);
		tsm_msg_free(m);
	}
	/* handed over: the inline and the fragmented ones; the 32 KiB one
	 * shared the receive block and was copied */
	ck_assert_uint_eq(us_stat(ch.b, "pub.forwarded"), 4);
	ck_assert_uint_eq(us_stat(ch.b, "pub.published"), NSIZES);
	free(buf);
	chain_close(&ch);
}
END_TEST

/* Within one context a locally delivered message is forwarded without a
 * copy: the next local subscriber sees the very same bytes. */
START_TEST(local_forward_shares_the_payload)
{
	struct chain ch;
	chain_local(&ch, "local");
	size_t n = 256u << 10;
	uint8_t *buf = malloc(n);
	us_fill(buf, n, 9);
	ck_assert_int_eq(tsm_publish(ch.in, buf, n, NULL), TSM_OK);
	tsm_msg *m, *r;
	ck_assert_int_eq(tsm_sub_recv(ch.stage, &m, TSM_SEC), TSM_OK);
	const void *where = tsm_msg_data(m);
	ck_assert_int_eq(tsm_publish_msg(ch.out, m, NULL), TSM_OK);
	ck_assert_int_eq(tsm_sub_recv(ch.sink, &r, TSM_SEC), TSM_OK);
	ck_assert_ptr_eq(tsm_msg_data(r), where);
	us_expect_fill(r, n, 9, "forward");
	tsm_msg_free(r);
	ck_assert_uint_eq(us_stat(ch.a, "pub.forwarded"), 1);
	free(buf);
	chain_close(&ch);
}
END_TEST

/* The deadline travels: a forward after it passed fails and leaves msg
 * with the caller; a longer budget in opts does not extend it. */
START_TEST(deadline_is_end_to_end)
{
	struct chain ch;
	chain_open(&ch);
	uint32_t v = 7;
	tsm_pub_opts o;
	tsm_pub_opts_init(&o);
	o.flags = TSM_OPT_BUDGET;
	o.budget = 300 * TSM_MSEC;
	ck_assert_int_eq(tsm_publish(ch.in, &v, sizeof(v), &o), TSM_OK);
	o.budget = 5 * TSM_SEC;
	ck_assert_int_eq(tsm_publish(ch.in, &v, sizeof(v), &o), TSM_OK);
	tsm_msg *m1, *m2;
	ck_assert_int_eq(tsm_sub_recv(ch.stage, &m1, 10 * TSM_SEC), TSM_OK);
	ck_assert_int_eq(tsm_sub_recv(ch.stage, &m2, 10 * TSM_SEC), TSM_OK);
	usleep(400 * 1000); /* m1's deadline passes at the stage */
	tsm_pub_opts f;
	tsm_pub_opts_init(&f);
	f.flags = TSM_OPT_BUDGET;
	f.budget = 60 * TSM_SEC; /* asks for more than m1 has left */
	ck_assert_int_eq(tsm_publish_msg(ch.out, m1, &f), TSM_ERR_DEADLINE_EXPIRED);
	ck_assert_uint_eq(tsm_msg_size(m1), sizeof(v)); /* still the caller's */
	tsm_msg_free(m1);
	ck_assert_int_eq(tsm_publish_msg(ch.out, m2, &f), TSM_OK);
	tsm_msg *r;
	ck_assert_int_eq(tsm_sub_recv(ch.sink, &r, 10 * TSM_SEC), TSM_OK);
	/* m2 had under 5 s left; 60 s did not extend it */
	ck_assert(tsm_msg_deadline(r) != TSM_NEVER);
	ck_assert(tsm_msg_deadline(r) - tsm_now() <= 5 * TSM_SEC);
	tsm_msg_free(r);
	ck_assert_int_eq(tsm_sub_recv(ch.sink, &r, 200 * TSM_MSEC), TSM_ETIMEDOUT);
	chain_close(&ch);
}
END_TEST

START_TEST(bad_arguments_leave_msg_alone)
{
	struct chain ch;
	chain_local(&ch, "args");
	uint32_t v = 1;
	ck_assert_int_eq(tsm_publish(ch.in, &v, sizeof(v), NULL), TSM_OK);
	tsm_msg *m;
	ck_assert_int_eq(tsm_sub_recv(ch.stage, &m, TSM_SEC), TSM_OK);
	ck_assert_int_eq(tsm_publish_msg(NULL, m, NULL), TSM_EINVAL);
	ck_assert_int_eq(tsm_publish_msg(ch.out, NULL, NULL), TSM_EINVAL);
	tsm_pub_opts o;
	tsm_pub_opts_init(&o);
	o.flags = TSM_OPT_PRIORITY;
	o.priority = 9;
	ck_assert_int_eq(tsm_publish_msg(ch.out, m, &o), TSM_ERR_BAD_PRIORITY);
	ck_assert_uint_eq(tsm_msg_size(m), sizeof(v)); /* still the caller's */
	tsm_msg_free(m);
	chain_close(&ch);
}
END_TEST

/* A producer fills a message libtsm made (tsm_msg_new) and publishes it
 * without a copy: locally the subscriber sees the very bytes written,
 * remotely they arrive intact. */
START_TEST(new_message_is_published_without_copy)
{
	struct chain ch;
	chain_open(&ch);
	tsm_sub *local;
	ck_assert_int_eq(tsm_sub_open(&local, ch.a, "fw/in", NULL), TSM_OK);
	size_t n = 1u << 20;
	tsm_msg *m;
	void *d;
	ck_assert_int_eq(tsm_msg_new(&m, n, &d), TSM_OK);
	ck_assert_str_eq(tsm_msg_topic(m), "");
	ck_assert(tsm_msg_deadline(m) == TSM_NEVER);
	us_fill(d, n, 5);
	ck_assert_int_eq(tsm_publish_msg(ch.in, m, NULL), TSM_OK);
	tsm_msg *r;
	ck_assert_int_eq(tsm_sub_recv(local, &r, 10 * TSM_SEC), TSM_OK);
	ck_assert_ptr_eq(tsm_msg_data(r), d); /* the bytes the producer wrote */
	ck_assert_str_eq(tsm_msg_topic(r), "fw/in");
	tsm_msg_free(r);
	ck_assert_int_eq(tsm_sub_recv(ch.stage, &r, 10 * TSM_SEC), TSM_OK);
	us_expect_fill(r, n, 5, "forward");
	tsm_msg_free(r);
	ck_assert_uint_eq(us_stat(ch.a, "pub.forwarded"), 1);
	/* one never published is just freed; bad arguments are refused */
	ck_assert_int_eq(tsm_msg_new(&m, 0, &d), TSM_OK);
	ck_assert_uint_eq(tsm_msg_size(m), 0);
	tsm_msg_free(m);
	ck_assert_int_eq(tsm_msg_new(NULL, 8, &d), TSM_EINVAL);
	ck_assert_int_eq(tsm_msg_new(&m, 8, NULL), TSM_EINVAL);
	ck_assert_ptr_null(m);
	ck_assert_int_eq(tsm_msg_new(&m, (16u << 20) + 1, &d), TSM_ERR_MSG_TOO_LARGE);
	chain_close(&ch);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("forward");
	TCase *tc = tcase_create("forward");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, forwards_intact_and_in_order);
	tcase_add_test(tc, local_forward_shares_the_payload);
	tcase_add_test(tc, deadline_is_end_to_end);
	tcase_add_test(tc, bad_arguments_leave_msg_alone);
	tcase_add_test(tc, new_message_is_published_without_copy);
	suite_add_tcase(s, tc);
	return us_run(s);
}
