/*
 * wire/frame.c - frame header and frame body codecs (docs/wire.md §2-§8).
 *
 * Decoders read through a `struct rd` (a cursor plus the body length and
 * the name of what is being parsed) so that every failure can say which
 * field broke at which byte offset. A field that runs past the end of its
 * body is TSM_ERR_TRUNCATED, a length over its limit or bytes left after
 * the last field TSM_ERR_BAD_LENGTH, a value outside its range
 * TSM_ERR_BAD_FIELD (docs/wire.md §11). Per-type rules live in tables.
 * Decoders never allocate and only point into the caller's buffer.
 */
#include <string.h>

#include "core/common.h"
#include "wire/frame.h"

/* Propagates the first failure, like s2n's POSIX_GUARD. */
#define TRY(expr)                                                              \
	do {                                                                   \
		tsm_err try_err_ = (expr);                                     \
		if (try_err_ != TSM_OK)                                        \
			return try_err_;                                       \
	} while (0)

/* ---- reading helpers ---------------------------------------------------- */

struct rd {
	tsm__rcur c;
	size_t len;       /* bytes the cursor started with: offsets are from there */
	const char *what; /* "PREFACE", "CTRL", ... for the detail string */
};

static struct rd rd_init(const uint8_t *buf, size_t len, const char *what)
{
	struct rd r = {.len = len, .what = what};
	tsm__rcur_init(&r.c, buf, len);
	return r;
}

static size_t rd_off(const struct rd *r)
{
	return r->len - r->c.left;
}

static tsm_err rd_short(const struct rd *r, const char *field, size_t need)
{
	return tsm__err_set(TSM_ERR_TRUNCATED,
	                    "%s: %s needs %zu bytes at byte %zu, %zu left",
	                    r->what, field, need, rd_off(r), r->c.left);
}

static tsm_err rd_u8(struct rd *r, const char *field, uint8_t *v)
{
	return tsm__rcur_u8(&r->c, v) ? TSM_OK : rd_short(r, field, 1);
}

static tsm_err rd_u16(struct rd *r, const char *field, uint16_t *v)
{
	return tsm__rcur_u16(&r->c, v) ? TSM_OK : rd_short(r, field, 2);
}

static tsm_err rd_u32(struct rd *r, const char *field, uint32_t *v)
{
	return tsm__rcur_u32(&r->c, v) ? TSM_OK : rd_short(r, field, 4);
}

static tsm_err rd_u64(struct rd *r, const char *field, uint64_t *v)
{
	return tsm__rcur_u64(&r->c, v) ? TSM_OK : rd_short(r, field, 8);
}

static tsm_err rd_bytes(struct rd *r, const char *field, size_t n,
                        const uint8_t **out)
{
	return tsm__rcur_bytes(&r->c, n, out) ? TSM_OK : rd_short(r, field, n);
}

/*
 * rd_str reads a u16 length (at most max, else TSM_ERR_BAD_LENGTH) and that
 * many bytes; *s is NULL for an empty string, as the headers promise.
 */
static tsm_err rd_str(struct rd *r, const char *field, size_t max,
                      const uint8_t **s, uint16_t *n)
{
	size_t off = rd_off(r);
	TRY(rd_u16(r, field, n));
	if (*n > max)
		return tsm__err_set(TSM_ERR_BAD_LENGTH,
		                    "%s: %s length %u > %zu at byte %zu", r->what,
		                    field, (unsigned)*n, max, off);
	TRY(rd_bytes(r, field, *n, s));
	if (*n == 0)
		*s = NULL;
	return TSM_OK;
}

/* rd_end refuses bytes after the last field: nothing may hide there. */
static tsm_err rd_end(const struct rd *r)
{
	if (r->c.left == 0)
		return TSM_OK;
	return tsm__err_set(TSM_ERR_BAD_LENGTH,
	                    "%s: %zu unexpected bytes after the end at byte %zu",
	                    r->what, r->c.left, rd_off(r));
}

/* ---- §2 frame header ---------------------------------------------------- */

enum {
	H_MAGIC = 0,
	H_VERSION = 2,
	H_TYPE = 3,
	H_FLAGS = 4,
	H_LANE = 5,
	H_EPOCH = 6,
	H_SESSION = 8,
	H_SEQ = 16,
	H_TOPIC = 24,
	H_PRIO = 28,
	H_RESERVED = 29,
	H_BUDGET = 32,
	H_BODY = 36,
};
_Static_assert(H_BODY + 4 == TSM_WIRE_HDR_LEN, "docs/wire.md §2 layout");

