/*
 * Unit tests for session/ and core/: a live context driven by a raw
 * socket peer (bad frames, out-of-state frames, the insecure handshake)
 * and by a second in-process context (order per lane, fragments, drop
 * policies, deadlines at the subscriber queue).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/internal.h"
#include "session/session.h"
#include "wire/frame.h"
#include "unit_support.h"

static tsm_ctx *open_ctx(const char *name)
{
	tsm_ctx_params p;
	tsm_ctx *c;
	tsm_ctx_params_init(&p);
	p.insecure = 1;
	p.name = name;
	p.log_level = TSM_LOG_ERROR;
	ck_assert_int_eq(tsm_ctx_open(&c, &p), TSM_OK);
	return c;
}

static uint64_t stat(tsm_ctx *c, const char *n)
{
	uint64_t v = 0;
	ck_assert_int_eq(tsm_stats_get(c, n, &v), TSM_OK);
	return v;
}

static int raw_connect(const char *url)
{
	unsigned port = 0;
	ck_assert_int_eq(sscanf(url, "tcp://127.0.0.1:%u", &port), 1);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Reads until EOF or 3 s; returns bytes read (the peer's frames). */
static size_t raw_read_all(int fd, uint8_t *buf, size_t cap)
{
	size_t n = 0;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	while (n < cap && poll(&p, 1, 3000) == 1) {
		ssize_t k = read(fd, buf + n, cap - n);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	return n;
}

static size_t mk_frame(uint8_t *out, uint8_t type, const void *body, uint32_t len)
{
	tsm__fhdr h = {.version = TSM_WIRE_VERSION, .type = type, .body_len = len};
	tsm__fhdr_encode(&h, out);
	memcpy(out + TSM_WIRE_HDR_LEN, body, len);
	return TSM_WIRE_HDR_LEN + len;
}

static size_t mk_preface(uint8_t *out, bool insecure)
{
	uint8_t body[128];
	tsm__wbuf w;
	tsm__preface p = {.min_version = 1, .max_version = 1, .node_id = 77,
	                  .flags = insecure ? TSM_PREFACE_INSECURE : 0};
	tsm__wbuf_init(&w, body, sizeof(body));
	tsm__preface_encode(&p, &w);
	return mk_frame(out, TSM_F_PREFACE, body, (uint32_t)w.len);
}

/* Sends bytes, expects the context to close the connection. */
static size_t raw_exchange(const char *url, const uint8_t *b, size_t n,
                           uint8_t *reply, size_t cap)
{
	int fd = raw_connect(url);
	ck_assert_int_eq(write(fd, b, n), (ssize_t)n);
	size_t r = raw_read_all(fd, reply, cap);
	close(fd);
	return r;
}

static tsm_ctx *listening(char *url, size_t len)
{
	tsm_ctx *c = open_ctx("srv");
	ck_assert_int_eq(tsm_ctx_listen(c, "tcp://127.0.0.1:0", url, len), TSM_OK);
	return c;
}

START_TEST(garbage_closes_and_listener_keeps_serving)
{
	char url[128];
	uint8_t junk[4096], reply[65536];
	tsm_ctx *c = listening(url, sizeof(url));
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 131 + 7);
	size_t r = raw_exchange(url, junk, sizeof(junk), reply, sizeof(reply));
	/* The server sent its preface, then closed on our garbage. */
	ck_assert_uint_ge(r, TSM_WIRE_HDR_LEN);
	ck_assert_uint_ge(stat(c, "err.protocol"), 1);
	/* A good peer is still served. */
	tsm_ctx *d = open_ctx("good");
	ck_assert_int_eq(tsm_ctx_dial(d, url), TSM_OK);
	ck_assert_int_eq(tsm_ctx_wait_peers(d, 1, 5 * TSM_SEC), TSM_OK);
	tsm_ctx_close(d);
	tsm_ctx_close(c);
}
END_TEST

START_TEST(bad_headers_refused)
{
	char url[128];
	uint8_t f[TSM_WIRE_HDR_LEN + 64], reply[4096];
	tsm_ctx *c = listening(url, sizeof(url));
	size_t n = mk_preface(f, true);
	f[0] ^= 0xff; /* wrong magic */
	raw_exchange(url, f, n, reply, sizeof(reply));
	n = mk_preface(f, true);
	f[2] = 9; /* wrong version */
	raw_exchange(url, f, n, reply, sizeof(reply));
	n = mk_preface(f, true);
	f[3] = 200; /* unknown type */
	raw_exchange(url, f, n, reply, sizeof(reply));
	/* A pre-auth frame announcing more than 16 KiB is refused before
	 * anything is buffered. */
	tsm__fhdr h = {.version = 1, .type = TSM_F_PREFACE, .body_len = 1u << 20};
	tsm__fhdr_encode(&h, f);
	raw_exchange(url, f, TSM_WIRE_HDR_LEN, reply, sizeof(reply));
	ck_assert_uint_ge(stat(c, "err.protocol"), 4);
	ck_assert_uint_eq(stat(c, "session.established"), 0);
	tsm_ctx_close(c);
}
END_TEST

START_TEST(data_before_handshake_is_out_of_state)
{
	char url[128];
	uint8_t f[256], reply[4096];
	tsm_ctx *c = listening(url, sizeof(url));
	uint8_t rec[TSM_REC_HDR_LEN] = {0};
	size_t n = mk_frame(f, TSM_F_DATA, rec, sizeof(rec));
	raw_exchange(url, f, n, reply, sizeof(reply));
	ck_assert_uint_ge(stat(c, "err.out_of_state"), 1);
	ck_assert_uint_eq(stat(c, "session.established"), 0);
	tsm_ctx_close(c);
}
END_TEST

START_TEST(secure_peer_gets_reject_with_reason)
{
	char url[128];
	uint8_t f[256], reply[4096];
	tsm_ctx *c = listening(url, sizeof(url));
	size_t n = mk_preface(f, false);
	size_t r = raw_exchange(url, f, n, reply, sizeof(reply));
	/* Reply: the server's PREFACE, then REJECT(INSECURE_MISMATCH). */
	tsm__fhdr h;
	ck_assert_int_eq(tsm__fhdr_decode(reply, r, 1 << 20, &h), TSM_OK);
	ck_assert_int_eq(h.type, TSM_F_PREFACE);
	size_t off = TSM_WIRE_HDR_LEN + h.body_len;
	ck_assert_int_eq(tsm__fhdr_decode(reply + off, r - off, 1 << 20, &h), TSM_OK);
	ck_assert_int_eq(h.type, TSM_F_REJECT);
	tsm__reason why;
	ck_assert_int_eq(tsm__reason_decode(reply + off + TSM_WIRE_HDR_LEN, h.body_len,
	                                    &why), TSM_OK);
	ck_assert_int_eq(why.code, TSM_ERR_INSECURE_MISMATCH);
	ck_assert_uint_eq(stat(c, "reason.insecure_mismatch"), 1);
	tsm_ctx_close(c);
}
END_TEST

