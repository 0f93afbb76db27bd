/*
 * core/api_pub.c - publishers: argument checks, one copy of the payload,
 * local delivery on the caller's thread, and hand-over to the progress
 * thread through the lock-free publish ring.
 */
#include <stdlib.h>
#include <string.h>

#include "core/tstats.h"
#include "pubsub/topic.h"
#include "session/session.h"
#include "wire/meta.h"

tsm_err tsm__ctx_cmd_wait(tsm_ctx *ctx, tsm__cmd *c);
bool tsm__ctx_wait_until(tsm_ctx *ctx, tsm_time deadline);

TSM_API tsm_err tsm_qos_init(tsm_qos *q)
{
	if (!q)
		return tsm__err_set(TSM_EINVAL, "tsm_qos_init: NULL");
	memset(q, 0, sizeof(*q));
	q->size = sizeof(*q);
	q->priority = TSM_PRIO_DEFAULT;
	q->reliability = TSM_RELIABLE;
	q->backpressure = TSM_BP_BLOCK;
	q->block_timeout = TSM_SEC;
	q->queue_depth = 4096;
	q->max_msg_size = TSM_QOS_MAX_MSG;
	q->timestamps = 1;
	return TSM_OK;
}

TSM_API tsm_err tsm_pub_opts_init(tsm_pub_opts *o)
{
	if (!o)
		return tsm__err_set(TSM_EINVAL, "tsm_pub_opts_init: NULL");
	memset(o, 0, sizeof(*o));
	o->size = sizeof(*o);
	o->deadline = TSM_NEVER;
	return TSM_OK;
}

tsm_err tsm__qos_resolve(const tsm_qos *in, tsm_qos *out);
tsm_err tsm__struct_upgrade(void *full, size_t full_size, const void *in,
                            const char *what);
tsm_err tsm__qos_resolve(const tsm_qos *in, tsm_qos *out)
{
	tsm_qos_init(out);
	if (!in)
		return TSM_OK;
	tsm_err e = tsm__struct_upgrade(out, sizeof(*out), in, "tsm_qos");
	if (e)
		return e;
	if (out->priority > TSM_PRIO_MAX)
		return tsm__err_set(TSM_ERR_BAD_PRIORITY, "qos priority %u > 7",
		                    out->priority);
	if (out->deadline_budget < 0)
		return tsm__err_set(TSM_ERR_BAD_DEADLINE, "negative deadline_budget");
	if (out->max_msg_size == 0 || out->max_msg_size > TSM_QOS_MAX_MSG)
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "max_msg_size must be 1..%llu",
		                    (unsigned long long)TSM_QOS_MAX_MSG);
	if (out->queue_depth == 0 || out->queue_depth > (1u << 20))
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "queue_depth must be 1..2^20");
	if ((unsigned)out->backpressure > TSM_BP_LATEST_ONLY ||
	    (unsigned)out->reliability > TSM_BEST_EFFORT)
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "unknown QoS policy");
	return TSM_OK;
}

/* Publishers of the same name share one topic object and id. */
static tsm__topic *pub_topic(tsm_ctx *ctx, const char *name, size_t len)
{
	for (struct tsm_pub *p = ctx->pubs; p; p = p->next)
		if (p->topic->len == len && memcmp(p->topic->name, name, len) == 0)
			return tsm__topic_ref(p->topic);
	tsm__topic *t = tsm__topic_new(name, len);
	if (t)
		t->id = ++ctx->next_topic_id;
	return t;
}