/* §2/§3: the header flags and topic_id each frame type may carry. */
struct ftype_rule {
	const char *name;
	uint8_t flags;  /* allowed TSM_FF_* bits */
	bool topic;     /* topic_id may be non-zero */
};

static const struct ftype_rule ftype_rules[TSM_F__MAX + 1] = {
	[TSM_F_PREFACE] = {"PREFACE", 0, false},
	[TSM_F_RETRY] = {"RETRY", 0, false},
	[TSM_F_HS] = {"HS", 0, false},
	[TSM_F_ACCEPT] = {"ACCEPT", TSM_FF_SEALED, false},
	[TSM_F_REJECT] = {"REJECT", TSM_FF_SEALED, false},
	[TSM_F_DATA] = {"DATA", TSM_FF_SEALED | TSM_FF_FRAGMENT, true},
	[TSM_F_CTRL] = {"CTRL", TSM_FF_SEALED, false},
	[TSM_F_REKEY] = {"REKEY", TSM_FF_SEALED, false},
	[TSM_F_CLOSE] = {"CLOSE", TSM_FF_SEALED, false},
};

static void fhdr_load(const uint8_t *b, tsm__fhdr *h)
{
	h->version = b[H_VERSION];
	h->type = b[H_TYPE];
	h->flags = b[H_FLAGS];
	h->lane = b[H_LANE];
	h->epoch = tsm__le16(b + H_EPOCH);
	h->session_id = tsm__le64(b + H_SESSION);
	h->seq = tsm__le64(b + H_SEQ);
	h->topic_id = tsm__le32(b + H_TOPIC);
	h->priority = b[H_PRIO];
	h->budget_us = tsm__le32(b + H_BUDGET);
	h->body_len = tsm__le32(b + H_BODY);
}

/* fhdr_check_kind: version, type and what that type allows (§2, §3). */
static tsm_err fhdr_check_kind(const tsm__fhdr *h)
{
	if (h->version != TSM_WIRE_VERSION)
		return tsm__err_set(TSM_ERR_BAD_VERSION,
		                    "frame header: version %u at byte %d",
		                    h->version, H_VERSION);
	if (h->type == 0 || h->type > TSM_F__MAX)
		return tsm__err_set(TSM_ERR_BAD_TYPE,
		                    "frame header: type %u at byte %d", h->type,
		                    H_TYPE);
	const struct ftype_rule *t = &ftype_rules[h->type];
	if (h->flags & ~t->flags)
		return tsm__err_set(TSM_ERR_BAD_FIELD,
		                    "frame header: flags 0x%02x not allowed on %s "
		                    "at byte %d", h->flags, t->name, H_FLAGS);
	if (h->topic_id != 0 && !t->topic)
		return tsm__err_set(TSM_ERR_BAD_FIELD,
		                    "frame header: topic_id %u on %s at byte %d",
		                    h->topic_id, t->name, H_TOPIC);
	return TSM_OK;
}

/* fhdr_check_fields: ranges, reserved bytes and the body length (§2). */
static tsm_err fhdr_check_fields(const uint8_t *b, const tsm__fhdr *h,
                                 uint32_t max_body)
{
	if (h->lane >= TSM_WIRE_LANES || h->priority >= TSM_WIRE_LANES)
		return tsm__err_set(TSM_ERR_BAD_FIELD,
		                    "frame header: lane %u / priority %u not "
		                    "below %u at byte %d/%d", h->lane, h->priority,
		                    TSM_WIRE_LANES, H_LANE, H_PRIO);
	for (int i = 0; i < 3; i++)
		if (b[H_RESERVED + i] != 0)
			return tsm__err_set(TSM_ERR_BAD_FIELD,
			                    "frame header: reserved byte %d is "
			                    "0x%02x", H_RESERVED + i,
			                    b[H_RESERVED + i]);
	if (h->body_len > max_body)
		return tsm__err_set(TSM_ERR_FRAME_TOO_LARGE,
		                    "frame header: body_len %u > %u at byte %d",
		                    h->body_len, max_body, H_BODY);
	if ((h->flags & TSM_FF_SEALED) && h->body_len < TSM_WIRE_TAG_LEN)
		return tsm__err_set(TSM_ERR_BAD_LENGTH,
		                    "frame header: sealed body_len %u < tag %u at "
		                    "byte %d", h->body_len, TSM_WIRE_TAG_LEN, H_BODY);
	return TSM_OK;
}