START_TEST(silent_peer_times_out)
{
	char url[128];
	tsm_ctx_params p;
	tsm_ctx *c;
	tsm_ctx_params_init(&p);
	p.insecure = 1;
	p.log_level = TSM_LOG_ERROR;
	p.handshake_timeout = 200 * TSM_MSEC;
	ck_assert_int_eq(tsm_ctx_open(&c, &p), TSM_OK);
	ck_assert_int_eq(tsm_ctx_listen(c, "tcp://127.0.0.1:0", url, sizeof(url)), TSM_OK);
	int fd = raw_connect(url);
	uint8_t reply[4096];
	raw_read_all(fd, reply, sizeof(reply)); /* ends when the server closes */
	close(fd);
	ck_assert_uint_eq(stat(c, "reason.handshake_timeout"), 1);
	tsm_ctx_close(c);
}
END_TEST

START_TEST(preauth_budget_holds)
{
	char url[128];
	tsm_ctx_params p;
	tsm_ctx *c;
	tsm_ctx_params_init(&p);
	p.insecure = 1;
	p.log_level = TSM_LOG_ERROR;
	p.preauth_per_source = 2;
	ck_assert_int_eq(tsm_ctx_open(&c, &p), TSM_OK);
	ck_assert_int_eq(tsm_ctx_listen(c, "tcp://127.0.0.1:0", url, sizeof(url)), TSM_OK);
	int silent[2] = {raw_connect(url), raw_connect(url)};
	usleep(100 * 1000); /* both accepted and pending */
	int third = raw_connect(url);
	uint8_t buf[256];
	struct pollfd pf = {.fd = third, .events = POLLIN};
	ck_assert_int_eq(poll(&pf, 1, 3000), 1);
	ck_assert_int_eq(read(third, buf, sizeof(buf)), 0); /* closed, nothing sent */
	ck_assert_uint_eq(stat(c, "reason.preauth_limit"), 1);
	close(third);
	close(silent[0]);
	close(silent[1]);
	usleep(100 * 1000);
	tsm_ctx *d = open_ctx("good"); /* budget is free again */
	ck_assert_int_eq(tsm_ctx_dial(d, url), TSM_OK);
	ck_assert_int_eq(tsm_ctx_wait_peers(d, 1, 5 * TSM_SEC), TSM_OK);
	tsm_ctx_close(d);
	tsm_ctx_close(c);
}
END_TEST

START_TEST(refusals_at_open)
{
	tsm_ctx_params p;
	tsm_ctx *c = (tsm_ctx *)1;
	tsm_ctx_params_init(&p);
	ck_assert_int_eq(tsm_ctx_open(&c, &p), TSM_ERR_NO_CREDENTIALS);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(tsm_err_detail(), "insecure"));
	p.insecure = 1;
	p.listen[0] = "bogus://x";
	ck_assert_int_eq(tsm_ctx_open(&c, &p), TSM_ERR_BAD_URL);
	c = open_ctx("t");
	tsm_pub *pub;
	ck_assert_int_eq(tsm_pub_open(&pub, c, "a//b", NULL), TSM_ERR_BAD_TOPIC);
	ck_assert_int_eq(tsm_pub_open(&pub, c, "a/*", NULL), TSM_ERR_BAD_TOPIC);
	tsm_sub *sub;
	ck_assert_int_eq(tsm_sub_open(&sub, c, "a/**/b", NULL), TSM_ERR_BAD_PATTERN);
	ck_assert_uint_eq(stat(c, "ctx.insecure"), 1);
	/* an expected peer cannot be checked without security */
	ck_assert_int_eq(tsm_ctx_dial(c, "tcp://127.0.0.1:9#spiffe://td/x"),
	                 TSM_ERR_BAD_URL);
	ck_assert_int_eq(tsm_ctx_listen(c, "tcp://127.0.0.1:0#spiffe://td/x", NULL, 0),
	                 TSM_ERR_BAD_URL);
	tsm_ctx_close(c);
}
END_TEST

/* Two contexts joined over inproc with a subscriber on b. */
struct pair {
	tsm_ctx *a, *b;
	tsm_pub *pub;
	tsm_sub *sub;
};

static void pair_open(struct pair *pr, const char *name, const tsm_qos *sq)
{
	char url[128];
	snprintf(url, sizeof(url), "inproc://%s", name);
	pr->a = open_ctx("a");
	pr->b = open_ctx("b");
	ck_assert_int_eq(tsm_ctx_listen(pr->a, url, NULL, 0), TSM_OK);
	ck_assert_int_eq(tsm_ctx_dial(pr->b, url), TSM_OK);
	ck_assert_int_eq(tsm_sub_open(&pr->sub, pr->b, "t/**", sq), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&pr->pub, pr->a, "t/x", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(pr->pub, 1, 5 * TSM_SEC), TSM_OK);
}

static void pair_close(struct pair *pr)
{
	tsm_pub_close(pr->pub);
	tsm_sub_close(pr->sub);
	tsm_ctx_close(pr->b);
	tsm_ctx_close(pr->a);
}

START_TEST(lane_order_and_priority)
{
	struct pair pr;
	pair_open(&pr, "order", NULL);
	enum { N = 4000 };
	for (uint32_t i = 0; i < N; i++) {
		tsm_pub_opts o;
		tsm_pub_opts_init(&o);
		o.flags = TSM_OPT_PRIORITY;
		o.priority = (uint8_t)(i % 8);
		ck_assert_int_eq(tsm_publish(pr.pub, &i, sizeof(i), &o), TSM_OK);
	}
	uint32_t last[8];
	memset(last, 0xff, sizeof(last));
	for (int k = 0; k < N; k++) {
		tsm_msg *m;
		ck_assert_int_eq(tsm_sub_recv(pr.sub, &m, 5 * TSM_SEC), TSM_OK);
		uint32_t v;
		memcpy(&v, tsm_msg_data(m), 4);
		uint8_t pr8 = tsm_msg_priority(m);
		ck_assert_uint_eq(pr8, v % 8);
		ck_assert(last[pr8] == UINT32_MAX || v > last[pr8]);
		last[pr8] = v;
		ck_assert_str_eq(tsm_msg_topic(m), "t/x");
		tsm_msg_free(m);
	}
	pair_close(&pr);
}
END_TEST

