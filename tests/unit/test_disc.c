/*
 * test_disc.c - discovery (brokerless/, docs/wire.md §12,
 * docs/design/discovery.md): the ADVERT codec with every refusal, the
 * gossip table's merge, expiry, tombstones, delta cursors and filters,
 * and then three real contexts over TCP on loopback where a subscriber
 * that only knows a seed finds a publisher and gets its messages (and,
 * as the control, does not when discovery is off).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brokerless/advert.h"
#include "brokerless/beacon.h"
#include "brokerless/gossip.h"
#include "core/common.h"
#include "tsm/tsm.h"
#include "wire/frame.h"

/* ---- codec -------------------------------------------------------------- */

static tsm__adv_str str(const char *s)
{
	return (tsm__adv_str){s, (uint16_t)strlen(s)};
}

static tsm__adv_rec sample(uint64_t node, uint64_t version)
{
	tsm__adv_rec r;
	memset(&r, 0, sizeof(r));
	r.node_id = node;
	r.version = version;
	r.id = str("spiffe://td.test/pub");
	r.nurls = 2;
	r.urls[0] = str("tcp://10.0.0.2:7000");
	r.urls[1] = str("tcp://[::1]:7000");
	r.ntopics = 2;
	r.topics[0] = (tsm__adv_topic){TSM_ADV_PUB, str("infer/frames")};
	r.topics[1] = (tsm__adv_topic){TSM_ADV_SUB, str("ctl/**")};
	return r;
}

static size_t encode(uint8_t *buf, size_t cap, const tsm__adv_rec *r,
                     unsigned n)
{
	tsm__wbuf w;
	tsm__wbuf_init(&w, buf, cap);
	tsm__adv_begin(&w);
	for (unsigned i = 0; i < n; i++)
		ck_assert(tsm__adv_put(&w, &r[i]));
	ck_assert(!w.overflow);
	return w.len;
}

struct got {
	unsigned n;
	tsm__adv_rec last;
	char urls[4][128], topics[2][64], id[64];
};

static bool collect(void *arg, const tsm__adv_rec *r)
{
	struct got *g = arg;
	g->n++;
	g->last = *r;
	snprintf(g->id, sizeof(g->id), "%.*s", r->id.n, r->id.s);
	for (unsigned i = 0; i < r->nurls && i < 4; i++)
		snprintf(g->urls[i], 128, "%.*s", r->urls[i].n, r->urls[i].s);
	for (unsigned i = 0; i < r->ntopics && i < 2; i++)
		snprintf(g->topics[i], 64, "%.*s", r->topics[i].name.n,
		         r->topics[i].name.s);
	return true;
}

START_TEST(adv_round_trip)
{
	uint8_t buf[4096];
	tsm__adv_rec r[2] = {sample(7, 3), sample(9, 1)};
	r[1].flags = TSM_ADV_F_LEAVING;
	size_t n = encode(buf, sizeof(buf), r, 2);
	ck_assert_uint_eq(n, 4 + tsm__adv_rec_size(&r[0]) + tsm__adv_rec_size(&r[1]));
	struct got g = {0};
	ck_assert_int_eq(tsm__adv_decode(buf, n, collect, &g), TSM_OK);
	ck_assert_uint_eq(g.n, 2);
	ck_assert_uint_eq(g.last.node_id, 9);
	ck_assert_uint_eq(g.last.version, 1);
	ck_assert_uint_eq(g.last.flags, TSM_ADV_F_LEAVING);
	ck_assert_str_eq(g.id, "spiffe://td.test/pub");
	ck_assert_str_eq(g.urls[1], "tcp://[::1]:7000");
	ck_assert_str_eq(g.topics[0], "infer/frames");
	ck_assert_uint_eq(g.last.topics[1].kind, TSM_ADV_SUB);
	ck_assert_str_eq(g.topics[1], "ctl/**");
}
END_TEST

/* Decodes buf after mutate(buf) and expects err, with fn never called. */
static void refused(uint8_t *buf, size_t n, tsm_err err, const char *what)
{
	struct got g = {0};
	tsm__err_clear();
	tsm_err e = tsm__adv_decode(buf, n, collect, &g);
	ck_assert_msg(e == err, "%s: got %s (%s), want %s", what, tsm_err_name(e),
	              tsm_err_detail(), tsm_err_name(err));
	ck_assert_msg(*tsm_err_detail(), "%s: no detail", what);
	ck_assert_msg(g.n == 0, "%s: a record of a bad frame was used", what);
}