tsm_err tsm__fhdr_decode(const uint8_t *buf, size_t len, uint32_t max_body,
                         tsm__fhdr *out)
{
	memset(out, 0, sizeof(*out));
	if (len < TSM_WIRE_HDR_LEN)
		return tsm__err_set(TSM_ERR_TRUNCATED,
		                    "frame header: %zu of %u bytes", len,
		                    TSM_WIRE_HDR_LEN);
	if (tsm__le16(buf + H_MAGIC) != TSM_WIRE_MAGIC)
		return tsm__err_set(TSM_ERR_BAD_MAGIC,
		                    "frame header: magic 0x%02x 0x%02x at byte 0",
		                    buf[0], buf[1]);
	fhdr_load(buf, out);
	TRY(fhdr_check_kind(out));
	return fhdr_check_fields(buf, out, max_body);
}

void tsm__fhdr_encode(const tsm__fhdr *h, uint8_t out[TSM_WIRE_HDR_LEN])
{
	memset(out, 0, TSM_WIRE_HDR_LEN); /* reserved bytes are zero */
	tsm__st16(out + H_MAGIC, TSM_WIRE_MAGIC);
	out[H_VERSION] = h->version;
	out[H_TYPE] = h->type;
	out[H_FLAGS] = h->flags;
	out[H_LANE] = h->lane;
	tsm__st16(out + H_EPOCH, h->epoch);
	tsm__st64(out + H_SESSION, h->session_id);
	tsm__st64(out + H_SEQ, h->seq);
	tsm__st32(out + H_TOPIC, h->topic_id);
	out[H_PRIO] = h->priority;
	tsm__st32(out + H_BUDGET, h->budget_us);
	tsm__st32(out + H_BODY, h->body_len);
}

/* ---- §4 PREFACE --------------------------------------------------------- */

static tsm_err preface_fixed(struct rd *r, tsm__preface *p)
{
	const uint8_t *nonce;
	TRY(rd_u8(r, "min_version", &p->min_version));
	TRY(rd_u8(r, "max_version", &p->max_version));
	if (p->min_version == 0 || p->min_version > p->max_version)
		return tsm__err_set(TSM_ERR_BAD_FIELD,
		                    "PREFACE: versions %u..%u at byte 0",
		                    p->min_version, p->max_version);
	TRY(rd_u16(r, "flags", &p->flags));
	if (p->flags & ~TSM_PREFACE__KNOWN)
		return tsm__err_set(TSM_ERR_BAD_FIELD,
		                    "PREFACE: unknown flags 0x%04x at byte 2",
		                    p->flags);
	TRY(rd_bytes(r, "nonce", TSM_PREFACE_NONCE_LEN, &nonce));
	memcpy(p->nonce, nonce, TSM_PREFACE_NONCE_LEN);
	return rd_u64(r, "node_id", &p->node_id);
}

/* preface_pad: padding must be zero so that it cannot carry anything. */
static tsm_err preface_pad(struct rd *r, tsm__preface *p)
{
	const uint8_t *pad;
	size_t off = rd_off(r);
	TRY(rd_u16(r, "pad_len", &p->pad_len));
	if (p->pad_len > TSM_PREFACE_PAD_MAX)
		return tsm__err_set(TSM_ERR_BAD_LENGTH,
		                    "PREFACE: pad_len %u > %u at byte %zu",
		                    p->pad_len, TSM_PREFACE_PAD_MAX, off);
	TRY(rd_bytes(r, "padding", p->pad_len, &pad));
	for (size_t i = 0; i < p->pad_len; i++)
		if (pad[i] != 0)
			return tsm__err_set(TSM_ERR_BAD_FIELD,
			                    "PREFACE: non-zero padding at byte %zu",
			                    off + 2 + i);
	return TSM_OK;
}

tsm_err tsm__preface_decode(const uint8_t *body, size_t len, tsm__preface *out)
{
	struct rd r = rd_init(body, len, "PREFACE");
	memset(out, 0, sizeof(*out));
	TRY(preface_fixed(&r, out));
	TRY(rd_str(&r, "name", TSM_PREFACE_NAME_MAX, &out->name,
	           &out->name_len));
	TRY(preface_pad(&r, out));
	return rd_end(&r);
}

