/*
 * core/api_sub.c - subscribers: bounded delivery queues with per-
 * subscriber back-pressure policy, blocking and busy-poll receive, and
 * the delivery thread that runs callbacks (never the progress thread).
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "core/tstats.h"
#include "pubsub/topic.h"
#include "session/session.h"

tsm_err tsm__ctx_cmd_wait(tsm_ctx *ctx, tsm__cmd *c);
tsm_err tsm__qos_resolve(const tsm_qos *in, tsm_qos *out);

bool tsm__sub_matches(const struct tsm_sub *s, const tsm__topic *t)
{
	return tsm__topic_match(s->pattern, s->plen, t->name, t->len);
}

static void sub_free(struct tsm_sub *s)
{
	for (uint32_t i = 0; i < s->count; i++)
		tsm_msg_free(s->ring[(s->head + i) % s->cap]);
	free(s->ring);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	pthread_cond_destroy(&s->space_cv);
	free(s);
}

void tsm__sub_unref(struct tsm_sub *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1)
		sub_free(s);
}

static void sub_append(struct tsm_sub *s, tsm_msg *m)
{
	s->ring[(s->head + s->count) % s->cap] = m;
	s->count++;
	atomic_store_explicit(&s->avail, s->count, memory_order_release);
}

static tsm_msg *sub_take(struct tsm_sub *s)
{
	tsm_msg *m = s->ring[s->head];
	s->head = (s->head + 1) % s->cap;
	s->count--;
	atomic_store_explicit(&s->avail, s->count, memory_order_release);
	return m;
}

/* latest_only keeps one message per topic: older ones of the same topic
 * are replaced (and counted), whatever the queue's fill level. */
static void sub_replace_topic(struct tsm_sub *s, const tsm_msg *m)
{
	uint32_t kept = 0, dropped = 0;
	for (uint32_t i = 0; i < s->count; i++) {
		tsm_msg *q = s->ring[(s->head + i) % s->cap];
		if (q->topic == m->topic || strcmp(q->topic->name, m->topic->name) == 0) {
			tsm__drop_msg(s->ctx, q, TSM_ERR_QUEUE_FULL, TSM_AT_SUB_QUEUE);
			tsm_msg_free(q);
			dropped++;
		} else {
			s->ring[(s->head + kept++) % s->cap] = q;
		}
	}
	s->count = kept;
	atomic_store_explicit(&s->avail, s->count, memory_order_release);
}

/* Applies a drop policy to a full queue; returns true if m went in. */
static bool sub_evict(struct tsm_sub *s, tsm_msg *m, tsm_ctx *ctx)
{
	tsm_backpressure bp = s->qos.backpressure;
	if (bp == TSM_BP_DROP_OLDEST || bp == TSM_BP_LATEST_ONLY) {
		tsm_msg *old = sub_take(s);
		tsm__drop_msg(ctx, old, TSM_ERR_QUEUE_FULL, TSM_AT_SUB_QUEUE);
		tsm_msg_free(old);
		sub_append(s, m);
		return true;
	}
	tsm__drop_msg(ctx, m, TSM_ERR_QUEUE_FULL, TSM_AT_SUB_QUEUE);
	tsm_msg_free(m);
	return false;
}

static bool sub_wait_space(struct tsm_sub *s, tsm_duration wait)
{
	tsm_time dl = tsm__deadline_after(tsm__now(), wait);
	while (s->count == s->cap && !s->closing) {
		struct timespec ts;
		tsm__abstime(dl, &ts);
		if (pthread_cond_timedwait(&s->space_cv, &s->mu, &ts) != 0 &&
		    tsm__now() >= dl)
			break;
	}
	return s->count < s->cap && !s->closing;
}

static void sub_signal(struct tsm_sub *s)
{
	if (s->waiters)
		pthread_cond_signal(&s->cv);
}

