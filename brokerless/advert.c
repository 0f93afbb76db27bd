/*
 * brokerless/advert.c - the ADVERT record codec (docs/wire.md §12).
 */
#include "brokerless/advert.h"

#include <string.h>

#include "core/common.h"
#include "pubsub/topic.h"
#include "security/spiffe.h"
#include "wire/frame.h"

/* Propagates the first failure (like frame.c). */
#define TRY(expr)                                                              \
	do {                                                                   \
		tsm_err try_err_ = (expr);                                     \
		if (try_err_ != TSM_OK)                                        \
			return try_err_;                                       \
	} while (0)

/* ---- encoding ----------------------------------------------------------- */

size_t tsm__adv_rec_size(const tsm__adv_rec *r)
{
	size_t n = 8 + 8 + 1 + 1 + 2 + 2 + r->id.n;
	for (unsigned i = 0; i < r->nurls; i++)
		n += 1 + r->urls[i].n;
	for (unsigned i = 0; i < r->ntopics; i++)
		n += 1 + 2 + r->topics[i].name.n;
	return n;
}

/* §12.1: version, count, reserved. The count is patched by each put. */
void tsm__adv_begin(tsm__wbuf *w)
{
	tsm__wbuf_u8(w, TSM_ADV_VERSION);
	tsm__wbuf_u8(w, 0);
	tsm__wbuf_u16(w, 0);
}

bool tsm__adv_put(tsm__wbuf *w, const tsm__adv_rec *r)
{
	uint8_t *base = w->p;
	if (w->overflow || w->len < 4 || base[1] >= TSM_ADV_MAX_RECORDS ||
	    w->len + tsm__adv_rec_size(r) > w->cap)
		return false;
	tsm__wbuf_u64(w, r->node_id);
	tsm__wbuf_u64(w, r->version);
	tsm__wbuf_u8(w, r->flags);
	tsm__wbuf_u8(w, r->nurls);
	tsm__wbuf_u16(w, r->ntopics);
	tsm__wbuf_u16(w, r->id.n);
	tsm__wbuf_bytes(w, r->id.s, r->id.n);
	for (unsigned i = 0; i < r->nurls; i++) {
		tsm__wbuf_u8(w, (uint8_t)r->urls[i].n);
		tsm__wbuf_bytes(w, r->urls[i].s, r->urls[i].n);
	}
	for (unsigned i = 0; i < r->ntopics; i++) {
		tsm__wbuf_u8(w, r->topics[i].kind);
		tsm__wbuf_u16(w, r->topics[i].name.n);
		tsm__wbuf_bytes(w, r->topics[i].name.s, r->topics[i].name.n);
	}
	base[1]++;
	return !w->overflow;
}

/* ---- decoding ----------------------------------------------------------- */

struct adv_rd {
	tsm__rcur c;
	const uint8_t *start;
	unsigned rec;     /* record index, for details */
};

static size_t adv_off(const struct adv_rd *r)
{
	return (size_t)(r->c.p - r->start);
}

static tsm_err adv_short(const struct adv_rd *r, const char *field)
{
	return tsm__err_set(TSM_ERR_BAD_LENGTH,
	                    "ADVERT record %u: %s truncated at byte %zu", r->rec,
	                    field, adv_off(r));
}

/* URL bytes: printable ASCII without spaces; the dialer parses it later
 * (tsm__url_parse) and a URL that does not parse is simply not dialed. */
static bool adv_url_ok(const tsm__adv_str *u)
{
	if (u->n == 0 || u->n > TSM_ADV_URL_MAX)
		return false;
	for (unsigned i = 0; i < u->n; i++)
		if ((unsigned char)u->s[i] <= 0x20 || (unsigned char)u->s[i] >= 0x7f)
			return false;
	return true;
}

static tsm_err adv_str(struct adv_rd *r, const char *field, size_t n,
                       tsm__adv_str *out)
{
	const uint8_t *p;
	if (!tsm__rcur_bytes(&r->c, n, &p))
		return adv_short(r, field);
	out->s = (const char *)p;
	out->n = (uint16_t)n;
	return TSM_OK;
}

static tsm_err adv_head(struct adv_rd *r, tsm__adv_rec *o, uint16_t *idn)
{
	if (!tsm__rcur_u64(&r->c, &o->node_id) ||
	    !tsm__rcur_u64(&r->c, &o->version) ||
	    !tsm__rcur_u8(&r->c, &o->flags) || !tsm__rcur_u8(&r->c, &o->nurls) ||
	    !tsm__rcur_u16(&r->c, &o->ntopics) || !tsm__rcur_u16(&r->c, idn))
		return adv_short(r, "header");
	if (o->node_id == 0 || (o->flags & ~TSM_ADV_F__ALL) ||
	    o->nurls > TSM_ADV_MAX_URLS || o->ntopics > TSM_ADV_MAX_TOPICS ||
	    *idn > TSM_ADV_ID_MAX)
		return tsm__err_set(TSM_ERR_BAD_FIELD,
		                    "ADVERT record %u: node_id %llu flags 0x%02x "
		                    "urls %u topics %u id_len %u (limits §12.2)",
		                    r->rec, (unsigned long long)o->node_id, o->flags,
		                    o->nurls, o->ntopics, *idn);
	return TSM_OK;
}

