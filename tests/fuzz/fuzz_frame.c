/*
 * tests/fuzz/fuzz_frame.c - the frame codecs of wire/frame.h on hostile
 * bytes (docs/wire.md §2-§8).
 *
 * The first input byte picks a mode: a stream of whole frames (header,
 * then the body decoder for the header's type, frame after frame, as a
 * session reads them), or one body decoder fed directly (PREFACE,
 * REJECT/CLOSE reason, CTRL, a DATA body under given frame flags). Beyond
 * "no crash, no out-of-bounds read", every accepted value must re-encode
 * to exactly the bytes it came from (docs/wire.md §1: one value, one
 * encoding), lengths and pointers must stay inside the body, a failed
 * tsm__rec_next must leave its cursor where it was, and every refusal
 * must be one of the documented reasons with a detail string.
 */
#include "fuzz_util.h"

#include "tsm/tsm.h"
#include "wire/cursor.h"
#include "wire/frame.h"

#define MAX_MSG (16ull << 20) /* what a session passes as max_msg */

/* The reasons frame.h documents; anything else is a finding. */
static void check_reason(tsm_err e, const char *where)
{
	FUZZ_CHECK(e == TSM_ERR_TRUNCATED || e == TSM_ERR_BAD_MAGIC ||
	                   e == TSM_ERR_BAD_VERSION || e == TSM_ERR_BAD_TYPE ||
	                   e == TSM_ERR_BAD_LENGTH || e == TSM_ERR_BAD_FIELD ||
	                   e == TSM_ERR_FRAME_TOO_LARGE ||
	                   e == TSM_ERR_BAD_FRAGMENT || e == TSM_ERR_BAD_METADATA,
	           "%s: undocumented reason %d (%s)", where, (int)e,
	           tsm_err_name(e));
	const char *d = tsm_err_detail();
	FUZZ_CHECK(d != NULL && d[0] != '\0', "%s: refusal without a detail",
	           where);
}

/* The encoded bytes in w must be exactly the n input bytes at in. */
static void check_same(const tsm__wbuf *w, const uint8_t *in, size_t n,
                       const char *what)
{
	FUZZ_CHECK(!w->overflow, "%s: re-encoding overflowed", what);
	FUZZ_CHECK(w->len == n, "%s: re-encoded %zu bytes, decoded %zu", what,
	           w->len, n);
	FUZZ_CHECK(n == 0 || memcmp(w->p, in, n) == 0,
	           "%s: re-encoding differs from the input", what);
}

static bool inside(const uint8_t *p, size_t n, const uint8_t *body, size_t len)
{
	if (n == 0)
		return true;
	return p != NULL && p >= body && n <= len && p - body <= (ptrdiff_t)(len - n);
}

static void fuzz_preface(const uint8_t *b, size_t n)
{
	tsm__preface p;
	uint8_t out[2048];
	tsm__wbuf w;
	tsm_err e = tsm__preface_decode(b, n, &p);
	if (e != TSM_OK)
		return check_reason(e, "PREFACE");
	FUZZ_CHECK(p.min_version >= 1 && p.min_version <= p.max_version,
	           "PREFACE: versions %u..%u accepted", p.min_version,
	           p.max_version);
	FUZZ_CHECK(p.name_len <= TSM_PREFACE_NAME_MAX &&
	                   p.pad_len <= TSM_PREFACE_PAD_MAX,
	           "PREFACE: name %u / pad %u over the limit", p.name_len,
	           p.pad_len);
	FUZZ_CHECK(inside(p.name, p.name_len, b, n), "PREFACE: name outside");
	tsm__wbuf_init(&w, out, sizeof(out));
	tsm__preface_encode(&p, &w);
	check_same(&w, b, n, "PREFACE");
}

static void fuzz_reason(const uint8_t *b, size_t n)
{
	tsm__reason r;
	uint8_t out[512];
	tsm__wbuf w;
	tsm_err e = tsm__reason_decode(b, n, &r);
	if (e != TSM_OK)
		return check_reason(e, "REJECT/CLOSE");
	FUZZ_CHECK(r.text_len <= TSM_REASON_TEXT_MAX, "reason text %u",
	           r.text_len);
	FUZZ_CHECK(inside(r.text, r.text_len, b, n), "reason text outside");
	FUZZ_CHECK(r.text_len > 0 || r.text == NULL, "empty text not NULL");
	tsm__wbuf_init(&w, out, sizeof(out));
	tsm__reason_encode(&r, &w);
	check_same(&w, b, n, "REJECT/CLOSE");
	/* The name lookup must cope with any code a peer sends. */
	FUZZ_CHECK(tsm_err_name((tsm_err)r.code) != NULL, "no name");
}