START_TEST(large_message_fragments_intact)
{
	struct pair pr;
	pair_open(&pr, "big", NULL);
	size_t n = 3 * 1024 * 1024 + 17;
	uint8_t *b = malloc(n);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 2654435761u >> 13);
	ck_assert_int_eq(tsm_publish(pr.pub, b, n, NULL), TSM_OK);
	uint32_t small = 42;
	ck_assert_int_eq(tsm_publish(pr.pub, &small, 4, NULL), TSM_OK);
	tsm_msg *m;
	ck_assert_int_eq(tsm_sub_recv(pr.sub, &m, 10 * TSM_SEC), TSM_OK);
	ck_assert_uint_eq(tsm_msg_size(m), n);
	ck_assert(memcmp(tsm_msg_data(m), b, n) == 0);
	tsm_msg_free(m);
	ck_assert_int_eq(tsm_sub_recv(pr.sub, &m, 10 * TSM_SEC), TSM_OK);
	ck_assert_uint_eq(tsm_msg_size(m), 4);
	tsm_msg_free(m);
	ck_assert_uint_ge(stat(pr.a, "tx.frames"), n / 65536);
	free(b);
	pair_close(&pr);
}
END_TEST

/* Publishes 1..n locally to a subscriber with the given policy. */
static tsm_sub *local_sub(tsm_ctx *c, tsm_backpressure bp, uint32_t depth)
{
	tsm_qos q;
	tsm_sub *s;
	tsm_qos_init(&q);
	q.backpressure = bp;
	q.queue_depth = depth;
	q.reliability = TSM_BEST_EFFORT;
	ck_assert_int_eq(tsm_sub_open(&s, c, "p/**", &q), TSM_OK);
	return s;
}

static uint32_t recv_u32(tsm_sub *s)
{
	tsm_msg *m;
	uint32_t v;
	ck_assert_int_eq(tsm_sub_recv(s, &m, TSM_SEC), TSM_OK);
	memcpy(&v, tsm_msg_data(m), 4);
	tsm_msg_free(m);
	return v;
}

START_TEST(drop_policies)
{
	tsm_ctx *c = open_ctx("local");
	tsm_sub *newest = local_sub(c, TSM_BP_DROP_NEWEST, 3);
	tsm_sub *oldest = local_sub(c, TSM_BP_DROP_OLDEST, 3);
	tsm_sub *latest = local_sub(c, TSM_BP_LATEST_ONLY, 3);
	tsm_pub *p;
	ck_assert_int_eq(tsm_pub_open(&p, c, "p/q", NULL), TSM_OK);
	for (uint32_t i = 1; i <= 5; i++)
		ck_assert_int_eq(tsm_publish(p, &i, 4, NULL), TSM_OK);
	ck_assert_uint_eq(recv_u32(newest), 1);
	ck_assert_uint_eq(recv_u32(newest), 2);
	ck_assert_uint_eq(recv_u32(newest), 3);
	ck_assert_uint_eq(recv_u32(oldest), 3);
	ck_assert_uint_eq(recv_u32(oldest), 4);
	ck_assert_uint_eq(recv_u32(oldest), 5);
	ck_assert_uint_eq(recv_u32(latest), 5);
	tsm_msg *m;
	ck_assert_int_eq(tsm_sub_recv(latest, &m, 0), TSM_ETIMEDOUT);
	/* newest dropped 2, oldest evicted 2, latest evicted 1+1+2 = 4 */
	ck_assert_uint_eq(stat(c, "drop.queue_full"), 2 + 2 + 4);
	tsm_ctx_close(c); /* closes the handles left open */
}
END_TEST

START_TEST(expired_in_queue_never_returned)
{
	tsm_ctx *c = open_ctx("dl");
	tsm_sub *s;
	tsm_pub *p;
	ck_assert_int_eq(tsm_sub_open(&s, c, "d", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&p, c, "d", NULL), TSM_OK);
	tsm_pub_opts o;
	tsm_pub_opts_init(&o);
	o.flags = TSM_OPT_BUDGET;
	o.budget = 20 * TSM_MSEC;
	uint32_t v = 1;
	ck_assert_int_eq(tsm_publish(p, &v, 4, &o), TSM_OK);
	v = 2;
	ck_assert_int_eq(tsm_publish(p, &v, 4, NULL), TSM_OK);
	usleep(50 * 1000); /* the first one's deadline passes in the queue */
	ck_assert_uint_eq(recv_u32(s), 2);
	ck_assert_uint_eq(stat(c, "drop.deadline_expired"), 1);
	o.flags = TSM_OPT_DEADLINE;
	o.deadline = tsm_now() - 1;
	ck_assert_int_eq(tsm_publish(p, &v, 4, &o), TSM_ERR_DEADLINE_EXPIRED);
	o.flags = TSM_OPT_PRIORITY;
	o.priority = 8;
	ck_assert_int_eq(tsm_publish(p, &v, 4, &o), TSM_ERR_BAD_PRIORITY);
	tsm_ctx_close(c);
}
END_TEST

static void cb_count(void *arg, tsm_msg *m)
{
	atomic_fetch_add((atomic_int *)arg, 1);
	tsm_msg_free(m);
}

START_TEST(callback_delivery)
{
	struct pair pr;
	static atomic_int got;
	pair_open(&pr, "cb", NULL);
	ck_assert_int_eq(tsm_sub_set_callback(pr.sub, cb_count, &got), TSM_OK);
	tsm_msg *m;
	ck_assert_int_eq(tsm_sub_recv(pr.sub, &m, 0), TSM_ESTATE);
	for (uint32_t i = 0; i < 1000; i++)
		ck_assert_int_eq(tsm_publish(pr.pub, &i, 4, NULL), TSM_OK);
	for (int i = 0; i < 500 && atomic_load(&got) < 1000; i++)
		usleep(10000);
	ck_assert_int_eq(atomic_load(&got), 1000);
	pair_close(&pr);
}
END_TEST


/* --- deadlines and priorities (design.md §5) ---------------------------- */

START_TEST(edf_within_lane)
{
	tsm__omsg m[6];
	tsm__txq q[6];
	tsm__lane l = {0};
	/* deadlines: 50, NEVER, 20, 50, 10, NEVER (publish order) */
	const tsm_time dl[6] = {50, TSM_NEVER, 20, 50, 10, TSM_NEVER};
	for (int i = 0; i < 6; i++) {
		memset(&m[i], 0, sizeof(m[i]));
		m[i].deadline = dl[i];
		m[i].id = (uint64_t)i;
		q[i] = (tsm__txq){&m[i], 0, 0, NULL};
		tsm__lane_insert_edf(&l, &q[i]);
	}
	/* earliest deadline first; equal deadlines and NEVER keep order */
	const uint64_t want[6] = {4, 2, 0, 3, 1, 5};
	int i = 0;
	for (tsm__txq *p = l.head; p; p = p->next, i++)
		ck_assert_uint_eq(p->m->id, want[i]);
	ck_assert_int_eq(i, 6);
	ck_assert_ptr_eq(l.tail, &q[5]);
	/* a message whose fragments started stays first */
	tsm__lane l2 = {0};
	q[0] = (tsm__txq){&m[0], 100, 1, NULL}; /* in progress, deadline 50 */
	tsm__lane_insert_edf(&l2, &q[0]);
	q[4] = (tsm__txq){&m[4], 0, 0, NULL};   /* deadline 10 */
	tsm__lane_insert_edf(&l2, &q[4]);
	ck_assert_ptr_eq(l2.head, &q[0]);
	ck_assert_ptr_eq(l2.head->next, &q[4]);
	ck_assert_ptr_eq(l2.tail, &q[4]);
}
END_TEST

