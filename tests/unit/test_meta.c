/*
 * test_meta.c - metadata check, decode and encode (docs/wire.md §9).
 *
 * The checker is tested on hand-built msgpack (every head byte form, the
 * exact limits and one past them, the classic bombs) and against
 * msgpack-c itself: whatever tsm__meta_check accepts, msgpack-c must
 * parse as one map that uses every byte. Decode and encode are tested by
 * round trips and by every wrong type of every well-known key.
 */
#include <check.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "wire/meta.h"

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

/* A tiny msgpack writer, so that tests can say exactly which bytes. */
struct mb {
	uint8_t b[8192];
	size_t n;
};

static void mb_raw(struct mb *m, const void *p, size_t n)
{
	ck_assert(m->n + n <= sizeof(m->b));
	memcpy(m->b + m->n, p, n);
	m->n += n;
}

static void mb_u8(struct mb *m, uint8_t v)
{
	mb_raw(m, &v, 1);
}

static void mb_be(struct mb *m, uint64_t v, unsigned bytes)
{
	while (bytes--)
		mb_u8(m, (uint8_t)(v >> (8 * bytes)));
}

static void mb_str(struct mb *m, const char *s)
{
	size_t n = strlen(s);
	ck_assert(n < 32);
	mb_u8(m, (uint8_t)(0xa0 | n));
	mb_raw(m, s, n);
}

/* MBI initialises a struct mb from a list of bytes; MB is its value. */
#define MBI(...)                                                               \
	{.b = {__VA_ARGS__}, .n = sizeof((uint8_t[]){__VA_ARGS__})}
#define MB(...) ((struct mb)MBI(__VA_ARGS__))

static tsm_err check_mb(const struct mb *m)
{
	return tsm__meta_check(m->b, m->n);
}

/* ---- accepting ---------------------------------------------------------- */

/* One map whose values use every msgpack head form the walker knows. */
static struct mb every_form(void)
{
	struct mb body = {.n = 0}, m = {.n = 0};
	static const uint8_t scalars[][10] = {
		{1, 0x00}, {1, 0x7f}, {1, 0xe0}, {1, 0xff}, /* fixints */
		{1, 0xc0}, {1, 0xc2}, {1, 0xc3},             /* nil, bools */
		{2, 0xcc, 1}, {3, 0xcd, 1, 2}, {5, 0xce, 1, 2, 3, 4},
		{9, 0xcf, 1, 2, 3, 4, 5, 6, 7, 8},
		{2, 0xd0, 0xff}, {3, 0xd1, 1, 2}, {5, 0xd2, 1, 2, 3, 4},
		{9, 0xd3, 1, 2, 3, 4, 5, 6, 7, 8},
		{5, 0xca, 0x3f, 0x80, 0, 0},
		{9, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0},
		{3, 0xd4, 1, 9}, {4, 0xd5, 1, 9, 9}, {6, 0xd6, 1, 9, 9, 9, 9},
		{4, 0xc4, 2, 'h', 'i'}, {5, 0xc5, 0, 2, 'h', 'i'},
		{7, 0xc6, 0, 0, 0, 2, 'h', 'i'},
	};
	int k = 0;
	char key[8];
	for (size_t i = 0; i < TSM_ARRAY_LEN(scalars); i++, k++) {
		snprintf(key, sizeof(key), "k%d", k);
		mb_str(&body, key);
		mb_raw(&body, scalars[i] + 1, scalars[i][0]);
	}
	const uint8_t fixext8[] = {0xd7, 1, 1, 2, 3, 4, 5, 6, 7, 8};
	uint8_t fixext16[18] = {0xd8, 1};
	const uint8_t ext8[] = {0xc7, 1, 5, 'x'}, ext16[] = {0xc8, 0, 1, 5, 'x'};
	const uint8_t ext32[] = {0xc9, 0, 0, 0, 1, 5, 'x'};
	const uint8_t str8[] = {0xd9, 1, 'x'}, str16[] = {0xda, 0, 1, 'x'};
	const uint8_t str32[] = {0xdb, 0, 0, 0, 1, 'x'};
	const uint8_t arr16[] = {0xdc, 0, 2, 1, 2}, arr32[] = {0xdd, 0, 0, 0, 0};
	const uint8_t map32[] = {0xdf, 0, 0, 0, 1, 0xa1, 'q', 0x90};
	const uint8_t fix[] = {0x92, 0x81, 0xa0, 0x80, 0xa3, 'a', 'b', 'c'};
	const struct {
		const uint8_t *p;
		size_t n;
	} rest[] = {
		{fixext8, sizeof(fixext8)}, {fixext16, sizeof(fixext16)},
		{ext8, sizeof(ext8)},       {ext16, sizeof(ext16)},
		{ext32, sizeof(ext32)},     {str8, sizeof(str8)},
		{str16, sizeof(str16)},     {str32, sizeof(str32)},
		{arr16, sizeof(arr16)},     {arr32, sizeof(arr32)},
		{map32, sizeof(map32)},     {fix, sizeof(fix)},
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(rest); i++, k++) {
		snprintf(key, sizeof(key), "k%d", k);
		mb_str(&body, key);
		mb_raw(&body, rest[i].p, rest[i].n);
	}
	mb_u8(&m, 0xde); /* map 16 */
	mb_be(&m, (uint64_t)k, 2);
	mb_raw(&m, body.b, body.n);
	return m;
}

