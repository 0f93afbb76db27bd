/*
 * bench/gossip_sim.c - discovery's gossip at 100 and 1 000 nodes in one
 * process (issue 7, docs/design/discovery.md "Scale").
 *
 * Every node runs the library's own gossip table and ADVERT codec
 * (brokerless/gossip.c, advert.c, linked from the internal archive); only
 * the sessions are simulated: a node has sessions with one of the seeds
 * and with `degree` random other nodes (the publishers and subscribers it
 * would have dialed), and each gossip round every node sends each session
 * what changed since the last round, at most 4 frames of 16 KiB, exactly
 * as disc.c does. Frames are decoded and merged one round later (one
 * gossip interval of delay).
 *
 * Reported per size: rounds (and seconds at the default 500 ms interval)
 * until every node knows every other from a cold start, rounds until one
 * changed record (a new topic on one node) has reached everyone, and the
 * steady-state ADVERT bytes each node sends per second with heartbeats
 * every 10 s (peer_timeout 30 s / 3).
 *
 * Usage: gossip_sim [N...] (default 100 1000). One line per N:
 *   gossip: nodes=N seeds=S degree=D converge_rounds=R converge_s=X
 *           change_rounds=R steady_bytes_per_node_s=B table_bytes_max=M
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerless/advert.h"
#include "brokerless/gossip.h"
#include "wire/frame.h"

#define SEEDS 3
#define DEGREE 4
#define FRAMES_PER_ROUND 4
#define ROUND_NS (500 * TSM_MSEC)
#define BEAT_ROUNDS 20 /* 10 s at 500 ms */

struct edge {
	unsigned to;
	uint64_t cursor;
};

struct frame {
	unsigned from, to;
	size_t len;
	uint8_t *b;
	struct frame *next;
};

struct node {
	tsm__gossip g;
	struct edge *e;
	unsigned ne, cap;
	char id[64], url[64], topic[64];
	uint64_t sent_bytes;
};

static struct node *nodes;
static unsigned N;
static struct frame *inflight, *arriving;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static bool linked(unsigned a, unsigned b)
{
	for (unsigned i = 0; i < nodes[a].ne; i++)
		if (nodes[a].e[i].to == b)
			return true;
	return false;
}

static void link_one(unsigned a, unsigned b)
{
	struct node *n = &nodes[a];
	if (n->ne == n->cap) {
		n->cap = n->cap ? 2 * n->cap : 8;
		n->e = realloc(n->e, n->cap * sizeof(*n->e));
	}
	n->e[n->ne++] = (struct edge){b, 0};
}

static void link_pair(unsigned a, unsigned b)
{
	if (a == b || linked(a, b))
		return;
	link_one(a, b);
	link_one(b, a);
}

static void set_self(unsigned i, tsm_time now, bool extra)
{
	struct node *n = &nodes[i];
	tsm__adv_rec r;
	memset(&r, 0, sizeof(r));
	r.id = (tsm__adv_str){n->id, (uint16_t)strlen(n->id)};
	r.nurls = 1;
	r.urls[0] = (tsm__adv_str){n->url, (uint16_t)strlen(n->url)};
	r.ntopics = extra ? 2 : 1;
	r.topics[0] = (tsm__adv_topic){i % 2 ? TSM_ADV_PUB : TSM_ADV_SUB,
	                               {n->topic, (uint16_t)strlen(n->topic)}};
	r.topics[1] = (tsm__adv_topic){TSM_ADV_PUB, {"sim/new", 7}};
	tsm__gossip_set_self(&n->g, &r, now);
}

static void setup(unsigned n)
{
	N = n;
	nodes = calloc(N, sizeof(*nodes));
	for (unsigned i = 0; i < N; i++) {
		struct node *x = &nodes[i];
		snprintf(x->id, sizeof(x->id), "spiffe://sim.test/node/%u", i);
		snprintf(x->url, sizeof(x->url), "tcp://10.%u.%u.%u:7000", i >> 16,
		         (i >> 8) & 255, i & 255);
		snprintf(x->topic, sizeof(x->topic), "sim/t%u", i % 50);
		tsm__gossip_init(&x->g, i + 1, N + 1, 30 * TSM_SEC);
		set_self(i, 0, false);
	}
	for (unsigned i = SEEDS; i < N; i++) {
		link_pair(i, rnd(SEEDS));
		for (unsigned k = 0; k < DEGREE / 2; k++)
			link_pair(i, SEEDS + rnd(N - SEEDS));
	}
	for (unsigned s = 1; s < SEEDS; s++)
		link_pair(0, s); /* seeds know each other */
}