START_TEST(urgent_overtakes_bulk)
{
	struct pair pr;
	pair_open(&pr, "bulk", NULL);
	size_t n = 8u << 20;
	uint8_t *big = calloc(1, n);
	tsm_pub_opts o;
	tsm_pub_opts_init(&o);
	o.flags = TSM_OPT_PRIORITY;
	o.priority = 7;
	ck_assert_int_eq(tsm_publish(pr.pub, big, n, &o), TSM_OK);
	o.priority = 0;
	uint32_t urgent = 0xfeed;
	ck_assert_int_eq(tsm_publish(pr.pub, &urgent, 4, &o), TSM_OK);
	tsm_msg *m;
	/* The small urgent message does not wait for 128 fragments. */
	ck_assert_int_eq(tsm_sub_recv(pr.sub, &m, 10 * TSM_SEC), TSM_OK);
	ck_assert_uint_eq(tsm_msg_size(m), 4);
	ck_assert_uint_eq(tsm_msg_priority(m), 0);
	tsm_msg_free(m);
	ck_assert_int_eq(tsm_sub_recv(pr.sub, &m, 10 * TSM_SEC), TSM_OK);
	ck_assert_uint_eq(tsm_msg_size(m), n);
	tsm_msg_free(m);
	free(big);
	pair_close(&pr);
}
END_TEST

struct outcomes {
	int n;
	uint64_t ids[16];
	tsm_err reasons[16];
	tsm_where where[16];
};

static void on_outcome(void *arg, const tsm_outcome *o)
{
	struct outcomes *oc = arg;
	if (oc->n < 16) {
		oc->ids[oc->n] = o->msg_id;
		oc->reasons[oc->n] = o->reason;
		oc->where[oc->n] = o->where;
	}
	oc->n++;
}

struct tstat_find {
	const char *topic;
	uint8_t lane;
	tsm_topic_stats got;
	int found;
};

static void on_tstat(void *arg, const tsm_topic_stats *ts)
{
	struct tstat_find *f = arg;
	if (strcmp(ts->topic, f->topic) == 0 && ts->lane == f->lane) {
		f->got = *ts;
		f->found++;
	}
}

/* `queued` is what waits in the local subscriber queues when read: two
 * subscribers of one topic each hold what was published, until taken. */
START_TEST(topic_stats_queued_when_read)
{
	tsm_ctx_params p;
	us_params(&p, NULL, NULL);
	tsm_ctx *c = us_open("queued", &p);
	tsm_sub *s1, *s2;
	tsm_pub *pb;
	ck_assert_int_eq(tsm_sub_open(&s1, c, "q/**", NULL), TSM_OK);
	ck_assert_int_eq(tsm_sub_open(&s2, c, "q/t", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&pb, c, "q/t", NULL), TSM_OK);
	tsm_pub_opts o;
	tsm_pub_opts_init(&o);
	o.flags = TSM_OPT_PRIORITY;
	o.priority = 2;
	uint32_t v = 7;
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(tsm_publish(pb, &v, 4, &o), TSM_OK);
	struct tstat_find f = {"q/t", 2, {0}, 0};
	ck_assert_int_eq(tsm_stats_topics(c, on_tstat, &f), TSM_OK);
	ck_assert_int_eq(f.found, 1);
	ck_assert_uint_eq(f.got.queued, 6); /* local delivery is immediate */
	tsm_msg *m;
	ck_assert_int_eq(tsm_sub_recv(s1, &m, TSM_SEC), TSM_OK);
	tsm_msg_free(m);
	f.found = 0;
	ck_assert_int_eq(tsm_stats_topics(c, on_tstat, &f), TSM_OK);
	ck_assert_int_eq(f.found, 1); /* a second read counts afresh */
	ck_assert_uint_eq(f.got.queued, 5);
	ck_assert_uint_eq(f.got.delivered, 1);
	tsm_sub_close(s2); /* what it held is dropped, no longer queued */
	f.found = 0;
	ck_assert_int_eq(tsm_stats_topics(c, on_tstat, &f), TSM_OK);
	ck_assert_uint_eq(f.got.queued, 2);
	tsm_ctx_close(c);
}
END_TEST

START_TEST(outcomes_and_topic_stats)
{
	static struct outcomes oc;
	tsm_ctx_params p;
	tsm_ctx *c;
	tsm_ctx_params_init(&p);
	p.insecure = 1;
	p.log_level = TSM_LOG_ERROR;
	ck_assert_int_eq(tsm_ctx_params_set_outcome(&p, on_outcome, &oc), TSM_OK);
	ck_assert_int_eq(tsm_ctx_open(&c, &p), TSM_OK);
	tsm_sub *s;
	tsm_pub *pb;
	ck_assert_int_eq(tsm_sub_open(&s, c, "o/**", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&pb, c, "o/t", NULL), TSM_OK);
	tsm_pub_opts o;
	tsm_pub_opts_init(&o);
	o.flags = TSM_OPT_BUDGET | TSM_OPT_PRIORITY;
	o.priority = 3;
	o.budget = 20 * TSM_MSEC;
	uint32_t v = 1;
	ck_assert_int_eq(tsm_publish(pb, &v, 4, &o), TSM_OK); /* will expire */
	uint64_t expired_id = o.msg_id;
	o.budget = 10 * TSM_SEC;
	ck_assert_int_eq(tsm_publish(pb, &v, 4, &o), TSM_OK); /* will arrive */
	usleep(40 * 1000);
	tsm_msg *m;
	ck_assert_int_eq(tsm_sub_recv(s, &m, TSM_SEC), TSM_OK);
	ck_assert_uint_eq(tsm_msg_id(m), o.msg_id);
	tsm_msg_free(m);
	ck_assert_int_eq(oc.n, 1);
	ck_assert_uint_eq(oc.ids[0], expired_id);
	ck_assert_int_eq(oc.reasons[0], TSM_ERR_DEADLINE_EXPIRED);
	ck_assert_int_eq(oc.where[0], TSM_AT_HANDOVER);
	struct tstat_find f = {"o/t", 3, {0}, 0};
	ck_assert_int_eq(tsm_stats_topics(c, on_tstat, &f), TSM_OK);
	ck_assert_int_eq(f.found, 1);
	ck_assert_uint_eq(f.got.delivered, 1);
	ck_assert_uint_eq(f.got.deadline_missed, 1);
	ck_assert_uint_eq(f.got.queued, 0);
	ck_assert_uint_eq(f.got.latency.count, 1);
	ck_assert_uint_eq(f.got.slack.count, 1);
	ck_assert_uint_gt(f.got.slack.p50_ns, 5 * TSM_SEC); /* ~10 s budget left */
	ck_assert_uint_ge(f.got.latency.max_ns, f.got.latency.p50_ns);
	tsm_ctx_close(c);
}
END_TEST