/* msgpack-c must agree: one complete map, every byte used. */
static void ck_msgpack_agrees(const uint8_t *b, size_t n)
{
	msgpack_unpacked u;
	size_t off = 0;
	msgpack_unpacked_init(&u);
	msgpack_unpack_return rc =
		msgpack_unpack_next(&u, (const char *)b, n, &off);
	ck_assert_int_eq(rc, MSGPACK_UNPACK_SUCCESS);
	ck_assert_uint_eq(off, n);
	ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_MAP);
	msgpack_unpacked_destroy(&u);
}

START_TEST(check_accepts_every_form)
{
	struct mb m = every_form();
	CK_ERR(check_mb(&m), TSM_OK);
	ck_msgpack_agrees(m.b, m.n);
	struct mb e = MB(0x80);
	CK_ERR(check_mb(&e), TSM_OK);
	e = MB(0xde, 0, 0);
	CK_ERR(check_mb(&e), TSM_OK);
	e = MB(0xdf, 0, 0, 0, 1, 0xd9, 1, 'a', 0xc0); /* str 8 key */
	CK_ERR(check_mb(&e), TSM_OK);
}
END_TEST

/* Every proper prefix of a valid map is refused. */
START_TEST(check_truncated_everywhere)
{
	struct mb m = every_form();
	for (size_t k = 0; k < m.n; k++)
		CK_ERR(tsm__meta_check(m.b, k), TSM_ERR_BAD_METADATA);
	CK_ERR(tsm__meta_check(NULL, 0), TSM_ERR_BAD_METADATA);
}
END_TEST

/* ---- depth -------------------------------------------------------------- */

/* nested_maps: depth levels of {"a": ...}, the innermost holding 1. */
static struct mb nested_maps(unsigned depth)
{
	struct mb m = {.n = 0};
	for (unsigned i = 0; i < depth; i++) {
		mb_u8(&m, 0x81);
		mb_str(&m, "a");
	}
	mb_u8(&m, 0x01);
	return m;
}

/* nested_arrays: the top map plus depth - 1 arrays, the innermost empty. */
static struct mb nested_arrays(unsigned depth)
{
	struct mb m = {.n = 0};
	mb_u8(&m, 0x81);
	mb_str(&m, "a");
	for (unsigned i = 1; i < depth - 1; i++)
		mb_u8(&m, 0x91);
	mb_u8(&m, 0x90);
	return m;
}

START_TEST(check_depth_limit)
{
	struct mb m = nested_maps(TSM_META_MAX_DEPTH);
	CK_ERR(check_mb(&m), TSM_OK);
	m = nested_maps(TSM_META_MAX_DEPTH + 1);
	CK_ERR(check_mb(&m), TSM_ERR_BAD_METADATA);
	ck_assert_ptr_nonnull(strstr(tsm_err_detail(), "deeper"));
	m = nested_arrays(TSM_META_MAX_DEPTH);
	CK_ERR(check_mb(&m), TSM_OK);
	ck_msgpack_agrees(m.b, m.n);
	m = nested_arrays(TSM_META_MAX_DEPTH + 1); /* an empty one still counts */
	CK_ERR(check_mb(&m), TSM_ERR_BAD_METADATA);
}
END_TEST

