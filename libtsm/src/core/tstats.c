/*
 * core/tstats.c - per (topic, lane) statistics.
 *
 * Histograms are log-linear (HDR-style): values below 16 ns have their own
 * bucket, above that each power of two is split into 16 buckets, so any
 * value is known within 1/16 of itself, in 976 counters, with no
 * allocation per sample. Entries live in an open-addressing table keyed by
 * topic name and lane, bounded at TS_MAX (then summed under "*").
 */
#include <stdlib.h>
#include <string.h>

#include "core/tstats.h"

#define TS_MAX 4096u
#define HIST_N 976u

struct hist {
	uint64_t count, max;
	uint32_t b[HIST_N];
};

struct ts_ent {
	char *topic;
	uint8_t lane;
	uint64_t delivered, missed, qfull, other;
	uint64_t queued;    /* counted when read (ts_count_queued) */
	struct hist lat, local, slack;
};

struct tsm__tstats {
	pthread_mutex_t mu;
	pthread_mutex_t count_mu; /* one reader counts `queued` at a time */
	struct ts_ent **slots; /* open addressing, 2 x TS_MAX */
	uint32_t n;
	struct ts_ent *overflow;
};

static unsigned hist_idx(uint64_t v)
{
	if (v < 16)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	return (e - 3u) * 16u + (unsigned)((v >> (e - 4u)) & 15u);
}

static uint64_t hist_value(unsigned i)
{
	if (i < 16)
		return i;
	unsigned e = i / 16u + 3u;
	return ((uint64_t)(16u + i % 16u)) << (e - 4u);
}

static void hist_add(struct hist *h, int64_t v)
{
	uint64_t u = v < 0 ? 0 : (uint64_t)v;
	h->b[hist_idx(u)]++;
	h->count++;
	if (u > h->max)
		h->max = u;
}

static uint64_t hist_pct(const struct hist *h, double q)
{
	uint64_t want = (uint64_t)(q * (double)h->count + 0.5), seen = 0;
	if (want == 0)
		want = 1;
	for (unsigned i = 0; i < HIST_N; i++) {
		seen += h->b[i];
		if (seen >= want)
			return TSM_MIN(hist_value(i), h->max);
	}
	return h->max;
}

static void hist_summary(const struct hist *h, tsm_latency *out)
{
	memset(out, 0, sizeof(*out));
	if (!h->count)
		return;
	out->count = h->count;
	out->p50_ns = hist_pct(h, 0.50);
	out->p99_ns = hist_pct(h, 0.99);
	out->p999_ns = hist_pct(h, 0.999);
	out->max_ns = h->max;
}

