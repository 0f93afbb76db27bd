/*
 * platform/mpmc.c - bounded MPMC ring. Each cell carries a sequence number
 * telling whether it is free for the producer of lap n or holds a value
 * for the consumer of lap n, so producers and consumers only contend on
 * their own index with one CAS.
 */
#include <stdlib.h>

#include "core/common.h"
#include "platform/mpmc.h"

tsm_err tsm__mpmc_init(tsm__mpmc *q, size_t cap)
{
	size_t n = 2;
	while (n < cap)
		n <<= 1;
	q->cells = calloc(n, sizeof(*q->cells));
	if (!q->cells)
		return tsm__err_set(TSM_ENOMEM, "mpmc: %zu cells", n);
	for (size_t i = 0; i < n; i++)
		atomic_init(&q->cells[i].seq, i);
	q->mask = n - 1;
	atomic_init(&q->head, 0);
	atomic_init(&q->tail, 0);
	return TSM_OK;
}

void tsm__mpmc_fini(tsm__mpmc *q)
{
	free(q->cells);
	q->cells = NULL;
}

bool tsm__mpmc_push(tsm__mpmc *q, void *v)
{
	size_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
	for (;;) {
		struct tsm__mpmc_cell *c = &q->cells[pos & q->mask];
		size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
		intptr_t dif = (intptr_t)seq - (intptr_t)pos;
		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(&q->tail, &pos,
			    pos + 1, memory_order_relaxed, memory_order_relaxed)) {
				c->val = v;
				atomic_store_explicit(&c->seq, pos + 1,
				                      memory_order_release);
				return true;
			}
		} else if (dif < 0) {
			return false; /* full */
		} else {
			pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
		}
	}
}

bool tsm__mpmc_pop(tsm__mpmc *q, void **v)
{
	size_t pos = atomic_load_explicit(&q->head, memory_order_relaxed);
	for (;;) {
		struct tsm__mpmc_cell *c = &q->cells[pos & q->mask];
		size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
		intptr_t dif = (intptr_t)seq - (intptr_t)(pos + 1);
		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(&q->head, &pos,
			    pos + 1, memory_order_relaxed, memory_order_relaxed)) {
				*v = c->val;
				atomic_store_explicit(&c->seq, pos + q->mask + 1,
				                      memory_order_release);
				return true;
			}
		} else if (dif < 0) {
			return false; /* empty */
		} else {
			pos = atomic_load_explicit(&q->head, memory_order_relaxed);
		}
	}
}

size_t tsm__mpmc_size(tsm__mpmc *q)
{
	size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
	size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
	return t >= h ? t - h : 0;
}