void tsm__preface_encode(const tsm__preface *p, tsm__wbuf *w)
{
	tsm__wbuf_u8(w, p->min_version);
	tsm__wbuf_u8(w, p->max_version);
	tsm__wbuf_u16(w, p->flags);
	tsm__wbuf_bytes(w, p->nonce, TSM_PREFACE_NONCE_LEN);
	tsm__wbuf_u64(w, p->node_id);
	tsm__wbuf_u16(w, p->name_len);
	tsm__wbuf_bytes(w, p->name, p->name_len);
	tsm__wbuf_u16(w, p->pad_len);
	tsm__wbuf_zero(w, p->pad_len);
}

/* ---- §5 REJECT / CLOSE -------------------------------------------------- */

tsm_err tsm__reason_decode(const uint8_t *body, size_t len, tsm__reason *out)
{
	struct rd r = rd_init(body, len, "REJECT/CLOSE");
	memset(out, 0, sizeof(*out));
	TRY(rd_u32(&r, "code", &out->code));
	TRY(rd_str(&r, "text", TSM_REASON_TEXT_MAX, &out->text,
	           &out->text_len));
	return rd_end(&r);
}

void tsm__reason_encode(const tsm__reason *r, tsm__wbuf *w)
{
	tsm__wbuf_u32(w, r->code);
	tsm__wbuf_u16(w, r->text_len);
	tsm__wbuf_bytes(w, r->text, r->text_len);
}

/* ---- §6 / §7 DATA records ----------------------------------------------- */

/* rec_fixed reads the 24-byte record header (§6). */
static tsm_err rec_fixed(struct rd *r, tsm__rec *rec)
{
	TRY(rd_u32(r, "topic_id", &rec->topic_id));
	if (rec->topic_id == 0) /* ids come from CTRL TOPIC, never 0 (§8) */
		return tsm__err_set(TSM_ERR_BAD_FIELD,
		                    "DATA record: topic_id 0 at byte 0");
	TRY(rd_u16(r, "flags", &rec->flags));
	if (rec->flags & ~TSM_REC__KNOWN)
		return tsm__err_set(TSM_ERR_BAD_FIELD,
		                    "DATA record: unknown flags 0x%04x at byte 4",
		                    rec->flags);
	TRY(rd_u16(r, "meta_len", &rec->meta_len));
	TRY(rd_u32(r, "payload_len", &rec->payload_len));
	TRY(rd_u32(r, "budget_us", &rec->budget_us));
	return rd_u64(r, "msg_id", &rec->msg_id);
}

/* rec_meta_rule: META and meta_len agree, within the §9 size limit. */
static tsm_err rec_meta_rule(const tsm__rec *rec)
{
	if (rec->meta_len > TSM_META_MAX)
		return tsm__err_set(TSM_ERR_BAD_METADATA,
		                    "DATA record: meta_len %u > %u at byte 6",
		                    rec->meta_len, TSM_META_MAX);
	if (!(rec->flags & TSM_REC_META) != (rec->meta_len == 0))
		return tsm__err_set(TSM_ERR_BAD_LENGTH,
		                    "DATA record: meta_len %u disagrees with the "
		                    "META flag at byte 6", rec->meta_len);
	return TSM_OK;
}

/* rec_frag_flags: FRAG exactly in FRAGMENT frames, LAST only with FRAG. */
static tsm_err rec_frag_flags(const tsm__rec *rec, uint8_t frame_flags)
{
	bool frag = rec->flags & TSM_REC_FRAG;
	if (frag != !!(frame_flags & TSM_FF_FRAGMENT))
		return tsm__err_set(TSM_ERR_BAD_FRAGMENT,
		                    "DATA record: FRAG is %s in a frame %s the "
		                    "FRAGMENT flag (byte 4)", frag ? "set" : "clear",
		                    frag ? "without" : "with");
	if ((rec->flags & TSM_REC_LAST) && !frag)
		return tsm__err_set(TSM_ERR_BAD_FRAGMENT,
		                    "DATA record: LAST without FRAG at byte 4");
	return TSM_OK;
}

/* rec_frag_ext reads the §7 extension and checks what one fragment can. */
static tsm_err rec_frag_ext(struct rd *r, tsm__rec *rec, uint64_t max_msg)
{
	uint32_t reserved;
	TRY(rd_u64(r, "total_len", &rec->total_len));
	TRY(rd_u32(r, "frag_index", &rec->frag_index));
	TRY(rd_u32(r, "reserved", &reserved));
	if (reserved != 0)
		return tsm__err_set(TSM_ERR_BAD_FIELD,
		                    "DATA record: reserved 0x%08x at byte 36",
		                    reserved);
	if (rec->total_len > max_msg)
		return tsm__err_set(TSM_ERR_FRAME_TOO_LARGE,
		                    "DATA record: total_len %llu > %llu at byte 24",
		                    (unsigned long long)rec->total_len,
		                    (unsigned long long)max_msg);
	return TSM_OK;
}