TSM_API tsm_err tsm_pub_open(tsm_pub **out, tsm_ctx *ctx, const char *topic,
                             const tsm_qos *qos)
{
	if (!out || !ctx || !topic)
		return tsm__err_set(TSM_EINVAL, "tsm_pub_open: NULL argument");
	*out = NULL;
	size_t len = strnlen(topic, TSM_TOPIC_MAX + 1);
	tsm_err e = tsm__topic_check(topic, len);
	if (!e && atomic_load(&ctx->stopping))
		e = tsm__err_set(TSM_ECLOSED, "tsm_pub_open: context is closing");
	tsm_pub *p = e ? NULL : calloc(1, sizeof(*p));
	if (!e && !p)
		e = tsm__err_set(TSM_ENOMEM, "tsm_pub_open");
	if (!e && (e = tsm__qos_resolve(qos, &p->qos)) != TSM_OK) {
		free(p);
		return e;
	}
	if (e)
		return e;
	p->ctx = ctx;
	pthread_mutex_init(&p->mu, NULL);
	p->local_epoch = UINT64_MAX;
	pthread_mutex_lock(&ctx->mu);
	p->topic = pub_topic(ctx, topic, len);
	if (p->topic) {
		p->next = ctx->pubs;
		ctx->pubs = p;
	}
	pthread_mutex_unlock(&ctx->mu);
	if (!p->topic) {
		free(p);
		return tsm__err_set(TSM_ENOMEM, "tsm_pub_open: topic");
	}
	tsm__cmd c = {.kind = CMD_PUB_ADD, .obj = p->topic};
	tsm__ctx_cmd_wait(ctx, &c);
	*out = p;
	return TSM_OK;
}

static tsm_err pub_deadline(const tsm_pub *p, const tsm_pub_opts *o,
                            tsm_time now, tsm_time *dl)
{
	*dl = p->qos.deadline_budget ? tsm__deadline_after(now, p->qos.deadline_budget)
	                             : TSM_NEVER;
	if (!o)
		return TSM_OK;
	if ((o->flags & TSM_OPT_BUDGET) && o->budget <= 0)
		return tsm__err_set(TSM_ERR_BAD_DEADLINE, "budget must be > 0");
	if (o->flags & (TSM_OPT_DEADLINE | TSM_OPT_BUDGET))
		*dl = TSM_NEVER;
	if (o->flags & TSM_OPT_DEADLINE)
		*dl = o->deadline;
	if (o->flags & TSM_OPT_BUDGET)
		*dl = TSM_MIN(*dl, tsm__deadline_after(now, o->budget));
	return TSM_OK;
}

static tsm_err pub_check(const tsm_pub *p, const tsm_pub_opts *o, size_t len,
                         uint8_t *prio)
{
	if (o && (o->size < offsetof(tsm_pub_opts, msg_id) + sizeof(o->msg_id) ||
	          o->size > sizeof(*o)))
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "opts not initialised with "
		                    "tsm_pub_opts_init");
	if (len > p->qos.max_msg_size)
		return tsm__err_set(TSM_ERR_MSG_TOO_LARGE, "message of %zu bytes over "
		                    "max_msg_size %llu", len,
		                    (unsigned long long)p->qos.max_msg_size);
	*prio = p->qos.priority;
	if (o && (o->flags & TSM_OPT_PRIORITY)) {
		if (o->priority > TSM_PRIO_MAX)
			return tsm__err_set(TSM_ERR_BAD_PRIORITY, "priority %u > 7",
			                    o->priority);
		*prio = o->priority;
	}
	if (o && o->meta_len && (!o->meta || o->meta_len > TSM_META_MAX))
		return tsm__err_set(TSM_ERR_BAD_METADATA, "meta must be 1..%u bytes",
		                    TSM_META_MAX);
	if (o && o->meta_len)
		return tsm__meta_check(o->meta, o->meta_len);
	return TSM_OK;
}

/* §9: the user map travels inside the wire map; encoding it is also
 * the last check (depth and size grow by one level there). */
static tsm_err pub_meta(const tsm_pub_opts *o, uint8_t *out, size_t cap,
                        size_t *len)
{
	*len = 0;
	if (!o || !o->meta_len)
		return TSM_OK;
	tsm__meta md = {.user = o->meta, .user_len = o->meta_len,
	                .has_ts = true, .ts = tsm__now()};
	return tsm__meta_encode(&md, out, cap, len);
}

