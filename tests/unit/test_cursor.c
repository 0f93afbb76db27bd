/*
 * test_cursor.c - the bounds-checked cursor and builder (docs/wire.md §1).
 *
 * What matters: byte order is little-endian, a read that does not fit
 * fails without moving the cursor, a write that does not fit writes
 * nothing and sticks, and no call touches memory outside its buffer.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "wire/cursor.h"

START_TEST(read_little_endian)
{
	const uint8_t b[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	                     0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f};
	tsm__rcur c;
	uint8_t v8;
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;
	tsm__rcur_init(&c, b, sizeof(b));
	ck_assert(tsm__rcur_u8(&c, &v8));
	ck_assert_uint_eq(v8, 0x01);
	ck_assert(tsm__rcur_u16(&c, &v16));
	ck_assert_uint_eq(v16, 0x0302);
	ck_assert(tsm__rcur_u32(&c, &v32));
	ck_assert_uint_eq(v32, 0x07060504);
	ck_assert(tsm__rcur_u64(&c, &v64));
	ck_assert_uint_eq(v64, 0x0f0e0d0c0b0a0908ull);
	ck_assert_uint_eq(c.left, 0);
	ck_assert(!tsm__rcur_u8(&c, &v8));
}
END_TEST

/* Every short read fails and leaves the cursor (and the output) alone. */
START_TEST(read_short_fails_and_stays)
{
	const uint8_t b[8] = {0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11, 0x22};
	for (size_t len = 0; len < 8; len++) {
		tsm__rcur c;
		uint64_t v64 = 42;
		uint32_t v32 = 42;
		uint16_t v16 = 42;
		tsm__rcur_init(&c, b, len);
		ck_assert(!tsm__rcur_u64(&c, &v64));
		ck_assert_uint_eq(v64, 42);
		ck_assert_uint_eq(c.left, len);
		ck_assert_ptr_eq(c.p, b);
		if (len < 4) {
			ck_assert(!tsm__rcur_u32(&c, &v32));
			ck_assert_uint_eq(v32, 42);
		}
		if (len < 2) {
			ck_assert(!tsm__rcur_u16(&c, &v16));
			ck_assert_uint_eq(v16, 42);
		}
		ck_assert_uint_eq(c.left, len);
	}
}
END_TEST

START_TEST(read_bytes_and_skip)
{
	const uint8_t b[] = {1, 2, 3, 4, 5};
	const uint8_t *p = NULL;
	tsm__rcur c;
	tsm__rcur_init(&c, b, sizeof(b));
	ck_assert(tsm__rcur_bytes(&c, 2, &p));
	ck_assert_ptr_eq(p, b);
	ck_assert(!tsm__rcur_bytes(&c, 4, &p)); /* 3 left */
	ck_assert_ptr_eq(p, b);
	ck_assert_uint_eq(c.left, 3);
	ck_assert(!tsm__rcur_skip(&c, 4));
	ck_assert_uint_eq(c.left, 3);
	ck_assert(tsm__rcur_skip(&c, 1));
	ck_assert(tsm__rcur_bytes(&c, 2, &p));
	ck_assert_ptr_eq(p, b + 3);
	ck_assert(tsm__rcur_bytes(&c, 0, &p)); /* empty read at the end */
	ck_assert(!tsm__rcur_skip(&c, 1));
}
END_TEST

/* Lengths near SIZE_MAX must not wrap around the bounds check. */
START_TEST(read_huge_length)
{
	const uint8_t b[4] = {0};
	const uint8_t *p = NULL;
	tsm__rcur c;
	tsm__rcur_init(&c, b, sizeof(b));
	ck_assert(!tsm__rcur_bytes(&c, SIZE_MAX, &p));
	ck_assert(!tsm__rcur_skip(&c, SIZE_MAX - 1));
	ck_assert(!tsm__rcur_skip(&c, 5));
	ck_assert_ptr_null(p);
	ck_assert_uint_eq(c.left, 4);
}
END_TEST

START_TEST(read_empty_null_buffer)
{
	tsm__rcur c;
	const uint8_t *p = (const uint8_t *)"x";
	uint8_t v;
	tsm__rcur_init(&c, NULL, 0);
	ck_assert(tsm__rcur_bytes(&c, 0, &p));
	ck_assert_ptr_null(p);
	ck_assert(tsm__rcur_skip(&c, 0));
	ck_assert(!tsm__rcur_u8(&c, &v));
}
END_TEST

START_TEST(write_little_endian)
{
	uint8_t b[15];
	const uint8_t want[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	                        0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f};
	tsm__wbuf w;
	tsm__wbuf_init(&w, b, sizeof(b));
	tsm__wbuf_u8(&w, 0x01);
	tsm__wbuf_u16(&w, 0x0302);
	tsm__wbuf_u32(&w, 0x07060504);
	tsm__wbuf_u64(&w, 0x0f0e0d0c0b0a0908ull);
	ck_assert(!w.overflow);
	ck_assert_uint_eq(w.len, sizeof(want));
	ck_assert_mem_eq(b, want, sizeof(want));
}
END_TEST

