/*
 * wire/meta.c - message metadata, a msgpack map (docs/wire.md §9).
 *
 * Metadata comes from peers, so it is walked twice with different jobs.
 * First mp_walk, our own iterative msgpack walker, proves the bytes are
 * one bounded map: it reads only object heads, never allocates, keeps an
 * explicit stack of at most TSM_META_MAX_DEPTH open containers and counts
 * every object, so deep nesting, announced lengths past the end and
 * "2^32 elements in 5 bytes" are refused before anything is built. Only
 * then does msgpack-c unpack the bytes into objects, which we read for the
 * well-known keys. Encoding uses msgpack-c's packer writing into a fixed
 * tsm__wbuf, so it never grows past the caller's buffer.
 */
#include <msgpack.h>
#include <string.h>

#include "core/common.h"
#include "wire/cursor.h"
#include "wire/meta.h"

#define TRY(expr)                                                              \
	do {                                                                   \
		tsm_err try_err_ = (expr);                                     \
		if (try_err_ != TSM_OK)                                        \
			return try_err_;                                       \
	} while (0)

static tsm_err meta_bad(const char *why, size_t at)
{
	return tsm__err_set(TSM_ERR_BAD_METADATA, "metadata: %s at byte %zu",
	                    why, at);
}

/* ---- §9 the walker ------------------------------------------------------ */

enum mp_kind { MP_BAD = 0, MP_BYTES, MP_STR, MP_ARRAY, MP_MAP };

/* Heads 0xc0..0xdf: kind, size of the big-endian length, fixed bytes. */
struct mp_form {
	uint8_t kind, lenb, fixed;
};

static const struct mp_form mp_forms[32] = {
	[0x00] = {MP_BYTES, 0, 0},  /* nil */
	[0x01] = {MP_BAD, 0, 0},    /* 0xc1 is never used */
	[0x02] = {MP_BYTES, 0, 0},  /* false */
	[0x03] = {MP_BYTES, 0, 0},  /* true */
	[0x04] = {MP_BYTES, 1, 0},  /* bin 8 */
	[0x05] = {MP_BYTES, 2, 0},  /* bin 16 */
	[0x06] = {MP_BYTES, 4, 0},  /* bin 32 */
	[0x07] = {MP_BYTES, 1, 1},  /* ext 8: length, then a type byte */
	[0x08] = {MP_BYTES, 2, 1},  /* ext 16 */
	[0x09] = {MP_BYTES, 4, 1},  /* ext 32 */
	[0x0a] = {MP_BYTES, 0, 4},  /* float 32 */
	[0x0b] = {MP_BYTES, 0, 8},  /* float 64 */
	[0x0c] = {MP_BYTES, 0, 1},  /* uint 8 */
	[0x0d] = {MP_BYTES, 0, 2},  /* uint 16 */
	[0x0e] = {MP_BYTES, 0, 4},  /* uint 32 */
	[0x0f] = {MP_BYTES, 0, 8},  /* uint 64 */
	[0x10] = {MP_BYTES, 0, 1},  /* int 8 */
	[0x11] = {MP_BYTES, 0, 2},  /* int 16 */
	[0x12] = {MP_BYTES, 0, 4},  /* int 32 */
	[0x13] = {MP_BYTES, 0, 8},  /* int 64 */
	[0x14] = {MP_BYTES, 0, 2},  /* fixext 1: type byte + 1 */
	[0x15] = {MP_BYTES, 0, 3},  /* fixext 2 */
	[0x16] = {MP_BYTES, 0, 5},  /* fixext 4 */
	[0x17] = {MP_BYTES, 0, 9},  /* fixext 8 */
	[0x18] = {MP_BYTES, 0, 17}, /* fixext 16 */
	[0x19] = {MP_STR, 1, 0},    /* str 8 */
	[0x1a] = {MP_STR, 2, 0},    /* str 16 */
	[0x1b] = {MP_STR, 4, 0},    /* str 32 */
	[0x1c] = {MP_ARRAY, 2, 0},  /* array 16 */
	[0x1d] = {MP_ARRAY, 4, 0},  /* array 32 */
	[0x1e] = {MP_MAP, 2, 0},    /* map 16 */
	[0x1f] = {MP_MAP, 4, 0},    /* map 32 */
};