/* One allocation: the omsg, its wire metadata, then the payload. */
static tsm__omsg *pub_omsg(tsm_pub *p, const void *buf, size_t len,
                           const uint8_t *meta, size_t mlen)
{
	tsm__buf *b = tsm__buf_new(sizeof(tsm__omsg) + mlen + len);
	if (!b)
		return NULL;
	tsm__omsg *m = (tsm__omsg *)b->data;
	memset(m, 0, sizeof(*m));
	m->buf = b;
	atomic_init(&m->refs, 1);
	m->meta = b->data + sizeof(*m);
	m->meta_len = (uint16_t)mlen;
	memcpy((uint8_t *)m->meta, meta, mlen);
	m->payload = m->meta + mlen;
	m->len = len;
	if (len)
		memcpy((uint8_t *)m->payload, buf, len);
	m->topic = tsm__topic_ref(p->topic);
	m->reliability = (uint8_t)p->qos.reliability;
	m->timestamps = p->qos.timestamps != 0;
	m->bp = (uint8_t)p->qos.backpressure;
	m->block_timeout = p->qos.block_timeout;
	return m;
}

static void pub_refresh_locals(tsm_pub *p)
{
	tsm_ctx *ctx = p->ctx;
	uint64_t ep = atomic_load(&ctx->sub_epoch);
	if (p->local_epoch == ep)
		return;
	for (uint32_t i = 0; i < p->nlocals; i++)
		tsm__sub_unref(p->locals[i]);
	p->nlocals = 0;
	pthread_mutex_lock(&ctx->mu);
	for (struct tsm_sub *u = ctx->subs; u; u = u->next) {
		if (u->closing || !tsm__sub_matches(u, p->topic))
			continue;
		struct tsm_sub **v = realloc(p->locals, (p->nlocals + 1) * sizeof(*v));
		if (!v)
			break;
		p->locals = v;
		atomic_fetch_add(&u->refs, 1);
		p->locals[p->nlocals++] = u;
	}
	pthread_mutex_unlock(&ctx->mu);
	p->local_epoch = ep;
}

static void pub_local(tsm_pub *p, tsm__omsg *m)
{
	pthread_mutex_lock(&p->mu);
	pub_refresh_locals(p);
	for (uint32_t i = 0; i < p->nlocals; i++) {
		tsm__buf *hold = m->pbuf ? m->pbuf : m->buf;
		tsm_msg *r = tsm__msg_new(tsm__buf_ref(hold), m->topic, m->payload, m->len);
		if (!r) {
			tsm__buf_unref(hold);
			tsm__drop_omsg(p->ctx, m, TSM_ERR_QUEUE_FULL, TSM_AT_SUB_QUEUE);
			continue;
		}
		m->nlocal++;
		r->id = m->id;
		r->prio = m->prio;
		r->deadline = m->deadline;
		r->sent_at = m->created;
		r->arrived = m->created;
		tsm__meta md;
		if (m->meta_len && tsm__meta_decode(m->meta, m->meta_len, &md) == TSM_OK) {
			r->meta = md.user;
			r->meta_len = md.user_len;
		}
		if (tsm__sub_push(p->locals[i], r, true, p->qos.block_timeout) ==
		    TSM_PUSH_FULL) {
			tsm__drop_msg(p->ctx, r, TSM_ERR_QUEUE_FULL, TSM_AT_SUB_QUEUE);
			tsm_msg_free(r);
		}
	}
	pthread_mutex_unlock(&p->mu);
}

/* Pushes m onto its lane's ring within the byte bound (memory M1). */
static bool pub_push(tsm_ctx *ctx, tsm__omsg *m)
{
	uint64_t used = atomic_load(&ctx->pubq_bytes);
	/* one message may always go into empty rings, however large; less
	 * urgent lanes stop short of the budget, so that bulk never makes an
	 * urgent tsm_publish wait (tsm__lane_limit) */
	if (used && used + m->len > tsm__lane_limit(ctx->p.publish_queue_bytes,
	                                            m->prio))
		return false;
	if (!tsm__mpmc_push(&ctx->pubq[m->prio], m))
		return false;
	atomic_fetch_add(&ctx->pubq_bytes, m->len);
	return true;
}

