/*
 * wire/frame.h - frame header and frame bodies (docs/wire.md §2-§8).
 *
 * Pure functions: no I/O, no allocation, no global state, so that every
 * decoder can be fuzzed on its own. Decoders validate every field they
 * read and return a TSM_ERR_* reason (TSM_ERR_TRUNCATED, TSM_ERR_BAD_MAGIC,
 * TSM_ERR_BAD_VERSION, TSM_ERR_BAD_TYPE, TSM_ERR_BAD_LENGTH,
 * TSM_ERR_BAD_FIELD, TSM_ERR_FRAME_TOO_LARGE, TSM_ERR_BAD_FRAGMENT); pointers
 * they return point into the caller's buffer. Encoders write into a
 * caller-provided tsm__wbuf and report overflow through it.
 * Thread-safe (no shared state).
 */
#ifndef TSM_WIRE_FRAME_H
#define TSM_WIRE_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tsm/err.h"
#include "wire/cursor.h"

/* §2 Frame header. */
#define TSM_WIRE_MAGIC 0x4D54u /* bytes 'T' 'M' on the wire */
#define TSM_WIRE_VERSION 1u
#define TSM_WIRE_HDR_LEN 40u
#define TSM_WIRE_LANES 8u
#define TSM_WIRE_TAG_LEN 16u

/* §3 Frame types. */
typedef enum tsm__ftype {
	TSM_F_PREFACE = 1,
	TSM_F_RETRY = 2,
	TSM_F_HS = 3,
	TSM_F_ACCEPT = 4,
	TSM_F_REJECT = 5,
	TSM_F_DATA = 6,
	TSM_F_CTRL = 7,
	TSM_F_REKEY = 8,
	TSM_F_CLOSE = 9,
	TSM_F__MAX = 9,
} tsm__ftype;

/* §2 Header flags. */
#define TSM_FF_SEALED 0x01u   /* body ends in a TSM_WIRE_TAG_LEN AEAD tag */
#define TSM_FF_FRAGMENT 0x02u /* DATA: the body is exactly one fragment */
#define TSM_FF__KNOWN 0x03u   /* other bits must be zero */

typedef struct tsm__fhdr {
	uint8_t version;
	uint8_t type;       /* tsm__ftype */
	uint8_t flags;      /* TSM_FF_* */
	uint8_t lane;       /* 0..7 */
	uint16_t epoch;     /* key epoch (0 before keys exist) */
	uint64_t session_id;
	uint64_t seq;       /* per lane and direction, from 0 */
	uint32_t topic_id;  /* DATA: topic of the first record; else 0 */
	uint8_t priority;   /* 0..7; most urgent record of the frame */
	uint32_t budget_us; /* smallest remaining budget in the frame; 0 none */
	uint32_t body_len;  /* bytes after the header, tag included */
} tsm__fhdr;

/*
 * tsm__fhdr_decode reads a header from the first TSM_WIRE_HDR_LEN bytes of
 * buf. Checks magic, version, known type, known flags, zero reserved
 * bytes, lane < 8, priority < 8 and body_len <= max_body (else
 * TSM_ERR_FRAME_TOO_LARGE). TSM_ERR_TRUNCATED if len < TSM_WIRE_HDR_LEN.
 */
tsm_err tsm__fhdr_decode(const uint8_t *buf, size_t len, uint32_t max_body,
                         tsm__fhdr *out);

/* tsm__fhdr_encode writes exactly TSM_WIRE_HDR_LEN bytes to out. */
void tsm__fhdr_encode(const tsm__fhdr *h, uint8_t out[TSM_WIRE_HDR_LEN]);

/* §4 PREFACE body. */
#define TSM_PREFACE_NONCE_LEN 16u
#define TSM_PREFACE_NAME_MAX 64u
#define TSM_PREFACE_PAD_MAX 1400u
#define TSM_PREFACE_INSECURE 0x0001u /* sender runs without authentication */
#define TSM_PREFACE_CHACHA 0x0002u   /* sender wants ChaCha20-Poly1305 */
#define TSM_PREFACE__KNOWN 0x0003u

typedef struct tsm__preface {
	uint8_t min_version, max_version;
	uint16_t flags;
	uint8_t nonce[TSM_PREFACE_NONCE_LEN];
	uint64_t node_id;     /* random per context; dedupes sessions */
	const uint8_t *name;  /* node name for logs, not trusted */
	uint16_t name_len;    /* <= TSM_PREFACE_NAME_MAX */
	uint16_t pad_len;     /* zero bytes that follow; <= TSM_PREFACE_PAD_MAX */
} tsm__preface;

tsm_err tsm__preface_decode(const uint8_t *body, size_t len, tsm__preface *out);
void tsm__preface_encode(const tsm__preface *p, tsm__wbuf *w);

/* §5 REJECT and CLOSE bodies: a reason code and a short text. */
#define TSM_REASON_TEXT_MAX 256u
typedef struct tsm__reason {
	uint32_t code;        /* a tsm_err value */
	const uint8_t *text;  /* not NUL-terminated; may be NULL when len 0 */
	uint16_t text_len;    /* <= TSM_REASON_TEXT_MAX */
} tsm__reason;