/* A raw insecure peer that publishes frames of its own making. */
static int raw_peer_up(const char *url)
{
	uint8_t f[512];
	int fd = raw_connect(url);
	size_t n = mk_preface(f, true);
	ck_assert_int_eq(write(fd, f, n), (ssize_t)n);
	tsm__fhdr h = {.version = 1, .type = TSM_F_ACCEPT, .seq = 0};
	tsm__fhdr_encode(&h, f);
	ck_assert_int_eq(write(fd, f, TSM_WIRE_HDR_LEN), TSM_WIRE_HDR_LEN);
	uint8_t body[64];
	tsm__wbuf w;
	tsm__ctrl c = {.type = TSM_C_TOPIC, .id = 5, .str = (const uint8_t *)"r/x",
	               .str_len = 3};
	tsm__wbuf_init(&w, body, sizeof(body));
	tsm__ctrl_encode(&c, &w);
	h = (tsm__fhdr){.version = 1, .type = TSM_F_CTRL, .seq = 1,
	                .body_len = (uint32_t)w.len};
	tsm__fhdr_encode(&h, f);
	memcpy(f + TSM_WIRE_HDR_LEN, body, w.len);
	ck_assert_int_eq(write(fd, f, TSM_WIRE_HDR_LEN + w.len),
	                 (ssize_t)(TSM_WIRE_HDR_LEN + w.len));
	return fd;
}

/* One fragment (or abort) record on lane 2, in its own frame. */
static void raw_frag(int fd, uint64_t seq, uint64_t id, uint32_t idx,
                     uint16_t flags, uint32_t len, uint64_t total)
{
	uint8_t f[256];
	tsm__wbuf w;
	tsm__rec r = {.topic_id = 5, .flags = (uint16_t)(TSM_REC_FRAG | flags),
	              .payload_len = len, .msg_id = id, .total_len = total,
	              .frag_index = idx};
	tsm__wbuf_init(&w, f + TSM_WIRE_HDR_LEN, sizeof(f) - TSM_WIRE_HDR_LEN);
	tsm__rec_encode_hdr(&r, &w);
	tsm__wbuf_zero(&w, len);
	tsm__fhdr h = {.version = 1, .type = TSM_F_DATA, .flags = TSM_FF_FRAGMENT,
	               .lane = 2, .priority = 2, .seq = seq, .topic_id = 5,
	               .body_len = (uint32_t)w.len};
	tsm__fhdr_encode(&h, f);
	ck_assert_int_eq(write(fd, f, TSM_WIRE_HDR_LEN + w.len),
	                 (ssize_t)(TSM_WIRE_HDR_LEN + w.len));
}

START_TEST(abort_discards_partial_message)
{
	char url[128];
	tsm_ctx *c = listening(url, sizeof(url));
	tsm_sub *s;
	ck_assert_int_eq(tsm_sub_open(&s, c, "r/**", NULL), TSM_OK);
	int fd = raw_peer_up(url);
	raw_frag(fd, 0, 7, 0, 0, 100, 300);             /* message 7 starts */
	raw_frag(fd, 1, 7, 1, TSM_REC_LAST | TSM_REC_ABORT, 0, 300); /* abort */
	raw_frag(fd, 2, 8, 0, TSM_REC_LAST, 50, 50);    /* message 8 whole */
	tsm_msg *m;
	ck_assert_int_eq(tsm_sub_recv(s, &m, 5 * TSM_SEC), TSM_OK);
	ck_assert_uint_eq(tsm_msg_id(m), 8); /* never the partial message 7 */
	ck_assert_uint_eq(tsm_msg_size(m), 50);
	tsm_msg_free(m);
	ck_assert_uint_eq(stat(c, "drop.deadline_expired"), 1);
	ck_assert_uint_eq(stat(c, "err.protocol"), 0);
	/* Without an abort, a new message in the middle is a protocol error
	 * (as is a fragment naming another topic: §7). */
	raw_frag(fd, 3, 9, 0, 0, 100, 300);
	raw_frag(fd, 4, 10, 0, 0, 100, 300);
	uint8_t buf[4096];
	raw_read_all(fd, buf, sizeof(buf)); /* until the context closes it */
	ck_assert_uint_ge(stat(c, "err.protocol"), 1);
	ck_assert_int_eq(tsm_sub_recv(s, &m, 0), TSM_ETIMEDOUT);
	close(fd);
	tsm_ctx_close(c);
}
END_TEST

/* A raw peer that subscribes to `pattern`, then never reads again. */
static int raw_stalled_subscriber(const char *url, const char *pattern)
{
	uint8_t f[512], body[300];
	int fd = raw_connect(url);
	int small = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	size_t n = mk_preface(f, true);
	ck_assert_int_eq(write(fd, f, n), (ssize_t)n);
	tsm__fhdr h = {.version = 1, .type = TSM_F_ACCEPT};
	tsm__fhdr_encode(&h, f);
	ck_assert_int_eq(write(fd, f, TSM_WIRE_HDR_LEN), TSM_WIRE_HDR_LEN);
	tsm__wbuf w;
	tsm__ctrl c = {.type = TSM_C_SUBSCRIBE, .str = (const uint8_t *)pattern,
	               .str_len = (uint16_t)strlen(pattern)};
	tsm__wbuf_init(&w, body, sizeof(body));
	tsm__ctrl_encode(&c, &w);
	h = (tsm__fhdr){.version = 1, .type = TSM_F_CTRL, .seq = 1,
	                .body_len = (uint32_t)w.len};
	tsm__fhdr_encode(&h, f);
	memcpy(f + TSM_WIRE_HDR_LEN, body, w.len);
	ck_assert_int_eq(write(fd, f, TSM_WIRE_HDR_LEN + w.len),
	                 (ssize_t)(TSM_WIRE_HDR_LEN + w.len));
	return fd;
}