START_TEST(check_deep_bomb)
{
	struct mb m = {.n = 0};
	mb_u8(&m, 0x81);
	mb_str(&m, "a");
	for (int i = 0; i < 4000; i++)
		mb_u8(&m, 0x91);
	mb_u8(&m, 0xc0);
	CK_ERR(check_mb(&m), TSM_ERR_BAD_METADATA);
	CK_ERR(tsm__meta_decode(m.b, m.n, &(tsm__meta){0}),
	       TSM_ERR_BAD_METADATA);
}
END_TEST

/* ---- lying and huge lengths ------------------------------------------- */

START_TEST(check_huge_lengths)
{
	static const struct mb bombs[] = {
		MBI(0x81, 0xa1, 'a', 0xdb, 0xff, 0xff, 0xff, 0xff), /* str 32 */
		MBI(0x81, 0xa1, 'a', 0xda, 0xff, 0xff, 'x'),         /* str 16 */
		MBI(0x81, 0xa1, 'a', 0xd9, 0x02, 'x'),               /* str 8 */
		MBI(0x81, 0xa1, 'a', 0xc6, 0xff, 0xff, 0xff, 0xff), /* bin 32 */
		MBI(0x81, 0xa1, 'a', 0xc9, 0xff, 0xff, 0xff, 0xff, 1), /* ext */
		MBI(0x81, 0xa1, 'a', 0xc7, 0x00),            /* ext missing type */
		MBI(0x81, 0xa1, 'a', 0xd8, 1, 2, 3),         /* fixext 16 short */
		MBI(0x81, 0xa1, 'a', 0xcf, 1, 2, 3),         /* uint 64 short */
		MBI(0x81, 0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff), /* array */
		MBI(0x81, 0xa1, 'a', 0xdc, 0xff, 0xff),
		MBI(0x81, 0xa1, 'a', 0x9f),                  /* 15 items, 0 bytes */
		MBI(0x81, 0xa1, 'a', 0x92, 0xc0),            /* 2 items, 1 byte */
		MBI(0xdf, 0xff, 0xff, 0xff, 0xff),           /* map 32 top */
		MBI(0xde, 0x00, 0x02, 0xa1, 'a', 0xc0),      /* 2 pairs, 1 given */
		MBI(0x8f),
		MBI(0x81, 0xa1, 'a', 0xda, 0x00),            /* length cut */
		MBI(0x81, 0xa1, 'a', 0xdf, 0x00),
		MBI(0x81, 0xa5, 'a'),                        /* key too short */
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(bombs); i++)
		CK_ERR(check_mb(&bombs[i]), TSM_ERR_BAD_METADATA);
	/* refused at the head, before walking 2^32 announced elements */
	CK_ERR(check_mb(&bombs[8]), TSM_ERR_BAD_METADATA);
	ck_assert_ptr_nonnull(strstr(tsm_err_detail(), "more elements"));
	ck_assert_ptr_nonnull(strstr(tsm_err_detail(), "byte 3"));
}
END_TEST

START_TEST(check_item_limit)
{
	/* 1 map + 1 key + 1 array + n nils */
	for (unsigned n = 250; n <= 260; n++) {
		struct mb m = {.n = 0};
		mb_u8(&m, 0x81);
		mb_str(&m, "a");
		mb_u8(&m, 0xdc);
		mb_be(&m, n, 2);
		for (unsigned i = 0; i < n; i++)
			mb_u8(&m, 0xc0);
		tsm_err want = 3 + n <= TSM_META_MAX_ITEMS ? TSM_OK
		                                           : TSM_ERR_BAD_METADATA;
		CK_ERR(check_mb(&m), want);
	}
}
END_TEST

