/*
 * bench/soak.c - tsm_soak: one node of the soak run (bench/soak.sh,
 * issue 9 item 6).
 *
 *   tsm_soak pub --listen URL [--listen URL]... CREDS [options]
 *   tsm_soak sub --connect URL --name NAME CREDS [options]
 *   CREDS = --cert F --key F --trust SPEC --policy F
 *
 * pub publishes a mixed workload until SIGTERM: small urgent messages
 * (soak/urgent, priority 0, 256 B, deadline 50 ms) and large bulk ones
 * (soak/bulk, priority 6, 256 KiB: fragmented, deadline 3 s), paced.
 * Every payload carries its kind, the publisher's stream id, a sequence
 * number per kind, the publish time (CLOCK_MONOTONIC: one host) and an
 * FNV-1a checksum of the filler. sub receives every soak/ topic and checks every
 * message: checksum (corrupt), sequence per stream and kind, which must
 * only increase (a repeat is a duplicate, a step back an order error; a
 * gap is a counted loss and allowed), and measures publish-to-receive
 * latency per kind.
 *
 * Every --interval-ms both print one line on stdout:
 *   soak-stat role=R name=N t=S k=v ...
 * with their counters (delivered, dup, corrupt, order, gaps, the p99
 * latency of that interval per kind, and the context's drop.*, security.*,
 * session counters). bench/soak.sh samples RSS and descriptors itself.
 *
 * Key updates: --rekey-frames F lowers the AEAD usage limit to F frames
 * per key (the test hook tsm__aead_set_limits, security/aead.h), so that
 * every lane ratchets its key many times during the run. Credentials are
 * re-read every --reload-ms (bench/soak.sh rotates the files).
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tsm/tsm.h>

#include "security/aead.h"

#define MAGIC 0x4b414f53u /* "SOAK" */
#define HDR 40u

static volatile sig_atomic_t g_stop;
static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

struct opts {
	const char *role, *name, *cert, *key, *trust, *policy;
	const char *listen[8], *connect[8];
	int nlisten, nconnect;
	long interval_ms, reload_ms, rekey_frames, session_queue_mb;
	long urgent_rate, bulk_rate, bulk_size;
};

