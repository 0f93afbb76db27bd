/*
 * bench/mix.c - the urgent-behind-bulk driver shared by raw_prio and
 * tsm_prio (mix.h).
 */
#include "mix.h"

#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIX_MIN_SAMPLES 100 /* a time budget still leaves this many */
#define MIX_MAX_LOST 3 /* a run that lost this many stops: it failed */
#define MIX_MAX_GAP_LINES 5 /* B reports this many gaps, then counts */

static _Atomic unsigned mix_gap_lines; /* B's gap reports so far */

/* B: one line per gap, up to MIX_MAX_GAP_LINES per process. */
static void mix_gap(const char *what, uint64_t from, uint64_t to)
{
	unsigned n = atomic_fetch_add(&mix_gap_lines, 1);

	if (n < MIX_MAX_GAP_LINES)
		fprintf(stderr, "prio B: %s %llu..%llu missing\n", what,
		        (unsigned long long)from, (unsigned long long)to);
	else if (n == MIX_MAX_GAP_LINES)
		fprintf(stderr, "prio B: more gaps: counted, not shown\n");
}

void mix_opts_init(struct mix_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->urgent_size = 64;
	o->bulk_size = BENCH_MIB;
	o->rate = 1000;
	o->iters = 2000;
	o->warmup = 200;
	o->pin = 1;
	o->addr = "127.0.0.1";
}

int mix_opt(int c, const char *arg, struct mix_opts *o)
{
	char *end;

	switch (c) {
	case MIX_OPT_URGENT: return bench_parse_size(arg, &o->urgent_size);
	case MIX_OPT_BULK: return bench_parse_size(arg, &o->bulk_size);
	case MIX_OPT_RATE: return bench_parse_u64(arg, &o->rate);
	case MIX_OPT_ITERS: return bench_parse_u64(arg, &o->iters);
	case MIX_OPT_WARMUP: return bench_parse_u64(arg, &o->warmup);
	case MIX_OPT_MAX_SECS:
		o->max_secs = strtod(arg, &end);
		return *end || o->max_secs < 0 ? -1 : 0;
	case MIX_OPT_NO_PIN: o->pin = 0; return 0;
	case MIX_OPT_NO_BULK: o->no_bulk = 1; return 0;
	case MIX_OPT_NAIVE: o->naive = 1; return 0;
	case MIX_OPT_ADDR: o->addr = arg; return 0;
	case MIX_OPT_NETNS_B: o->netns_b = arg; return 0;
	default: return 1;
	}
}

int mix_opts_check(const struct mix_opts *o)
{
	if (o->urgent_size < MIX_HDR || o->bulk_size < MIX_HDR ||
	    o->urgent_size > UINT32_MAX || o->bulk_size > UINT32_MAX) {
		fprintf(stderr, "prio: sizes must be %d B .. 4 GiB\n", MIX_HDR);
		return -1;
	}
	if (o->rate > 1000000) {
		fprintf(stderr, "prio: --rate at most 1000000\n");
		return -1;
	}
	return 0;
}

/* 1 once the budget is spent: share of max_secs since start. */
static int mix_over(const struct mix_opts *o, int64_t start, double share)
{
	return o->max_secs > 0 &&
	       (double)(bench_now_ns() - start) / 1e9 > o->max_secs * share;
}

int mix_urgent_run(const struct mix_opts *o, struct mix_shared *sh,
                   mix_exchange_fn fn, void *arg, int64_t *samples,
                   struct mix_result *r)
{
	unsigned char *buf = calloc(1, o->urgent_size);
	int64_t period = 1000000000 / (int64_t)o->rate;
	int64_t start = bench_now_ns() + period;
	uint64_t warm = o->warmup, n = 0;
	int rc = 0;

	memset(r, 0, sizeof(*r));
	if (!buf)
		return -1;
	r->t0 = start; /* until the warm-up ends, so a failed run has a rate */
	r->bulk_b0 = atomic_load(&sh->bulk_bytes);
	for (uint64_t i = 0; i < warm + o->iters; i++) {
		int64_t t0, t1;

		/* Late ticks are not made up for: a slow exchange delays the
		 * next one (closed loop), as in a ping-pong. */
		bench_sleep_until(start + (int64_t)i * period);
		if (i < warm && mix_over(o, start, 0.2))
			warm = i; /* a slow mode gets a fifth to warm up */
		if (i >= warm && n >= MIX_MIN_SAMPLES && mix_over(o, start, 1.0))
			break;
		if (i == warm) {
			r->t0 = bench_now_ns();
			r->bulk_b0 = atomic_load(&sh->bulk_bytes);
		}
		t0 = bench_now_ns();
		bench_put_seq(buf, i);
		bench_put_seq(buf + 8, (uint64_t)t0);
		rc = fn(arg, buf, i, &r->stale);
		t1 = bench_now_ns();
		r->sent++;
		if (rc < 0)
			break;
		if (rc > 0) {
			fprintf(stderr, "prio A: urgent %llu: no echo within "
			        "%.1f s\n", (unsigned long long)i,
			        (double)MIX_ECHO_TIMEOUT_NS / 1e9);
			rc = 0;
			if (++r->lost >= MIX_MAX_LOST)
				break;
			continue;
		}
		if (i >= warm)
			samples[n++] = t1 - t0;
	}
	r->t1 = bench_now_ns();
	r->bulk_b1 = atomic_load(&sh->bulk_bytes);
	r->samples = n;
	r->capped = n < o->iters;
	free(buf);
	return rc < 0 ? -1 : 0;
}