START_TEST(check_size_limit)
{
	/* {"a": bin 16 of n bytes}: 1 + 2 + 3 + n bytes */
	for (size_t total = TSM_META_MAX - 1; total <= TSM_META_MAX + 1;
	     total++) {
		struct mb m = {.n = 0};
		size_t n = total - 6;
		mb_u8(&m, 0x81);
		mb_str(&m, "a");
		mb_u8(&m, 0xc5);
		mb_be(&m, n, 2);
		memset(m.b + m.n, 'z', n);
		m.n += n;
		ck_assert_uint_eq(m.n, total);
		CK_ERR(check_mb(&m),
		       total <= TSM_META_MAX ? TSM_OK : TSM_ERR_BAD_METADATA);
	}
}
END_TEST

/* ---- shape -------------------------------------------------------------- */

START_TEST(check_keys_must_be_strings)
{
	static const struct mb bad[] = {
		MBI(0x81, 0x01, 0x01),                     /* int key */
		MBI(0x81, 0xc0, 0x01),                     /* nil key */
		MBI(0x81, 0x90, 0x01),                     /* array key */
		MBI(0x81, 0x80, 0x01),                     /* map key */
		MBI(0x81, 0xc4, 0x01, 'a', 0x01),          /* bin key */
		MBI(0x81, 0xa1, 'a', 0x81, 0x01, 0x01),    /* nested map */
		MBI(0x81, 0xa1, 'a', 0x91, 0x81, 0xc3, 0), /* map in array */
		MBI(0x82, 0xa1, 'a', 0x01, 0x02, 0x03),    /* second key */
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(bad); i++)
		CK_ERR(check_mb(&bad[i]), TSM_ERR_BAD_METADATA);
	struct mb ok = MB(0x81, 0xa1, 'a', 0x91, 0x81, 0xa0, 0);
	CK_ERR(check_mb(&ok), TSM_OK);
}
END_TEST

START_TEST(check_one_map_only)
{
	static const struct mb bad[] = {
		MBI(0x80, 0x00),                 /* trailing byte */
		MBI(0x80, 0x80),                 /* two maps */
		MBI(0x81, 0xa1, 'a', 0x01, 0xc0),
		MBI(0x90), MBI(0xa1, 'a'), MBI(0xc0), MBI(0x01), MBI(0xff),
		MBI(0xdc, 0, 0), MBI(0xc4, 0),    /* not a map */
		MBI(0xc1),                       /* never-used byte */
		MBI(0x81, 0xa1, 'a', 0xc1),
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(bad); i++)
		CK_ERR(check_mb(&bad[i]), TSM_ERR_BAD_METADATA);
}
END_TEST

/* ---- decode ------------------------------------------------------------- */

START_TEST(decode_well_known_keys)
{
	struct mb m = {.n = 0};
	tsm__meta d;
	mb_u8(&m, 0x86);
	mb_str(&m, "zz"); /* unknown keys are skipped, whatever they hold */
	mb_raw(&m, (uint8_t[]){0x92, 0x81, 0xa0, 0xc0, 0x01}, 5);
	mb_str(&m, "ts");
	mb_raw(&m, (uint8_t[]){0xcf, 0, 0, 0, 1, 0, 0, 0, 2}, 9);
	mb_str(&m, "ct");
	mb_str(&m, "image/png");
	mb_str(&m, "tc");
	mb_str(&m, "00-abc-01");
	mb_str(&m, "u");
	size_t user_at = m.n;
	mb_raw(&m, (uint8_t[]){0x81, 0xa1, 'k', 0x91, 0x05}, 5);
	mb_str(&m, "uu");
	mb_u8(&m, 0xc0);
	CK_ERR(tsm__meta_decode(m.b, m.n, &d), TSM_OK);
	ck_assert(d.has_ts);
	ck_assert_int_eq(d.ts, (tsm_time)0x100000002ll);
	ck_assert_uint_eq(d.ctype_len, 9);
	ck_assert_mem_eq(d.ctype, "image/png", 9);
	ck_assert_uint_eq(d.trace_len, 9);
	ck_assert_mem_eq(d.trace, "00-abc-01", 9);
	ck_assert_ptr_eq(d.user, m.b + user_at);
	ck_assert_uint_eq(d.user_len, 5);
	/* pointers lie inside the input, so they outlive msgpack-c's zone */
	ck_assert(d.ctype > m.b && d.ctype < m.b + m.n);
	ck_assert(d.trace > m.b && d.trace < m.b + m.n);
}
END_TEST