/* One object head: its kind, head size and what follows it. */
struct mp_head {
	uint8_t kind;
	size_t hlen; /* type byte plus length field */
	uint64_t n;  /* MP_BYTES/MP_STR: bytes after the head; else elements */
};

static bool mp_is_map(uint8_t t)
{
	return (t & 0xf0) == 0x80 || t == 0xde || t == 0xdf;
}

/* mp_fixed decodes the one-byte forms (fixint, fixmap, fixarray, fixstr). */
static bool mp_fixed(uint8_t t, struct mp_head *h)
{
	if (t <= 0x7f || t >= 0xe0)
		*h = (struct mp_head){MP_BYTES, 1, 0};
	else if (t <= 0x8f)
		*h = (struct mp_head){MP_MAP, 1, t & 0x0fu};
	else if (t <= 0x9f)
		*h = (struct mp_head){MP_ARRAY, 1, t & 0x0fu};
	else if (t <= 0xbf)
		*h = (struct mp_head){MP_STR, 1, t & 0x1fu};
	else
		return false;
	return true;
}

/* mp_head parses the head at b; NULL on success, else why not. */
static const char *mp_head(const uint8_t *b, size_t left, struct mp_head *h)
{
	if (left == 0)
		return "object expected, end of input";
	if (mp_fixed(b[0], h))
		return NULL;
	const struct mp_form *f = &mp_forms[b[0] - 0xc0];
	if (f->kind == MP_BAD)
		return "reserved type byte 0xc1";
	if (1u + f->lenb > left)
		return "length field cut short";
	uint64_t n = 0;
	for (unsigned i = 0; i < f->lenb; i++)
		n = (n << 8) | b[1 + i]; /* msgpack is big-endian */
	*h = (struct mp_head){f->kind, 1u + f->lenb, n + f->fixed};
	return NULL;
}

struct mp_walk {
	const uint8_t *buf;
	size_t len, off;
	unsigned depth;  /* containers open; the top-level map is depth 1 */
	unsigned items;  /* objects seen */
	uint64_t left[TSM_META_MAX_DEPTH]; /* elements still due per level */
	bool map[TSM_META_MAX_DEPTH];
};

/* mp_open pushes a container, refusing what the bytes cannot hold. */
static tsm_err mp_open(struct mp_walk *w, const struct mp_head *h, size_t at)
{
	uint64_t elems = h->kind == MP_MAP ? 2 * h->n : h->n;
	if (w->depth == TSM_META_MAX_DEPTH)
		return meta_bad("nesting deeper than 8", at);
	if (elems > w->len - w->off) /* each element takes at least a byte */
		return meta_bad("more elements announced than bytes left", at);
	w->map[w->depth] = h->kind == MP_MAP;
	w->left[w->depth++] = elems;
	return TSM_OK;
}

/* mp_step consumes one object head (and a scalar's or string's bytes). */
static tsm_err mp_step(struct mp_walk *w)
{
	struct mp_head h;
	size_t at = w->off;
	unsigned d = w->depth;
	bool key = d && w->map[d - 1] && w->left[d - 1] % 2 == 0;
	const char *why = mp_head(w->buf + at, w->len - at, &h);
	if (why)
		return meta_bad(why, at);
	if (++w->items > TSM_META_MAX_ITEMS)
		return meta_bad("more than 256 objects", at);
	if (key && h.kind != MP_STR)
		return meta_bad("map key is not a string", at);
	if (d)
		w->left[d - 1]--;
	w->off += h.hlen;
	if (h.kind == MP_ARRAY || h.kind == MP_MAP)
		return mp_open(w, &h, at);
	if (h.n > w->len - w->off)
		return meta_bad("announced length runs past the end", at);
	w->off += h.n;
	return TSM_OK;
}

/* mp_walk_one walks exactly one whole object starting at w->off. */
static tsm_err mp_walk_one(struct mp_walk *w)
{
	do {
		TRY(mp_step(w));
		while (w->depth && w->left[w->depth - 1] == 0)
			w->depth--;
	} while (w->depth);
	return TSM_OK;
}