/* ---- payload ----------------------------------------------------------- */

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static uint64_t fnv(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* layout: magic u32, kind u8, pad[3], stream u32, pad u32, seq u64,
 * t_pub u64, checksum u64 (of bytes HDR..len) */
static void build(uint8_t *b, size_t len, uint8_t kind, uint32_t stream,
                  uint64_t seq)
{
	uint64_t x = seq * 0x9e3779b97f4a7c15ull + kind;
	for (size_t i = HDR; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (uint8_t)x;
	}
	uint32_t m = MAGIC;
	memset(b, 0, HDR);
	memcpy(b, &m, 4);
	b[4] = kind;
	memcpy(b + 8, &stream, 4);
	put64(b + 16, seq);
	put64(b + 24, (uint64_t)tsm_now());
	put64(b + 32, fnv(b + HDR, len - HDR));
}

/* ---- counters ---------------------------------------------------------- */

static void print_ctx_stats(tsm_ctx *ctx)
{
	static const char *names[] = {
		"drop.deadline_expired", "drop.queue_full", "drop.peer_lost",
		"drop.closed", "drop.bad_metadata", "drop.unknown_topic",
		"security.rekeys", "security.reloads", "ctx.sessions",
		"session.established", "session.closed", "reason.peer_lost",
		"reason.aead_fail", "reason.replay", "reason.handshake_timeout",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		uint64_t v = 0;
		tsm_stats_get(ctx, names[i], &v);
		printf(" %s=%" PRIu64, names[i], v);
	}
}

/* ---- pub ----------------------------------------------------------------- */

static int run_pub(const struct opts *o, tsm_ctx *ctx)
{
	tsm_pub *pu, *pb;
	tsm_qos q;
	tsm_qos_init(&q);
	q.priority = 0;
	q.deadline_budget = 50 * TSM_MSEC;
	if (tsm_pub_open(&pu, ctx, "soak/urgent", &q))
		return 1;
	q.priority = 6;
	q.deadline_budget = 3 * TSM_SEC;
	if (tsm_pub_open(&pb, ctx, "soak/bulk", &q))
		return 1;
	uint8_t *ub = malloc(256), *bb = malloc((size_t)o->bulk_size);
	uint32_t stream = (uint32_t)getpid();
	uint64_t useq = 0, bseq = 0, uerr = 0, berr = 0;
	tsm_time t0 = tsm_now(), next_stat = t0 + o->interval_ms * TSM_MSEC;
	while (!g_stop) {
		tsm_time now = tsm_now();
		double el = (double)(now - t0) / 1e9;
		while (!g_stop && (double)useq < el * (double)o->urgent_rate) {
			build(ub, 256, 0, stream, useq++);
			uerr += tsm_publish(pu, ub, 256, NULL) != TSM_OK;
		}
		while (!g_stop && (double)bseq < el * (double)o->bulk_rate) {
			build(bb, (size_t)o->bulk_size, 1, stream, bseq++);
			berr += tsm_publish(pb, bb, (size_t)o->bulk_size, NULL) != TSM_OK;
		}
		if (now >= next_stat) {
			next_stat += o->interval_ms * TSM_MSEC;
			printf("soak-stat role=pub name=%s t=%.1f urgent_published=%" PRIu64
			       " bulk_published=%" PRIu64 " publish_errors=%" PRIu64,
			       o->name, el, useq, bseq, uerr + berr);
			print_ctx_stats(ctx);
			putchar('\n');
			fflush(stdout);
		}
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	tsm_pub_close(pu);
	tsm_pub_close(pb);
	free(ub);
	free(bb);
	return 0;
}

/* ---- sub ----------------------------------------------------------------- */

struct track {
	uint32_t stream;
	uint64_t next[2];
	bool any[2];
};

struct lat {
	uint64_t *v;
	size_t n, cap;
};

static void lat_add(struct lat *l, uint64_t ns)
{
	if (l->n == l->cap) {
		size_t c = l->cap ? l->cap * 2 : 4096;
		if (c > 1u << 20)
			return; /* enough samples for one interval */
		uint64_t *v = realloc(l->v, c * sizeof(*v));
		if (!v)
			return;
		l->v = v;
		l->cap = c;
	}
	l->v[l->n++] = ns;
}

static int cmp64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double lat_p99_ms(struct lat *l)
{
	if (!l->n)
		return 0;
	qsort(l->v, l->n, sizeof(uint64_t), cmp64);
	double r = (double)l->v[(l->n * 99) / 100 < l->n ? (l->n * 99) / 100 : l->n - 1] / 1e6;
	l->n = 0;
	return r;
}

static int run_sub(const struct opts *o, tsm_ctx *ctx)
{
	tsm_sub *s;
	if (tsm_sub_open(&s, ctx, "soak/**", NULL))
		return 1;
	struct track tr[64];
	size_t ntr = 0;
	uint64_t got[2] = {0}, dup = 0, corrupt = 0, order = 0, gaps = 0;
	struct lat lat[2] = {{0}};
	tsm_time t0 = tsm_now(), next_stat = t0 + o->interval_ms * TSM_MSEC;
	while (!g_stop) {
		tsm_msg *m;
		tsm_err e = tsm_sub_recv(s, &m, 50 * TSM_MSEC);
		tsm_time now = tsm_now();
		if (e == TSM_OK) {
			const uint8_t *b = tsm_msg_data(m);
			size_t len = tsm_msg_size(m);
			uint32_t magic = 0, stream;
			if (len >= HDR)
				memcpy(&magic, b, 4);
			if (magic != MAGIC || b[4] > 1 || get64(b + 32) != fnv(b + HDR, len - HDR)) {
				corrupt++;
			} else {
				int k = b[4];
				uint64_t seq = get64(b + 16);
				memcpy(&stream, b + 8, 4);
				struct track *t = NULL;
				for (size_t i = 0; i < ntr; i++)
					if (tr[i].stream == stream)
						t = &tr[i];
				if (!t && ntr < 64) {
					t = &tr[ntr++];
					memset(t, 0, sizeof(*t));
					t->stream = stream;
				}
				if (t && t->any[k] && seq < t->next[k]) {
					if (seq + 1 == t->next[k])
						dup++;
					else
						order++;
				} else if (t) {
					gaps += t->any[k] ? seq - t->next[k] : 0;
					t->next[k] = seq + 1;
					t->any[k] = true;
				}
				got[k]++;
				lat_add(&lat[k], (uint64_t)(now - (tsm_time)get64(b + 24)));
			}
			tsm_msg_free(m);
		}
		if (now >= next_stat) {
			next_stat += o->interval_ms * TSM_MSEC;
			printf("soak-stat role=sub name=%s t=%.1f delivered=%" PRIu64
			       " urgent=%" PRIu64 " bulk=%" PRIu64 " dup=%" PRIu64
			       " corrupt=%" PRIu64 " order=%" PRIu64 " gaps=%" PRIu64
			       " p99_urgent_ms=%.3f p99_bulk_ms=%.3f",
			       o->name, (double)(now - t0) / 1e9, got[0] + got[1], got[0],
			       got[1], dup, corrupt, order, gaps, lat_p99_ms(&lat[0]),
			       lat_p99_ms(&lat[1]));
			print_ctx_stats(ctx);
			putchar('\n');
			fflush(stdout);
		}
	}
	tsm_sub_close(s);
	free(lat[0].v);
	free(lat[1].v);
	return 0;
}

/* ---- main ---------------------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr, "usage: tsm_soak pub|sub --cert F --key F --trust SPEC "
	        "--policy F (--listen URL | --connect URL)... [--name N] "
	        "[--interval-ms MS] [--reload-ms MS] [--rekey-frames N] "
	        "[--urgent-rate R] [--bulk-rate R] [--bulk-size B] "
	        "[--session-queue-mb M]\n");
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"cert", 1, NULL, 'c'}, {"key", 1, NULL, 'k'}, {"trust", 1, NULL, 't'},
		{"policy", 1, NULL, 'p'}, {"listen", 1, NULL, 'l'},
		{"connect", 1, NULL, 'C'}, {"name", 1, NULL, 'n'},
		{"interval-ms", 1, NULL, 'i'}, {"reload-ms", 1, NULL, 'r'},
		{"rekey-frames", 1, NULL, 'K'}, {"urgent-rate", 1, NULL, 'u'},
		{"bulk-rate", 1, NULL, 'b'}, {"bulk-size", 1, NULL, 's'},
		{"session-queue-mb", 1, NULL, 'q'}, {NULL, 0, NULL, 0}};
	struct opts o = {.name = "soak", .interval_ms = 5000, .reload_ms = 500,
	                 .rekey_frames = 1000, .urgent_rate = 200, .bulk_rate = 20,
	                 .bulk_size = 256 * 1024, .session_queue_mb = 16};
	int c;
	if (argc < 2)
		return usage();
	o.role = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'c': o.cert = optarg; break;
		case 'k': o.key = optarg; break;
		case 't': o.trust = optarg; break;
		case 'p': o.policy = optarg; break;
		case 'l': if (o.nlisten < 7) o.listen[o.nlisten++] = optarg; break;
		case 'C': if (o.nconnect < 7) o.connect[o.nconnect++] = optarg; break;
		case 'n': o.name = optarg; break;
		case 'i': o.interval_ms = atol(optarg); break;
		case 'r': o.reload_ms = atol(optarg); break;
		case 'K': o.rekey_frames = atol(optarg); break;
		case 'u': o.urgent_rate = atol(optarg); break;
		case 'b': o.bulk_rate = atol(optarg); break;
		case 's': o.bulk_size = atol(optarg); break;
		case 'q': o.session_queue_mb = atol(optarg); break;
		default: return usage();
		}
	}
	bool pub = !strcmp(o.role, "pub");
	if ((!pub && strcmp(o.role, "sub")) || !o.cert || !o.key || !o.trust ||
	    !o.policy || o.interval_ms <= 0 || o.bulk_size < (long)HDR)
		return usage();
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (o.rekey_frames > 0) /* test hook: many key updates per run */
		tsm__aead_set_limits((uint64_t)o.rekey_frames, 0);
	tsm_ctx_params p;
	tsm_ctx_params_init(&p);
	p.name = o.name;
	p.cert_file = o.cert;
	p.key_file = o.key;
	p.trust_file = o.trust;
	p.policy_file = o.policy;
	p.reload_interval = o.reload_ms * TSM_MSEC;
	p.session_queue_bytes = (uint64_t)o.session_queue_mb << 20;
	p.reconnect_max = TSM_SEC;
	p.log_level = TSM_LOG_WARN;
	for (int i = 0; i < o.nlisten; i++)
		p.listen[i] = o.listen[i];
	for (int i = 0; i < o.nconnect; i++)
		p.connect[i] = o.connect[i];
	tsm_ctx *ctx;
	tsm_err e = tsm_ctx_open(&ctx, &p);
	if (e) {
		fprintf(stderr, "tsm_soak %s: tsm_ctx_open: %s (%s)\n", o.role,
		        tsm_err_name(e), tsm_err_detail());
		return 1;
	}
	fprintf(stderr, "tsm_soak %s %s: started (engine %s)\n", o.role, o.name,
	        tsm_ctx_transport(ctx));
	int rc = pub ? run_pub(&o, ctx) : run_sub(&o, ctx);
	tsm_ctx_close(ctx);
	return rc;
}