START_TEST(decode_empty_and_partial)
{
	struct mb m = MB(0x80);
	tsm__meta d;
	CK_ERR(tsm__meta_decode(m.b, m.n, &d), TSM_OK);
	ck_assert(!d.has_ts);
	ck_assert_ptr_null(d.ctype);
	ck_assert_ptr_null(d.trace);
	ck_assert_ptr_null(d.user);
	m = MB(0x82, 0xa2, 'c', 't', 0xa0, 0xa1, 'u', 0x80);
	CK_ERR(tsm__meta_decode(m.b, m.n, &d), TSM_OK);
	ck_assert_ptr_nonnull(d.ctype);
	ck_assert_uint_eq(d.ctype_len, 0);
	ck_assert_ptr_eq(d.user, m.b + 7);
	ck_assert_uint_eq(d.user_len, 1);
}
END_TEST

START_TEST(decode_ts_encodings)
{
	static const struct mb ok[] = {
		MBI(0x81, 0xa2, 't', 's', 0x05),
		MBI(0x81, 0xa2, 't', 's', 0xcc, 0x05),
		MBI(0x81, 0xa2, 't', 's', 0xcd, 0x00, 0x05),
		MBI(0x81, 0xa2, 't', 's', 0xd0, 0x05),
		MBI(0x81, 0xa2, 't', 's', 0xd3, 0, 0, 0, 0, 0, 0, 0, 0x05),
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(ok); i++) {
		tsm__meta d;
		CK_ERR(tsm__meta_decode(ok[i].b, ok[i].n, &d), TSM_OK);
		ck_assert(d.has_ts);
		ck_assert_int_eq(d.ts, 5);
	}
}
END_TEST

START_TEST(decode_wrong_types)
{
	static const struct mb bad[] = {
		MBI(0x81, 0xa2, 't', 's', 0xa1, '5'),       /* ts str */
		MBI(0x81, 0xa2, 't', 's', 0xff),            /* ts -1 */
		MBI(0x81, 0xa2, 't', 's', 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0),
		MBI(0x81, 0xa2, 't', 's', 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0),
		MBI(0x81, 0xa2, 't', 's', 0xc0),
		MBI(0x81, 0xa2, 'c', 't', 0x01),            /* ct int */
		MBI(0x81, 0xa2, 'c', 't', 0xc4, 1, 'x'),    /* ct bin */
		MBI(0x81, 0xa2, 't', 'c', 0xc0),            /* tc nil */
		MBI(0x81, 0xa2, 't', 'c', 0x90),
		MBI(0x81, 0xa1, 'u', 0x90),                 /* u array */
		MBI(0x81, 0xa1, 'u', 0xa1, 'x'),            /* u str */
		MBI(0x82, 0xa2, 't', 's', 1, 0xa2, 't', 's', 2), /* duplicate */
		MBI(0x82, 0xa1, 'u', 0x80, 0xa1, 'u', 0x80),
		MBI(0x82, 0xa2, 'c', 't', 0xa0, 0xa2, 'c', 't', 0xa0),
	};
	for (size_t i = 0; i < TSM_ARRAY_LEN(bad); i++) {
		tsm__meta d;
		memset(&d, 0x5a, sizeof(d));
		CK_ERR(tsm__meta_decode(bad[i].b, bad[i].n, &d),
		       TSM_ERR_BAD_METADATA);
		ck_assert(!d.has_ts); /* nothing half-filled is left behind */
		ck_assert_ptr_null(d.ctype);
		ck_assert_ptr_null(d.user);
	}
	struct mb dup_unknown = MB(0x82, 0xa1, 'x', 1, 0xa1, 'x', 2);
	tsm__meta d;
	CK_ERR(tsm__meta_decode(dup_unknown.b, dup_unknown.n, &d), TSM_OK);
}
END_TEST

/* ---- encode ------------------------------------------------------------- */