static uint32_t ts_hash(const char *s, uint8_t lane)
{
	uint32_t h = 2166136261u ^ lane;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static struct ts_ent *ts_new(const char *topic, uint8_t lane)
{
	struct ts_ent *e = calloc(1, sizeof(*e));
	if (e && !(e->topic = strdup(topic))) {
		free(e);
		return NULL;
	}
	if (e)
		e->lane = lane;
	return e;
}

static struct tsm__tstats *ts_table(tsm_ctx *ctx)
{
	return ctx->tstats;
}

/* The entry for (topic, lane); NULL only when out of memory. Locked. */
static struct ts_ent *ts_get(struct tsm__tstats *t, const char *topic,
                             uint8_t lane)
{
	uint32_t cap = 2 * TS_MAX, i = ts_hash(topic, lane) % cap;
	for (; t->slots[i]; i = (i + 1) % cap)
		if (t->slots[i]->lane == lane && strcmp(t->slots[i]->topic, topic) == 0)
			return t->slots[i];
	if (t->n >= TS_MAX) {
		if (!t->overflow)
			t->overflow = ts_new("*", 0);
		return t->overflow;
	}
	t->slots[i] = ts_new(topic, lane);
	t->n += t->slots[i] != NULL;
	return t->slots[i];
}

tsm_err tsm__ts_init(tsm_ctx *ctx);
tsm_err tsm__ts_init(tsm_ctx *ctx)
{
	struct tsm__tstats *t = calloc(1, sizeof(*t));
	if (t && !(t->slots = calloc(2 * TS_MAX, sizeof(*t->slots)))) {
		free(t);
		t = NULL;
	}
	if (!t)
		return tsm__err_set(TSM_ENOMEM, "topic statistics");
	pthread_mutex_init(&t->mu, NULL);
	pthread_mutex_init(&t->count_mu, NULL);
	ctx->tstats = t;
	return TSM_OK;
}

void tsm__ts_free(tsm_ctx *ctx)
{
	struct tsm__tstats *t = ts_table(ctx);
	if (!t)
		return;
	for (uint32_t i = 0; i < 2 * TS_MAX; i++) {
		if (t->slots[i]) {
			free(t->slots[i]->topic);
			free(t->slots[i]);
		}
	}
	if (t->overflow) {
		free(t->overflow->topic);
		free(t->overflow);
	}
	free(t->slots);
	pthread_mutex_destroy(&t->mu);
	pthread_mutex_destroy(&t->count_mu);
	free(t);
	ctx->tstats = NULL;
}

void tsm__ts_delivered(tsm_ctx *ctx, const tsm_msg *m, tsm_time now)
{
	struct tsm__tstats *t = ts_table(ctx);
	pthread_mutex_lock(&t->mu);
	struct ts_ent *e = ts_get(t, m->topic->name, m->prio);
	if (e) {
		e->delivered++;
		if (m->sent_at)
			hist_add(&e->lat, now - m->sent_at);
		if (m->arrived)
			hist_add(&e->local, now - m->arrived);
		if (m->deadline != TSM_NEVER)
			hist_add(&e->slack, m->deadline - now);
	}
	pthread_mutex_unlock(&t->mu);
}


void tsm__outcome(tsm_ctx *ctx, const tsm__topic *topic, uint8_t lane,
                  uint64_t msg_id, tsm_err reason, tsm_where where)
{
	struct tsm__tstats *t = ts_table(ctx);
	pthread_mutex_lock(&t->mu);
	struct ts_ent *e = ts_get(t, topic->name, lane);
	if (e) {
		uint64_t *c = reason == TSM_ERR_DEADLINE_EXPIRED ? &e->missed
		              : reason == TSM_ERR_QUEUE_FULL    ? &e->qfull
		                                                : &e->other;
		(*c)++;
	}
	pthread_mutex_unlock(&t->mu);
	if (ctx->p.on_outcome) {
		tsm_outcome o = {sizeof(o), msg_id, topic->name, lane, reason, where};
		ctx->p.on_outcome(ctx->p.outcome_arg, &o);
	}
}

static void ts_report(const struct ts_ent *e, tsm_topic_stats_fn fn, void *arg)
{
	tsm_topic_stats s = {sizeof(s), e->topic, e->lane, e->delivered, e->missed,
	                     e->qfull, e->other, e->queued, {0}, {0}, {0}};
	hist_summary(&e->lat, &s.latency);
	hist_summary(&e->local, &s.local);
	hist_summary(&e->slack, &s.slack);
	fn(arg, &s);
}

static void ts_count_one(void *arg, const tsm_msg *m)
{
	struct tsm__tstats *t = arg;
	pthread_mutex_lock(&t->mu);
	struct ts_ent *e = ts_get(t, m->topic->name, m->prio);
	if (e)
		e->queued++;
	pthread_mutex_unlock(&t->mu);
}

/* `queued` of every entry, from the subscriber queues as they are now.
 * count_mu held. Lock order: a subscriber's mu, then t->mu (as drops do). */
static void ts_count_queued(tsm_ctx *ctx, struct tsm__tstats *t)
{
	pthread_mutex_lock(&t->mu);
	for (uint32_t i = 0; i < 2 * TS_MAX; i++)
		if (t->slots[i])
			t->slots[i]->queued = 0;
	if (t->overflow)
		t->overflow->queued = 0;
	pthread_mutex_unlock(&t->mu);
	tsm__subs_each_queued(ctx, ts_count_one, t);
}

TSM_API tsm_err tsm_stats_topics(tsm_ctx *ctx, tsm_topic_stats_fn fn, void *arg)
{
	if (!ctx || !fn)
		return tsm__err_set(TSM_EINVAL, "tsm_stats_topics: NULL argument");
	struct tsm__tstats *t = ts_table(ctx);
	pthread_mutex_lock(&t->count_mu);
	ts_count_queued(ctx, t);
	pthread_mutex_unlock(&t->count_mu);
	for (uint32_t i = 0; i <= 2 * TS_MAX; i++) {
		/* count_mu too: another reader's recount is never seen half done */
		pthread_mutex_lock(&t->count_mu);
		pthread_mutex_lock(&t->mu);
		struct ts_ent snap, *e = i < 2 * TS_MAX ? t->slots[i] : t->overflow;
		if (e)
			snap = *e; /* report without the locks held */
		pthread_mutex_unlock(&t->mu);
		pthread_mutex_unlock(&t->count_mu);
		if (e)
			ts_report(&snap, fn, arg);
	}
	return TSM_OK;
}

/* The context-wide counter of a drop reason (drop.*), if it has one. */
static void drop_count(tsm_ctx *ctx, tsm_err reason, uint64_t n)
{
	switch (reason) {
	case TSM_ERR_DEADLINE_EXPIRED:
		return tsm__stat_add(&ctx->stats, ST_DROP_DEADLINE, n);
	case TSM_ERR_QUEUE_FULL:
		return tsm__stat_add(&ctx->stats, ST_DROP_QUEUE_FULL, n);
	case TSM_ERR_PEER_LOST:
		return tsm__stat_add(&ctx->stats, ST_DROP_PEER_LOST, n);
	case TSM_ERR_BAD_METADATA:
		return tsm__stat_add(&ctx->stats, ST_DROP_BAD_METADATA, n);
	case TSM_ECLOSED:
		return tsm__stat_add(&ctx->stats, ST_DROP_CLOSED, n);
	default:
		return; /* security reasons are counted by tsm__audit */
	}
}

void tsm__drop_msg(tsm_ctx *ctx, const tsm_msg *m, tsm_err reason,
                   tsm_where where)
{
	drop_count(ctx, reason, 1);
	tsm__outcome(ctx, m->topic, m->prio, m->id, reason, where);
}

void tsm__drop_omsg(tsm_ctx *ctx, const tsm__omsg *m, tsm_err reason,
                    tsm_where where)
{
	drop_count(ctx, reason, 1);
	tsm__outcome(ctx, m->topic, m->prio, m->id, reason, where);
}