static void fuzz_ctrl(const uint8_t *b, size_t n)
{
	tsm__ctrl c;
	static uint8_t out[512 + TSM_WIRE_ADVERT_MAX];
	tsm__wbuf w;
	tsm_err e = tsm__ctrl_decode(b, n, &c);
	if (e != TSM_OK)
		return check_reason(e, "CTRL");
	FUZZ_CHECK(c.type >= TSM_C_SUBSCRIBE && c.type <= TSM_C__MAX,
	           "CTRL type %u accepted", c.type);
	FUZZ_CHECK(c.str_len <= TSM_TOPIC_MAX, "CTRL str_len %u", c.str_len);
	FUZZ_CHECK(inside(c.str, c.str_len, b, n), "CTRL str outside");
	/* §8: which fields each type uses. */
	bool wants_str = c.type <= TSM_C_TOPIC || c.type == TSM_C_RESUME ||
	                 c.type == TSM_C_TIERS;
	FUZZ_CHECK((c.str_len > 0) == wants_str, "CTRL %u str_len %u", c.type,
	           c.str_len);
	FUZZ_CHECK((c.id != 0) == (c.type == TSM_C_TOPIC), "CTRL %u id %u",
	           c.type, c.id);
	FUZZ_CHECK(c.value == 0 || c.type == TSM_C_PING || c.type == TSM_C_PONG ||
	                   c.type == TSM_C_ACK || c.type == TSM_C_RESUME,
	           "CTRL %u value", c.type);
	/* §12: only ADVERT carries records after str, inside the input. */
	FUZZ_CHECK((c.blob_len > 0) == (c.type == TSM_C_ADVERT) &&
	                   c.blob_len <= TSM_WIRE_ADVERT_MAX &&
	                   inside(c.blob, c.blob_len, b, n),
	           "CTRL %u blob_len %u", c.type, c.blob_len);
	tsm__wbuf_init(&w, out, sizeof(out));
	tsm__ctrl_encode(&c, &w);
	check_same(&w, b, n, "CTRL");
}

/* §6/§7: what every accepted record must satisfy on its own. */
static void check_record(const tsm__rec *r, uint8_t fflags)
{
	bool frag = r->flags & TSM_REC_FRAG;
	FUZZ_CHECK(r->topic_id != 0, "record topic_id 0 accepted");
	FUZZ_CHECK(!(r->flags & ~TSM_REC__KNOWN), "unknown record flags");
	FUZZ_CHECK(r->meta_len <= TSM_META_MAX, "meta_len %u", r->meta_len);
	FUZZ_CHECK(!(r->flags & TSM_REC_META) == (r->meta_len == 0),
	           "META flag and meta_len %u disagree", r->meta_len);
	FUZZ_CHECK(frag == !!(fflags & TSM_FF_FRAGMENT),
	           "FRAG %d in a frame with flags 0x%x", frag, fflags);
	FUZZ_CHECK(!(r->flags & TSM_REC_LAST) || frag, "LAST without FRAG");
	if (!frag) {
		FUZZ_CHECK(!(r->flags & TSM_REC_ABORT), "ABORT without FRAG");
		FUZZ_CHECK(r->payload_len <= MAX_MSG, "payload over max_msg");
		return;
	}
	FUZZ_CHECK(r->total_len <= MAX_MSG, "total_len over max_msg");
	if (r->flags & TSM_REC_ABORT) {
		FUZZ_CHECK((r->flags & TSM_REC_LAST) && r->payload_len == 0 &&
		                   r->meta_len == 0 && r->frag_index > 0,
		           "bad ABORT accepted");
		return;
	}
	FUZZ_CHECK(r->payload_len >= 1 && r->payload_len <= r->total_len,
	           "fragment payload %u of total %llu", r->payload_len,
	           (unsigned long long)r->total_len);
	FUZZ_CHECK(r->frag_index == 0 || !(r->flags & TSM_REC_META),
	           "metadata on fragment %u", r->frag_index);
	FUZZ_CHECK(r->frag_index != 0 || !(r->flags & TSM_REC_LAST) ||
	                   r->payload_len == r->total_len,
	           "only fragment is not the whole message");
}

/* Re-encodes r (header, metadata, payload) and compares with its bytes. */
static void check_record_bytes(const tsm__rec *r, const uint8_t *start,
                               size_t used)
{
	static uint8_t out[TSM_REC_HDR_LEN + TSM_REC_FRAG_LEN + TSM_REC_TS_LEN +
	                   TSM_META_MAX];
	tsm__wbuf w;
	size_t hl = tsm__rec_hdr_len(r);
	FUZZ_CHECK(used == hl + r->meta_len + r->payload_len,
	           "record used %zu bytes, fields say %zu", used,
	           hl + r->meta_len + (size_t)r->payload_len);
	tsm__wbuf_init(&w, out, sizeof(out));
	tsm__rec_encode_hdr(r, &w);
	tsm__wbuf_bytes(&w, r->meta, r->meta_len);
	check_same(&w, start, hl + r->meta_len, "DATA record header+meta");
	FUZZ_CHECK(r->payload_len == 0 ||
	                   r->payload == start + hl + r->meta_len,
	           "payload pointer is not after the metadata");
}