START_TEST(stalled_peer_does_not_stop_others)
{
	char url[128];
	tsm_ctx_params p;
	tsm_ctx *c;
	tsm_ctx_params_init(&p);
	p.insecure = 1;
	p.log_level = TSM_LOG_ERROR;
	p.session_queue_bytes = 64 * 1024;
	ck_assert_int_eq(tsm_ctx_open(&c, &p), TSM_OK);
	ck_assert_int_eq(tsm_ctx_listen(c, "tcp://127.0.0.1:0", url, sizeof(url)), TSM_OK);
	tsm_qos q;
	tsm_qos_init(&q);
	q.block_timeout = 100 * TSM_MSEC;
	tsm_pub *pb;
	ck_assert_int_eq(tsm_pub_open(&pb, c, "iso/t", &q), TSM_OK);
	int stalled = raw_stalled_subscriber(url, "iso/**");
	tsm_ctx *good = open_ctx("good");
	tsm_sub *gs;
	ck_assert_int_eq(tsm_sub_open(&gs, good, "iso/**", NULL), TSM_OK);
	ck_assert_int_eq(tsm_ctx_dial(good, url), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(pb, 2, 5 * TSM_SEC), TSM_OK);
	static uint8_t kb[1024];
	int got = 0;
	tsm_msg *m;
	for (uint32_t i = 0; i < 4000; i++) {
		memcpy(kb, &i, 4);
		ck_assert_int_eq(tsm_publish(pb, kb, sizeof(kb), NULL), TSM_OK);
		while (tsm_sub_recv(gs, &m, 0) == TSM_OK) {
			got++;
			tsm_msg_free(m);
		}
	}
	while (got < 4000 && tsm_sub_recv(gs, &m, 2 * TSM_SEC) == TSM_OK) {
		got++;
		tsm_msg_free(m);
	}
	ck_assert_int_eq(got, 4000); /* the good subscriber lost nothing */
	ck_assert_uint_ge(stat(c, "drop.queue_full"), 1); /* the stalled one did */
	close(stalled);
	tsm_ctx_close(good);
	tsm_ctx_close(c);
}
END_TEST

START_TEST(stalled_subscriber_does_not_stop_its_neighbour)
{
	struct pair pr;
	tsm_qos q;
	tsm_qos_init(&q);
	q.queue_depth = 4;
	q.block_timeout = 100 * TSM_MSEC;
	pair_open(&pr, "neigh", NULL);
	tsm_sub *stalled;
	ck_assert_int_eq(tsm_sub_open(&stalled, pr.b, "t/**", &q), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(pr.pub, 1, 5 * TSM_SEC), TSM_OK);
	int got = 0;
	tsm_msg *m;
	for (uint32_t i = 0; i < 2000; i++) {
		ck_assert_int_eq(tsm_publish(pr.pub, &i, 4, NULL), TSM_OK);
		while (tsm_sub_recv(pr.sub, &m, 0) == TSM_OK) {
			got++;
			tsm_msg_free(m);
		}
	}
	while (got < 2000 && tsm_sub_recv(pr.sub, &m, 2 * TSM_SEC) == TSM_OK) {
		got++;
		tsm_msg_free(m);
	}
	ck_assert_int_eq(got, 2000);
	ck_assert_uint_ge(stat(pr.b, "drop.queue_full"), 1);
	tsm_sub_close(stalled);
	pair_close(&pr);
}
END_TEST

START_TEST(expired_in_send_queue_while_stalled)
{
	static struct outcomes oc;
	char url[128];
	tsm_ctx_params p;
	tsm_ctx *c;
	tsm_ctx_params_init(&p);
	p.insecure = 1;
	p.log_level = TSM_LOG_ERROR;
	tsm_ctx_params_set_outcome(&p, on_outcome, &oc);
	ck_assert_int_eq(tsm_ctx_open(&c, &p), TSM_OK);
	ck_assert_int_eq(tsm_ctx_listen(c, "tcp://127.0.0.1:0", url, sizeof(url)), TSM_OK);
	tsm_pub *pb;
	ck_assert_int_eq(tsm_pub_open(&pb, c, "exp/t", NULL), TSM_OK);
	int stalled = raw_stalled_subscriber(url, "exp/**");
	ck_assert_int_eq(tsm_pub_wait_subscribers(pb, 1, 5 * TSM_SEC), TSM_OK);
	static uint8_t kb[4096];
	tsm_pub_opts o;
	tsm_pub_opts_init(&o);
	o.flags = TSM_OPT_BUDGET;
	o.budget = 100 * TSM_MSEC;
	for (int i = 0; i < 2000; i++) /* far more than the socket buffers */
		ck_assert_int_eq(tsm_publish(pb, kb, sizeof(kb), &o), TSM_OK);
	/* Counted when they expire, although the connection never moves. */
	bool seen = false;
	for (int i = 0; i < 300 && !seen; i++) {
		usleep(10 * 1000);
		seen = oc.n > 0 && oc.where[0] == TSM_AT_SEND_QUEUE &&
		       oc.reasons[0] == TSM_ERR_DEADLINE_EXPIRED;
	}
	ck_assert(seen);
	ck_assert_uint_ge(stat(c, "drop.deadline_expired"), 1);
	close(stalled);
	tsm_ctx_close(c);
}
END_TEST

START_TEST(expired_large_message_never_delivered)
{
	/* The subscriber side holds its session (queue full, long block
	 * timeout) while an 8 MiB message with a 100 ms budget is in flight;
	 * when it reads again, that message has expired in the sender's
	 * lane (ABORT) or in reassembly: never delivered, never partial. */
	struct pair pr;
	tsm_qos q;
	tsm_qos_init(&q);
	q.queue_depth = 1;
	q.block_timeout = 10 * TSM_SEC;
	char url[64];
	snprintf(url, sizeof(url), "inproc://abort");
	pr.a = open_ctx("a");
	pr.b = open_ctx("b");
	ck_assert_int_eq(tsm_ctx_listen(pr.a, url, NULL, 0), TSM_OK);
	ck_assert_int_eq(tsm_ctx_dial(pr.b, url), TSM_OK);
	ck_assert_int_eq(tsm_sub_open(&pr.sub, pr.b, "t/**", &q), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&pr.pub, pr.a, "t/x", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(pr.pub, 1, 5 * TSM_SEC), TSM_OK);
	uint32_t x = 1, y = 2;
	ck_assert_int_eq(tsm_publish(pr.pub, &x, 4, NULL), TSM_OK); /* fills */
	ck_assert_int_eq(tsm_publish(pr.pub, &y, 4, NULL), TSM_OK); /* parks */
	size_t n = 8u << 20;
	uint8_t *big = calloc(1, n);
	tsm_pub_opts o;
	tsm_pub_opts_init(&o);
	o.flags = TSM_OPT_BUDGET;
	o.budget = 100 * TSM_MSEC;
	ck_assert_int_eq(tsm_publish(pr.pub, big, n, &o), TSM_OK);
	usleep(400 * 1000); /* its deadline passes while nothing moves */
	tsm_msg *m;
	ck_assert_int_eq(tsm_sub_recv(pr.sub, &m, TSM_SEC), TSM_OK);
	ck_assert_uint_eq(tsm_msg_size(m), 4);
	tsm_msg_free(m);
	ck_assert_int_eq(tsm_sub_recv(pr.sub, &m, TSM_SEC), TSM_OK);
	ck_assert_uint_eq(tsm_msg_size(m), 4);
	tsm_msg_free(m);
	ck_assert_int_eq(tsm_sub_recv(pr.sub, &m, 500 * TSM_MSEC), TSM_ETIMEDOUT);
	ck_assert_uint_ge(stat(pr.a, "drop.deadline_expired") +
	                  stat(pr.b, "drop.deadline_expired"), 1);
	ck_assert_uint_eq(stat(pr.b, "err.protocol"), 0);
	free(big);
	pair_close(&pr);
}
END_TEST