/* Full ring: block (bounded by block_timeout) or refuse, per policy. */
static tsm_err pub_enqueue(tsm_pub *p, tsm__omsg *m)
{
	tsm_ctx *ctx = p->ctx;
	if (pub_push(ctx, m)) {
		tsm__ctx_wake(ctx);
		return TSM_OK;
	}
	tsm_time dl = p->qos.backpressure == TSM_BP_BLOCK
	                  ? tsm__deadline_after(tsm__now(), p->qos.block_timeout)
	                  : 0;
	tsm_err e = TSM_OK;
	pthread_mutex_lock(&ctx->mu);
	atomic_fetch_add(&ctx->pubq_waiters_a, 1);
	while (!pub_push(ctx, m)) {
		tsm__ctx_wake(ctx);
		if (atomic_load(&ctx->stopping) || tsm__now() >= dl) {
			e = tsm__err_set(TSM_ERR_QUEUE_FULL, "publish queue full%s",
			                 dl ? " for block_timeout" : "");
			break;
		}
		struct timespec ts;
		tsm__abstime(TSM_MIN(dl, tsm__now() + 10 * TSM_MSEC), &ts);
		pthread_cond_timedwait(&ctx->pubq_cv, &ctx->mu, &ts);
	}
	atomic_fetch_sub(&ctx->pubq_waiters_a, 1);
	pthread_mutex_unlock(&ctx->mu);
	if (!e)
		tsm__ctx_wake(ctx);
	return e;
}

/* What tsm_publish and tsm_publish_msg check alike; *dl may come in
 * lower than the options make it (a forwarded message's deadline). */
static tsm_err pub_prepare(tsm_pub *p, tsm_pub_opts *o, size_t len,
                           tsm_time now, uint8_t *prio, tsm_time *dl,
                           uint8_t *meta, size_t *mlen)
{
	tsm_time keep = *dl;
	tsm_err e = pub_check(p, o, len, prio);
	if (!e)
		e = pub_deadline(p, o, now, dl);
	if (!e)
		e = pub_meta(o, meta, TSM_META_MAX, mlen);
	if (e)
		return e;
	*dl = TSM_MIN(*dl, keep);
	if (*dl <= now) {
		tsm__stat_add(&p->ctx->stats, ST_DROP_DEADLINE, 1);
		return tsm__err_set(TSM_ERR_DEADLINE_EXPIRED, "deadline already passed");
	}
	if (atomic_load(&p->ctx->stopping))
		return tsm__err_set(TSM_ECLOSED, "tsm_publish: context is closing");
	return TSM_OK;
}

/* Numbers, delivers locally and queues m (one reference, now the
 * queue's or dropped). */
static tsm_err pub_send(tsm_pub *p, tsm__omsg *m, tsm_pub_opts *o,
                        uint8_t prio, tsm_time dl, tsm_time now)
{
	tsm_err e;
	m->id = atomic_fetch_add(&p->ctx->next_msg_id, 1) + 1;
	m->prio = prio;
	m->deadline = dl;
	m->created = now;
	if (o)
		o->msg_id = m->id;
	tsm__stat_add(&p->ctx->stats, ST_PUBLISHED, 1);
	pub_local(p, m);
	if ((e = pub_enqueue(p, m)) != TSM_OK)
		tsm__omsg_unref(m);
	else
		tsm__ctx_drive(p->ctx, now); /* busy-poll: frame and send it now */
	return e;
}

TSM_API tsm_err tsm_publish(tsm_pub *p, const void *buf, size_t len,
                            tsm_pub_opts *o)
{
	uint8_t prio = 0, meta[TSM_META_MAX];
	size_t mlen = 0;
	tsm_time dl = TSM_NEVER, now = tsm__now();
	if (!p || (!buf && len))
		return tsm__err_set(TSM_EINVAL, "tsm_publish: NULL argument");
	tsm_err e = pub_prepare(p, o, len, now, &prio, &dl, meta, &mlen);
	if (e)
		return e;
	tsm__omsg *m = pub_omsg(p, buf, len, meta, mlen);
	if (!m)
		return tsm__err_set(TSM_ENOMEM, "tsm_publish: %zu bytes", len);
	return pub_send(p, m, o, prio, dl, now);
}

/*
 * A received message's block is handed over only when it holds little
 * more than the message: a reassembled message has a block of its own,
 * while a small one sits in a 256 KiB receive block shared with others,
 * which a queued (or kept for resending) forward would pin. Those are
 * copied, as tsm_publish does.
 */
static bool pub_can_take(const tsm_msg *msg)
{
	return msg->buf && msg->buf->cap <= 2 * msg->len + TSM_META_MAX + 4096;
}