static void fuzz_data(const uint8_t *b, size_t n, uint8_t fflags)
{
	tsm__rcur c;
	unsigned records = 0;
	tsm__rcur_init(&c, b, n);
	while (c.left) {
		tsm__rec r;
		tsm__rcur before = c;
		tsm_err e = tsm__rec_next(&c, fflags, MAX_MSG, &r);
		if (e != TSM_OK) {
			FUZZ_CHECK(c.p == before.p && c.left == before.left,
			           "failed tsm__rec_next moved its cursor");
			return check_reason(e, "DATA record");
		}
		FUZZ_CHECK(c.left < before.left, "record of zero bytes");
		check_record(&r, fflags);
		FUZZ_CHECK(inside(r.meta, r.meta_len, b, n), "meta outside");
		FUZZ_CHECK(inside(r.payload, r.payload_len, b, n),
		           "payload outside");
		check_record_bytes(&r, before.p, before.left - c.left);
		records++;
	}
	FUZZ_CHECK(!(fflags & TSM_FF_FRAGMENT) || records <= 1,
	           "%u records in a FRAGMENT frame", records);
}

/* Header checks of §2 beyond what the decoder reports. */
static void check_header(const tsm__fhdr *h, const uint8_t *raw, uint32_t max)
{
	uint8_t out[TSM_WIRE_HDR_LEN];
	FUZZ_CHECK(h->version == TSM_WIRE_VERSION, "version %u", h->version);
	FUZZ_CHECK(h->type >= 1 && h->type <= TSM_F__MAX, "type %u", h->type);
	FUZZ_CHECK(h->lane < TSM_WIRE_LANES && h->priority < TSM_WIRE_LANES,
	           "lane %u priority %u", h->lane, h->priority);
	FUZZ_CHECK(h->body_len <= max, "body_len %u > %u", h->body_len, max);
	FUZZ_CHECK(h->topic_id == 0 || h->type == TSM_F_DATA,
	           "topic_id on type %u", h->type);
	FUZZ_CHECK(!(h->flags & TSM_FF_FRAGMENT) || h->type == TSM_F_DATA,
	           "FRAGMENT on type %u", h->type);
	FUZZ_CHECK(!(h->flags & TSM_FF_SEALED) || h->body_len >= TSM_WIRE_TAG_LEN,
	           "sealed body_len %u", h->body_len);
	tsm__fhdr_encode(h, out);
	FUZZ_CHECK(memcmp(out, raw, TSM_WIRE_HDR_LEN) == 0,
	           "header re-encoding differs");
}

/* The body decoder a session would use; a sealed body ends in its tag. */
static void fuzz_body(const tsm__fhdr *h, const uint8_t *body)
{
	size_t n = h->body_len;
	if (h->flags & TSM_FF_SEALED)
		n -= TSM_WIRE_TAG_LEN; /* what AEAD open leaves (session/secure.c) */
	switch (h->type) {
	case TSM_F_PREFACE:
		return fuzz_preface(body, n);
	case TSM_F_REJECT:
	case TSM_F_CLOSE:
		return fuzz_reason(body, n);
	case TSM_F_CTRL:
		return fuzz_ctrl(body, n);
	case TSM_F_DATA:
		return fuzz_data(body, n, h->flags);
	default:
		return; /* HS, ACCEPT, RETRY, REKEY: opaque or empty bodies */
	}
}

/* Frames back to back, as rx.c cuts them from a stream. */
static void fuzz_stream(const uint8_t *d, size_t n, uint32_t max)
{
	while (n > 0) {
		tsm__fhdr h;
		tsm_err e = tsm__fhdr_decode(d, n, max, &h);
		if (e != TSM_OK) {
			check_reason(e, "frame header");
			/* §2: TRUNCATED only when fewer than 40 bytes are given. */
			FUZZ_CHECK((e == TSM_ERR_TRUNCATED) == (n < TSM_WIRE_HDR_LEN),
			           "TRUNCATED with %zu bytes", n);
			return;
		}
		check_header(&h, d, max);
		if (n - TSM_WIRE_HDR_LEN < h.body_len)
			return; /* the rest of the body has not arrived */
		fuzz_body(&h, d + TSM_WIRE_HDR_LEN);
		d += TSM_WIRE_HDR_LEN + h.body_len;
		n -= TSM_WIRE_HDR_LEN + h.body_len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	const uint8_t *d = data + 1;
	size_t n = size - 1;
	switch (mode % 8) {
	case 0:
	case 1:
		fuzz_stream(d, n, TSM_WIRE_MAX_BODY);
		break;
	case 2:
	case 3:
		fuzz_stream(d, n, TSM_WIRE_PREAUTH_MAX_BODY); /* before auth */
		break;
	case 4:
		fuzz_preface(d, n);
		break;
	case 5:
		fuzz_reason(d, n);
		break;
	case 6:
		fuzz_ctrl(d, n);
		break;
	default: /* 7: a DATA body; bit 3 of the mode byte: FRAGMENT frame */
		fuzz_data(d, n, (mode & 8) ? TSM_FF_FRAGMENT : 0);
		break;
	}
	return 0;
}