static void *delayed_recv(void *arg)
{
	tsm_sub *s = *(tsm_sub **)arg;
	usleep(100 * 1000);
	tsm_msg *m;
	if (tsm_sub_recv(s, &m, TSM_SEC) == TSM_OK)
		tsm_msg_free(m);
	return NULL;
}

START_TEST(block_policy_waits_for_room)
{
	/* A local subscriber with room for 2 and the block policy: a third
	 * publish waits for the reader instead of dropping. */
	tsm_ctx *c = open_ctx("blk");
	tsm_qos q;
	tsm_qos_init(&q);
	q.queue_depth = 2;
	q.block_timeout = 5 * TSM_SEC;
	tsm_sub *s;
	tsm_pub *pb;
	ck_assert_int_eq(tsm_sub_open(&s, c, "b", &q), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&pb, c, "b", &q), TSM_OK);
	uint32_t v = 0;
	ck_assert_int_eq(tsm_publish(pb, &v, 4, NULL), TSM_OK);
	ck_assert_int_eq(tsm_publish(pb, &v, 4, NULL), TSM_OK);
	pthread_t th;
	/* Free one slot shortly from another thread. */
	struct { tsm_sub *s; } arg = {s};
	pthread_create(&th, NULL, delayed_recv, &arg);
	v = 3;
	ck_assert_int_eq(tsm_publish(pb, &v, 4, NULL), TSM_OK);
	pthread_join(th, NULL);
	ck_assert_uint_eq(stat(c, "drop.queue_full"), 0); /* it waited */
	ck_assert_uint_eq(recv_u32(s), 0);
	ck_assert_uint_eq(recv_u32(s), 3);
	tsm_ctx_close(c);
}
END_TEST

START_TEST(dscp_marks_the_connection)
{
	char url[128];
	tsm_ctx_params p;
	tsm_ctx *a, *b;
	tsm_ctx_params_init(&p);
	ck_assert_int_eq(p.lane_dscp[0], -1); /* unmarked unless asked */
	p.insecure = 1;
	p.log_level = TSM_LOG_ERROR;
	ck_assert_int_eq(tsm_ctx_params_set(&p, "lane_dscp", "46,46,34,26,18,10,8,8"),
	                 TSM_OK);
	ck_assert_int_eq(tsm_ctx_open(&a, &p), TSM_OK);
	ck_assert_int_eq(tsm_ctx_listen(a, "tcp://127.0.0.1:0", url, sizeof(url)), TSM_OK);
	b = open_ctx("b");
	tsm_sub *s;
	tsm_pub *pb;
	ck_assert_int_eq(tsm_sub_open(&s, b, "d", NULL), TSM_OK);
	ck_assert_int_eq(tsm_ctx_dial(b, url), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&pb, a, "d", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(pb, 1, 5 * TSM_SEC), TSM_OK);
	tsm_pub_opts o;
	tsm_pub_opts_init(&o);
	o.flags = TSM_OPT_PRIORITY;
	o.priority = 0;
	uint32_t v = 1;
	ck_assert_int_eq(tsm_publish(pb, &v, 4, &o), TSM_OK);
	ck_assert_int_eq(tsm_pub_flush(pb, 5 * TSM_SEC), TSM_OK);
	tsm_msg *m;
	ck_assert_int_eq(tsm_sub_recv(s, &m, 5 * TSM_SEC), TSM_OK);
	tsm_msg_free(m);
	int tos = 0;
	socklen_t len = sizeof(tos);
	/* white-box: the publisher's one session socket */
	ck_assert_int_eq(getsockopt(a->sessions->conn.fd, IPPROTO_IP, IP_TOS, &tos,
	                            &len), 0);
	ck_assert_int_eq(tos, 46 << 2);
	ck_assert_uint_ge(stat(a, "tx.dscp_changes"), 1);
	p.lane_dscp[3] = 64;
	tsm_ctx *bad;
	ck_assert_int_eq(tsm_ctx_open(&bad, &p), TSM_ERR_BAD_PARAMS);
	tsm_ctx_close(b);
	tsm_ctx_close(a);
}
END_TEST