tsm_err tsm__reason_decode(const uint8_t *body, size_t len, tsm__reason *out);
void tsm__reason_encode(const tsm__reason *r, tsm__wbuf *w);

/* §6 DATA records. A DATA body is one or more records back to back. */
#define TSM_REC_META 0x0001u  /* meta_len bytes of msgpack metadata follow */
#define TSM_REC_FRAG 0x0002u  /* a fragment: the fragment extension follows */
#define TSM_REC_LAST 0x0004u  /* last fragment of its message */
#define TSM_REC_ABORT 0x0008u /* FRAG|LAST, no payload: the rest of the
                                 message is dropped (expired) (§7.1) */
#define TSM_REC_TS 0x0010u    /* an 8-byte send timestamp follows (§6.1) */
#define TSM_REC__KNOWN 0x001Fu
#define TSM_REC_TS_LEN 8u
#define TSM_REC_HDR_LEN 24u
#define TSM_REC_FRAG_LEN 16u

typedef struct tsm__rec {
	uint32_t topic_id;
	uint16_t flags;         /* TSM_REC_* */
	uint16_t meta_len;      /* <= TSM_META_MAX */
	uint32_t payload_len;
	uint32_t budget_us;     /* remaining deadline budget; 0 = none */
	uint64_t msg_id;
	/* fragment extension (TSM_REC_FRAG only) */
	uint64_t total_len;     /* whole message length */
	uint32_t frag_index;    /* 0, 1, ... */
	uint64_t ts;            /* TSM_REC_TS: sender's monotonic ns at publish */
	const uint8_t *meta;    /* into the body (decode) */
	const uint8_t *payload; /* into the body (decode) */
} tsm__rec;

/*
 * tsm__rec_next decodes the next record of a DATA body from c. Checks
 * known flags, meta_len <= TSM_META_MAX, lengths within the body,
 * fragment rules (§7: FRAG set for every record of a TSM_FF_FRAGMENT frame
 * and only then, LAST only with FRAG, total_len <= max_msg, payload inside
 * total_len, frag_index * frag_size consistent is the reassembler's job).
 * frame_flags are the header's flags.
 */
tsm_err tsm__rec_next(tsm__rcur *c, uint8_t frame_flags, uint64_t max_msg,
                      tsm__rec *out);

/* tsm__rec_hdr_len returns the encoded header size of r (24 or 40). */
static inline size_t tsm__rec_hdr_len(const tsm__rec *r)
{
	return TSM_REC_HDR_LEN + ((r->flags & TSM_REC_FRAG) ? TSM_REC_FRAG_LEN : 0) +
	       ((r->flags & TSM_REC_TS) ? TSM_REC_TS_LEN : 0);
}

/*
 * tsm__rec_encode_hdr writes the record header (and fragment extension),
 * not the meta or payload bytes, so that callers can gather them with
 * iovecs instead of copying.
 */
void tsm__rec_encode_hdr(const tsm__rec *r, tsm__wbuf *w);

/* §8 CTRL body: one control message per frame. */
typedef enum tsm__ctrl_type {
	TSM_C_SUBSCRIBE = 1,   /* str = pattern */
	TSM_C_UNSUBSCRIBE = 2, /* str = pattern */
	TSM_C_TOPIC = 3,       /* id = topic id, str = topic name */
	TSM_C_PING = 4,        /* value */
	TSM_C_PONG = 5,        /* value */
	TSM_C_ADVERT = 6,      /* blob = discovery records (§12) */
	TSM_C_ACK = 7,         /* value = lane << 56 | next seq read */
	TSM_C_RESUME = 8,      /* value = lost session id, str = 8 x u64 */
	TSM_C_TIERS = 9,       /* str = "efa=NAME": the sender's EFA endpoint */
	TSM_C__MAX = 9,
} tsm__ctrl_type;

typedef struct tsm__ctrl {
	uint8_t type;         /* tsm__ctrl_type */
	uint32_t id;          /* TOPIC only; 0 otherwise */
	uint64_t value;       /* PING/PONG only; 0 otherwise */
	const uint8_t *str;   /* pattern or topic; not NUL-terminated */
	uint16_t str_len;     /* <= 256; validated by the caller's grammar */
	const uint8_t *blob;  /* ADVERT only: the bytes after str (§12) */
	uint32_t blob_len;    /* ADVERT: 1..TSM_WIRE_ADVERT_MAX; else 0 */
} tsm__ctrl;

tsm_err tsm__ctrl_decode(const uint8_t *body, size_t len, tsm__ctrl *out);
void tsm__ctrl_encode(const tsm__ctrl *c, tsm__wbuf *w);

/* §10 Limits. */
#define TSM_WIRE_PREAUTH_MAX_BODY (16u * 1024u)
#define TSM_WIRE_HS_MAX_TOTAL (64u * 1024u)
#define TSM_WIRE_MAX_BODY (1024u * 1024u + 4096u)
#define TSM_WIRE_ADVERT_MAX (16u * 1024u) /* §12: records of one ADVERT */

#endif
