/*
 * core/msg.c - refcounted topics, byte blocks, outgoing messages and the
 * received-message handle with its accessors.
 *
 * A received message either points into a shared receive block (large
 * payloads: zero copy from the frame buffer) or into its own inline
 * allocation (small payloads: one malloc, so a retained small message
 * never pins a whole 256 KiB block).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "session/session.h" /* TSM_QOS_MAX_MSG */

tsm__topic *tsm__topic_new(const char *name, size_t len)
{
	tsm__topic *t = malloc(sizeof(*t) + len + 1);
	if (!t)
		return NULL;
	atomic_init(&t->refs, 1);
	t->id = 0;
	t->len = (uint16_t)len;
	memcpy(t->name, name, len);
	t->name[len] = '\0';
	return t;
}

tsm__topic *tsm__topic_ref(tsm__topic *t)
{
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	return t;
}

void tsm__topic_unref(tsm__topic *t)
{
	if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
		free(t);
}

/*
 * Large blocks (a big message's payload, at both ends) are kept for reuse
 * in a small process-wide cache. Without it every 1 MiB message was a
 * fresh mmap from glibc (above its mmap threshold, or trimmed back to the
 * system after the free), so each copy into it page-faulted and zeroed
 * 256 pages: a 1 MiB ofi+shm round trip took 2.4 ms with fresh blocks and
 * 1.1-1.5 ms with warm ones (docs/design/progress.md, "1 MiB"). The
 * cache is bounded (BUF_CACHE_N blocks, BUF_CACHE_BYTES in all) and a
 * block is reused only for a request of at least half its size, so a
 * small message never pins a big block.
 */
#define BUF_CACHE_MIN (64u << 10)
#define BUF_CACHE_N 16
#define BUF_CACHE_BYTES (32u << 20)

static struct {
	pthread_mutex_t mu;
	tsm__buf *b[BUF_CACHE_N];
	unsigned n;
	size_t bytes;
} bcache = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* The smallest cached block that fits cap without being over twice it. */
static tsm__buf *bcache_take(size_t cap)
{
	tsm__buf *best = NULL;
	unsigned bi = 0;
	pthread_mutex_lock(&bcache.mu);
	for (unsigned i = 0; i < bcache.n; i++) {
		tsm__buf *x = bcache.b[i];
		if (x->cap >= cap && x->cap / 2 <= cap && (!best || x->cap < best->cap)) {
			best = x;
			bi = i;
		}
	}
	if (best) {
		bcache.b[bi] = bcache.b[--bcache.n];
		bcache.bytes -= best->cap;
	}
	pthread_mutex_unlock(&bcache.mu);
	return best;
}

/* Keeps b if there is room; frees the oldest blocks to make it. */
static void bcache_put(tsm__buf *b)
{
	if (b->cap < BUF_CACHE_MIN || b->cap > BUF_CACHE_BYTES / 2) {
		free(b);
		return;
	}
	tsm__buf *evict[BUF_CACHE_N];
	unsigned ne = 0;
	pthread_mutex_lock(&bcache.mu);
	while (bcache.n == BUF_CACHE_N || bcache.bytes + b->cap > BUF_CACHE_BYTES) {
		evict[ne] = bcache.b[0];
		bcache.bytes -= evict[ne++]->cap;
		memmove(&bcache.b[0], &bcache.b[1], --bcache.n * sizeof(bcache.b[0]));
	}
	bcache.b[bcache.n++] = b;
	bcache.bytes += b->cap;
	pthread_mutex_unlock(&bcache.mu);
	for (unsigned i = 0; i < ne; i++)
		free(evict[i]);
}

/* At exit, so that leak checkers see nothing held. */
__attribute__((destructor)) static void bcache_fini(void)
{
	pthread_mutex_lock(&bcache.mu);
	while (bcache.n)
		free(bcache.b[--bcache.n]);
	bcache.bytes = 0;
	pthread_mutex_unlock(&bcache.mu);
}

tsm__buf *tsm__buf_new(size_t cap)
{
	tsm__buf *b = cap >= BUF_CACHE_MIN ? bcache_take(cap) : NULL;
	if (!b) {
		b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->cap = cap;
	}
	atomic_init(&b->refs, 1);
	return b;
}

void tsm__buf_unref(tsm__buf *b)
{
	if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
		bcache_put(b);
}

tsm__omsg *tsm__omsg_ref(tsm__omsg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

/* The omsg lives inside its own buf: dropping the last ref frees both. */
void tsm__omsg_unref(tsm__omsg *m)
{
	if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
		return;
	tsm__topic_unref(m->topic);
	tsm__buf_unref(m->pbuf);
	tsm__buf_unref(m->buf);
}

tsm_msg *tsm__msg_new(tsm__buf *buf, tsm__topic *topic, const uint8_t *data,
                      size_t len)
{
	tsm_msg *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->buf = buf;
	m->topic = tsm__topic_ref(topic);
	m->data = data;
	m->len = len;
	m->deadline = TSM_NEVER;
	return m;
}

TSM_API tsm_err tsm_msg_new(tsm_msg **out, size_t len, void **data)
{
	if (out)
		*out = NULL;
	if (!out || !data)
		return tsm__err_set(TSM_EINVAL, "tsm_msg_new: NULL argument");
	if (len > TSM_QOS_MAX_MSG)
		return tsm__err_set(TSM_ERR_MSG_TOO_LARGE, "tsm_msg_new: %zu bytes "
		                    "over %llu", len, (unsigned long long)TSM_QOS_MAX_MSG);
	tsm__topic *t = tsm__topic_new("", 0);
	tsm__buf *b = t ? tsm__buf_new(len ? len : 1) : NULL;
	tsm_msg *m = b ? tsm__msg_new(b, t, b->data, len) : NULL;
	tsm__topic_unref(t); /* the message holds its own reference */
	if (!m) {
		tsm__buf_unref(b);
		return tsm__err_set(TSM_ENOMEM, "tsm_msg_new: %zu bytes", len);
	}
	*data = b->data;
	*out = m;
	return TSM_OK;
}

TSM_API void tsm_msg_free(tsm_msg *m)
{
	if (!m)
		return;
	tsm__buf_unref(m->buf);
	tsm__topic_unref(m->topic);
	free(m);
}

TSM_API const void *tsm_msg_data(const tsm_msg *m)
{
	return m ? m->data : NULL;
}

TSM_API size_t tsm_msg_size(const tsm_msg *m)
{
	return m ? m->len : 0;
}

TSM_API const char *tsm_msg_topic(const tsm_msg *m)
{
	return m ? m->topic->name : NULL;
}

TSM_API uint8_t tsm_msg_priority(const tsm_msg *m)
{
	return m ? m->prio : 0;
}

TSM_API tsm_time tsm_msg_deadline(const tsm_msg *m)
{
	return m ? m->deadline : TSM_NEVER;
}

TSM_API uint64_t tsm_msg_id(const tsm_msg *m)
{
	return m ? m->id : 0;
}

TSM_API tsm_time tsm_msg_sent_at(const tsm_msg *m)
{
	return m ? m->sent_at : 0;
}

TSM_API const void *tsm_msg_meta(const tsm_msg *m, size_t *len)
{
	if (len)
		*len = m ? m->meta_len : 0;
	return m && m->meta_len ? m->meta : NULL;
}
