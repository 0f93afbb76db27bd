/*
 * session/idwin.c - sliding window of delivered message ids (idwin.h).
 */
#include "session/idwin.h"

#include <string.h>

static uint64_t *word_of(tsm__idwin *w, uint64_t id, uint64_t *mask)
{
	uint64_t bit = id % TSM_IDWIN_IDS;
	*mask = 1ull << (bit % 64);
	return &w->bits[bit / 64];
}

tsm__idwin_res tsm__idwin_check(const tsm__idwin *w, uint64_t id)
{
	if (!id || id > w->top)
		return TSM_IDWIN_NEW;
	if (w->top - id >= TSM_IDWIN_IDS)
		return TSM_IDWIN_OLD;
	uint64_t mask, *word = word_of((tsm__idwin *)w, id, &mask);
	return (*word & mask) ? TSM_IDWIN_SEEN : TSM_IDWIN_NEW;
}

/* Forgets ids (from, to]: their bits now stand for newer ids. A word at
 * a time where the range covers it, so a jump costs at most 1 024 steps. */
static void idwin_clear(tsm__idwin *w, uint64_t from, uint64_t to)
{
	if (to - from >= TSM_IDWIN_IDS) {
		memset(w->bits, 0, sizeof(w->bits));
		return;
	}
	for (uint64_t i = from + 1; i <= to;) {
		uint64_t mask, *word = word_of(w, i, &mask);
		if (mask == 1 && to - i >= 63) {
			*word = 0;
			i += 64;
		} else {
			*word &= ~mask;
			i++;
		}
	}
}

void tsm__idwin_mark(tsm__idwin *w, uint64_t id)
{
	if (!id)
		return;
	if (id > w->top) {
		idwin_clear(w, w->top, id);
		w->top = id;
	} else if (w->top - id >= TSM_IDWIN_IDS) {
		return;
	}
	uint64_t mask, *word = word_of(w, id, &mask);
	*word |= mask;
}