void mix_b_urgent(struct mix_shared *sh, const void *data, size_t len,
                  size_t want)
{
	uint64_t next = atomic_load(&sh->urgent_rcvd) +
	                atomic_load(&sh->urgent_gaps);
	uint64_t seq = len >= 8 ? bench_get_seq(data) : 0;

	if (len != want || seq < next) {
		fprintf(stderr, "prio B: urgent of %zu B (want %zu), seq %llu "
		        "(want >= %llu)\n", len, want, (unsigned long long)seq,
		        (unsigned long long)next);
		atomic_store(&sh->bad, 1);
		return;
	}
	if (seq > next) {
		mix_gap("urgent", next, seq - 1);
		atomic_fetch_add(&sh->urgent_gaps, seq - next);
	}
	atomic_fetch_add(&sh->urgent_rcvd, 1);
}

void mix_b_bulk(struct mix_shared *sh, const void *data, size_t len,
                size_t want)
{
	uint64_t next = atomic_load(&sh->bulk_rcvd) +
	                atomic_load(&sh->bulk_gaps);
	uint64_t seq = len >= 8 ? bench_get_seq(data) : 0;

	if (len != want || seq < next) {
		fprintf(stderr, "prio B: bulk of %zu B (want %zu), seq %llu "
		        "(want >= %llu)\n", len, want, (unsigned long long)seq,
		        (unsigned long long)next);
		atomic_store(&sh->bad, 1);
		return;
	}
	if (seq > next) {
		mix_gap("bulk", next, seq - 1);
		atomic_fetch_add(&sh->bulk_gaps, seq - next);
	}
	atomic_fetch_add(&sh->bulk_bytes, len);
	atomic_fetch_add(&sh->bulk_rcvd, 1);
}

int mix_b_done(struct mix_shared *sh)
{
	return atomic_load(&sh->stop) &&
	       atomic_load(&sh->urgent_rcvd) + atomic_load(&sh->urgent_gaps) >=
	               atomic_load(&sh->urgent_sent) &&
	       atomic_load(&sh->bulk_rcvd) + atomic_load(&sh->bulk_gaps) >=
	               atomic_load(&sh->bulk_sent);
}

int mix_failed(const struct mix_result *r, struct mix_shared *sh)
{
	return r->lost || atomic_load(&sh->bad) ||
	       atomic_load(&sh->urgent_gaps) ||
	       atomic_load(&sh->urgent_rcvd) != r->sent ||
	       atomic_load(&sh->bulk_gaps) ||
	       atomic_load(&sh->bulk_rcvd) != atomic_load(&sh->bulk_sent);
}

void mix_report(const char *tag, const char *mode, const char *extra,
                const struct mix_opts *o, int64_t *samples,
                const struct mix_result *r, struct mix_shared *sh)
{
	struct bench_lat l = bench_lat_compute(samples, r->samples);
	double secs = (double)(r->t1 - r->t0) / 1e9;
	double mbps = secs > 0 ? (double)(r->bulk_b1 - r->bulk_b0) / secs / 1e6
	                       : 0;

	printf("%s: case=prio mode=%s%s%s urgent_size=%zu bulk_size=%zu "
	       "rate=%llu iters=%llu capped=%d p50_us=%.2f p99_us=%.2f "
	       "p999_us=%.2f max_us=%.2f urgent_sent=%llu urgent_lost=%llu "
	       "urgent_gaps=%llu stale=%llu bulk_msgs=%llu bulk_gaps=%llu "
	       "bulk_mb_per_s=%.1f bad=%d\n", tag, mode, *extra ? " " : "", extra,
	       o->urgent_size, o->bulk_size, (unsigned long long)o->rate,
	       (unsigned long long)r->samples, r->capped, l.p50, l.p99, l.p999,
	       l.max, (unsigned long long)r->sent,
	       (unsigned long long)r->lost,
	       (unsigned long long)atomic_load(&sh->urgent_gaps),
	       (unsigned long long)r->stale,
	       (unsigned long long)atomic_load(&sh->bulk_rcvd),
	       (unsigned long long)atomic_load(&sh->bulk_gaps),
	       o->no_bulk ? 0.0 : mbps, atomic_load(&sh->bad));
}
