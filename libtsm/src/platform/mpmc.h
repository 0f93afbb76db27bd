/*
 * platform/mpmc.h - bounded lock-free multi-producer multi-consumer queue
 * of pointers (Vyukov's sequence-numbered ring).
 *
 * Publishers hand messages to the progress thread through it without a
 * lock; it never allocates after init, so memory stays bounded. push/pop
 * are thread-safe and wait-free unless the queue is full/empty.
 */
#ifndef TSM_PLATFORM_MPMC_H
#define TSM_PLATFORM_MPMC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "tsm/err.h"

struct tsm__mpmc_cell {
	atomic_size_t seq;
	void *val;
};

typedef struct tsm__mpmc {
	struct tsm__mpmc_cell *cells;
	size_t mask;
	_Alignas(64) atomic_size_t head; /* next slot to pop */
	_Alignas(64) atomic_size_t tail; /* next slot to push */
} tsm__mpmc;

/* tsm__mpmc_init: cap is rounded up to a power of two (>= 2). */
tsm_err tsm__mpmc_init(tsm__mpmc *q, size_t cap);
void tsm__mpmc_fini(tsm__mpmc *q);
/* tsm__mpmc_push returns false when full (nothing is stored). */
bool tsm__mpmc_push(tsm__mpmc *q, void *v);
/* tsm__mpmc_pop returns false when empty. */
bool tsm__mpmc_pop(tsm__mpmc *q, void **v);
/* tsm__mpmc_size is approximate under concurrency. */
size_t tsm__mpmc_size(tsm__mpmc *q);

#endif