enum tsm__push tsm__sub_push(struct tsm_sub *s, tsm_msg *m, bool can_wait,
                             tsm_duration wait)
{
	tsm_ctx *ctx = s->ctx;
	enum tsm__push r = TSM_PUSH_OK;
	bool kick;
	pthread_mutex_lock(&s->mu);
	bool blocks = s->qos.backpressure == TSM_BP_BLOCK &&
	              s->qos.reliability == TSM_RELIABLE;
	if (s->qos.backpressure == TSM_BP_LATEST_ONLY && !s->closing)
		sub_replace_topic(s, m);
	if (s->closing) {
		tsm__drop_msg(ctx, m, TSM_ECLOSED, TSM_AT_SUB_QUEUE);
		tsm_msg_free(m);
		r = TSM_PUSH_DROPPED;
	} else if (s->count < s->cap ||
	           (blocks && can_wait && !s->lagging && sub_wait_space(s, wait))) {
		sub_append(s, m);
	} else if (blocks && can_wait && !s->lagging) {
		/* a local publisher waited block_timeout in vain: from now on
		 * this subscriber alone loses its overflow (design.md §5) */
		s->lagging = true;
		tsm__drop_msg(ctx, m, TSM_ERR_QUEUE_FULL, TSM_AT_SUB_QUEUE);
		tsm_msg_free(m);
		r = TSM_PUSH_DROPPED;
	} else if (blocks && !s->lagging) {
		r = TSM_PUSH_FULL; /* caller keeps m */
	} else if (blocks) { /* lagging: it alone loses (design.md §5) */
		tsm__drop_msg(ctx, m, TSM_ERR_QUEUE_FULL, TSM_AT_SUB_QUEUE);
		tsm_msg_free(m);
		r = TSM_PUSH_DROPPED;
	} else if (!sub_evict(s, m, ctx)) {
		r = TSM_PUSH_DROPPED;
	}
	if (r == TSM_PUSH_OK)
		sub_signal(s);
	kick = r == TSM_PUSH_OK && s->cb;
	pthread_mutex_unlock(&s->mu);
	if (kick) {
		pthread_mutex_lock(&ctx->mu);
		ctx->dlv_kick = true;
		pthread_cond_signal(&ctx->dlv_cv);
		pthread_mutex_unlock(&ctx->mu);
	}
	return r;
}

TSM_API tsm_err tsm_sub_open(tsm_sub **out, tsm_ctx *ctx, const char *pattern,
                             const tsm_qos *qos)
{
	if (!out || !ctx || !pattern)
		return tsm__err_set(TSM_EINVAL, "tsm_sub_open: NULL argument");
	*out = NULL;
	size_t len = strnlen(pattern, TSM_TOPIC_MAX + 1);
	tsm_err e = tsm__pattern_check(pattern, len);
	if (e)
		return e;
	if (atomic_load(&ctx->stopping))
		return tsm__err_set(TSM_ECLOSED, "tsm_sub_open: context is closing");
	struct tsm_sub *s = calloc(1, sizeof(*s));
	if (!s)
		return tsm__err_set(TSM_ENOMEM, "tsm_sub_open");
	if ((e = tsm__qos_resolve(qos, &s->qos)) != TSM_OK) {
		free(s);
		return e;
	}
	s->ring = calloc(s->qos.queue_depth, sizeof(*s->ring));
	if (!s->ring) {
		free(s);
		return tsm__err_set(TSM_ENOMEM, "tsm_sub_open: queue");
	}
	s->cap = s->qos.queue_depth;
	s->ctx = ctx;
	memcpy(s->pattern, pattern, len + 1);
	s->plen = len;
	atomic_init(&s->refs, 1);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, &ca);
	pthread_cond_init(&s->space_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_lock(&ctx->mu);
	s->next = ctx->subs;
	ctx->subs = s;
	atomic_fetch_add(&ctx->sub_epoch, 1);
	pthread_mutex_unlock(&ctx->mu);
	tsm__cmd c = {.kind = CMD_SUB_ADD, .obj = s};
	tsm__ctx_cmd_wait(ctx, &c);
	*out = s;
	return TSM_OK;
}