tsm_err tsm__meta_check(const uint8_t *buf, size_t len)
{
	struct mp_walk w = {.buf = buf, .len = len};
	if (len == 0 || len > TSM_META_MAX)
		return tsm__err_set(TSM_ERR_BAD_METADATA,
		                    "metadata: %zu bytes, not in 1..%u", len,
		                    TSM_META_MAX);
	if (!mp_is_map(buf[0]))
		return meta_bad("not a map", 0);
	TRY(mp_walk_one(&w));
	if (w.off != len)
		return meta_bad("trailing bytes after the map", w.off);
	return TSM_OK;
}

/*
 * meta_value_span finds the raw bytes of the value of entry i of the
 * (already checked) top-level map: msgpack-c objects do not keep them.
 */
static void meta_value_span(const uint8_t *buf, size_t len, uint32_t i,
                            const uint8_t **val, size_t *val_len)
{
	struct mp_head h;
	struct mp_walk w = {.buf = buf, .len = len};
	mp_head(buf, len, &h);
	w.off = h.hlen;
	for (uint32_t k = 0; k < 2 * i + 1; k++) /* keys and values before */
		mp_walk_one(&w);
	size_t start = w.off;
	mp_walk_one(&w);
	*val = buf + start;
	*val_len = w.off - start;
}

/* ---- §9 decode ---------------------------------------------------------- */

enum { K_TS, K_CT, K_TC, K_U, K__N };
static const char *const meta_keys[K__N] = {"ts", "ct", "tc", "u"};

static int meta_key_index(const msgpack_object_str *k)
{
	for (int i = 0; i < K__N; i++)
		if (k->size == strlen(meta_keys[i]) &&
		    memcmp(k->ptr, meta_keys[i], k->size) == 0)
			return i;
	return -1;
}

/* Where the key's bytes are in buf, for the detail string. */
static size_t meta_at(const msgpack_object_kv *kv, const uint8_t *buf)
{
	return (size_t)((const uint8_t *)kv->key.via.str.ptr - buf);
}

static tsm_err meta_ts(const msgpack_object_kv *kv, const uint8_t *buf,
                       tsm__meta *out)
{
	/* A monotonic clock reading is never negative. */
	if (kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    kv->val.via.u64 > (uint64_t)INT64_MAX)
		return meta_bad("\"ts\" is not an integer in 0..INT64_MAX",
		                meta_at(kv, buf));
	out->has_ts = true;
	out->ts = (tsm_time)kv->val.via.u64;
	return TSM_OK;
}

static tsm_err meta_str(const msgpack_object_kv *kv, const uint8_t *buf,
                        size_t len, const uint8_t **s, size_t *n)
{
	if (kv->val.type != MSGPACK_OBJECT_STR)
		return meta_bad("\"ct\"/\"tc\" is not a string", meta_at(kv, buf));
	const uint8_t *p = (const uint8_t *)kv->val.via.str.ptr;
	/* Our pointers must stay valid after msgpack-c's zone is freed. */
	if (p < buf || kv->val.via.str.size > (size_t)(buf + len - p))
		return tsm__err_set(TSM_EINTERNAL,
		                    "metadata: msgpack-c string not in the input");
	*s = p;
	*n = kv->val.via.str.size;
	return TSM_OK;
}

static tsm_err meta_entry(const msgpack_object_map *m, uint32_t i,
                          const uint8_t *buf, size_t len, tsm__meta *out,
                          unsigned *seen)
{
	const msgpack_object_kv *kv = &m->ptr[i];
	int k = meta_key_index(&kv->key.via.str);
	if (k < 0)
		return TSM_OK; /* unknown keys: forward compatible (§9) */
	if (*seen & (1u << k)) /* two parsers could pick different copies */
		return meta_bad("duplicate well-known key", meta_at(kv, buf));
	*seen |= 1u << k;
	if (k == K_TS)
		return meta_ts(kv, buf, out);
	if (k == K_CT)
		return meta_str(kv, buf, len, &out->ctype, &out->ctype_len);
	if (k == K_TC)
		return meta_str(kv, buf, len, &out->trace, &out->trace_len);
	if (kv->val.type != MSGPACK_OBJECT_MAP)
		return meta_bad("\"u\" is not a map", meta_at(kv, buf));
	meta_value_span(buf, len, i, &out->user, &out->user_len);
	return TSM_OK;
}