/* §7.1: an ABORT ends a message that was started (index > 0) with no
 * payload and no metadata, and it is the last fragment. */
static tsm_err rec_abort_rule(const tsm__rec *rec)
{
	bool ok = (rec->flags & TSM_REC_FRAG) && (rec->flags & TSM_REC_LAST) &&
	          !(rec->flags & TSM_REC_META) && rec->payload_len == 0 &&
	          rec->frag_index > 0;
	return ok ? TSM_OK
	          : tsm__err_set(TSM_ERR_BAD_FRAGMENT, "DATA record: ABORT needs "
	                         "FRAG|LAST, index > 0, no payload or metadata");
}

/* rec_frag_sizes: §7 consistency a single fragment can show on its own. */
static tsm_err rec_frag_sizes(const tsm__rec *rec)
{
	bool last = rec->flags & TSM_REC_LAST;
	if (rec->flags & TSM_REC_ABORT)
		return rec_abort_rule(rec);
	if (rec->payload_len == 0 || rec->payload_len > rec->total_len)
		return tsm__err_set(TSM_ERR_BAD_FRAGMENT,
		                    "DATA record: fragment payload_len %u not in "
		                    "1..total_len %llu (byte 8)", rec->payload_len,
		                    (unsigned long long)rec->total_len);
	if (rec->frag_index != 0 && (rec->flags & TSM_REC_META))
		return tsm__err_set(TSM_ERR_BAD_FRAGMENT,
		                    "DATA record: metadata on fragment %u (byte 4)",
		                    rec->frag_index);
	if (rec->frag_index == 0 && last && rec->payload_len != rec->total_len)
		return tsm__err_set(TSM_ERR_BAD_FRAGMENT,
		                    "DATA record: only fragment holds %u of %llu "
		                    "bytes", rec->payload_len,
		                    (unsigned long long)rec->total_len);
	return TSM_OK;
}

static tsm_err rec_sizes(struct rd *r, tsm__rec *rec, uint64_t max_msg)
{
	if (rec->flags & TSM_REC_FRAG) {
		TRY(rec_frag_ext(r, rec, max_msg));
		return rec_frag_sizes(rec);
	}
	if (rec->flags & TSM_REC_ABORT)
		return rec_abort_rule(rec); /* refused: ABORT needs FRAG */
	if (rec->payload_len > max_msg)
		return tsm__err_set(TSM_ERR_FRAME_TOO_LARGE,
		                    "DATA record: payload_len %u > %llu at byte 8",
		                    rec->payload_len, (unsigned long long)max_msg);
	return TSM_OK;
}

/*
 * tsm__rec_next works on a copy of the cursor and only moves c on success,
 * so a caller that stops at the first error still knows where it was.
 */
tsm_err tsm__rec_next(tsm__rcur *c, uint8_t frame_flags, uint64_t max_msg,
                      tsm__rec *out)
{
	struct rd r = {.c = *c, .len = c->left, .what = "DATA record"};
	memset(out, 0, sizeof(*out));
	TRY(rec_fixed(&r, out));
	TRY(rec_meta_rule(out));
	TRY(rec_frag_flags(out, frame_flags));
	TRY(rec_sizes(&r, out, max_msg));
	if (out->flags & TSM_REC_TS) /* §6.1 */
		TRY(rd_u64(&r, "ts", &out->ts));
	TRY(rd_bytes(&r, "meta", out->meta_len, &out->meta));
	TRY(rd_bytes(&r, "payload", out->payload_len, &out->payload));
	if ((frame_flags & TSM_FF_FRAGMENT) && r.c.left != 0)
		return tsm__err_set(TSM_ERR_BAD_FRAGMENT,
		                    "DATA record: %zu bytes after the one fragment "
		                    "of a FRAGMENT frame", r.c.left);
	*c = r.c;
	return TSM_OK;
}

