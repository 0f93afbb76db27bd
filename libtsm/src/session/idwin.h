/*
 * session/idwin.h - which message ids of one sender were delivered, over
 * a sliding window of its last TSM_IDWIN_IDS ids (resume.c drops a copy
 * that a sender sent again after a loss; docs/design/discovery.md
 * "Partitions").
 *
 * A sender numbers every message it publishes, so the ids one receiver
 * gets have gaps (other topics); the window covers ids, not messages.
 * Plain data, no allocation: the caller owns the struct (8 KiB).
 */
#ifndef TSM_SESSION_IDWIN_H
#define TSM_SESSION_IDWIN_H

#include <stdint.h>

#define TSM_IDWIN_IDS 65536u

typedef struct tsm__idwin {
	uint64_t top;                        /* highest id marked; 0: none */
	uint64_t bits[TSM_IDWIN_IDS / 64];   /* bit id % TSM_IDWIN_IDS */
} tsm__idwin;

typedef enum {
	TSM_IDWIN_NEW,  /* not marked (or newer than anything marked) */
	TSM_IDWIN_SEEN, /* marked */
	TSM_IDWIN_OLD,  /* older than the window: unknown */
} tsm__idwin_res;

/* id 0 is never marked (no id): always NEW. */
tsm__idwin_res tsm__idwin_check(const tsm__idwin *w, uint64_t id);
/* Marks id; an id beyond top slides the window (forgetting the oldest);
 * one older than the window is ignored. */
void tsm__idwin_mark(tsm__idwin *w, uint64_t id);

#endif