START_TEST(adv_refusals)
{
	uint8_t good[4096], b[4096];
	tsm__adv_rec r[2] = {sample(7, 3), sample(8, 3)};
	size_t n = encode(good, sizeof(good), r, 2);
	size_t r1 = 4 + tsm__adv_rec_size(&r[0]); /* second record's offset */
#define MUT(stmt, len, err, what)                                              \
	do {                                                                   \
		memcpy(b, good, n);                                            \
		stmt;                                                          \
		refused(b, len, err, what);                                    \
	} while (0)
	MUT(b[0] = 2, n, TSM_ERR_BAD_FIELD, "version");
	MUT(b[1] = 0, n, TSM_ERR_BAD_FIELD, "count 0");
	MUT(b[1] = TSM_ADV_MAX_RECORDS + 1, n, TSM_ERR_BAD_FIELD, "count > max");
	MUT(b[1] = 3, n, TSM_ERR_BAD_LENGTH, "count above the records");
	MUT(b[1] = 1, n, TSM_ERR_BAD_LENGTH, "trailing record");
	MUT(b[2] = 1, n, TSM_ERR_BAD_FIELD, "reserved");
	MUT(memset(b + r1, 0, 8), n, TSM_ERR_BAD_FIELD, "node id 0 (2nd record)");
	MUT(b[r1 + 16] = 0x80, n, TSM_ERR_BAD_FIELD, "unknown flag");
	MUT(b[r1 + 17] = 5, n, TSM_ERR_BAD_FIELD, "5 URLs");
	MUT(b[r1 + 18] = 65, n, TSM_ERR_BAD_FIELD, "65 topics");
	MUT(b[r1 + 20] = 0x09, n, TSM_ERR_BAD_FIELD, "id over 2048");
	MUT(b[r1 + 22] = 'S', n, TSM_ERR_BAD_FIELD, "id not a SPIFFE ID");
	size_t u0 = r1 + 22 + r[1].id.n; /* first URL's length byte */
	MUT(b[u0 + 5] = ' ', n, TSM_ERR_BAD_FIELD, "space in a URL");
	MUT(b[u0] = 0, n, TSM_ERR_BAD_FIELD, "empty URL");
	size_t t0 = u0 + 1 + r[1].urls[0].n + 1 + r[1].urls[1].n; /* topic kind */
	MUT(b[t0] = 3, n, TSM_ERR_BAD_FIELD, "topic kind 3");
	MUT(b[t0 + 3] = '*', n, TSM_ERR_BAD_TOPIC, "wildcard in a PUB topic");
	MUT(b[t0] = TSM_ADV_SUB; b[t0 + 3 + 5] = '/'; b[t0 + 3 + 6] = '/', n,
	    TSM_ERR_BAD_PATTERN, "empty segment in a SUB pattern");
	MUT(b[t0 + 1] = 0, n, TSM_ERR_BAD_LENGTH, "empty topic");
	/* Every truncation is refused, none crashes or reads beyond. */
	for (size_t k = 1; k < n; k++) {
		uint8_t *cut = malloc(k);
		memcpy(cut, good, k);
		struct got g = {0};
		ck_assert_msg(tsm__adv_decode(cut, k, collect, &g) != TSM_OK,
		              "truncated to %zu accepted", k);
		ck_assert_uint_eq(g.n, 0);
		free(cut);
	}
	refused(good, 0, TSM_ERR_BAD_LENGTH, "empty");
	refused(good, TSM_WIRE_ADVERT_MAX + 1, TSM_ERR_BAD_LENGTH, "over 16 KiB");
#undef MUT
}
END_TEST

