/*
 * wire/cursor.c - bounds-checked little-endian cursor and builder
 * (docs/wire.md §1).
 *
 * Every read goes through rcur_take, the one place that compares a length
 * with what is left, so a decoder built on these calls cannot read out of
 * bounds whatever the lengths it is fed. Writes go through wbuf_room, which
 * makes the first overflow sticky: once a put has not fit, later puts write
 * nothing, so the bytes that were written are never followed by a gap.
 */
#include <string.h>

#include "wire/cursor.h"

/* rcur_take hands out the next n bytes, or fails and leaves c untouched. */
static bool rcur_take(tsm__rcur *c, size_t n, const uint8_t **out)
{
	if (n > c->left)
		return false;
	*out = c->p;
	if (n == 0)
		return true; /* an empty body may have no buffer: no NULL + 0 */
	c->p += n;
	c->left -= n;
	return true;
}

bool tsm__rcur_u8(tsm__rcur *c, uint8_t *v)
{
	const uint8_t *p;
	if (!rcur_take(c, 1, &p))
		return false;
	*v = p[0];
	return true;
}

bool tsm__rcur_u16(tsm__rcur *c, uint16_t *v)
{
	const uint8_t *p;
	if (!rcur_take(c, 2, &p))
		return false;
	*v = tsm__le16(p);
	return true;
}

bool tsm__rcur_u32(tsm__rcur *c, uint32_t *v)
{
	const uint8_t *p;
	if (!rcur_take(c, 4, &p))
		return false;
	*v = tsm__le32(p);
	return true;
}

bool tsm__rcur_u64(tsm__rcur *c, uint64_t *v)
{
	const uint8_t *p;
	if (!rcur_take(c, 8, &p))
		return false;
	*v = tsm__le64(p);
	return true;
}

bool tsm__rcur_bytes(tsm__rcur *c, size_t n, const uint8_t **out)
{
	return rcur_take(c, n, out);
}

bool tsm__rcur_skip(tsm__rcur *c, size_t n)
{
	const uint8_t *p;
	return rcur_take(c, n, &p);
}

/*
 * wbuf_room returns where n more bytes go, or NULL (and sets the sticky
 * flag) if they do not fit or an earlier put already overflowed.
 */
static uint8_t *wbuf_room(tsm__wbuf *w, size_t n)
{
	if (w->overflow || n > w->cap - w->len) {
		w->overflow = true;
		return NULL;
	}
	size_t at = w->len;
	w->len += n;
	return n ? w->p + at : NULL; /* nothing to write for n == 0 */
}

void tsm__wbuf_u8(tsm__wbuf *w, uint8_t v)
{
	uint8_t *p = wbuf_room(w, 1);
	if (p)
		p[0] = v;
}

void tsm__wbuf_u16(tsm__wbuf *w, uint16_t v)
{
	uint8_t *p = wbuf_room(w, 2);
	if (p)
		tsm__st16(p, v);
}

void tsm__wbuf_u32(tsm__wbuf *w, uint32_t v)
{
	uint8_t *p = wbuf_room(w, 4);
	if (p)
		tsm__st32(p, v);
}

void tsm__wbuf_u64(tsm__wbuf *w, uint64_t v)
{
	uint8_t *p = wbuf_room(w, 8);
	if (p)
		tsm__st64(p, v);
}

void tsm__wbuf_bytes(tsm__wbuf *w, const void *src, size_t n)
{
	uint8_t *p = wbuf_room(w, n);
	if (p)
		memcpy(p, src, n);
}

void tsm__wbuf_zero(tsm__wbuf *w, size_t n)
{
	uint8_t *p = wbuf_room(w, n);
	if (p)
		memset(p, 0, n);
}