static tsm_err meta_fill(const msgpack_object *o, const uint8_t *buf,
                         size_t len, tsm__meta *out)
{
	unsigned seen = 0;
	if (o->type != MSGPACK_OBJECT_MAP) /* the walker said it was */
		return tsm__err_set(TSM_EINTERNAL, "metadata: msgpack-c disagrees");
	for (uint32_t i = 0; i < o->via.map.size; i++)
		TRY(meta_entry(&o->via.map, i, buf, len, out, &seen));
	return TSM_OK;
}

tsm_err tsm__meta_decode(const uint8_t *buf, size_t len, tsm__meta *out)
{
	msgpack_unpacked u;
	size_t off = 0;
	tsm_err err;
	memset(out, 0, sizeof(*out));
	TRY(tsm__meta_check(buf, len)); /* before msgpack-c allocates anything */
	msgpack_unpacked_init(&u);
	msgpack_unpack_return rc =
		msgpack_unpack_next(&u, (const char *)buf, len, &off);
	if (rc == MSGPACK_UNPACK_NOMEM_ERROR)
		err = tsm__err_set(TSM_ENOMEM, "metadata: msgpack-c out of memory");
	else if (rc != MSGPACK_UNPACK_SUCCESS || off != len)
		err = tsm__err_set(TSM_EINTERNAL,
		                   "metadata: msgpack-c refused checked input (%d)",
		                   (int)rc);
	else
		err = meta_fill(&u.data, buf, len, out);
	msgpack_unpacked_destroy(&u);
	if (err != TSM_OK)
		memset(out, 0, sizeof(*out));
	return err;
}

/* ---- §9 encode ---------------------------------------------------------- */

/* msgpack-c write callback: a fixed buffer, never grown. */
static int meta_sink(void *data, const char *buf, size_t len)
{
	tsm__wbuf *w = data;
	tsm__wbuf_bytes(w, buf, len);
	return w->overflow ? -1 : 0;
}

static void meta_pack_str(msgpack_packer *pk, const void *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

/* meta_pack writes the map; overflow is caught once through the wbuf. */
static void meta_pack(msgpack_packer *pk, tsm__wbuf *w, const tsm__meta *m)
{
	size_t n = (size_t)m->has_ts + (m->ctype != NULL) + (m->trace != NULL) +
	           (m->user != NULL);
	msgpack_pack_map(pk, n);
	if (m->has_ts) {
		meta_pack_str(pk, "ts", 2);
		msgpack_pack_int64(pk, m->ts);
	}
	if (m->ctype) {
		meta_pack_str(pk, "ct", 2);
		meta_pack_str(pk, m->ctype, m->ctype_len);
	}
	if (m->trace) {
		meta_pack_str(pk, "tc", 2);
		meta_pack_str(pk, m->trace, m->trace_len);
	}
	if (m->user) {
		meta_pack_str(pk, "u", 1);
		tsm__wbuf_bytes(w, m->user, m->user_len); /* verbatim */
	}
}

tsm_err tsm__meta_encode(const tsm__meta *m, uint8_t *out, size_t cap,
                         size_t *len)
{
	tsm__wbuf w;
	msgpack_packer pk;
	*len = 0;
	if (m->has_ts && m->ts < 0)
		return tsm__err_set(TSM_ERR_BAD_METADATA, "metadata: ts < 0");
	if (m->user)
		TRY(tsm__meta_check(m->user, m->user_len));
	tsm__wbuf_init(&w, out, TSM_MIN(cap, (size_t)TSM_META_MAX));
	msgpack_packer_init(&pk, &w, meta_sink);
	meta_pack(&pk, &w, m);
	if (w.overflow)
		return tsm__err_set(TSM_ERR_BAD_METADATA,
		                    "metadata: encoding exceeds %zu bytes",
		                    w.cap);
	/* The user map sits one level deeper here: never send what we refuse. */
	TRY(tsm__meta_check(out, w.len));
	*len = w.len;
	return TSM_OK;
}
