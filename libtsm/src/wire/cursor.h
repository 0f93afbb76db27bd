/*
 * wire/cursor.h - bounds-checked little-endian read cursor and write
 * builder (docs/wire.md §1).
 *
 * Neither allocates. A read that would run past the end fails, leaves the
 * cursor where it was and returns false; nothing ever reads out of bounds.
 * A write past capacity sets the builder's sticky `overflow` flag and
 * writes nothing, so a sequence of puts needs one check at the end.
 * Not thread-safe (one cursor per caller).
 */
#ifndef TSM_WIRE_CURSOR_H
#define TSM_WIRE_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tsm__rcur {
	const uint8_t *p; /* next unread byte */
	size_t left;      /* bytes left */
} tsm__rcur;

static inline void tsm__rcur_init(tsm__rcur *c, const void *buf, size_t len)
{
	c->p = (const uint8_t *)buf;
	c->left = len;
}

bool tsm__rcur_u8(tsm__rcur *c, uint8_t *v);
bool tsm__rcur_u16(tsm__rcur *c, uint16_t *v);
bool tsm__rcur_u32(tsm__rcur *c, uint32_t *v);
bool tsm__rcur_u64(tsm__rcur *c, uint64_t *v);
/* tsm__rcur_bytes points *out at the next n bytes (no copy) and skips them. */
bool tsm__rcur_bytes(tsm__rcur *c, size_t n, const uint8_t **out);
bool tsm__rcur_skip(tsm__rcur *c, size_t n);

typedef struct tsm__wbuf {
	uint8_t *p;     /* start of the buffer (borrowed) */
	size_t cap;
	size_t len;     /* bytes written */
	bool overflow;  /* sticky: a put did not fit */
} tsm__wbuf;

static inline void tsm__wbuf_init(tsm__wbuf *w, void *buf, size_t cap)
{
	w->p = (uint8_t *)buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = false;
}

void tsm__wbuf_u8(tsm__wbuf *w, uint8_t v);
void tsm__wbuf_u16(tsm__wbuf *w, uint16_t v);
void tsm__wbuf_u32(tsm__wbuf *w, uint32_t v);
void tsm__wbuf_u64(tsm__wbuf *w, uint64_t v);
void tsm__wbuf_bytes(tsm__wbuf *w, const void *src, size_t n);
/* tsm__wbuf_zero appends n zero bytes (padding). */
void tsm__wbuf_zero(tsm__wbuf *w, size_t n);

/* Unchecked little-endian loads/stores for fixed-size headers. */
static inline uint16_t tsm__le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t tsm__le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}
static inline uint64_t tsm__le64(const uint8_t *p)
{
	return (uint64_t)tsm__le32(p) | ((uint64_t)tsm__le32(p + 4) << 32);
}
static inline void tsm__st16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void tsm__st32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}
static inline void tsm__st64(uint8_t *p, uint64_t v)
{
	tsm__st32(p, (uint32_t)v);
	tsm__st32(p + 4, (uint32_t)(v >> 32));
}

#endif