START_TEST(adv_put_bounds)
{
	uint8_t buf[TSM_WIRE_ADVERT_MAX];
	tsm__wbuf w;
	tsm__adv_rec r = sample(1, 1);
	tsm__wbuf_init(&w, buf, sizeof(buf));
	tsm__adv_begin(&w);
	unsigned k = 0;
	while (tsm__adv_put(&w, &r))
		k++;
	ck_assert_uint_eq(k, TSM_ADV_MAX_RECORDS); /* the count caps first */
	tsm__wbuf_init(&w, buf, 4 + tsm__adv_rec_size(&r) + 5);
	tsm__adv_begin(&w);
	ck_assert(tsm__adv_put(&w, &r));
	size_t len = w.len;
	ck_assert(!tsm__adv_put(&w, &r)); /* no room: nothing written */
	ck_assert_uint_eq(w.len, len);
	ck_assert(!w.overflow);
}
END_TEST

START_TEST(beacon_codec)
{
	uint8_t b[TSM_BEACON_MAX + 8];
	char url[200];
	uint64_t id = 0;
	size_t n = tsm__beacon_encode(b, 42, "tcp://10.0.0.1:7000");
	ck_assert_uint_eq(n, 16 + 19);
	ck_assert(tsm__beacon_decode(b, n, &id, url, sizeof(url)));
	ck_assert_uint_eq(id, 42);
	ck_assert_str_eq(url, "tcp://10.0.0.1:7000");
	ck_assert(!tsm__beacon_decode(b, n - 1, &id, url, sizeof(url)));
	ck_assert(!tsm__beacon_decode(b, n, &id, url, 10)); /* no room */
	b[16 + 3] = ' ';
	ck_assert(!tsm__beacon_decode(b, n, &id, url, sizeof(url)));
	n = tsm__beacon_encode(b, 42, "tcp://10.0.0.1:7000");
	b[0] = 'X';
	ck_assert(!tsm__beacon_decode(b, n, &id, url, sizeof(url)));
	n = tsm__beacon_encode(b, 0, "tcp://10.0.0.1:7000");
	ck_assert(!tsm__beacon_decode(b, n, &id, url, sizeof(url))); /* node 0 */
	ck_assert_uint_eq(tsm__beacon_encode(b, 1, ""), 0);
	/* A bad group is a parameter error, before any socket. */
	tsm__beacon bc;
	struct in_addr any = {0};
	ck_assert_int_eq(tsm__beacon_open(&bc, "10.0.0.1:7677", any),
	                 TSM_ERR_BAD_PARAMS);
	ck_assert_int_eq(tsm__beacon_open(&bc, "239.1.1.1", any), TSM_ERR_BAD_PARAMS);
	ck_assert_int_eq(tsm__beacon_open(&bc, "239.1.1.1:0", any),
	                 TSM_ERR_BAD_PARAMS);
}
END_TEST

/* ---- gossip table ------------------------------------------------------- */

#define SEC TSM_SEC

static unsigned forgot;
static void on_forget(void *arg, tsm__gnode *n)
{
	(void)arg;
	(void)n;
	forgot++;
}

static tsm__adv_rec self_rec(void)
{
	tsm__adv_rec r = sample(0, 0);
	r.id = str("spiffe://td.test/self");
	r.ntopics = 1;
	r.topics[0] = (tsm__adv_topic){TSM_ADV_SUB, str("infer/**")};
	return r;
}