/* A slot was freed: let a parked session or local publisher go on. */
static void sub_room(struct tsm_sub *s)
{
	if (s->lagging && s->count <= s->cap / 2)
		s->lagging = false; /* caught up */
	pthread_cond_signal(&s->space_cv);
	if (atomic_load(&s->want_space) && atomic_exchange(&s->want_space, false)) {
		atomic_store(&s->ctx->resume, true);
		atomic_store(&s->ctx->sleeping, true); /* force the wake-up */
		tsm__ctx_wake(s->ctx);
	}
}

/* Pops the next unexpired message (expired ones are counted and freed). */
static tsm_msg *sub_pop_live(struct tsm_sub *s)
{
	while (s->count) {
		tsm_msg *m = sub_take(s);
		if (m->deadline == TSM_NEVER || tsm__now() < m->deadline)
			return m;
		tsm__drop_msg(s->ctx, m, TSM_ERR_DEADLINE_EXPIRED, TSM_AT_HANDOVER);
		tsm_msg_free(m);
	}
	return NULL;
}

/* Busy-poll receive: this thread runs the context's loop itself between
 * checks (loop.c tsm__ctx_drive: no hand-off to the progress thread).
 * After a while with nothing it yields between checks: the kernel's own
 * work (TCP's softirq thread) must get a core when spinners fill them.
 * It also yields at once while another thread runs the loop: that thread
 * may share this core (the progress thread does, where the application
 * pins the process), and spinning next to it would halve its speed. */
#define SPIN_BEFORE_YIELD 1024 /* loop runs: about 0.1-0.3 ms */
static void sub_spin(struct tsm_sub *s, tsm_time dl)
{
	tsm_time now = tsm__now();
	for (unsigned i = 0; !atomic_load_explicit(&s->avail, memory_order_acquire) &&
	                     !s->closing; i++) {
		if ((i & 15) == 15 && (now = tsm__now()) >= dl)
			return;
		if (tsm__ctx_drive(s->ctx, now) && i < SPIN_BEFORE_YIELD)
			__builtin_ia32_pause();
		else
			sched_yield();
	}
}

/*
 * The last deadline check, made after the lock and the wake-ups, right
 * before the message is handed over (design.md §5): false if it expired
 * meanwhile (then it is dropped and counted here).
 */
static bool sub_handover(struct tsm_sub *s, tsm_msg *m)
{
	tsm_time now = tsm__now();
	if (m->deadline != TSM_NEVER && now >= m->deadline) {
		tsm__drop_msg(s->ctx, m, TSM_ERR_DEADLINE_EXPIRED, TSM_AT_HANDOVER);
		tsm_msg_free(m);
		return false;
	}
	tsm__ts_delivered(s->ctx, m, now);
	tsm__stat_add(&s->ctx->stats, ST_DELIVERED, 1);
	return true;
}

TSM_API tsm_err tsm_sub_recv(tsm_sub *s, tsm_msg **out, tsm_duration timeout)
{
	if (!s || !out)
		return tsm__err_set(TSM_EINVAL, "tsm_sub_recv: NULL argument");
	*out = NULL;
	tsm_time dl = tsm__deadline_after(tsm__now(), timeout);
	atomic_fetch_add(&s->refs, 1); /* a concurrent close cannot free s */
	if (s->ctx->busy) {
		atomic_fetch_add(&s->ctx->spinners, 1); /* tsm_ctx_close waits */
		sub_spin(s, dl);
		atomic_fetch_sub(&s->ctx->spinners, 1);
	}
	tsm_err e = TSM_OK;
	pthread_mutex_lock(&s->mu);
	while (!e && !(*out = sub_pop_live(s))) {
		if (s->cb)
			e = tsm__err_set(TSM_ESTATE, "tsm_sub_recv: subscriber is in "
			                 "callback mode");
		else if (s->closing)
			e = tsm__err_set(TSM_ECLOSED, "tsm_sub_recv: subscriber closed");
		else if (tsm__now() >= dl)
			e = tsm__err_set(TSM_ETIMEDOUT, "tsm_sub_recv: nothing for '%s' "
			                 "within the timeout", s->pattern);
		else {
			struct timespec ts;
			tsm__abstime(dl, &ts);
			s->waiters++;
			pthread_cond_timedwait(&s->cv, &s->mu, &ts);
			s->waiters--;
		}
	}
	if (*out)
		sub_room(s);
	pthread_mutex_unlock(&s->mu);
	if (*out && !sub_handover(s, *out)) {
		*out = NULL;
		tsm_duration left = dl == TSM_NEVER ? TSM_NEVER : dl - tsm__now();
		e = tsm_sub_recv(s, out, left > 0 ? left : 0); /* the next one */
	}
	tsm__sub_unref(s);
	return e;
}