START_TEST(write_bytes_and_zero)
{
	uint8_t b[8];
	const uint8_t want[] = {'a', 'b', 'c', 0, 0, 0, 'd', 0x77};
	tsm__wbuf w;
	memset(b, 0x77, sizeof(b));
	tsm__wbuf_init(&w, b, sizeof(b));
	tsm__wbuf_bytes(&w, "abc", 3);
	tsm__wbuf_zero(&w, 3);
	tsm__wbuf_bytes(&w, NULL, 0);
	tsm__wbuf_zero(&w, 0);
	tsm__wbuf_bytes(&w, "d", 1);
	ck_assert(!w.overflow);
	ck_assert_uint_eq(w.len, 7);
	ck_assert_mem_eq(b, want, sizeof(want));
}
END_TEST

/*
 * Overflow writes nothing, sticks, and keeps later puts that would fit
 * from landing after the gap. A canary after cap proves nothing spills.
 */
START_TEST(write_overflow_sticky)
{
	uint8_t b[8];
	tsm__wbuf w;
	memset(b, 0xcc, sizeof(b));
	tsm__wbuf_init(&w, b, 5);
	tsm__wbuf_u32(&w, 0x11111111);
	tsm__wbuf_u16(&w, 0x2222); /* does not fit: 4 + 2 > 5 */
	ck_assert(w.overflow);
	ck_assert_uint_eq(w.len, 4);
	tsm__wbuf_u8(&w, 0x33); /* would fit, but the builder is spoilt */
	ck_assert(w.overflow);
	ck_assert_uint_eq(w.len, 4);
	ck_assert_uint_eq(b[4], 0xcc);
	ck_assert_uint_eq(b[5], 0xcc);
}
END_TEST

START_TEST(write_overflow_each_put)
{
	uint8_t b[16];
	for (size_t cap = 0; cap < 8; cap++) {
		tsm__wbuf w;
		memset(b, 0xcc, sizeof(b));
		tsm__wbuf_init(&w, b, cap);
		tsm__wbuf_u64(&w, 0);
		ck_assert(w.overflow);
		ck_assert_uint_eq(w.len, 0);
		tsm__wbuf_init(&w, b, cap);
		tsm__wbuf_zero(&w, cap + 1);
		ck_assert(w.overflow);
		tsm__wbuf_init(&w, b, cap);
		tsm__wbuf_bytes(&w, b + 8, SIZE_MAX);
		ck_assert(w.overflow);
		ck_assert_uint_eq(b[0], 0xcc);
	}
}
END_TEST

START_TEST(write_exact_fit)
{
	uint8_t b[4];
	tsm__wbuf w;
	tsm__wbuf_init(&w, b, sizeof(b));
	tsm__wbuf_u16(&w, 1);
	tsm__wbuf_u8(&w, 2);
	tsm__wbuf_u8(&w, 3);
	ck_assert(!w.overflow);
	ck_assert_uint_eq(w.len, 4);
	tsm__wbuf_zero(&w, 0); /* nothing more is still fine */
	ck_assert(!w.overflow);
}
END_TEST

START_TEST(round_trip_values)
{
	uint8_t b[15];
	tsm__wbuf w;
	tsm__rcur c;
	uint8_t v8;
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;
	tsm__wbuf_init(&w, b, sizeof(b));
	tsm__wbuf_u8(&w, 0xfe);
	tsm__wbuf_u16(&w, 0xfedc);
	tsm__wbuf_u32(&w, 0xfedcba98);
	tsm__wbuf_u64(&w, 0xfedcba9876543210ull);
	tsm__rcur_init(&c, b, w.len);
	ck_assert(tsm__rcur_u8(&c, &v8) && v8 == 0xfe);
	ck_assert(tsm__rcur_u16(&c, &v16) && v16 == 0xfedc);
	ck_assert(tsm__rcur_u32(&c, &v32) && v32 == 0xfedcba98);
	ck_assert(tsm__rcur_u64(&c, &v64) && v64 == 0xfedcba9876543210ull);
}
END_TEST

static Suite *cursor_suite(void)
{
	Suite *s = suite_create("cursor");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, read_little_endian);
	tcase_add_test(tc, read_short_fails_and_stays);
	tcase_add_test(tc, read_bytes_and_skip);
	tcase_add_test(tc, read_huge_length);
	tcase_add_test(tc, read_empty_null_buffer);
	tcase_add_test(tc, write_little_endian);
	tcase_add_test(tc, write_bytes_and_zero);
	tcase_add_test(tc, write_overflow_sticky);
	tcase_add_test(tc, write_overflow_each_put);
	tcase_add_test(tc, write_exact_fit);
	tcase_add_test(tc, round_trip_values);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cursor_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
