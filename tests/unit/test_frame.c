/*
 * test_frame.c - frame header and body codecs (docs/wire.md §2-§8).
 *
 * Golden byte layouts pin the spec; round trips pin encode/decode
 * agreement; every decoder is fed each of its truncations, lying and
 * oversized lengths, bad reserved bytes and flags, and random mutations.
 * A decoder that accepts something must re-encode it to the same bytes
 * (one encoding per value: nothing can hide in a frame).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "wire/frame.h"

/* Asserts the code, and that a failure left a detail string behind. */
#define CK_ERR(call, want)                                                     \
	do {                                                                   \
		tsm__err_clear();                                              \
		tsm_err e_ = (call);                                           \
		ck_assert_msg(e_ == (want), "%s: got %s (%s), want %s", #call, \
		              tsm_err_name(e_), tsm_err_detail(),              \
		              tsm_err_name(want));                             \
		if ((want) != TSM_OK)                                          \
			ck_assert_msg(tsm_err_detail()[0] != '\0',             \
			              "%s: no detail", #call);                 \
	} while (0)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* ---- §2 header ---------------------------------------------------------- */

static tsm__fhdr sample_hdr(uint8_t type)
{
	tsm__fhdr h = {
		.version = TSM_WIRE_VERSION,
		.type = type,
		.flags = 0,
		.lane = 3,
		.epoch = 0x0102,
		.session_id = 0x0a0b0c0d0e0f1011ull,
		.seq = 0x2122232425262728ull,
		.topic_id = type == TSM_F_DATA ? 0x31323334u : 0,
		.priority = 5,
		.budget_us = 0x41424344u,
		.body_len = 100,
	};
	return h;
}

/* Field by field: struct padding is not part of the value. */
static void ck_hdr_eq(const tsm__fhdr *a, const tsm__fhdr *b)
{
	ck_assert_uint_eq(a->version, b->version);
	ck_assert_uint_eq(a->type, b->type);
	ck_assert_uint_eq(a->flags, b->flags);
	ck_assert_uint_eq(a->lane, b->lane);
	ck_assert_uint_eq(a->epoch, b->epoch);
	ck_assert_uint_eq(a->session_id, b->session_id);
	ck_assert_uint_eq(a->seq, b->seq);
	ck_assert_uint_eq(a->topic_id, b->topic_id);
	ck_assert_uint_eq(a->priority, b->priority);
	ck_assert_uint_eq(a->budget_us, b->budget_us);
	ck_assert_uint_eq(a->body_len, b->body_len);
}

START_TEST(hdr_golden_layout)
{
	const uint8_t want[TSM_WIRE_HDR_LEN] = {
		'T', 'M',                                       /* magic */
		0x01, 0x06, 0x01, 0x03,                         /* ver type fl ln */
		0x02, 0x01,                                     /* epoch */
		0x11, 0x10, 0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a, /* session_id */
		0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21, /* seq */
		0x34, 0x33, 0x32, 0x31,                         /* topic_id */
		0x05, 0x00, 0x00, 0x00,                         /* prio, rsvd */
		0x44, 0x43, 0x42, 0x41,                         /* budget_us */
		0x64, 0x00, 0x00, 0x00,                         /* body_len */
	};
	uint8_t b[TSM_WIRE_HDR_LEN];
	tsm__fhdr h = sample_hdr(TSM_F_DATA), d;
	h.flags = TSM_FF_SEALED;
	tsm__fhdr_encode(&h, b);
	ck_assert_mem_eq(b, want, sizeof(want));
	CK_ERR(tsm__fhdr_decode(want, sizeof(want), 1000, &d), TSM_OK);
	ck_hdr_eq(&d, &h);
}
END_TEST

START_TEST(hdr_round_trip_every_type)
{
	for (uint8_t t = 1; t <= TSM_F__MAX; t++) {
		uint8_t b[TSM_WIRE_HDR_LEN + 4] = {0};
		tsm__fhdr h = sample_hdr(t), d;
		tsm__fhdr_encode(&h, b);
		/* bytes after the header are the body's business */
		CK_ERR(tsm__fhdr_decode(b, sizeof(b), 100, &d), TSM_OK);
		ck_hdr_eq(&d, &h);
	}
}
END_TEST

START_TEST(hdr_truncated)
{
	uint8_t b[TSM_WIRE_HDR_LEN];
	tsm__fhdr h = sample_hdr(TSM_F_CTRL), d;
	tsm__fhdr_encode(&h, b);
	for (size_t n = 0; n < TSM_WIRE_HDR_LEN; n++)
		CK_ERR(tsm__fhdr_decode(b, n, 1000, &d), TSM_ERR_TRUNCATED);
}
END_TEST

START_TEST(hdr_bad_magic)
{
	static const uint8_t bad[][2] = {{'M', 'T'}, {'T', 'N'}, {0, 0},
	                                 {'t', 'm'}, {0xff, 0xff}};
	for (size_t i = 0; i < TSM_ARRAY_LEN(bad); i++) {
		uint8_t b[TSM_WIRE_HDR_LEN];
		tsm__fhdr h = sample_hdr(TSM_F_CTRL), d;
		tsm__fhdr_encode(&h, b);
		memcpy(b, bad[i], 2);
		CK_ERR(tsm__fhdr_decode(b, sizeof(b), 1000, &d),
		       TSM_ERR_BAD_MAGIC);
	}
}
END_TEST

START_TEST(hdr_bad_version_and_type)
{
	static const uint8_t vers[] = {0, 2, 0x7f, 0xff};
	static const uint8_t types[] = {0, TSM_F__MAX + 1, 0x80, 0xff};
	uint8_t b[TSM_WIRE_HDR_LEN];
	tsm__fhdr d;
	for (size_t i = 0; i < sizeof(vers); i++) {
		tsm__fhdr h = sample_hdr(TSM_F_CTRL);
		h.version = vers[i];
		tsm__fhdr_encode(&h, b);
		CK_ERR(tsm__fhdr_decode(b, sizeof(b), 1000, &d),
		       TSM_ERR_BAD_VERSION);
	}
	for (size_t i = 0; i < sizeof(types); i++) {
		tsm__fhdr h = sample_hdr(TSM_F_CTRL);
		h.type = types[i];
		tsm__fhdr_encode(&h, b);
		CK_ERR(tsm__fhdr_decode(b, sizeof(b), 1000, &d),
		       TSM_ERR_BAD_TYPE);
	}
}
END_TEST

static tsm_err hdr_with(uint8_t type, uint8_t flags)
{
	uint8_t b[TSM_WIRE_HDR_LEN];
	tsm__fhdr h = sample_hdr(type), d;
	h.flags = flags;
	tsm__fhdr_encode(&h, b);
	return tsm__fhdr_decode(b, sizeof(b), 1000, &d);
}

START_TEST(hdr_flags)
{
	for (unsigned bit = 2; bit < 8; bit++)
		CK_ERR(hdr_with(TSM_F_DATA, (uint8_t)(1u << bit)),
		       TSM_ERR_BAD_FIELD);
	CK_ERR(hdr_with(TSM_F_DATA, TSM_FF_SEALED | TSM_FF_FRAGMENT), TSM_OK);
	/* FRAGMENT only on DATA; nothing is sealed before keys exist */
	for (uint8_t t = 1; t <= TSM_F__MAX; t++)
		if (t != TSM_F_DATA)
			CK_ERR(hdr_with(t, TSM_FF_FRAGMENT), TSM_ERR_BAD_FIELD);
	CK_ERR(hdr_with(TSM_F_PREFACE, TSM_FF_SEALED), TSM_ERR_BAD_FIELD);
	CK_ERR(hdr_with(TSM_F_HS, TSM_FF_SEALED), TSM_ERR_BAD_FIELD);
	CK_ERR(hdr_with(TSM_F_RETRY, TSM_FF_SEALED), TSM_ERR_BAD_FIELD);
	CK_ERR(hdr_with(TSM_F_ACCEPT, TSM_FF_SEALED), TSM_OK);
	CK_ERR(hdr_with(TSM_F_CTRL, TSM_FF_SEALED), TSM_OK);
	CK_ERR(hdr_with(TSM_F_CLOSE, TSM_FF_SEALED), TSM_OK);
}
END_TEST

START_TEST(hdr_ranges_and_reserved)
{
	uint8_t b[TSM_WIRE_HDR_LEN];
	tsm__fhdr h = sample_hdr(TSM_F_DATA), d;
	h.lane = 8;
	tsm__fhdr_encode(&h, b);
	CK_ERR(tsm__fhdr_decode(b, sizeof(b), 1000, &d), TSM_ERR_BAD_FIELD);
	h = sample_hdr(TSM_F_DATA);
	h.priority = 8;
	tsm__fhdr_encode(&h, b);
	CK_ERR(tsm__fhdr_decode(b, sizeof(b), 1000, &d), TSM_ERR_BAD_FIELD);
	h = sample_hdr(TSM_F_DATA);
	for (int i = 29; i < 32; i++) {
		tsm__fhdr_encode(&h, b);
		b[i] = 1;
		CK_ERR(tsm__fhdr_decode(b, sizeof(b), 1000, &d),
		       TSM_ERR_BAD_FIELD);
	}
	h = sample_hdr(TSM_F_CTRL);
	h.topic_id = 7; /* only DATA names a topic in its header */
	tsm__fhdr_encode(&h, b);
	CK_ERR(tsm__fhdr_decode(b, sizeof(b), 1000, &d), TSM_ERR_BAD_FIELD);
}
END_TEST

START_TEST(hdr_body_len)
{
	uint8_t b[TSM_WIRE_HDR_LEN];
	tsm__fhdr h = sample_hdr(TSM_F_CTRL), d;
	h.body_len = TSM_WIRE_PREAUTH_MAX_BODY + 1;
	tsm__fhdr_encode(&h, b);
	CK_ERR(tsm__fhdr_decode(b, sizeof(b), TSM_WIRE_PREAUTH_MAX_BODY, &d),
	       TSM_ERR_FRAME_TOO_LARGE);
	h.body_len = 0xffffffffu;
	tsm__fhdr_encode(&h, b);
	CK_ERR(tsm__fhdr_decode(b, sizeof(b), TSM_WIRE_MAX_BODY, &d),
	       TSM_ERR_FRAME_TOO_LARGE);
	h.body_len = TSM_WIRE_PREAUTH_MAX_BODY;
	tsm__fhdr_encode(&h, b);
	CK_ERR(tsm__fhdr_decode(b, sizeof(b), TSM_WIRE_PREAUTH_MAX_BODY, &d),
	       TSM_OK);
	/* a sealed body holds at least its tag */
	h.flags = TSM_FF_SEALED;
	h.body_len = TSM_WIRE_TAG_LEN - 1;
	tsm__fhdr_encode(&h, b);
	CK_ERR(tsm__fhdr_decode(b, sizeof(b), 1000, &d), TSM_ERR_BAD_LENGTH);
	h.body_len = TSM_WIRE_TAG_LEN;
	tsm__fhdr_encode(&h, b);
	CK_ERR(tsm__fhdr_decode(b, sizeof(b), 1000, &d), TSM_OK);
}
END_TEST

/* ---- §4 PREFACE --------------------------------------------------------- */

static size_t sample_preface(uint8_t *buf, size_t cap, uint16_t pad)
{
	tsm__preface p = {
		.min_version = 1,
		.max_version = 1,
		.flags = TSM_PREFACE_INSECURE,
		.node_id = 0x0102030405060708ull,
		.name = (const uint8_t *)"node-a",
		.name_len = 6,
		.pad_len = pad,
	};
	tsm__wbuf w;
	for (unsigned i = 0; i < TSM_PREFACE_NONCE_LEN; i++)
		p.nonce[i] = (uint8_t)(0xa0 + i);
	tsm__wbuf_init(&w, buf, cap);
	tsm__preface_encode(&p, &w);
	ck_assert(!w.overflow);
	return w.len;
}

START_TEST(preface_round_trip_and_layout)
{
	uint8_t b[64];
	tsm__preface d;
	size_t n = sample_preface(b, sizeof(b), 3);
	ck_assert_uint_eq(n, 4 + 16 + 8 + 2 + 6 + 2 + 3);
	ck_assert_uint_eq(b[0], 1);
	ck_assert_uint_eq(b[2], 0x01); /* flags, little-endian */
	ck_assert_uint_eq(b[4], 0xa0); /* nonce */
	ck_assert_uint_eq(b[20], 0x08); /* node_id */
	ck_assert_uint_eq(b[28], 6);    /* name_len */
	ck_assert_mem_eq(b + 30, "node-a", 6);
	ck_assert_uint_eq(b[36], 3); /* pad_len */
	CK_ERR(tsm__preface_decode(b, n, &d), TSM_OK);
	ck_assert_uint_eq(d.min_version, 1);
	ck_assert_uint_eq(d.max_version, 1);
	ck_assert_uint_eq(d.flags, TSM_PREFACE_INSECURE);
	ck_assert_uint_eq(d.nonce[15], 0xaf);
	ck_assert_uint_eq(d.node_id, 0x0102030405060708ull);
	ck_assert_uint_eq(d.name_len, 6);
	ck_assert_ptr_eq(d.name, b + 30);
	ck_assert_uint_eq(d.pad_len, 3);
}
END_TEST

START_TEST(preface_empty_name_and_limits)
{
	uint8_t b[TSM_PREFACE_PAD_MAX + 200];
	tsm__preface p = {.min_version = 1, .max_version = 3,
	                  .pad_len = TSM_PREFACE_PAD_MAX};
	tsm__preface d;
	tsm__wbuf w;
	tsm__wbuf_init(&w, b, sizeof(b));
	tsm__preface_encode(&p, &w);
	CK_ERR(tsm__preface_decode(b, w.len, &d), TSM_OK);
	ck_assert_ptr_null(d.name);
	ck_assert_uint_eq(d.pad_len, TSM_PREFACE_PAD_MAX);
	ck_assert_uint_eq(d.max_version, 3);
	p.pad_len = TSM_PREFACE_PAD_MAX + 1;
	tsm__wbuf_init(&w, b, sizeof(b));
	tsm__preface_encode(&p, &w);
	CK_ERR(tsm__preface_decode(b, w.len, &d), TSM_ERR_BAD_LENGTH);
	uint8_t name[TSM_PREFACE_NAME_MAX + 1];
	memset(name, 'n', sizeof(name));
	p = (tsm__preface){.min_version = 1, .max_version = 1, .name = name,
	                   .name_len = TSM_PREFACE_NAME_MAX};
	tsm__wbuf_init(&w, b, sizeof(b));
	tsm__preface_encode(&p, &w);
	CK_ERR(tsm__preface_decode(b, w.len, &d), TSM_OK);
	p.name_len = TSM_PREFACE_NAME_MAX + 1;
	tsm__wbuf_init(&w, b, sizeof(b));
	tsm__preface_encode(&p, &w);
	CK_ERR(tsm__preface_decode(b, w.len, &d), TSM_ERR_BAD_LENGTH);
}
END_TEST

START_TEST(preface_truncated_and_trailing)
{
	uint8_t b[64];
	tsm__preface d;
	size_t n = sample_preface(b, sizeof(b), 5);
	for (size_t k = 0; k < n; k++)
		CK_ERR(tsm__preface_decode(b, k, &d), TSM_ERR_TRUNCATED);
	b[n] = 0;
	CK_ERR(tsm__preface_decode(b, n + 1, &d), TSM_ERR_BAD_LENGTH);
	CK_ERR(tsm__preface_decode(NULL, 0, &d), TSM_ERR_TRUNCATED);
}
END_TEST

START_TEST(preface_bad_fields)
{
	uint8_t b[64];
	tsm__preface d;
	size_t n = sample_preface(b, sizeof(b), 4);
	b[0] = 2, b[1] = 1; /* min > max */
	CK_ERR(tsm__preface_decode(b, n, &d), TSM_ERR_BAD_FIELD);
	b[0] = 0, b[1] = 1; /* there is no version 0 */
	CK_ERR(tsm__preface_decode(b, n, &d), TSM_ERR_BAD_FIELD);
	b[0] = 1;
	for (unsigned bit = 2; bit < 16; bit++) { /* bit 1: CHACHA (§4) */
		tsm__st16(b + 2, (uint16_t)(1u << bit));
		CK_ERR(tsm__preface_decode(b, n, &d), TSM_ERR_BAD_FIELD);
	}
	tsm__st16(b + 2, TSM_PREFACE_CHACHA);
	CK_ERR(tsm__preface_decode(b, n, &d), TSM_OK);
	tsm__st16(b + 2, 0);
	CK_ERR(tsm__preface_decode(b, n, &d), TSM_OK);
	for (size_t i = n - 4; i < n; i++) { /* each padding byte */
		b[i] = 0x01;
		CK_ERR(tsm__preface_decode(b, n, &d), TSM_ERR_BAD_FIELD);
		b[i] = 0;
	}
}
END_TEST

START_TEST(preface_lying_lengths)
{
	uint8_t b[64];
	tsm__preface d;
	size_t n = sample_preface(b, sizeof(b), 2);
	tsm__st16(b + 28, 40); /* name runs past the body */
	CK_ERR(tsm__preface_decode(b, n, &d), TSM_ERR_TRUNCATED);
	tsm__st16(b + 28, 6);
	tsm__st16(b + 36, 9); /* padding runs past the body */
	CK_ERR(tsm__preface_decode(b, n, &d), TSM_ERR_TRUNCATED);
	tsm__st16(b + 36, 0); /* two zero bytes left over */
	CK_ERR(tsm__preface_decode(b, n, &d), TSM_ERR_BAD_LENGTH);
}
END_TEST

/* ---- §5 REJECT / CLOSE -------------------------------------------------- */

static size_t encode_reason(uint8_t *b, size_t cap, uint32_t code,
                            const char *text, uint16_t len)
{
	tsm__reason r = {code, (const uint8_t *)text, len};
	tsm__wbuf w;
	tsm__wbuf_init(&w, b, cap);
	tsm__reason_encode(&r, &w);
	ck_assert(!w.overflow);
	return w.len;
}

START_TEST(reason_round_trip)
{
	uint8_t b[16];
	tsm__reason d;
	size_t n = encode_reason(b, sizeof(b), TSM_ERR_AUTHZ_DENIED, "no", 2);
	const uint8_t want[] = {0x07, 0x0b, 0x00, 0x00, 0x02, 0x00, 'n', 'o'};
	ck_assert_uint_eq(n, sizeof(want));
	ck_assert_mem_eq(b, want, sizeof(want));
	CK_ERR(tsm__reason_decode(b, n, &d), TSM_OK);
	ck_assert_uint_eq(d.code, TSM_ERR_AUTHZ_DENIED);
	ck_assert_uint_eq(d.text_len, 2);
	ck_assert_ptr_eq(d.text, b + 6);
	n = encode_reason(b, sizeof(b), 0, NULL, 0);
	CK_ERR(tsm__reason_decode(b, n, &d), TSM_OK);
	ck_assert_ptr_null(d.text);
	ck_assert_uint_eq(d.code, 0);
}
END_TEST

START_TEST(reason_bad)
{
	uint8_t b[512];
	char text[TSM_REASON_TEXT_MAX + 1];
	tsm__reason d;
	memset(text, 'x', sizeof(text));
	size_t n = encode_reason(b, sizeof(b), 1, text, 10);
	for (size_t k = 0; k < n; k++)
		CK_ERR(tsm__reason_decode(b, k, &d), TSM_ERR_TRUNCATED);
	CK_ERR(tsm__reason_decode(b, n + 1, &d), TSM_ERR_BAD_LENGTH);
	tsm__st16(b + 4, 11); /* lying text_len */
	CK_ERR(tsm__reason_decode(b, n, &d), TSM_ERR_TRUNCATED);
	n = encode_reason(b, sizeof(b), 1, text, TSM_REASON_TEXT_MAX);
	CK_ERR(tsm__reason_decode(b, n, &d), TSM_OK);
	n = encode_reason(b, sizeof(b), 1, text, TSM_REASON_TEXT_MAX + 1);
	CK_ERR(tsm__reason_decode(b, n, &d), TSM_ERR_BAD_LENGTH);
}
END_TEST

/* ---- §8 CTRL ------------------------------------------------------------ */

static size_t encode_ctrl(uint8_t *b, size_t cap, uint8_t type, uint32_t id,
                          uint64_t value, const char *s)
{
	tsm__ctrl c = {.type = type, .id = id, .value = value,
	               .str = (const uint8_t *)s,
	               .str_len = (uint16_t)(s ? strlen(s) : 0)};
	tsm__wbuf w;
	tsm__wbuf_init(&w, b, cap);
	tsm__ctrl_encode(&c, &w);
	ck_assert(!w.overflow);
	return w.len;
}

static tsm_err ctrl_try(uint8_t type, uint32_t id, uint64_t value,
                        const char *s)
{
	uint8_t b[600];
	tsm__ctrl d;
	size_t n = encode_ctrl(b, sizeof(b), type, id, value, s);
	return tsm__ctrl_decode(b, n, &d);
}

START_TEST(ctrl_round_trip_and_layout)
{
	uint8_t b[64];
	tsm__ctrl d;
	size_t n = encode_ctrl(b, sizeof(b), TSM_C_TOPIC, 0x01020304u, 0,
	                       "a/b");
	const uint8_t want[] = {3, 0, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0,
	                        3, 0, 'a', '/', 'b'};
	ck_assert_uint_eq(n, sizeof(want));
	ck_assert_mem_eq(b, want, sizeof(want));
	CK_ERR(tsm__ctrl_decode(b, n, &d), TSM_OK);
	ck_assert_uint_eq(d.type, TSM_C_TOPIC);
	ck_assert_uint_eq(d.id, 0x01020304u);
	ck_assert_uint_eq(d.str_len, 3);
	ck_assert_ptr_eq(d.str, b + 16);
	n = encode_ctrl(b, sizeof(b), TSM_C_PONG, 0, 0xfedcba9876543210ull,
	                NULL);
	CK_ERR(tsm__ctrl_decode(b, n, &d), TSM_OK);
	ck_assert_uint_eq(d.value, 0xfedcba9876543210ull);
	ck_assert_ptr_null(d.str);
}
END_TEST

START_TEST(ctrl_type_rules)
{
	CK_ERR(ctrl_try(TSM_C_SUBSCRIBE, 0, 0, "a/**"), TSM_OK);
	CK_ERR(ctrl_try(TSM_C_UNSUBSCRIBE, 0, 0, "a/*"), TSM_OK);
	CK_ERR(ctrl_try(TSM_C_PING, 0, 0, NULL), TSM_OK);
	CK_ERR(ctrl_try(TSM_C_PING, 0, 99, NULL), TSM_OK);
	for (uint8_t t = TSM_C_SUBSCRIBE; t <= TSM_C_UNSUBSCRIBE; t++) {
		CK_ERR(ctrl_try(t, 0, 0, NULL), TSM_ERR_BAD_FIELD);
		CK_ERR(ctrl_try(t, 1, 0, "a"), TSM_ERR_BAD_FIELD);
		CK_ERR(ctrl_try(t, 0, 1, "a"), TSM_ERR_BAD_FIELD);
	}
	CK_ERR(ctrl_try(TSM_C_TOPIC, 0, 0, "a"), TSM_ERR_BAD_FIELD);
	CK_ERR(ctrl_try(TSM_C_TOPIC, 5, 0, NULL), TSM_ERR_BAD_FIELD);
	CK_ERR(ctrl_try(TSM_C_TOPIC, 5, 1, "a"), TSM_ERR_BAD_FIELD);
	for (uint8_t t = TSM_C_PING; t <= TSM_C_PONG; t++) {
		CK_ERR(ctrl_try(t, 0, 0, "a"), TSM_ERR_BAD_FIELD);
		CK_ERR(ctrl_try(t, 1, 0, NULL), TSM_ERR_BAD_FIELD);
	}
	/* TIERS: the text is required, id and value are not allowed */
	CK_ERR(ctrl_try(TSM_C_TIERS, 0, 0, "efa=00ff"), TSM_OK);
	CK_ERR(ctrl_try(TSM_C_TIERS, 0, 0, NULL), TSM_ERR_BAD_FIELD);
	CK_ERR(ctrl_try(TSM_C_TIERS, 1, 0, "efa=00ff"), TSM_ERR_BAD_FIELD);
	CK_ERR(ctrl_try(TSM_C_TIERS, 0, 1, "efa=00ff"), TSM_ERR_BAD_FIELD);
	CK_ERR(ctrl_try(0, 0, 0, NULL), TSM_ERR_BAD_TYPE);
	CK_ERR(ctrl_try(TSM_C__MAX + 1, 0, 0, NULL), TSM_ERR_BAD_TYPE);
	CK_ERR(ctrl_try(0xff, 0, 0, "a"), TSM_ERR_BAD_TYPE);
}
END_TEST

START_TEST(ctrl_bad_lengths)
{
	uint8_t b[600];
	char s[TSM_TOPIC_MAX + 2];
	tsm__ctrl d;
	size_t n = encode_ctrl(b, sizeof(b), TSM_C_SUBSCRIBE, 0, 0, "x/y");
	for (size_t k = 0; k < n; k++)
		CK_ERR(tsm__ctrl_decode(b, k, &d), TSM_ERR_TRUNCATED);
	CK_ERR(tsm__ctrl_decode(b, n + 1, &d), TSM_ERR_BAD_LENGTH);
	tsm__st16(b + 14, 4); /* lying str_len */
	CK_ERR(tsm__ctrl_decode(b, n, &d), TSM_ERR_TRUNCATED);
	b[1] = 1; /* reserved */
	tsm__st16(b + 14, 3);
	CK_ERR(tsm__ctrl_decode(b, n, &d), TSM_ERR_BAD_FIELD);
	memset(s, 'a', sizeof(s));
	s[TSM_TOPIC_MAX] = '\0';
	CK_ERR(ctrl_try(TSM_C_SUBSCRIBE, 0, 0, s), TSM_OK);
	s[TSM_TOPIC_MAX] = 'a';
	s[TSM_TOPIC_MAX + 1] = '\0';
	CK_ERR(ctrl_try(TSM_C_SUBSCRIBE, 0, 0, s), TSM_ERR_BAD_LENGTH);
}
END_TEST

/* ---- §6 / §7 DATA records ----------------------------------------------- */

/* put_rec appends a whole record: header, meta bytes, payload bytes. */
static void put_rec(tsm__wbuf *w, const tsm__rec *r, const void *meta,
                    const void *payload)
{
	tsm__rec_encode_hdr(r, w);
	tsm__wbuf_bytes(w, meta, r->meta_len);
	tsm__wbuf_bytes(w, payload, r->payload_len);
	ck_assert(!w->overflow);
}

static tsm__rec plain_rec(uint32_t topic, uint32_t payload_len)
{
	tsm__rec r = {.topic_id = topic, .payload_len = payload_len,
	              .budget_us = 1500, .msg_id = 77};
	return r;
}

static tsm__rec frag_rec(uint32_t index, uint32_t payload_len, uint64_t total,
                         bool last)
{
	tsm__rec r = plain_rec(9, payload_len);
	r.flags = TSM_REC_FRAG | (last ? TSM_REC_LAST : 0);
	r.total_len = total;
	r.frag_index = index;
	return r;
}

/* rec_one decodes a one-record body built from r. */
static tsm_err rec_one(const tsm__rec *r, uint8_t frame_flags,
                       uint64_t max_msg)
{
	static uint8_t zeros[TSM_META_MAX + 64];
	uint8_t b[TSM_META_MAX + 256];
	tsm__wbuf w;
	tsm__rcur c;
	tsm__rec d;
	tsm__wbuf_init(&w, b, sizeof(b));
	tsm__rec_encode_hdr(r, &w);
	tsm__wbuf_bytes(&w, zeros, TSM_MIN(r->meta_len, sizeof(zeros)));
	tsm__wbuf_bytes(&w, zeros, TSM_MIN(r->payload_len, 64u));
	ck_assert(!w.overflow);
	tsm__rcur_init(&c, b, w.len);
	return tsm__rec_next(&c, frame_flags, max_msg, &d);
}

START_TEST(rec_golden_layout)
{
	uint8_t b[64];
	tsm__wbuf w;
	tsm__rec r = frag_rec(2, 3, 0x0102030405060708ull, true);
	r.topic_id = 0x11121314u;
	r.budget_us = 0x21222324u;
	r.msg_id = 0x3132333435363738ull;
	const uint8_t want[] = {
		0x14, 0x13, 0x12, 0x11, 0x06, 0x00, 0x00, 0x00, /* topic fl ml */
		0x03, 0x00, 0x00, 0x00, 0x24, 0x23, 0x22, 0x21, /* plen budget */
		0x38, 0x37, 0x36, 0x35, 0x34, 0x33, 0x32, 0x31, /* msg_id */
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* total_len */
		0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* index rsvd */
	};
	ck_assert_uint_eq(tsm__rec_hdr_len(&r), TSM_REC_HDR_LEN +
	                                            TSM_REC_FRAG_LEN);
	tsm__wbuf_init(&w, b, sizeof(b));
	tsm__rec_encode_hdr(&r, &w);
	ck_assert_uint_eq(w.len, sizeof(want));
	ck_assert_mem_eq(b, want, sizeof(want));
	r.flags = 0;
	ck_assert_uint_eq(tsm__rec_hdr_len(&r), TSM_REC_HDR_LEN);
}
END_TEST

/* A batch: records back to back, meta and empty payloads included. */
START_TEST(rec_batch_round_trip)
{
	uint8_t b[256];
	const uint8_t meta[] = {0x81, 0xa2, 't', 's', 0x01};
	tsm__wbuf w;
	tsm__rcur c;
	tsm__rec d, r1 = plain_rec(1, 5), r2 = plain_rec(2, 0),
	            r3 = plain_rec(3, 2);
	r2.flags = TSM_REC_META;
	r2.meta_len = sizeof(meta);
	r3.budget_us = 0;
	tsm__wbuf_init(&w, b, sizeof(b));
	put_rec(&w, &r1, NULL, "hello");
	put_rec(&w, &r2, meta, NULL);
	put_rec(&w, &r3, NULL, "hi");
	tsm__rcur_init(&c, b, w.len);
	CK_ERR(tsm__rec_next(&c, 0, 100, &d), TSM_OK);
	ck_assert_uint_eq(d.topic_id, 1);
	ck_assert_uint_eq(d.payload_len, 5);
	ck_assert_mem_eq(d.payload, "hello", 5);
	ck_assert_uint_eq(d.budget_us, 1500);
	ck_assert_uint_eq(d.msg_id, 77);
	CK_ERR(tsm__rec_next(&c, 0, 100, &d), TSM_OK);
	ck_assert_uint_eq(d.topic_id, 2);
	ck_assert_uint_eq(d.meta_len, sizeof(meta));
	ck_assert_mem_eq(d.meta, meta, sizeof(meta));
	ck_assert_uint_eq(d.payload_len, 0);
	CK_ERR(tsm__rec_next(&c, 0, 100, &d), TSM_OK);
	ck_assert_mem_eq(d.payload, "hi", 2);
	ck_assert_uint_eq(d.budget_us, 0);
	ck_assert_uint_eq(c.left, 0);
	CK_ERR(tsm__rec_next(&c, 0, 100, &d), TSM_ERR_TRUNCATED);
}
END_TEST

/* Every cut of a batch fails at the cut record, cursor left in place. */
START_TEST(rec_truncated_everywhere)
{
	uint8_t b[256];
	const uint8_t meta[] = {0x80};
	tsm__wbuf w;
	tsm__rec d, r1 = plain_rec(1, 4), r2 = plain_rec(2, 6);
	r2.flags = TSM_REC_META;
	r2.meta_len = 1;
	tsm__wbuf_init(&w, b, sizeof(b));
	put_rec(&w, &r1, NULL, "abcd");
	size_t first = w.len;
	put_rec(&w, &r2, meta, "efghij");
	for (size_t k = 0; k < w.len; k++) {
		tsm__rcur c;
		tsm__rcur_init(&c, b, k);
		if (k >= first) {
			CK_ERR(tsm__rec_next(&c, 0, 100, &d), TSM_OK);
			ck_assert_uint_eq(c.left, k - first);
		}
		const uint8_t *at = c.p;
		CK_ERR(tsm__rec_next(&c, 0, 100, &d), TSM_ERR_TRUNCATED);
		ck_assert_ptr_eq(c.p, at);
	}
	tsm__rec f = frag_rec(1, 8, 100, false);
	tsm__wbuf_init(&w, b, sizeof(b));
	put_rec(&w, &f, NULL, "01234567");
	for (size_t k = 0; k < w.len; k++) {
		tsm__rcur c;
		tsm__rcur_init(&c, b, k);
		CK_ERR(tsm__rec_next(&c, TSM_FF_FRAGMENT, 100, &d),
		       TSM_ERR_TRUNCATED);
	}
}
END_TEST

START_TEST(rec_bad_fields)
{
	tsm__rec r = plain_rec(0, 1); /* topic ids start at 1 */
	CK_ERR(rec_one(&r, 0, 100), TSM_ERR_BAD_FIELD);
	for (unsigned bit = 5; bit < 16; bit++) { /* 3 ABORT §7.1, 4 TS §6.1 */
		r = plain_rec(1, 1);
		r.flags = (uint16_t)(1u << bit);
		CK_ERR(rec_one(&r, 0, 100), TSM_ERR_BAD_FIELD);
	}
	r = plain_rec(1, 1);
	r.flags = TSM_REC_META; /* META without bytes */
	CK_ERR(rec_one(&r, 0, 100), TSM_ERR_BAD_LENGTH);
	r.flags = 0;
	r.meta_len = 3; /* bytes without META */
	CK_ERR(rec_one(&r, 0, 100), TSM_ERR_BAD_LENGTH);
	r.flags = TSM_REC_META;
	r.meta_len = TSM_META_MAX;
	CK_ERR(rec_one(&r, 0, 100), TSM_OK);
	r.meta_len = TSM_META_MAX + 1;
	CK_ERR(rec_one(&r, 0, 100), TSM_ERR_BAD_METADATA);
	r.meta_len = 0xffff;
	CK_ERR(rec_one(&r, 0, 100), TSM_ERR_BAD_METADATA);
}
END_TEST

START_TEST(rec_lying_lengths)
{
	uint8_t b[128];
	tsm__wbuf w;
	tsm__rcur c;
	tsm__rec d, r = plain_rec(1, 4);
	tsm__wbuf_init(&w, b, sizeof(b));
	put_rec(&w, &r, NULL, "abcd");
	tsm__st32(b + 8, 5); /* payload_len one past the body */
	tsm__rcur_init(&c, b, w.len);
	CK_ERR(tsm__rec_next(&c, 0, 100, &d), TSM_ERR_TRUNCATED);
	tsm__st32(b + 8, 0xffffffffu);
	tsm__rcur_init(&c, b, w.len);
	CK_ERR(tsm__rec_next(&c, 0, UINT64_MAX, &d), TSM_ERR_TRUNCATED);
	tsm__st32(b + 8, 0);
	b[4] = TSM_REC_META;
	tsm__st16(b + 6, 5); /* meta_len one past the body */
	tsm__rcur_init(&c, b, w.len);
	CK_ERR(tsm__rec_next(&c, 0, 100, &d), TSM_ERR_TRUNCATED);
	tsm__st16(b + 6, 4); /* the bytes that follow are all meta: fine */
	tsm__rcur_init(&c, b, w.len);
	CK_ERR(tsm__rec_next(&c, 0, 100, &d), TSM_OK);
	ck_assert_uint_eq(d.meta_len, 4);
}
END_TEST

START_TEST(rec_sizes)
{
	tsm__rec r = plain_rec(1, 10);
	CK_ERR(rec_one(&r, 0, 10), TSM_OK);
	CK_ERR(rec_one(&r, 0, 9), TSM_ERR_FRAME_TOO_LARGE);
	r.payload_len = 0xffffffffu; /* refused before the bytes are looked at */
	CK_ERR(rec_one(&r, 0, 1 << 24), TSM_ERR_FRAME_TOO_LARGE);
	r = frag_rec(0, 10, (1 << 24) + 1, false);
	CK_ERR(rec_one(&r, TSM_FF_FRAGMENT, 1 << 24), TSM_ERR_FRAME_TOO_LARGE);
	r = frag_rec(0, 10, UINT64_MAX, false);
	CK_ERR(rec_one(&r, TSM_FF_FRAGMENT, 1 << 24), TSM_ERR_FRAME_TOO_LARGE);
	r = frag_rec(0, 10, 1 << 24, false);
	CK_ERR(rec_one(&r, TSM_FF_FRAGMENT, 1 << 24), TSM_OK);
}
END_TEST

START_TEST(rec_fragment_rules)
{
	tsm__rec r = frag_rec(0, 10, 100, false);
	CK_ERR(rec_one(&r, TSM_FF_FRAGMENT, 1000), TSM_OK);
	CK_ERR(rec_one(&r, 0, 1000), TSM_ERR_BAD_FRAGMENT); /* no frame flag */
	r = plain_rec(1, 10);
	CK_ERR(rec_one(&r, TSM_FF_FRAGMENT, 1000), TSM_ERR_BAD_FRAGMENT);
	r.flags = TSM_REC_LAST; /* LAST only with FRAG */
	CK_ERR(rec_one(&r, 0, 1000), TSM_ERR_BAD_FRAGMENT);
	r = frag_rec(1, 11, 10, false); /* payload beyond the message */
	CK_ERR(rec_one(&r, TSM_FF_FRAGMENT, 1000), TSM_ERR_BAD_FRAGMENT);
	r = frag_rec(1, 0, 10, false); /* empty fragment */
	CK_ERR(rec_one(&r, TSM_FF_FRAGMENT, 1000), TSM_ERR_BAD_FRAGMENT);
	r = frag_rec(0, 10, 10, true); /* the only fragment holds it all */
	CK_ERR(rec_one(&r, TSM_FF_FRAGMENT, 1000), TSM_OK);
	r = frag_rec(0, 9, 10, true);
	CK_ERR(rec_one(&r, TSM_FF_FRAGMENT, 1000), TSM_ERR_BAD_FRAGMENT);
	r = frag_rec(3, 4, 10, true);
	CK_ERR(rec_one(&r, TSM_FF_FRAGMENT, 1000), TSM_OK);
}
END_TEST

START_TEST(rec_timestamp_round_trip)
{
	uint8_t b[256];
	tsm__wbuf w;
	tsm__rcur c;
	tsm__rec d, r = frag_rec(1, 4, 100, false);
	r.flags |= TSM_REC_TS;
	r.ts = 0x1122334455667788ull;
	tsm__wbuf_init(&w, b, sizeof(b));
	tsm__rec_encode_hdr(&r, &w);
	ck_assert_uint_eq(w.len, tsm__rec_hdr_len(&r));
	ck_assert_uint_eq(w.len, TSM_REC_HDR_LEN + TSM_REC_FRAG_LEN + TSM_REC_TS_LEN);
	tsm__wbuf_bytes(&w, "abcd", 4);
	tsm__rcur_init(&c, b, w.len);
	CK_ERR(tsm__rec_next(&c, TSM_FF_FRAGMENT, 1000, &d), TSM_OK);
	ck_assert_uint_eq(d.ts, r.ts);
	ck_assert(memcmp(d.payload, "abcd", 4) == 0);
	tsm__rcur_init(&c, b, w.len - 5); /* cut inside the timestamp */
	CK_ERR(tsm__rec_next(&c, TSM_FF_FRAGMENT, 1000, &d), TSM_ERR_TRUNCATED);
}
END_TEST

START_TEST(rec_abort_rules)
{
	tsm__rec r = frag_rec(2, 0, 100, true);
	r.flags |= TSM_REC_ABORT;
	CK_ERR(rec_one(&r, TSM_FF_FRAGMENT, 1000), TSM_OK);
	r.frag_index = 0; /* nothing was started */
	CK_ERR(rec_one(&r, TSM_FF_FRAGMENT, 1000), TSM_ERR_BAD_FRAGMENT);
	r = frag_rec(2, 1, 100, true); /* an abort carries no payload */
	r.flags |= TSM_REC_ABORT;
	CK_ERR(rec_one(&r, TSM_FF_FRAGMENT, 1000), TSM_ERR_BAD_FRAGMENT);
	r = frag_rec(2, 0, 100, false); /* ... and is the last fragment */
	r.flags |= TSM_REC_ABORT;
	CK_ERR(rec_one(&r, TSM_FF_FRAGMENT, 1000), TSM_ERR_BAD_FRAGMENT);
	r = plain_rec(1, 0); /* ... of a fragmented message */
	r.flags = TSM_REC_ABORT;
	CK_ERR(rec_one(&r, 0, 1000), TSM_ERR_BAD_FRAGMENT);
}
END_TEST

START_TEST(rec_fragment_meta_and_reserved)
{
	uint8_t b[128];
	tsm__wbuf w;
	tsm__rcur c;
	tsm__rec d, r = frag_rec(0, 4, 100, false);
	r.flags |= TSM_REC_META;
	r.meta_len = 1;
	CK_ERR(rec_one(&r, TSM_FF_FRAGMENT, 1000), TSM_OK);
	r.frag_index = 1; /* meta only travels with the first fragment */
	CK_ERR(rec_one(&r, TSM_FF_FRAGMENT, 1000), TSM_ERR_BAD_FRAGMENT);
	r = frag_rec(2, 4, 100, false);
	tsm__wbuf_init(&w, b, sizeof(b));
	put_rec(&w, &r, NULL, "abcd");
	for (int i = 36; i < 40; i++) {
		b[i] = 0x10;
		tsm__rcur_init(&c, b, w.len);
		CK_ERR(tsm__rec_next(&c, TSM_FF_FRAGMENT, 1000, &d),
		       TSM_ERR_BAD_FIELD);
		b[i] = 0;
	}
	tsm__rcur_init(&c, b, w.len);
	CK_ERR(tsm__rec_next(&c, TSM_FF_FRAGMENT, 1000, &d), TSM_OK);
	ck_assert_uint_eq(d.frag_index, 2);
	ck_assert_uint_eq(d.total_len, 100);
	ck_assert_mem_eq(d.payload, "abcd", 4);
}
END_TEST

START_TEST(rec_fragment_frame_holds_one)
{
	uint8_t b[128];
	tsm__wbuf w;
	tsm__rcur c;
	tsm__rec d, r = frag_rec(1, 4, 100, false);
	tsm__wbuf_init(&w, b, sizeof(b));
	put_rec(&w, &r, NULL, "abcd");
	put_rec(&w, &r, NULL, "efgh");
	tsm__rcur_init(&c, b, w.len);
	CK_ERR(tsm__rec_next(&c, TSM_FF_FRAGMENT, 1000, &d),
	       TSM_ERR_BAD_FRAGMENT);
	tsm__wbuf_init(&w, b, sizeof(b));
	put_rec(&w, &r, NULL, "abcd");
	tsm__rcur_init(&c, b, w.len + 1); /* even one stray byte */
	CK_ERR(tsm__rec_next(&c, TSM_FF_FRAGMENT, 1000, &d),
	       TSM_ERR_BAD_FRAGMENT);
}
END_TEST

/* ---- random input ------------------------------------------------------- */

static bool is_wire_err(tsm_err e)
{
	return e == TSM_ERR_TRUNCATED || e == TSM_ERR_BAD_MAGIC ||
	       e == TSM_ERR_BAD_VERSION || e == TSM_ERR_BAD_TYPE ||
	       e == TSM_ERR_BAD_LENGTH || e == TSM_ERR_BAD_FIELD ||
	       e == TSM_ERR_FRAME_TOO_LARGE || e == TSM_ERR_BAD_FRAGMENT ||
	       e == TSM_ERR_BAD_METADATA;
}

static void ck_outcome(tsm_err e)
{
	ck_assert_msg(e == TSM_OK || is_wire_err(e), "unexpected %s",
	              tsm_err_name(e));
	if (e != TSM_OK)
		ck_assert(tsm_err_detail()[0] != '\0');
}

/* Whatever a decoder accepts encodes back to exactly the same bytes. */
static void fuzz_bodies(const uint8_t *b, size_t n)
{
	uint8_t out[2048];
	tsm__wbuf w;
	tsm__preface p;
	tsm__reason r;
	tsm__ctrl c;
	tsm__err_clear();
	tsm_err e = tsm__preface_decode(b, n, &p);
	ck_outcome(e);
	if (e == TSM_OK) {
		tsm__wbuf_init(&w, out, sizeof(out));
		tsm__preface_encode(&p, &w);
		ck_assert(w.len == n && memcmp(out, b, n) == 0);
	}
	e = tsm__reason_decode(b, n, &r);
	ck_outcome(e);
	if (e == TSM_OK) {
		tsm__wbuf_init(&w, out, sizeof(out));
		tsm__reason_encode(&r, &w);
		ck_assert(w.len == n && memcmp(out, b, n) == 0);
	}
	e = tsm__ctrl_decode(b, n, &c);
	ck_outcome(e);
	if (e == TSM_OK) {
		tsm__wbuf_init(&w, out, sizeof(out));
		tsm__ctrl_encode(&c, &w);
		ck_assert(w.len == n && memcmp(out, b, n) == 0);
	}
}

static void fuzz_records(const uint8_t *b, size_t n, uint8_t frame_flags)
{
	uint8_t out[2048];
	tsm__rcur c;
	tsm__rec d;
	tsm__rcur_init(&c, b, n);
	while (c.left) {
		const uint8_t *at = c.p;
		tsm__err_clear();
		tsm_err e = tsm__rec_next(&c, frame_flags, 1 << 20, &d);
		ck_outcome(e);
		if (e != TSM_OK)
			return;
		tsm__wbuf w;
		tsm__wbuf_init(&w, out, sizeof(out));
		put_rec(&w, &d, d.meta, d.payload);
		ck_assert(w.len == (size_t)(c.p - at));
		ck_assert(memcmp(out, at, w.len) == 0);
	}
}

static void fuzz_hdr(const uint8_t *b, size_t n)
{
	uint8_t out[TSM_WIRE_HDR_LEN];
	tsm__fhdr h;
	tsm__err_clear();
	tsm_err e = tsm__fhdr_decode(b, n, TSM_WIRE_MAX_BODY, &h);
	ck_outcome(e);
	if (e == TSM_OK) {
		tsm__fhdr_encode(&h, out);
		ck_assert_mem_eq(out, b, TSM_WIRE_HDR_LEN);
	}
}

/* mutate flips a few random bytes of a valid encoding and maybe cuts it. */
static size_t mutate(uint8_t *b, size_t n)
{
	unsigned flips = 1 + (unsigned)(rng() % 3);
	for (unsigned i = 0; i < flips && n; i++)
		b[rng() % n] ^= (uint8_t)(1u << (rng() % 8));
	if (rng() % 4 == 0 && n)
		n = (size_t)(rng() % n);
	return n;
}

START_TEST(fuzz_mutations)
{
	for (int iter = 0; iter < 20000; iter++) {
		uint8_t b[256];
		tsm__wbuf w;
		size_t n;
		tsm__fhdr h = sample_hdr((uint8_t)(1 + rng() % TSM_F__MAX));
		tsm__fhdr_encode(&h, b);
		fuzz_hdr(b, mutate(b, TSM_WIRE_HDR_LEN));
		n = sample_preface(b, sizeof(b), (uint16_t)(rng() % 8));
		fuzz_bodies(b, mutate(b, n));
		n = encode_ctrl(b, sizeof(b), (uint8_t)(1 + rng() % 5), 0, 0,
		                "a/b");
		fuzz_bodies(b, mutate(b, n));
		tsm__rec r1 = plain_rec(1, 3), r2 = frag_rec(0, 5, 9, false);
		tsm__wbuf_init(&w, b, sizeof(b));
		put_rec(&w, &r1, NULL, "abc");
		put_rec(&w, &r1, NULL, "def");
		fuzz_records(b, mutate(b, w.len), 0);
		tsm__wbuf_init(&w, b, sizeof(b));
		put_rec(&w, &r2, NULL, "vwxyz");
		fuzz_records(b, mutate(b, w.len), TSM_FF_FRAGMENT);
	}
}
END_TEST

START_TEST(fuzz_random_bytes)
{
	for (int iter = 0; iter < 20000; iter++) {
		uint8_t b[96];
		size_t n = (size_t)(rng() % sizeof(b));
		for (size_t i = 0; i < n; i++)
			b[i] = (uint8_t)rng();
		if (n >= 2 && rng() % 2) /* get past the magic now and then */
			b[0] = 'T', b[1] = 'M';
		fuzz_hdr(b, n);
		fuzz_bodies(b, n);
		fuzz_records(b, n, 0);
		fuzz_records(b, n, TSM_FF_FRAGMENT);
	}
}
END_TEST

static Suite *frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *hdr = tcase_create("header");
	TCase *bodies = tcase_create("bodies");
	TCase *data = tcase_create("data");
	TCase *fuzz = tcase_create("fuzz");
	tcase_set_timeout(hdr, 10);
	tcase_set_timeout(bodies, 10);
	tcase_set_timeout(data, 10);
	tcase_set_timeout(fuzz, 60);
	tcase_add_test(hdr, hdr_golden_layout);
	tcase_add_test(hdr, hdr_round_trip_every_type);
	tcase_add_test(hdr, hdr_truncated);
	tcase_add_test(hdr, hdr_bad_magic);
	tcase_add_test(hdr, hdr_bad_version_and_type);
	tcase_add_test(hdr, hdr_flags);
	tcase_add_test(hdr, hdr_ranges_and_reserved);
	tcase_add_test(hdr, hdr_body_len);
	tcase_add_test(bodies, preface_round_trip_and_layout);
	tcase_add_test(bodies, preface_empty_name_and_limits);
	tcase_add_test(bodies, preface_truncated_and_trailing);
	tcase_add_test(bodies, preface_bad_fields);
	tcase_add_test(bodies, preface_lying_lengths);
	tcase_add_test(bodies, reason_round_trip);
	tcase_add_test(bodies, reason_bad);
	tcase_add_test(bodies, ctrl_round_trip_and_layout);
	tcase_add_test(bodies, ctrl_type_rules);
	tcase_add_test(bodies, ctrl_bad_lengths);
	tcase_add_test(data, rec_golden_layout);
	tcase_add_test(data, rec_batch_round_trip);
	tcase_add_test(data, rec_truncated_everywhere);
	tcase_add_test(data, rec_bad_fields);
	tcase_add_test(data, rec_lying_lengths);
	tcase_add_test(data, rec_sizes);
	tcase_add_test(data, rec_fragment_rules);
	tcase_add_test(data, rec_abort_rules);
	tcase_add_test(data, rec_timestamp_round_trip);
	tcase_add_test(data, rec_fragment_meta_and_reserved);
	tcase_add_test(data, rec_fragment_frame_holds_one);
	tcase_add_test(fuzz, fuzz_mutations);
	tcase_add_test(fuzz, fuzz_random_bytes);
	suite_add_tcase(s, hdr);
	suite_add_tcase(s, bodies);
	suite_add_tcase(s, data);
	suite_add_tcase(s, fuzz);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(frame_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