START_TEST(encode_round_trip)
{
	const uint8_t user[] = {0x82, 0xa1, 'a', 0x01, 0xa1, 'b', 0x91, 0xc3};
	tsm__meta m = {
		.has_ts = true, .ts = 123456789012345ll,
		.ctype = (const uint8_t *)"text/plain", .ctype_len = 10,
		.trace = (const uint8_t *)"tp", .trace_len = 2,
		.user = user, .user_len = sizeof(user),
	}, d;
	uint8_t out[256];
	size_t n = 0;
	CK_ERR(tsm__meta_encode(&m, out, sizeof(out), &n), TSM_OK);
	ck_assert_uint_gt(n, sizeof(user));
	ck_msgpack_agrees(out, n);
	CK_ERR(tsm__meta_decode(out, n, &d), TSM_OK);
	ck_assert(d.has_ts);
	ck_assert_int_eq(d.ts, m.ts);
	ck_assert_uint_eq(d.ctype_len, 10);
	ck_assert_mem_eq(d.ctype, "text/plain", 10);
	ck_assert_mem_eq(d.trace, "tp", 2);
	ck_assert_uint_eq(d.user_len, sizeof(user));
	ck_assert_mem_eq(d.user, user, sizeof(user));
	ck_assert(d.user >= out && d.user < out + n);
}
END_TEST