START_TEST(gossip_merge)
{
	tsm__gossip g;
	tsm__gnode *n;
	ck_assert_int_eq(tsm__gossip_init(&g, 1, 3, 10 * SEC), TSM_OK);
	tsm__adv_rec me = self_rec();
	ck_assert_int_eq(tsm__gossip_set_self(&g, &me, 0), TSM_OK);
	tsm__adv_rec r = sample(7, 5);
	ck_assert_int_eq(tsm__gossip_merge(&g, &r, 100, SEC, &n), TSM_G_NEW);
	ck_assert_str_eq(n->urls[0], "tcp://10.0.0.2:7000");
	ck_assert_uint_eq(n->from, 100);
	ck_assert_int_eq(tsm__gossip_merge(&g, &r, 100, SEC, &n), TSM_G_STALE);
	ck_assert_ptr_null(n);
	r.version = 4;
	ck_assert_int_eq(tsm__gossip_merge(&g, &r, 100, SEC, NULL), TSM_G_STALE);
	r.version = 6;
	r.ntopics = 1;
	ck_assert_int_eq(tsm__gossip_merge(&g, &r, 200, 2 * SEC, &n), TSM_G_UPDATED);
	ck_assert_uint_eq(n->ntopics, 1);
	ck_assert_uint_eq(n->from, 200);
	tsm__adv_rec mine = sample(1, 99); /* a claim about ourselves */
	ck_assert_int_eq(tsm__gossip_merge(&g, &mine, 100, SEC, NULL), TSM_G_SELF);
	tsm__adv_rec r8 = sample(8, 1), r9 = sample(9, 1);
	ck_assert_int_eq(tsm__gossip_merge(&g, &r8, 100, SEC, NULL), TSM_G_NEW);
	ck_assert_int_eq(tsm__gossip_merge(&g, &r9, 100, SEC, NULL), TSM_G_FULL);
	ck_assert_uint_eq(g.n, 3);
	ck_assert_uint_eq(g.refused_full, 1);
	/* Leaving: kept as a tombstone so an older copy cannot revive it. */
	r.version = 7;
	r.flags = TSM_ADV_F_LEAVING;
	ck_assert_int_eq(tsm__gossip_merge(&g, &r, 100, 3 * SEC, NULL), TSM_G_LEFT);
	r.version = 6;
	r.flags = 0;
	ck_assert_int_eq(tsm__gossip_merge(&g, &r, 100, 3 * SEC, NULL), TSM_G_STALE);
	/* Expiry: node 8 (heard at 1 s) goes at 11 s, node 7 (3 s) at 13 s,
	 * self never. */
	forgot = 0;
	tsm__gossip_expire(&g, 10 * SEC, on_forget, NULL);
	ck_assert_uint_eq(forgot, 0);
	tsm__gossip_expire(&g, 11 * SEC, on_forget, NULL);
	ck_assert_uint_eq(forgot, 1);
	ck_assert_ptr_null(tsm__gossip_find(&g, 8));
	ck_assert_ptr_nonnull(tsm__gossip_find(&g, 7));
	tsm__gossip_expire(&g, 60 * SEC, on_forget, NULL);
	ck_assert_uint_eq(forgot, 2);
	ck_assert_ptr_nonnull(tsm__gossip_find(&g, 1));
	ck_assert_uint_eq(g.n, 1);
	tsm__gossip_fini(&g);
}
END_TEST

static unsigned records_in(const uint8_t *buf, size_t len, uint64_t *ids)
{
	struct got g = {0};
	if (len <= 4)
		return 0;
	ck_assert_int_eq(tsm__adv_decode(buf, len, collect, &g), TSM_OK);
	(void)ids;
	return g.n;
}

static bool only_pub(void *arg, const tsm__gnode *n, unsigned i)
{
	(void)arg;
	return n->topics[i].kind == TSM_ADV_PUB;
}

static bool nothing(void *arg, const tsm__gnode *n, unsigned i)
{
	(void)arg;
	(void)n;
	(void)i;
	return false;
}

