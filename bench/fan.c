/*
 * bench/fan.c - the fan-out driver shared by raw_fanout and tsm_fanout
 * (fan.h).
 */
#include "fan.h"

#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAN_MIN_SENT 100 /* a time budget still leaves this many */
#define FAN_POLL_NS ((int64_t)1000000) /* publisher waiting for subs */

static int fan_opt(int c, const char *arg, struct fan_opts *o)
{
	char *end;

	switch (c) {
	case FAN_OPT_SUBS: return bench_parse_u64(arg, &o->subs);
	case FAN_OPT_SIZE: return bench_parse_size(arg, &o->size);
	case FAN_OPT_COUNT: return bench_parse_u64(arg, &o->count);
	case FAN_OPT_RATE: return bench_parse_u64(arg, &o->rate);
	case FAN_OPT_ITERS: return bench_parse_u64(arg, &o->iters);
	case FAN_OPT_WARMUP: return bench_parse_u64(arg, &o->warmup);
	case FAN_OPT_STALLED: o->stalled = 1; return 0;
	case FAN_OPT_MAX_SECS:
		o->max_secs = strtod(arg, &end);
		return *end || o->max_secs < 0 ? -1 : 0;
	case FAN_OPT_NO_PIN: o->pin = 0; return 0;
	default: return 1;
	}
}

int fan_parse(int argc, char **argv, const struct option *lo,
              struct fan_opts *o, int (*extra)(int c, const char *arg))
{
	int c, bad = 0;

	*o = (struct fan_opts){.subs = 1, .size = 64, .count = 200000,
	                       .rate = 1000, .iters = 2000, .warmup = 200,
	                       .pin = 1};
	if (argc < 2)
		return -1;
	o->lat = strcmp(argv[1], "lat") == 0;
	if (!o->lat && strcmp(argv[1], "cost") != 0)
		return -1;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		int r = fan_opt(c, optarg, o);

		if (r == 1)
			r = extra ? extra(c, optarg) : -1;
		bad |= r != 0;
	}
	if (o->subs > FAN_MAX || o->size < FAN_HDR || o->size > UINT32_MAX ||
	    o->rate > 1000000 || (o->stalled && o->subs < 2)) {
		fprintf(stderr, "fanout: 1..%d subscribers (2 with --stalled), "
		        "size >= %d, rate <= 1000000\n", FAN_MAX, FAN_HDR);
		bad = -1;
	}
	return bad || optind != argc ? -1 : 0;
}

struct fan_shared *fan_shared_map(const struct fan_opts *o)
{
	size_t n = o->lat ? o->subs * o->iters : 0;

	return bench_shm_map(sizeof(struct fan_shared) + n * sizeof(int64_t));
}

int fan_active(const struct fan_opts *o, int i)
{
	return !(o->stalled && i == 0);
}

static int fan_over(const struct fan_opts *o, int64_t start, uint64_t n)
{
	return o->max_secs > 0 && n >= FAN_MIN_SENT &&
	       (double)(bench_now_ns() - start) / 1e9 > o->max_secs;
}

/* Wait until every active subscriber has all, or is quiet too long. */
static int fan_wait_subs(const struct fan_opts *o, struct fan_shared *sh)
{
	uint64_t last = UINT64_MAX;
	int64_t since = bench_now_ns();

	for (;;) {
		uint64_t have = 0;
		int all = 1;

		for (int i = 0; i < (int)o->subs; i++) {
			if (!fan_active(o, i))
				continue;
			have += atomic_load(&sh->sub[i].rcvd);
			all &= fan_sub_done(sh, i) ||
			       atomic_load(&sh->sub[i].done) != 0;
		}
		if (all)
			return 0;
		if (have != last) {
			last = have;
			since = bench_now_ns();
		} else if (bench_now_ns() - since > FAN_QUIET_NS) {
			fprintf(stderr, "fanout: subscribers stopped receiving\n");
			return -1;
		}
		bench_sleep_until(bench_now_ns() + FAN_POLL_NS);
	}
}

int fan_run(const struct fan_opts *o, struct fan_shared *sh,
            fan_publish_fn fn, void *arg, struct fan_result *r)
{
	unsigned char *buf = calloc(1, o->size);
	uint64_t total = o->lat ? o->warmup + o->iters : o->count;
	int64_t period = o->lat ? 1000000000 / (int64_t)o->rate : 0;
	int64_t cpu0 = bench_cpu_ns();
	int rc = 0;

	memset(r, 0, sizeof(*r));
	if (!buf)
		return -1;
	r->t_start = bench_now_ns();
	for (uint64_t i = 0; i < total; i++) {
		if (o->lat)
			bench_sleep_until(r->t_start + (int64_t)i * period);
		if (fan_over(o, r->t_start, i)) {
			r->capped = 1;
			break;
		}
		bench_put_seq(buf, i);
		bench_put_seq(buf + 8, (uint64_t)bench_now_ns());
		if ((rc = fn(arg, buf, i)) < 0)
			break;
		r->sent++;
	}
	if (rc == 0)
		rc = fn(arg, NULL, r->sent);
	r->t_pub_end = bench_now_ns();
	atomic_store(&sh->sent, r->sent);
	atomic_store(&sh->stop, 1);
	if (rc == 0)
		rc = fan_wait_subs(o, sh);
	r->cpu_ns = bench_cpu_ns() - cpu0;
	free(buf);
	return rc;
}

