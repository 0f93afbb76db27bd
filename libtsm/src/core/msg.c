/*
 * core/msg.c - refcounted topics, byte blocks, outgoing messages and the
 * received-message handle with its accessors.
 *
 * A received message either points into a shared receive block (large
 * payloads: zero copy from the frame buffer) or into its own inline
 * allocation (small payloads: one malloc, so a retained small message
 * never pins a whole 256 KiB block).
 */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

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

tsm__buf *tsm__buf_new(size_t cap)
{
	tsm__buf *b = malloc(sizeof(*b) + cap);
	if (!b)
		return NULL;
	atomic_init(&b->refs, 1);
	b->cap = cap;
	return b;
}

void tsm__buf_unref(tsm__buf *b)
{
	if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
		free(b);
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