static void send_round(void)
{
	static uint8_t buf[TSM_WIRE_ADVERT_MAX];
	for (unsigned i = 0; i < N; i++) {
		struct node *x = &nodes[i];
		for (unsigned k = 0; k < x->ne; k++) {
			struct edge *e = &x->e[k];
			for (int f = 0; f < FRAMES_PER_ROUND; f++) {
				tsm__wbuf w;
				tsm__wbuf_init(&w, buf, sizeof(buf));
				tsm__adv_begin(&w);
				if (!tsm__gossip_collect(&x->g, &e->cursor, e->to + 1, NULL,
				                         NULL, &w))
					break;
				struct frame *fr = malloc(sizeof(*fr));
				fr->from = i;
				fr->to = e->to;
				fr->len = w.len;
				fr->b = malloc(w.len);
				memcpy(fr->b, buf, w.len);
				fr->next = inflight;
				inflight = fr;
				/* 16 bytes of CTRL header, 32 of frame header, 16 of tag */
				x->sent_bytes += w.len + 16 + 32 + 16;
			}
		}
	}
}

struct rx {
	struct node *to;
	unsigned from;
	tsm_time now;
};

static bool on_rec(void *arg, const tsm__adv_rec *r)
{
	struct rx *x = arg;
	tsm__gossip_merge(&x->to->g, r, x->from + 1, x->now, NULL);
	return true;
}

static void receive_round(tsm_time now)
{
	struct frame *f = arriving;
	while (f) {
		struct frame *next = f->next;
		struct rx x = {&nodes[f->to], f->from, now};
		if (tsm__adv_decode(f->b, f->len, on_rec, &x) != TSM_OK) {
			fprintf(stderr, "gossip_sim: a frame did not decode\n");
			exit(1);
		}
		free(f->b);
		free(f);
		f = next;
	}
	arriving = inflight;
	inflight = NULL;
}

static void round_once(unsigned r)
{
	tsm_time now = (tsm_time)r * ROUND_NS;
	for (unsigned i = 0; i < N; i++)
		if (r % BEAT_ROUNDS == i % BEAT_ROUNDS && r)
			tsm__gossip_heartbeat(&nodes[i].g, now);
	send_round();
	receive_round(now);
}

static bool all_know_all(void)
{
	for (unsigned i = 0; i < N; i++)
		if (nodes[i].g.n < N)
			return false;
	return true;
}

static bool all_know_change(unsigned who)
{
	for (unsigned i = 0; i < N; i++) {
		tsm__gnode *g = tsm__gossip_find(&nodes[i].g, who + 1);
		if (!g || g->ntopics != 2)
			return false;
	}
	return true;
}

static void run(unsigned n)
{
	unsigned r = 0, converge, change;
	setup(n);
	while (!all_know_all() && r < 2000)
		round_once(r++);
	converge = r;
	unsigned who = N - 1;
	set_self(who, (tsm_time)r * ROUND_NS, true);
	unsigned start = r;
	while (!all_know_change(who) && r < start + 2000)
		round_once(r++);
	change = r - start;
	/* Steady state: one heartbeat period after things settled. */
	for (unsigned i = 0; i < 2 * BEAT_ROUNDS; i++)
		round_once(r++);
	uint64_t before = 0, after = 0;
	for (unsigned i = 0; i < N; i++)
		before += nodes[i].sent_bytes;
	for (unsigned i = 0; i < 2 * BEAT_ROUNDS; i++)
		round_once(r++);
	size_t table_max = 0;
	for (unsigned i = 0; i < N; i++) {
		after += nodes[i].sent_bytes;
		size_t t = 0;
		for (tsm__gnode *g = nodes[i].g.head; g; g = g->next)
			t += sizeof(*g) + strlen(g->id) + 64 + strlen(g->urls[0]) + 32;
		table_max = t > table_max ? t : table_max;
	}
	double secs = 2.0 * BEAT_ROUNDS * ROUND_NS / 1e9;
	printf("gossip: nodes=%u seeds=%d degree=%d converge_rounds=%u "
	       "converge_s=%.1f change_rounds=%u change_s=%.1f "
	       "steady_bytes_per_node_s=%.0f table_bytes_max=%zu\n",
	       N, SEEDS, DEGREE, converge, converge * ROUND_NS / 1e9, change,
	       change * ROUND_NS / 1e9, (double)(after - before) / N / secs,
	       table_max);
	for (unsigned i = 0; i < N; i++) {
		tsm__gossip_fini(&nodes[i].g);
		free(nodes[i].e);
	}
	free(nodes);
	receive_round(0);
	receive_round(0);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		run(100);
		run(1000);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		long n = strtol(argv[i], NULL, 10);
		if (n < SEEDS + 1 || n > 100000) {
			fprintf(stderr, "gossip_sim: N must be %d..100000\n", SEEDS + 1);
			return 2;
		}
		run((unsigned)n);
	}
	return 0;
}