static tsm_err adv_topic(struct adv_rd *r, tsm__adv_topic *t)
{
	uint16_t n;
	if (!tsm__rcur_u8(&r->c, &t->kind) || !tsm__rcur_u16(&r->c, &n))
		return adv_short(r, "topic");
	if (t->kind != TSM_ADV_PUB && t->kind != TSM_ADV_SUB)
		return tsm__err_set(TSM_ERR_BAD_FIELD,
		                    "ADVERT record %u: topic kind %u at byte %zu",
		                    r->rec, t->kind, adv_off(r) - 3);
	if (n == 0 || n > TSM_TOPIC_MAX)
		return tsm__err_set(TSM_ERR_BAD_LENGTH,
		                    "ADVERT record %u: topic length %u", r->rec, n);
	TRY(adv_str(r, "topic", n, &t->name));
	tsm_err e = t->kind == TSM_ADV_PUB ? tsm__topic_check(t->name.s, n)
	                                   : tsm__pattern_check(t->name.s, n);
	if (e)
		return tsm__err_set(e, "ADVERT record %u: bad %s at byte %zu", r->rec,
		                    t->kind == TSM_ADV_PUB ? "topic" : "pattern",
		                    adv_off(r) - n);
	return TSM_OK;
}

static tsm_err adv_record(struct adv_rd *r, tsm__adv_rec *o)
{
	uint16_t idn;
	TRY(adv_head(r, o, &idn));
	TRY(adv_str(r, "id", idn, &o->id));
	if (idn && tsm__spiffe_check(o->id.s, idn) != TSM_OK)
		return tsm__err_set(TSM_ERR_BAD_FIELD,
		                    "ADVERT record %u: identity is not a SPIFFE ID",
		                    r->rec);
	for (unsigned i = 0; i < o->nurls; i++) {
		uint8_t n;
		if (!tsm__rcur_u8(&r->c, &n))
			return adv_short(r, "url");
		TRY(adv_str(r, "url", n, &o->urls[i]));
		if (!adv_url_ok(&o->urls[i]))
			return tsm__err_set(TSM_ERR_BAD_FIELD,
			                    "ADVERT record %u: URL %u is empty, too long "
			                    "or has bytes outside 0x21..0x7e", r->rec, i);
	}
	for (unsigned i = 0; i < o->ntopics; i++)
		TRY(adv_topic(r, &o->topics[i]));
	return TSM_OK;
}

/* One pass over the frame; fn is NULL on the checking pass. */
static tsm_err adv_walk(const uint8_t *buf, size_t len, tsm__adv_fn fn,
                        void *arg)
{
	struct adv_rd r = {.start = buf};
	uint8_t ver, count;
	uint16_t reserved;
	tsm__adv_rec rec;
	tsm__rcur_init(&r.c, buf, len);
	if (!tsm__rcur_u8(&r.c, &ver) || !tsm__rcur_u8(&r.c, &count) ||
	    !tsm__rcur_u16(&r.c, &reserved))
		return tsm__err_set(TSM_ERR_BAD_LENGTH, "ADVERT: %zu bytes, header "
		                    "needs 4", len);
	if (ver != TSM_ADV_VERSION || count == 0 ||
	    count > TSM_ADV_MAX_RECORDS || reserved != 0)
		return tsm__err_set(TSM_ERR_BAD_FIELD,
		                    "ADVERT: version %u count %u reserved %u "
		                    "(want %u, 1..%u, 0)", ver, count, reserved,
		                    TSM_ADV_VERSION, TSM_ADV_MAX_RECORDS);
	for (r.rec = 0; r.rec < count; r.rec++) {
		TRY(adv_record(&r, &rec));
		if (fn && !fn(arg, &rec))
			return TSM_OK;
	}
	if (r.c.left)
		return tsm__err_set(TSM_ERR_BAD_LENGTH,
		                    "ADVERT: %zu trailing bytes after %u records",
		                    r.c.left, count);
	return TSM_OK;
}

tsm_err tsm__adv_decode(const uint8_t *buf, size_t len, tsm__adv_fn fn,
                        void *arg)
{
	if (!buf || len == 0 || len > TSM_WIRE_ADVERT_MAX)
		return tsm__err_set(TSM_ERR_BAD_LENGTH, "ADVERT: %zu bytes (1..%u)",
		                    len, TSM_WIRE_ADVERT_MAX);
	TRY(adv_walk(buf, len, NULL, NULL));
	return fn ? adv_walk(buf, len, fn, arg) : TSM_OK;
}
