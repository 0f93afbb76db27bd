/*
 * tests/fuzz/fuzz_meta.c - message metadata (wire/meta.h, docs/wire.md §9)
 * on hostile bytes.
 *
 * The walker (tsm__meta_check) is the gate in front of msgpack-c, so the
 * properties are about the two agreeing: every input the walker accepts
 * must unpack with msgpack-c as exactly one object filling the input, and
 * tsm__meta_decode of it may refuse only for a §9 rule on the well-known
 * keys (BAD_METADATA), never because msgpack-c disagrees (EINTERNAL).
 * Whatever the walker refuses, decode refuses too, with out cleared.
 * Decoded pointers stay inside the input, and a decoded value re-encodes
 * and decodes to the same well-known fields.
 */
#include <msgpack.h>

#include "fuzz_util.h"

#include "tsm/tsm.h"
#include "wire/meta.h"

static bool inside(const uint8_t *p, size_t n, const uint8_t *buf, size_t len)
{
	if (n == 0)
		return true;
	return p != NULL && p >= buf && n <= len && p - buf <= (ptrdiff_t)(len - n);
}

static bool zeroed(const tsm__meta *m)
{
	static const tsm__meta zero;
	return memcmp(m, &zero, sizeof(zero)) == 0;
}

/* msgpack-c must parse what the walker let through, all of it. */
static void check_msgpack_agrees(const uint8_t *d, size_t n)
{
	msgpack_unpacked u;
	size_t off = 0;
	msgpack_unpacked_init(&u);
	msgpack_unpack_return rc = msgpack_unpack_next(&u, (const char *)d, n, &off);
	FUZZ_CHECK(rc == MSGPACK_UNPACK_SUCCESS, "walker accepted, msgpack-c "
	           "returned %d", (int)rc);
	FUZZ_CHECK(off == n, "msgpack-c used %zu of %zu bytes", off, n);
	FUZZ_CHECK(u.data.type == MSGPACK_OBJECT_MAP, "not a map for msgpack-c");
	msgpack_unpacked_destroy(&u);
}

static bool same_str(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

/* encode(decode(x)) decodes to the same well-known fields. */
static void check_reencode(const tsm__meta *m)
{
	uint8_t out[TSM_META_MAX];
	size_t len = 0;
	tsm__meta again;
	tsm_err e = tsm__meta_encode(m, out, sizeof(out), &len);
	/* Re-encoding drops unknown keys and uses the shortest forms, so it
	 * never needs more room, objects or depth than the input had. */
	FUZZ_CHECK(e == TSM_OK, "re-encoding a decoded map failed: %s (%s)",
	           tsm_err_name(e), tsm_err_detail());
	e = tsm__meta_decode(out, len, &again);
	FUZZ_CHECK(e == TSM_OK, "re-encoded map does not decode: %s (%s)",
	           tsm_err_name(e), tsm_err_detail());
	FUZZ_CHECK(again.has_ts == m->has_ts && (!m->has_ts || again.ts == m->ts),
	           "ts changed");
	FUZZ_CHECK(same_str(again.ctype, again.ctype_len, m->ctype, m->ctype_len),
	           "ct changed");
	FUZZ_CHECK(same_str(again.trace, again.trace_len, m->trace, m->trace_len),
	           "tc changed");
	FUZZ_CHECK(same_str(again.user, again.user_len, m->user, m->user_len),
	           "u changed");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tsm__meta m;
	tsm_err chk = tsm__meta_check(data, size);
	tsm_err dec = tsm__meta_decode(data, size, &m);
	if (chk != TSM_OK) {
		FUZZ_CHECK(chk == TSM_ERR_BAD_METADATA, "check returned %s",
		           tsm_err_name(chk));
		FUZZ_CHECK(dec == chk, "check refused (%s) but decode said %s",
		           tsm_err_name(chk), tsm_err_name(dec));
		FUZZ_CHECK(zeroed(&m), "refused decode left fields set");
		return 0;
	}
	FUZZ_CHECK(size >= 1 && size <= TSM_META_MAX, "accepted %zu bytes", size);
	check_msgpack_agrees(data, size);
	if (dec != TSM_OK) {
		FUZZ_CHECK(dec == TSM_ERR_BAD_METADATA,
		           "checked input did not decode: %s (%s)",
		           tsm_err_name(dec), tsm_err_detail());
		FUZZ_CHECK(zeroed(&m), "refused decode left fields set");
		return 0;
	}
	FUZZ_CHECK(inside(m.ctype, m.ctype_len, data, size), "ct outside");
	FUZZ_CHECK(inside(m.trace, m.trace_len, data, size), "tc outside");
	FUZZ_CHECK(inside(m.user, m.user_len, data, size), "u outside");
	FUZZ_CHECK(!m.has_ts || m.ts >= 0, "negative ts");
	if (m.user) /* "u" is a map one level down: alone it is a valid map */
		FUZZ_CHECK(tsm__meta_check(m.user, m.user_len) == TSM_OK,
		           "user map span does not check: %s", tsm_err_detail());
	check_reencode(&m);
	return 0;
}