START_TEST(gossip_collect)
{
	tsm__gossip g;
	uint8_t buf[TSM_WIRE_ADVERT_MAX];
	tsm__wbuf w;
	uint64_t cur = 0;
	ck_assert_int_eq(tsm__gossip_init(&g, 1, 100, 10 * SEC), TSM_OK);
	tsm__adv_rec me = self_rec();
	tsm__gossip_set_self(&g, &me, 0);
	for (uint64_t id = 10; id < 15; id++) {
		tsm__adv_rec r = sample(id, 1);
		tsm__gossip_merge(&g, &r, id == 12 ? 50 : 60, 0, NULL);
	}
	/* To node 50: everything but what 50 told us (12); then nothing new. */
	tsm__wbuf_init(&w, buf, sizeof(buf));
	tsm__adv_begin(&w);
	ck_assert_uint_eq(tsm__gossip_collect(&g, &cur, 50, NULL, NULL, &w), 5);
	ck_assert_uint_eq(records_in(buf, w.len, NULL), 5);
	tsm__wbuf_init(&w, buf, sizeof(buf));
	tsm__adv_begin(&w);
	ck_assert_uint_eq(tsm__gossip_collect(&g, &cur, 50, NULL, NULL, &w), 0);
	/* A change is a delta: only the changed node goes. */
	tsm__adv_rec r = sample(13, 2);
	tsm__gossip_merge(&g, &r, 60, SEC, NULL);
	tsm__wbuf_init(&w, buf, sizeof(buf));
	tsm__adv_begin(&w);
	ck_assert_uint_eq(tsm__gossip_collect(&g, &cur, 50, NULL, NULL, &w), 1);
	/* The record about the receiver itself is never sent to it. */
	uint64_t c2 = 0;
	tsm__wbuf_init(&w, buf, sizeof(buf));
	tsm__adv_begin(&w);
	ck_assert_uint_eq(tsm__gossip_collect(&g, &c2, 10, NULL, NULL, &w), 5);
	/* Filters: with no topic visible only the self record goes (with its
	 * topics filtered too); with PUB only, the others keep one topic. */
	uint64_t c3 = 0;
	tsm__wbuf_init(&w, buf, sizeof(buf));
	tsm__adv_begin(&w);
	ck_assert_uint_eq(tsm__gossip_collect(&g, &c3, 99, nothing, NULL, &w), 1);
	struct got got = {0};
	ck_assert_int_eq(tsm__adv_decode(buf, w.len, collect, &got), TSM_OK);
	ck_assert_uint_eq(got.last.node_id, 1);
	ck_assert_uint_eq(got.last.flags, TSM_ADV_F_SELF);
	ck_assert_uint_eq(got.last.ntopics, 0);
	uint64_t c4 = 0;
	tsm__wbuf_init(&w, buf, sizeof(buf));
	tsm__adv_begin(&w);
	ck_assert_uint_eq(tsm__gossip_collect(&g, &c4, 99, only_pub, NULL, &w), 6);
	ck_assert_int_eq(tsm__adv_decode(buf, w.len, collect, &got), TSM_OK);
	ck_assert_uint_eq(got.last.ntopics, 1);
	ck_assert_uint_eq(got.last.topics[0].kind, TSM_ADV_PUB);
	/* A small frame takes what fits; the rest comes with the next call. */
	uint64_t c5 = 0;
	unsigned total = 0, calls = 0, put;
	do {
		tsm__wbuf_init(&w, buf, 4 + 2 * tsm__adv_rec_size(&r) + 10);
		tsm__adv_begin(&w);
		put = tsm__gossip_collect(&g, &c5, 99, NULL, NULL, &w);
		total += put;
		calls++;
	} while (put && calls < 20);
	ck_assert_uint_eq(total, 6);
	ck_assert_uint_ge(calls, 3);
	tsm__gossip_fini(&g);
}
END_TEST

/* ---- three contexts ----------------------------------------------------- */

static tsm_ctx *open_node(const char *name, const char *listen,
                          const char *seed, int discovery)
{
	tsm_ctx_params p;
	tsm_ctx *ctx = NULL;
	tsm_ctx_params_init(&p);
	p.name = name;
	p.insecure = 1;
	p.log_level = TSM_LOG_ERROR;
	p.discovery = discovery;
	p.gossip_interval = 50 * TSM_MSEC;
	if (listen)
		p.listen[0] = listen;
	if (seed)
		p.connect[0] = seed;
	tsm_err e = tsm_ctx_open(&ctx, &p);
	ck_assert_msg(e == TSM_OK, "%s: %s", name, tsm_err_detail());
	return ctx;
}

/* The bound URL of a context that listens on port 0. */
static void bound_url(tsm_ctx *ctx, char *out, size_t cap)
{
	tsm_peer_info v[4];
	size_t n = 0;
	ck_assert_int_eq(tsm_ctx_peers(ctx, v, 4, &n), TSM_OK);
	ck_assert_uint_ge(n, 1);
	ck_assert_str_eq(v[0].state, "self");
	snprintf(out, cap, "%s", v[0].url);
}