START_TEST(encode_empty)
{
	tsm__meta m = {.has_ts = false};
	uint8_t out[8];
	size_t n = 99;
	CK_ERR(tsm__meta_encode(&m, out, sizeof(out), &n), TSM_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(out[0], 0x80);
	m.has_ts = true; /* ts 0 is a value, not absence: {"ts": 0} */
	CK_ERR(tsm__meta_encode(&m, out, sizeof(out), &n), TSM_OK);
	ck_assert_uint_eq(n, 5);
	ck_assert_mem_eq(out, "\x81\xa2ts\x00", 5);
}
END_TEST

/* Every capacity short of the size fails cleanly and writes in bounds. */
START_TEST(encode_cap_too_small)
{
	tsm__meta m = {.has_ts = true, .ts = 1,
	               .ctype = (const uint8_t *)"abc", .ctype_len = 3};
	uint8_t out[64];
	size_t n, full;
	CK_ERR(tsm__meta_encode(&m, out, sizeof(out), &full), TSM_OK);
	for (size_t cap = 0; cap < full; cap++) {
		memset(out, 0xee, sizeof(out));
		n = 99;
		CK_ERR(tsm__meta_encode(&m, out, cap, &n), TSM_ERR_BAD_METADATA);
		ck_assert_uint_eq(n, 0);
		ck_assert_uint_eq(out[cap], 0xee);
	}
}
END_TEST

START_TEST(encode_refuses_bad_input)
{
	uint8_t out[TSM_META_MAX * 2];
	static uint8_t big[TSM_META_MAX];
	size_t n;
	tsm__meta m = {.has_ts = true, .ts = -1};
	CK_ERR(tsm__meta_encode(&m, out, sizeof(out), &n), TSM_ERR_BAD_METADATA);
	const uint8_t not_map[] = {0x91, 0x01}, trailing[] = {0x80, 0x01};
	m = (tsm__meta){.user = not_map, .user_len = sizeof(not_map)};
	CK_ERR(tsm__meta_encode(&m, out, sizeof(out), &n), TSM_ERR_BAD_METADATA);
	m = (tsm__meta){.user = trailing, .user_len = sizeof(trailing)};
	CK_ERR(tsm__meta_encode(&m, out, sizeof(out), &n), TSM_ERR_BAD_METADATA);
	/* a user map of depth 8 is depth 9 once inside the metadata map */
	struct mb deep = nested_maps(TSM_META_MAX_DEPTH);
	m = (tsm__meta){.user = deep.b, .user_len = deep.n};
	CK_ERR(tsm__meta_encode(&m, out, sizeof(out), &n), TSM_ERR_BAD_METADATA);
	deep = nested_maps(TSM_META_MAX_DEPTH - 1);
	m.user_len = deep.n;
	m.user = deep.b;
	CK_ERR(tsm__meta_encode(&m, out, sizeof(out), &n), TSM_OK);
	/* never more than TSM_META_MAX, whatever the capacity */
	memset(big, 'x', sizeof(big));
	/* map head 1 + "ct" 3 + str 16 head 3 + the string */
	m = (tsm__meta){.ctype = big, .ctype_len = TSM_META_MAX - 6};
	CK_ERR(tsm__meta_encode(&m, out, sizeof(out), &n), TSM_ERR_BAD_METADATA);
	m.ctype_len = TSM_META_MAX - 7;
	CK_ERR(tsm__meta_encode(&m, out, sizeof(out), &n), TSM_OK);
	ck_assert_uint_eq(n, TSM_META_MAX);
}
END_TEST

/* ---- differential and random ------------------------------------------- */

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void fuzz_one(const uint8_t *b, size_t n)
{
	tsm__meta d;
	tsm__err_clear();
	tsm_err e = tsm__meta_check(b, n);
	ck_assert(e == TSM_OK || e == TSM_ERR_BAD_METADATA);
	if (e != TSM_OK) {
		ck_assert(tsm_err_detail()[0] != '\0');
		CK_ERR(tsm__meta_decode(b, n, &d), TSM_ERR_BAD_METADATA);
		return;
	}
	ck_msgpack_agrees(b, n);
	e = tsm__meta_decode(b, n, &d);
	ck_assert(e == TSM_OK || e == TSM_ERR_BAD_METADATA);
	if (e == TSM_OK && d.user)
		CK_ERR(tsm__meta_check(d.user, d.user_len), TSM_OK);
}

START_TEST(fuzz_differential)
{
	struct mb base = every_form();
	int accepted = 0;
	for (int iter = 0; iter < 30000; iter++) {
		struct mb m = base;
		unsigned flips = 1 + (unsigned)(rng() % 3);
		for (unsigned i = 0; i < flips; i++)
			m.b[rng() % m.n] = (uint8_t)rng();
		if (rng() % 4 == 0)
			m.n = (size_t)(rng() % m.n);
		fuzz_one(m.b, m.n);
		accepted += tsm__meta_check(m.b, m.n) == TSM_OK;
	}
	/* the differential half only means something if some pass */
	ck_assert_int_gt(accepted, 100);
}
END_TEST

START_TEST(fuzz_random_bytes)
{
	for (int iter = 0; iter < 30000; iter++) {
		uint8_t b[64];
		size_t n = 1 + (size_t)(rng() % sizeof(b));
		for (size_t i = 0; i < n; i++)
			b[i] = (uint8_t)rng();
		b[0] = (uint8_t)(0x80 | (rng() % 4)); /* mostly maps */
		fuzz_one(b, n);
	}
}
END_TEST

static Suite *meta_suite(void)
{
	Suite *s = suite_create("meta");
	TCase *chk = tcase_create("check");
	TCase *dec = tcase_create("decode");
	TCase *enc = tcase_create("encode");
	TCase *fuzz = tcase_create("fuzz");
	tcase_set_timeout(chk, 10);
	tcase_set_timeout(dec, 10);
	tcase_set_timeout(enc, 10);
	tcase_set_timeout(fuzz, 60);
	tcase_add_test(chk, check_accepts_every_form);
	tcase_add_test(chk, check_truncated_everywhere);
	tcase_add_test(chk, check_depth_limit);
	tcase_add_test(chk, check_deep_bomb);
	tcase_add_test(chk, check_huge_lengths);
	tcase_add_test(chk, check_item_limit);
	tcase_add_test(chk, check_size_limit);
	tcase_add_test(chk, check_keys_must_be_strings);
	tcase_add_test(chk, check_one_map_only);
	tcase_add_test(dec, decode_well_known_keys);
	tcase_add_test(dec, decode_empty_and_partial);
	tcase_add_test(dec, decode_ts_encodings);
	tcase_add_test(dec, decode_wrong_types);
	tcase_add_test(enc, encode_round_trip);
	tcase_add_test(enc, encode_empty);
	tcase_add_test(enc, encode_cap_too_small);
	tcase_add_test(enc, encode_refuses_bad_input);
	tcase_add_test(fuzz, fuzz_differential);
	tcase_add_test(fuzz, fuzz_random_bytes);
	suite_add_tcase(s, chk);
	suite_add_tcase(s, dec);
	suite_add_tcase(s, enc);
	suite_add_tcase(s, fuzz);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(meta_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