TSM_API tsm_err tsm_publish_msg(tsm_pub *p, tsm_msg *msg, tsm_pub_opts *o)
{
	uint8_t prio = 0, meta[TSM_META_MAX];
	size_t mlen = 0;
	tsm_time now = tsm__now(), dl;
	tsm_pub_opts fwd, *use = o;
	if (!p || !msg)
		return tsm__err_set(TSM_EINVAL, "tsm_publish_msg: NULL argument");
	dl = msg->deadline; /* end to end: a forward never outlives it */
	if (msg->meta_len && (!o || !o->meta_len)) { /* its metadata goes along */
		if (o)
			fwd = *o;
		else
			tsm_pub_opts_init(&fwd);
		fwd.meta = msg->meta;
		fwd.meta_len = msg->meta_len;
		use = &fwd;
	}
	tsm_err e = pub_prepare(p, use, msg->len, now, &prio, &dl, meta, &mlen);
	if (e)
		return e;
	bool take = pub_can_take(msg);
	tsm__omsg *m = take ? pub_omsg(p, NULL, 0, meta, mlen)
	                    : pub_omsg(p, msg->data, msg->len, meta, mlen);
	if (!m)
		return tsm__err_set(TSM_ENOMEM, "tsm_publish_msg: %zu bytes", msg->len);
	if (take) { /* the payload stays where it is, shared read-only */
		m->pbuf = tsm__buf_ref(msg->buf);
		m->payload = msg->data;
		m->len = msg->len;
	}
	if ((e = pub_send(p, m, o, prio, dl, now)) != TSM_OK)
		return e; /* msg is still the caller's */
	tsm__stat_add(&p->ctx->stats, ST_PUB_FORWARDED, take ? 1 : 0);
	tsm_msg_free(msg);
	return TSM_OK;
}

TSM_API tsm_err tsm_pub_wait_subscribers(tsm_pub *p, unsigned n,
                                         tsm_duration timeout)
{
	if (!p)
		return tsm__err_set(TSM_EINVAL, "tsm_pub_wait_subscribers: NULL");
	tsm_ctx *ctx = p->ctx;
	tsm_time dl = tsm__deadline_after(tsm__now(), timeout);
	tsm_err e = TSM_OK;
	pthread_mutex_lock(&ctx->mu);
	while (atomic_load(&p->nremote) < n) {
		if (!tsm__ctx_wait_until(ctx, dl)) {
			e = tsm__err_set(TSM_ETIMEDOUT, "%u of %u remote subscribers of '%s'",
			                 atomic_load(&p->nremote), n, p->topic->name);
			break;
		}
	}
	pthread_mutex_unlock(&ctx->mu);
	return e;
}

TSM_API tsm_err tsm_pub_flush(tsm_pub *p, tsm_duration timeout)
{
	if (!p)
		return tsm__err_set(TSM_EINVAL, "tsm_pub_flush: NULL");
	tsm_ctx *ctx = p->ctx;
	tsm_time dl = tsm__deadline_after(tsm__now(), timeout);
	tsm_err e = TSM_OK;
	pthread_mutex_lock(&ctx->mu);
	uint64_t req = ++ctx->flush_req;
	atomic_store(&ctx->flush_wanted, true);
	atomic_store(&ctx->cmd_pending, true); /* makes the loop look */
	tsm__ctx_wake(ctx);
	while (ctx->flush_done < req) {
		if (!tsm__ctx_wait_until(ctx, dl)) {
			e = tsm__err_set(TSM_ETIMEDOUT, "tsm_pub_flush: still sending");
			break;
		}
	}
	pthread_mutex_unlock(&ctx->mu);
	return e;
}

static void pub_unlink(tsm_pub *p)
{
	tsm_ctx *ctx = p->ctx;
	pthread_mutex_lock(&ctx->mu);
	for (struct tsm_pub **pp = &ctx->pubs; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	pthread_mutex_unlock(&ctx->mu);
}

TSM_API void tsm_pub_close(tsm_pub *p)
{
	if (!p)
		return;
	pub_unlink(p);
	for (uint32_t i = 0; i < p->nlocals; i++)
		tsm__sub_unref(p->locals[i]);
	free(p->locals);
	pthread_mutex_destroy(&p->mu);
	tsm__topic_unref(p->topic);
	free(p);
}