START_TEST(reassembly_budget_bounds_memory)
{
	tsm_ctx_params p;
	tsm_ctx *a, *b;
	tsm_ctx_params_init(&p);
	p.insecure = 1;
	p.log_level = TSM_LOG_ERROR;
	ck_assert_int_eq(tsm_ctx_open(&a, &p), TSM_OK);
	p.reassembly_bytes = 1u << 20; /* receiver: 1 MiB of partial messages */
	ck_assert_int_eq(tsm_ctx_open(&b, &p), TSM_OK);
	ck_assert_int_eq(tsm_ctx_listen(a, "inproc://reasm", NULL, 0), TSM_OK);
	ck_assert_int_eq(tsm_ctx_dial(b, "inproc://reasm"), TSM_OK);
	tsm_sub *s;
	tsm_pub *pb;
	ck_assert_int_eq(tsm_sub_open(&s, b, "r", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&pb, a, "r", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(pb, 1, 5 * TSM_SEC), TSM_OK);
	size_t n = 4u << 20;
	uint8_t *big = calloc(1, n);
	ck_assert_int_eq(tsm_publish(pb, big, n, NULL), TSM_OK); /* over budget */
	ck_assert_int_eq(tsm_publish(pb, big, 512 * 1024, NULL), TSM_OK); /* fits */
	tsm_msg *m;
	ck_assert_int_eq(tsm_sub_recv(s, &m, 5 * TSM_SEC), TSM_OK);
	ck_assert_uint_eq(tsm_msg_size(m), 512 * 1024);
	tsm_msg_free(m);
	ck_assert_uint_eq(stat(b, "drop.queue_full"), 1);
	ck_assert_uint_eq(atomic_load(&b->reasm_used), 0); /* all given back */
	free(big);
	tsm_ctx_close(b);
	tsm_ctx_close(a);
}
END_TEST

static void dump_stat(void *arg, const char *name, uint64_t v)
{
	if (v)
		fprintf(stderr, "%s %s=%llu\n", (const char *)arg, name,
		        (unsigned long long)v);
}

struct steady_reader {
	tsm_sub *s;
	int n, got, order_errors;
};

/* Reads steadily, a little slower than the writer can write. */
static void *steady_read(void *arg)
{
	struct steady_reader *r = arg;
	tsm_msg *m;
	while (r->got < r->n && tsm_sub_recv(r->s, &m, 2 * TSM_SEC) == TSM_OK) {
		uint32_t v;
		memcpy(&v, tsm_msg_data(m), 4);
		r->order_errors += v != (uint32_t)r->got;
		r->got++;
		tsm_msg_free(m);
		usleep(200); /* far slower than the writer */
	}
	return NULL;
}

START_TEST(backpressure_at_the_limit_is_not_lagging)
{
	/* A publisher that keeps a small session queue at its limit for
	 * much longer than block_timeout, behind a reader that keeps making
	 * progress, is ordinary back-pressure: nothing may be dropped. */
	char url[128];
	tsm_ctx_params p;
	tsm_ctx *a, *b;
	tsm_ctx_params_init(&p);
	p.insecure = 1;
	p.log_level = TSM_LOG_ERROR;
	p.session_queue_bytes = 32 * 1024;
	ck_assert_int_eq(tsm_ctx_open(&a, &p), TSM_OK);
	ck_assert_int_eq(tsm_ctx_listen(a, "tcp://127.0.0.1:0", url, sizeof(url)), TSM_OK);
	b = open_ctx("reader");
	struct steady_reader r = {.n = 3000};
	tsm_qos rq;
	tsm_qos_init(&rq);
	rq.queue_depth = 16; /* back-pressure reaches the publisher */
	ck_assert_int_eq(tsm_sub_open(&r.s, b, "bp", &rq), TSM_OK);
	ck_assert_int_eq(tsm_ctx_dial(b, url), TSM_OK);
	tsm_qos q;
	tsm_qos_init(&q);
	q.block_timeout = 300 * TSM_MSEC; /* the run is congested for longer */
	tsm_pub *pb;
	ck_assert_int_eq(tsm_pub_open(&pb, a, "bp", &q), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(pb, 1, 5 * TSM_SEC), TSM_OK);
	pthread_t th;
	pthread_create(&th, NULL, steady_read, &r);
	static uint8_t kb[4096];
	for (uint32_t i = 0; i < (uint32_t)r.n; i++) {
		memcpy(kb, &i, 4);
		ck_assert_int_eq(tsm_publish(pb, kb, sizeof(kb), NULL), TSM_OK);
	}
	pthread_join(th, NULL);
	if (r.got != r.n) {
		tsm_stats_foreach(a, dump_stat, "pub");
		tsm_stats_foreach(b, dump_stat, "sub");
	}
	ck_assert_int_eq(r.got, r.n);
	ck_assert_int_eq(r.order_errors, 0);
	ck_assert_uint_eq(stat(a, "drop.queue_full"), 0);
	tsm_ctx_close(b);
	tsm_ctx_close(a);
}
END_TEST

START_TEST(full_local_subscriber_lags_instead_of_stalling)
{
	tsm_ctx *c = open_ctx("lag");
	tsm_qos q;
	tsm_qos_init(&q);
	q.queue_depth = 2;
	q.block_timeout = 50 * TSM_MSEC;
	tsm_sub *stuck, *ok;
	tsm_pub *pb;
	ck_assert_int_eq(tsm_sub_open(&stuck, c, "l", &q), TSM_OK);
	ck_assert_int_eq(tsm_sub_open(&ok, c, "l", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&pb, c, "l", &q), TSM_OK);
	for (uint32_t i = 0; i < 200; i++) /* at most one 50 ms wait in all */
		ck_assert_int_eq(tsm_publish(pb, &i, 4, NULL), TSM_OK);
	for (uint32_t i = 0; i < 200; i++)
		ck_assert_uint_eq(recv_u32(ok), i); /* the other lost nothing */
	ck_assert_uint_eq(stat(c, "drop.queue_full"), 198);
	tsm_ctx_close(c);
}
END_TEST

static void count_cb(void *arg, tsm_msg *m)
{
	atomic_fetch_add((atomic_int *)arg, 1);
	tsm_msg_free(m);
}

START_TEST(many_callback_subscribers_all_served)
{
	static atomic_int calls;
	tsm_ctx *c = open_ctx("cbs");
	for (int i = 0; i < 300; i++) {
		tsm_sub *s;
		ck_assert_int_eq(tsm_sub_open(&s, c, "cb", NULL), TSM_OK);
		ck_assert_int_eq(tsm_sub_set_callback(s, count_cb, &calls), TSM_OK);
	}
	tsm_pub *pb;
	ck_assert_int_eq(tsm_pub_open(&pb, c, "cb", NULL), TSM_OK);
	uint32_t v = 1;
	ck_assert_int_eq(tsm_publish(pb, &v, 4, NULL), TSM_OK);
	for (int i = 0; i < 300 && atomic_load(&calls) < 300; i++)
		usleep(10 * 1000);
	ck_assert_int_eq(atomic_load(&calls), 300);
	tsm_ctx_close(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("session");
	TCase *w = tcase_create("wire-peer");
	tcase_set_timeout(w, 30);
	tcase_add_test(w, garbage_closes_and_listener_keeps_serving);
	tcase_add_test(w, bad_headers_refused);
	tcase_add_test(w, data_before_handshake_is_out_of_state);
	tcase_add_test(w, secure_peer_gets_reject_with_reason);
	tcase_add_test(w, silent_peer_times_out);
	tcase_add_test(w, refusals_at_open);
	tcase_add_test(w, preauth_budget_holds);
	suite_add_tcase(s, w);
	TCase *d = tcase_create("delivery");
	tcase_set_timeout(d, 30);
	tcase_add_test(d, lane_order_and_priority);
	tcase_add_test(d, large_message_fragments_intact);
	tcase_add_test(d, drop_policies);
	tcase_add_test(d, expired_in_queue_never_returned);
	tcase_add_test(d, callback_delivery);
	tcase_add_test(d, edf_within_lane);
	tcase_add_test(d, urgent_overtakes_bulk);
	tcase_add_test(d, outcomes_and_topic_stats);
	tcase_add_test(d, topic_stats_queued_when_read);
	tcase_add_test(d, abort_discards_partial_message);
	tcase_add_test(d, stalled_peer_does_not_stop_others);
	tcase_add_test(d, stalled_subscriber_does_not_stop_its_neighbour);
	tcase_add_test(d, expired_in_send_queue_while_stalled);
	tcase_add_test(d, expired_large_message_never_delivered);
	tcase_add_test(d, block_policy_waits_for_room);
	tcase_add_test(d, dscp_marks_the_connection);
	tcase_add_test(d, reassembly_budget_bounds_memory);
	tcase_add_test(d, backpressure_at_the_limit_is_not_lagging);
	tcase_add_test(d, full_local_subscriber_lags_instead_of_stalling);
	tcase_add_test(d, many_callback_subscribers_all_served);
	suite_add_tcase(s, d);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
