/*
 * wire/meta.h - extended message metadata: a msgpack map (docs/wire.md §9).
 *
 * tsm__meta_check walks raw msgpack bytes with its own bounds-checked
 * parser, without allocating, and only then may tsm__meta_decode hand
 * them to msgpack-c: a metadata bomb (deep nesting, huge announced
 * lengths, more items than bytes) is refused before any allocation.
 * Thread-safe.
 */
#ifndef TSM_WIRE_META_H
#define TSM_WIRE_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tsm/err.h"
#include "tsm/pubsub.h" /* TSM_META_MAX */
#include "tsm/time.h"

#define TSM_META_MAX_DEPTH 8u
#define TSM_META_MAX_ITEMS 256u /* objects in the whole map, nested ones too */

/*
 * tsm__meta_check returns TSM_OK if buf[0..len) is exactly one msgpack map
 * (nothing after it), len <= TSM_META_MAX, nesting depth <=
 * TSM_META_MAX_DEPTH, total objects <= TSM_META_MAX_ITEMS, every map key a
 * string, and every announced length inside the buffer. Else
 * TSM_ERR_BAD_METADATA (detail says what and at which byte offset).
 */
tsm_err tsm__meta_check(const uint8_t *buf, size_t len);

/* Decoded well-known keys of §9. Pointers point into the input buffer. */
typedef struct tsm__meta {
	bool has_ts;
	tsm_time ts;              /* "ts": sender monotonic ns (its own clock) */
	const uint8_t *ctype;     /* "ct": content type string */
	size_t ctype_len;
	const uint8_t *trace;     /* "tc": trace context string */
	size_t trace_len;
	const uint8_t *user;      /* "u": the user map, raw msgpack bytes */
	size_t user_len;
} tsm__meta;

/*
 * tsm__meta_decode checks buf with tsm__meta_check, then unpacks it with
 * msgpack-c and fills out. Unknown keys are ignored (forward compatible);
 * a well-known key with the wrong type is TSM_ERR_BAD_METADATA.
 */
tsm_err tsm__meta_decode(const uint8_t *buf, size_t len, tsm__meta *out);

/*
 * tsm__meta_encode writes m as a msgpack map into out (capacity cap) with
 * msgpack-c's packer; *len receives the size. The user map (if any) is
 * copied in verbatim and must already pass tsm__meta_check. Returns
 * TSM_ERR_BAD_METADATA if the result would exceed cap or TSM_META_MAX.
 */
tsm_err tsm__meta_encode(const tsm__meta *m, uint8_t *out, size_t cap,
                         size_t *len);

#endif