/* --- callbacks ---------------------------------------------------------- */

static void dlv_run_one(struct tsm_sub *s, bool *found)
{
	for (;;) {
		pthread_mutex_lock(&s->mu);
		tsm_msg *m = s->cb && !s->closing ? sub_pop_live(s) : NULL;
		tsm_sub_cb cb = s->cb;
		void *arg = s->cb_arg;
		if (m) {
			sub_room(s);
			s->in_cb = true; /* tsm_sub_close waits for it */
		}
		pthread_mutex_unlock(&s->mu);
		if (!m)
			return;
		*found = true;
		if (sub_handover(s, m))
			cb(arg, m);
		pthread_mutex_lock(&s->mu);
		s->in_cb = false;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
}

/* Takes references to every (callback) subscriber (array grown as
 * needed, so none is ever left out). ctx->mu held. */
static uint32_t dlv_snapshot(tsm_ctx *ctx, struct tsm_sub ***snap, uint32_t *cap,
                             bool cb_only)
{
	uint32_t n = 0;
	for (struct tsm_sub *s = ctx->subs; s; s = s->next) {
		if (cb_only && !s->cb)
			continue;
		if (n == *cap) {
			uint32_t c = *cap ? *cap * 2 : 64;
			struct tsm_sub **v = realloc(*snap, c * sizeof(*v));
			if (!v)
				break; /* the rest is served on the next round */
			*snap = v;
			*cap = c;
		}
		atomic_fetch_add(&s->refs, 1);
		(*snap)[n++] = s;
	}
	return n;
}

static void *dlv_main(void *arg)
{
	tsm_ctx *ctx = arg;
	struct tsm_sub **snap = NULL;
	uint32_t cap = 0;
	pthread_mutex_lock(&ctx->mu);
	while (!ctx->dlv_stop) {
		uint32_t n = dlv_snapshot(ctx, &snap, &cap, true);
		ctx->dlv_kick = false;
		pthread_mutex_unlock(&ctx->mu);
		bool found = false;
		for (uint32_t i = 0; i < n; i++) {
			dlv_run_one(snap[i], &found);
			tsm__sub_unref(snap[i]);
		}
		pthread_mutex_lock(&ctx->mu);
		if (!found && !ctx->dlv_kick && !ctx->dlv_stop) {
			struct timespec ts;
			tsm__abstime(tsm__now() + 100 * TSM_MSEC, &ts);
			pthread_cond_timedwait(&ctx->dlv_cv, &ctx->mu, &ts);
		}
	}
	pthread_mutex_unlock(&ctx->mu);
	free(snap);
	return NULL;
}

TSM_API tsm_err tsm_sub_set_callback(tsm_sub *s, tsm_sub_cb cb, void *arg)
{
	if (!s)
		return tsm__err_set(TSM_EINVAL, "tsm_sub_set_callback: NULL");
	tsm_ctx *ctx = s->ctx;
	tsm_err e = TSM_OK;
	pthread_mutex_lock(&ctx->mu);
	if (cb && !ctx->dlv_started) {
		if (pthread_create(&ctx->dlv_thread, NULL, dlv_main, ctx) != 0)
			e = tsm__err_set(TSM_ENOMEM, "cannot start the delivery thread");
		else
			ctx->dlv_started = true;
	}
	if (!e) {
		pthread_mutex_lock(&s->mu);
		s->cb = cb;
		s->cb_arg = arg;
		pthread_cond_broadcast(&s->cv); /* recv callers see ESTATE */
		pthread_mutex_unlock(&s->mu);
		ctx->dlv_kick = true;
		pthread_cond_signal(&ctx->dlv_cv);
	}
	pthread_mutex_unlock(&ctx->mu);
	return e;
}

void tsm__sub_dlv_stop(tsm_ctx *ctx);
void tsm__sub_dlv_stop(tsm_ctx *ctx)
{
	pthread_mutex_lock(&ctx->mu);
	bool started = ctx->dlv_started;
	ctx->dlv_stop = true;
	pthread_cond_broadcast(&ctx->dlv_cv);
	pthread_mutex_unlock(&ctx->mu);
	if (started)
		pthread_join(ctx->dlv_thread, NULL);
}

static void sub_unlink(struct tsm_sub *s)
{
	tsm_ctx *ctx = s->ctx;
	pthread_mutex_lock(&ctx->mu);
	for (struct tsm_sub **pp = &ctx->subs; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	atomic_fetch_add(&ctx->sub_epoch, 1);
	pthread_mutex_unlock(&ctx->mu);
}

TSM_API void tsm_sub_close(tsm_sub *s)
{
	if (!s)
		return;
	sub_unlink(s);
	pthread_mutex_lock(&s->mu);
	s->closing = true;
	/* A callback already running finishes before close returns (unless
	 * close is called from that callback, which is not allowed). */
	while (s->in_cb && !pthread_equal(pthread_self(), s->ctx->dlv_thread))
		pthread_cond_wait(&s->cv, &s->mu);
	while (s->count) { /* never read: counted, with an outcome each */
		tsm_msg *m = sub_take(s);
		tsm__drop_msg(s->ctx, m, TSM_ECLOSED, TSM_AT_SUB_QUEUE);
		tsm_msg_free(m);
	}
	pthread_cond_broadcast(&s->cv);
	pthread_cond_broadcast(&s->space_cv);
	pthread_mutex_unlock(&s->mu);
	atomic_store(&s->ctx->resume, true); /* a parked session may drop it */
	atomic_fetch_add(&s->refs, 1);       /* the command's reference */
	tsm__cmd c = {.kind = CMD_SUB_DEL, .obj = s};
	tsm__ctx_cmd_wait(s->ctx, &c);
	tsm__sub_unref(s);
}

void tsm__ctx_close_handles(tsm_ctx *ctx);
void tsm__ctx_close_handles(tsm_ctx *ctx)
{
	for (;;) {
		pthread_mutex_lock(&ctx->mu);
		struct tsm_sub *s = ctx->subs;
		tsm_pub *p = ctx->pubs;
		pthread_mutex_unlock(&ctx->mu);
		if (s)
			tsm_sub_close(s);
		else if (p)
			tsm_pub_close(p);
		else
			return;
	}
}

void tsm__subs_each_queued(tsm_ctx *ctx, void (*fn)(void *, const tsm_msg *),
                           void *arg)
{
	struct tsm_sub **snap = NULL;
	uint32_t cap = 0;
	pthread_mutex_lock(&ctx->mu);
	uint32_t n = dlv_snapshot(ctx, &snap, &cap, false);
	pthread_mutex_unlock(&ctx->mu);
	for (uint32_t i = 0; i < n; i++) {
		struct tsm_sub *s = snap[i];
		pthread_mutex_lock(&s->mu);
		for (uint32_t k = 0; k < s->count; k++)
			fn(arg, s->ring[(s->head + k) % s->cap]);
		pthread_mutex_unlock(&s->mu);
		tsm__sub_unref(s);
	}
	free(snap);
}