void tsm__rec_encode_hdr(const tsm__rec *r, tsm__wbuf *w)
{
	tsm__wbuf_u32(w, r->topic_id);
	tsm__wbuf_u16(w, r->flags);
	tsm__wbuf_u16(w, r->meta_len);
	tsm__wbuf_u32(w, r->payload_len);
	tsm__wbuf_u32(w, r->budget_us);
	tsm__wbuf_u64(w, r->msg_id);
	if (r->flags & TSM_REC_FRAG) {
		tsm__wbuf_u64(w, r->total_len);
		tsm__wbuf_u32(w, r->frag_index);
		tsm__wbuf_u32(w, 0); /* reserved */
	}
	if (r->flags & TSM_REC_TS)
		tsm__wbuf_u64(w, r->ts);
}

/* ---- §8 CTRL ------------------------------------------------------------ */

/* §8: which fields each control type uses; unused ones must be zero. */
struct ctrl_rule {
	const char *name;
	bool str;   /* str_len > 0 required (else must be 0) */
	bool id;    /* id != 0 required (else must be 0) */
	bool value; /* value allowed (else must be 0) */
};

static const struct ctrl_rule ctrl_rules[TSM_C__MAX + 1] = {
	[TSM_C_SUBSCRIBE] = {"SUBSCRIBE", true, false, false},
	[TSM_C_UNSUBSCRIBE] = {"UNSUBSCRIBE", true, false, false},
	[TSM_C_TOPIC] = {"TOPIC", true, true, false},
	[TSM_C_PING] = {"PING", false, false, true},
	[TSM_C_PONG] = {"PONG", false, false, true},
	[TSM_C_ADVERT] = {"ADVERT", false, false, false},
	[TSM_C_ACK] = {"ACK", false, false, true},
	[TSM_C_RESUME] = {"RESUME", true, false, true},
	[TSM_C_TIERS] = {"TIERS", true, false, false},
};

static tsm_err ctrl_check(const tsm__ctrl *c)
{
	const struct ctrl_rule *t = &ctrl_rules[c->type];
	if ((c->str_len != 0) != t->str)
		return tsm__err_set(TSM_ERR_BAD_FIELD,
		                    "CTRL %s: str_len %u at byte 14", t->name,
		                    c->str_len);
	if ((c->id != 0) != t->id)
		return tsm__err_set(TSM_ERR_BAD_FIELD,
		                    "CTRL %s: id %u at byte 2", t->name, c->id);
	if (c->value != 0 && !t->value)
		return tsm__err_set(TSM_ERR_BAD_FIELD,
		                    "CTRL %s: value %llu at byte 6", t->name,
		                    (unsigned long long)c->value);
	return TSM_OK;
}

tsm_err tsm__ctrl_decode(const uint8_t *body, size_t len, tsm__ctrl *out)
{
	struct rd r = rd_init(body, len, "CTRL");
	uint8_t reserved;
	memset(out, 0, sizeof(*out));
	TRY(rd_u8(&r, "type", &out->type));
	if (out->type == 0 || out->type > TSM_C__MAX)
		return tsm__err_set(TSM_ERR_BAD_TYPE,
		                    "CTRL: type %u at byte 0", out->type);
	TRY(rd_u8(&r, "reserved", &reserved));
	if (reserved != 0)
		return tsm__err_set(TSM_ERR_BAD_FIELD,
		                    "CTRL: reserved 0x%02x at byte 1", reserved);
	TRY(rd_u32(&r, "id", &out->id));
	TRY(rd_u64(&r, "value", &out->value));
	TRY(rd_str(&r, "str", TSM_TOPIC_MAX, &out->str, &out->str_len));
	if (out->type == TSM_C_ADVERT) {
		/* §8, §12: the records follow; brokerless/advert.c reads them */
		size_t n = r.c.left;
		if (n == 0 || n > TSM_WIRE_ADVERT_MAX)
			return tsm__err_set(TSM_ERR_BAD_LENGTH,
			                    "CTRL ADVERT: %zu record bytes at byte 16 "
			                    "(1..%u)", n, TSM_WIRE_ADVERT_MAX);
		out->blob = body + (len - n);
		out->blob_len = (uint32_t)n;
		return ctrl_check(out);
	}
	TRY(rd_end(&r));
	return ctrl_check(out);
}

void tsm__ctrl_encode(const tsm__ctrl *c, tsm__wbuf *w)
{
	tsm__wbuf_u8(w, c->type);
	tsm__wbuf_u8(w, 0); /* reserved */
	tsm__wbuf_u32(w, c->id);
	tsm__wbuf_u64(w, c->value);
	tsm__wbuf_u16(w, c->str_len);
	tsm__wbuf_bytes(w, c->str, c->str_len);
	if (c->blob_len)
		tsm__wbuf_bytes(w, c->blob, c->blob_len);
}