/* Publishes until the subscriber gets one, for up to 10 s. */
static bool exchange(tsm_ctx *pubctx, tsm_ctx *subctx, tsm_duration limit)
{
	tsm_pub *pub;
	tsm_sub *sub;
	tsm_msg *m = NULL;
	ck_assert_int_eq(tsm_sub_open(&sub, subctx, "disc/**", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&pub, pubctx, "disc/x", NULL), TSM_OK);
	tsm_time end = tsm_now() + limit;
	bool got = false;
	while (!got && tsm_now() < end) {
		tsm_publish(pub, "hello", 5, NULL);
		if (tsm_sub_recv(sub, &m, 50 * TSM_MSEC) == TSM_OK) {
			got = tsm_msg_size(m) == 5 && memcmp(tsm_msg_data(m), "hello", 5) == 0;
			tsm_msg_free(m);
		}
	}
	tsm_pub_close(pub);
	tsm_sub_close(sub);
	return got;
}

START_TEST(three_nodes)
{
	char seed_url[128], url[160];
	tsm_ctx *seed = open_node("seed", "tcp://127.0.0.1:0", NULL, 1);
	bound_url(seed, seed_url, sizeof(seed_url));
	ck_assert(strncmp(seed_url, "tcp://127.0.0.1:", 16) == 0);
	tsm_ctx *pub = open_node("pub", "tcp://127.0.0.1:0", seed_url, 1);
	tsm_ctx *sub = open_node("sub", NULL, seed_url, 1);
	ck_assert(exchange(pub, sub, 10 * TSM_SEC));
	/* The subscriber knows seed and publisher, connected to both. */
	tsm_peer_info v[8];
	size_t n = 0;
	ck_assert_int_eq(tsm_ctx_peers(sub, v, 8, &n), TSM_OK);
	ck_assert_uint_eq(n, 3);
	unsigned connected = 0;
	for (size_t i = 0; i < n; i++)
		connected += strcmp(v[i].state, "connected") == 0;
	ck_assert_uint_eq(connected, 2);
	uint64_t dials = 0;
	ck_assert_int_eq(tsm_stats_get(sub, "discovery.dials", &dials), TSM_OK);
	ck_assert_uint_ge(dials, 1);
	/* The publisher leaves: the subscriber is told at once. */
	tsm_ctx_close(pub);
	bool left = false;
	for (int i = 0; i < 100 && !left; i++) {
		ck_assert_int_eq(tsm_ctx_peers(sub, v, 8, &n), TSM_OK);
		for (size_t k = 0; k < n; k++)
			left = left || strcmp(v[k].state, "left") == 0;
		if (!left)
			nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
	}
	ck_assert_msg(left, "the subscriber did not see the publisher leave");
	ck_assert_int_eq(tsm_stats_get(sub, "discovery.left", &dials), TSM_OK);
	ck_assert_uint_ge(dials, 1);
	tsm_ctx_close(sub);
	tsm_ctx_close(seed);
	(void)url;
}
END_TEST

/* The control: without discovery, a seed does not lead to the publisher. */
START_TEST(discovery_off)
{
	char seed_url[128];
	tsm_ctx *seed = open_node("seed", "tcp://127.0.0.1:0", NULL, 0);
	bound_url(seed, seed_url, sizeof(seed_url));
	tsm_ctx *pub = open_node("pub", "tcp://127.0.0.1:0", seed_url, 0);
	tsm_ctx *sub = open_node("sub", NULL, seed_url, 0);
	ck_assert(!exchange(pub, sub, 2 * TSM_SEC));
	uint64_t sent = 1;
	ck_assert_int_eq(tsm_stats_get(sub, "discovery.adverts_sent", &sent), TSM_OK);
	ck_assert_uint_eq(sent, 0);
	tsm_ctx_close(sub);
	tsm_ctx_close(pub);
	tsm_ctx_close(seed);
}
END_TEST

static Suite *disc_suite(void)
{
	Suite *s = suite_create("disc");
	TCase *codec = tcase_create("advert");
	tcase_add_test(codec, adv_round_trip);
	tcase_add_test(codec, adv_refusals);
	tcase_add_test(codec, adv_put_bounds);
	tcase_add_test(codec, beacon_codec);
	suite_add_tcase(s, codec);
	TCase *table = tcase_create("gossip");
	tcase_add_test(table, gossip_merge);
	tcase_add_test(table, gossip_collect);
	suite_add_tcase(s, table);
	TCase *nodes = tcase_create("nodes");
	tcase_set_timeout(nodes, 30);
	tcase_add_test(nodes, three_nodes);
	tcase_add_test(nodes, discovery_off);
	suite_add_tcase(s, nodes);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(disc_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