void fan_sub_check(const struct fan_opts *o, struct fan_shared *sh, int i,
                   const void *data, size_t len, int64_t now)
{
	struct fan_sub *s = &sh->sub[i];
	uint64_t next = atomic_load(&s->rcvd) + atomic_load(&s->gaps);
	uint64_t seq = len >= FAN_HDR ? bench_get_seq(data) : 0;

	if (len != o->size || seq < next) {
		if (atomic_fetch_add(&s->bad, 1) == 0)
			fprintf(stderr, "fanout sub %d: %zu B (want %zu), seq "
			        "%llu (want >= %llu)\n", i, len, o->size,
			        (unsigned long long)seq,
			        (unsigned long long)next);
		return;
	}
	if (seq > next) {
		if (atomic_load(&s->gaps) == 0) /* the first; the rest counted */
			fprintf(stderr, "fanout sub %d: %llu..%llu missing\n", i,
			        (unsigned long long)next,
			        (unsigned long long)seq - 1);
		atomic_fetch_add(&s->gaps, seq - next);
	}
	if (o->lat && seq >= o->warmup && seq - o->warmup < o->iters) {
		int64_t t = (int64_t)bench_get_seq((const char *)data + 8);

		sh->samples[(uint64_t)i * o->iters + seq - o->warmup] =
		        now - t > 0 ? now - t : 1;
	}
	atomic_store(&s->t_end, now);
	atomic_fetch_add(&s->rcvd, 1);
}

int fan_sub_done(struct fan_shared *sh, int i)
{
	return atomic_load(&sh->stop) &&
	       atomic_load(&sh->sub[i].rcvd) + atomic_load(&sh->sub[i].gaps) >=
	               atomic_load(&sh->sent);
}

/* Collect subscriber i's samples (0 = never received) into out. */
static size_t fan_collect(const struct fan_opts *o, struct fan_shared *sh,
                          int i, int64_t *out)
{
	size_t n = 0;

	for (uint64_t k = 0; k < o->iters; k++)
		if (sh->samples[(uint64_t)i * o->iters + k] > 0)
			out[n++] = sh->samples[(uint64_t)i * o->iters + k];
	return n;
}

/* Pooled percentiles of subscribers 1..N-1 (0 alone when N is 1), and
 * the worst of their own p99s. */
static struct bench_lat fan_pooled(const struct fan_opts *o,
                                   struct fan_shared *sh, double *worst_p99,
                                   size_t *count)
{
	struct bench_lat l = {0, 0, 0, 0};
	int first = o->subs > 1 ? 1 : 0;
	int64_t *all = calloc(o->subs * o->iters + 1, sizeof(int64_t));
	int64_t *one = calloc(o->iters + 1, sizeof(int64_t));
	size_t n = 0;

	*worst_p99 = 0;
	*count = 0;
	if (!all || !one)
		goto out;
	for (int i = first; i < (int)o->subs; i++) {
		size_t k = fan_collect(o, sh, i, one);
		struct bench_lat li;

		memcpy(all + n, one, k * sizeof(int64_t));
		n += k;
		li = bench_lat_compute(one, k);
		if (li.p99 > *worst_p99)
			*worst_p99 = li.p99;
	}
	l = bench_lat_compute(all, n);
	*count = n;
out:
	free(all);
	free(one);
	return l;
}

int fan_report(const char *tag, const char *extra, const struct fan_opts *o,
               struct fan_shared *sh, const struct fan_result *r)
{
	uint64_t gaps = 0, bad = 0, drops = 0, min_rcvd = UINT64_MAX;
	int64_t t_end = r->t_pub_end;
	double secs, per_msg = r->sent ? (double)r->cpu_ns / (double)r->sent
	                               : 0;

	for (int i = 0; i < (int)o->subs; i++) {
		struct fan_sub *s = &sh->sub[i];

		drops += atomic_load(&s->drops);
		if (!fan_active(o, i))
			continue;
		gaps += atomic_load(&s->gaps);
		bad += atomic_load(&s->bad);
		if (atomic_load(&s->rcvd) < min_rcvd)
			min_rcvd = atomic_load(&s->rcvd);
		if (atomic_load(&s->t_end) > t_end)
			t_end = atomic_load(&s->t_end);
	}
	secs = (double)(t_end - r->t_start) / 1e9;
	printf("%s: case=fanout mode=%s%s%s subs=%llu stalled=%d size=%zu "
	       "sent=%llu received_min=%llu capped=%d gaps=%llu bad=%llu "
	       "drops=%llu drops_stalled=%llu cpu_ns_per_msg=%.0f "
	       "msgs_per_s=%.0f", tag, o->lat ? "lat" : "cost",
	       *extra ? " " : "", extra, (unsigned long long)o->subs,
	       o->stalled, o->size, (unsigned long long)r->sent,
	       (unsigned long long)min_rcvd, r->capped,
	       (unsigned long long)gaps, (unsigned long long)bad,
	       (unsigned long long)drops,
	       (unsigned long long)(o->stalled ? atomic_load(&sh->sub[0].drops)
	                                       : 0),
	       per_msg, secs > 0 ? (double)r->sent / secs : 0);
	if (o->lat) {
		double worst;
		size_t n;
		struct bench_lat l = fan_pooled(o, sh, &worst, &n);

		printf(" rate=%llu iters=%zu p50_us=%.2f p99_us=%.2f "
		       "p999_us=%.2f max_us=%.2f worst_sub_p99_us=%.2f",
		       (unsigned long long)o->rate, n, l.p50, l.p99, l.p999,
		       l.max, worst);
	}
	printf("\n");
	return gaps || bad || min_rcvd != r->sent ? -1 : 0;
}
