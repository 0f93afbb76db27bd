/*
 * test_aead.c - data protection (security.md "Data protection").
 *
 * Known answers pin the primitives and our nonce construction to
 * published vectors; round trips pin seal/open agreement, gathering and
 * in-place opening; every tampered byte must fail; the key schedule,
 * ratchet, usage limits and replay window are checked at their edges.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "security/aead.h"

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

/* Decodes hex (whitespace allowed) into out; returns the byte count. */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;
	int hi = -1;
	for (; *s; s++) {
		int v;
		if (*s >= '0' && *s <= '9')
			v = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			v = *s - 'a' + 10;
		else
			continue;
		if (hi < 0) {
			hi = v;
			continue;
		}
		ck_assert_uint_lt(n, cap);
		out[n++] = (uint8_t)(hi << 4 | v);
		hi = -1;
	}
	ck_assert_int_eq(hi, -1);
	return n;
}

static struct iovec iov1(const void *p, size_t n)
{
	struct iovec v = {.iov_base = (void *)p, .iov_len = n};
	return v;
}

/* ---- known answers ------------------------------------------------------ */

typedef struct kat {
	const char *name, *key, *iv, *aad, *pt, *ct, *tag;
} kat;

/*
 * AES-256-GCM: D. McGrew and J. Viega, "The Galois/Counter Mode of
 * Operation (GCM)", revised 2005, Appendix B, test cases 13-16 (the
 * 256-bit-key cases with a 96-bit IV; 17 and 18 use 64- and 480-bit IVs,
 * which our fixed 96-bit nonce cannot express).
 */
static const kat gcm_kats[] = {
	{"GCM TC13", "00000000000000000000000000000000"
	             "00000000000000000000000000000000",
	 "000000000000000000000000", "", "", "",
	 "530f8afbc74536b9a963b4f1c4cb738b"},
	{"GCM TC14", "00000000000000000000000000000000"
	             "00000000000000000000000000000000",
	 "000000000000000000000000", "", "00000000000000000000000000000000",
	 "cea7403d4d606b6e074ec5d3baf39d18",
	 "d0d1c8a799996bf0265b98b5d48ab919"},
	{"GCM TC15", "feffe9928665731c6d6a8f9467308308"
	             "feffe9928665731c6d6a8f9467308308",
	 "cafebabefacedbaddecaf888", "",
	 "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	 "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
	 "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	 "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
	 "b094dac5d93471bdec1a502270e3cc6c"},
	{"GCM TC16", "feffe9928665731c6d6a8f9467308308"
	             "feffe9928665731c6d6a8f9467308308",
	 "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2",
	 "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	 "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
	 "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	 "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
	 "76fc6ece0f4e1768cddf8853bb2d551b"},
};

/* ChaCha20-Poly1305: RFC 8439 §2.8.2 (plaintext is the "sunscreen" text). */
static const char rfc8439_pt[] =
	"Ladies and Gentlemen of the class of '99: If I could offer you only "
	"one tip for the future, sunscreen would be it.";
static const kat chacha_kat = {
	"RFC 8439 2.8.2",
	"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
	"070000004041424344454647", "50515253c0c1c2c3c4c5c6c7", NULL,
	"d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
	"3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
	"92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
	"3ff4def08e4b7a9de576d26586cec64b6116",
	"1ae10b594f09e26a7e902ecbd0600691"};

typedef struct kat_bytes {
	uint8_t key[32], iv[12], aad[64], pt[128], ct[128], tag[16];
	size_t aad_len, pt_len;
} kat_bytes;

static void kat_load(const kat *k, kat_bytes *b)
{
	ck_assert_uint_eq(unhex(k->key, b->key, 32), 32);
	ck_assert_uint_eq(unhex(k->iv, b->iv, 12), 12);
	b->aad_len = unhex(k->aad, b->aad, sizeof b->aad);
	if (k->pt != NULL) {
		b->pt_len = unhex(k->pt, b->pt, sizeof b->pt);
	} else {
		b->pt_len = strlen(rfc8439_pt);
		memcpy(b->pt, rfc8439_pt, b->pt_len);
	}
	ck_assert_uint_eq(unhex(k->ct, b->ct, sizeof b->ct), b->pt_len);
	ck_assert_uint_eq(unhex(k->tag, b->tag, 16), 16);
}

/*
 * Runs one vector at a given seq: the IV handed to the aead is the
 * published nonce with seq XORed out of its low 8 bytes, so the vector
 * only comes out if the nonce really is IV XOR big-endian seq.
 */
static void kat_run(const kat *k, int alg, uint64_t seq)
{
	kat_bytes b;
	uint8_t out[128], tag[16];
	tsm__aead a;
	kat_load(k, &b);
	for (int i = 0; i < 8; i++)
		b.iv[11 - i] ^= (uint8_t)(seq >> (8 * i));
	CK_ERR(tsm__aead_init_raw(&a, alg, b.key, b.iv), TSM_OK);
	struct iovec v = iov1(b.pt, b.pt_len);
	CK_ERR(tsm__aead_seal(&a, seq, b.aad, b.aad_len, &v, 1, out, tag),
	       TSM_OK);
	ck_assert_msg(memcmp(out, b.ct, b.pt_len) == 0, "%s: ciphertext",
	              k->name);
	ck_assert_msg(memcmp(tag, b.tag, 16) == 0, "%s: tag", k->name);
	CK_ERR(tsm__aead_open(&a, seq, b.aad, b.aad_len, b.ct, b.pt_len, out,
	                      b.tag),
	       TSM_OK);
	ck_assert_msg(memcmp(out, b.pt, b.pt_len) == 0, "%s: plaintext",
	              k->name);
	tsm__aead_fini(&a);
}

START_TEST(kat_aes256gcm)
{
	for (size_t i = 0; i < TSM_ARRAY_LEN(gcm_kats); i++) {
		kat_run(&gcm_kats[i], TSM_AEAD_AES256GCM, 0);
		kat_run(&gcm_kats[i], TSM_AEAD_AES256GCM,
		        0x0102030405060708ull);
	}
}
END_TEST

START_TEST(kat_chacha20poly1305)
{
	kat_run(&chacha_kat, TSM_AEAD_CHACHA20, 0);
	/* 0x4041424344454647 is exactly the nonce's low half */
	kat_run(&chacha_kat, TSM_AEAD_CHACHA20, 0x4041424344454647ull);
	kat_run(&chacha_kat, TSM_AEAD_CHACHA20, UINT64_MAX);
}
END_TEST

/* The wrong seq must not reproduce the vector (the nonce is used). */
START_TEST(kat_wrong_seq_fails)
{
	kat_bytes b;
	uint8_t out[128];
	tsm__aead a;
	kat_load(&gcm_kats[3], &b);
	CK_ERR(tsm__aead_init_raw(&a, TSM_AEAD_AES256GCM, b.key, b.iv), TSM_OK);
	CK_ERR(tsm__aead_open(&a, 1, b.aad, b.aad_len, b.ct, b.pt_len, out,
	                      b.tag),
	       TSM_ERR_AEAD_FAIL);
	CK_ERR(tsm__aead_open(&a, 1ull << 56, b.aad, b.aad_len, b.ct, b.pt_len,
	                      out, b.tag),
	       TSM_ERR_AEAD_FAIL);
	ck_assert_uint_eq(a.fails, 2);
	tsm__aead_fini(&a);
}
END_TEST

/*
 * RFC 5869 Appendix A.1, test case 1, Expand step only (PRK given): pins
 * our HKDF to SHA-256 in expand-only mode.
 */
START_TEST(kat_hkdf_expand)
{
	uint8_t prk[32], want[42], got[42];
	unhex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
	      prk, sizeof prk);
	unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
	      "34007208d5b887185865",
	      want, sizeof want);
	CK_ERR(tsm__hkdf_expand(prk, 32, "\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7"
	                                 "\xf8\xf9",
	                        got, sizeof got),
	       TSM_OK);
	ck_assert_mem_eq(got, want, sizeof want);
	CK_ERR(tsm__hkdf_expand(prk, 16, "x", got, 16), TSM_EINVAL);
	CK_ERR(tsm__hkdf_expand(prk, 32, "x", got, 0), TSM_EINVAL);
	CK_ERR(tsm__hkdf_expand(prk, 32, "x", got, 255 * 32 + 1), TSM_EINVAL);
}
END_TEST

/* ---- round trips and tampering ----------------------------------------- */

static const uint8_t master[32] = {
	1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

/* A sender and a receiver of one direction and lane. */
static void pair_make(int alg, tsm__aead *tx, tsm__aead *rx)
{
	uint8_t s[32];
	CK_ERR(tsm__keys_derive(master, 0, 3, s), TSM_OK);
	CK_ERR(tsm__aead_init(tx, alg, s), TSM_OK);
	CK_ERR(tsm__aead_init(rx, alg, s), TSM_OK);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + seed);
}

START_TEST(gather_equals_contiguous)
{
	int alg = _i;
	tsm__aead tx, rx;
	uint8_t hdr[40], msg[300], c1[300], c2[300], t1[16], t2[16];
	fill(hdr, sizeof hdr, 1);
	fill(msg, sizeof msg, 2);
	pair_make(alg, &tx, &rx);
	struct iovec whole = iov1(msg, sizeof msg);
	struct iovec parts[4] = {iov1(msg, 1), iov1(msg + 1, 0),
	                         iov1(msg + 1, 150), iov1(msg + 151, 149)};
	CK_ERR(tsm__aead_seal(&tx, 7, hdr, 40, &whole, 1, c1, t1), TSM_OK);
	CK_ERR(tsm__aead_seal(&rx, 7, hdr, 40, parts, 4, c2, t2), TSM_OK);
	ck_assert_mem_eq(c1, c2, sizeof c1);
	ck_assert_mem_eq(t1, t2, 16);
	ck_assert_msg(memcmp(c1, msg, sizeof msg) != 0, "not encrypted");
	/* in place, both ways */
	CK_ERR(tsm__aead_open(&rx, 7, hdr, 40, c1, sizeof c1, c1, t1), TSM_OK);
	ck_assert_mem_eq(c1, msg, sizeof msg);
	struct iovec self = iov1(c1, sizeof c1);
	CK_ERR(tsm__aead_seal(&tx, 8, hdr, 40, &self, 1, c1, t1), TSM_OK);
	CK_ERR(tsm__aead_seal(&rx, 8, hdr, 40, &whole, 1, c2, t2), TSM_OK);
	ck_assert_mem_eq(c1, c2, sizeof c1);
	ck_assert_mem_eq(t1, t2, 16);
	ck_assert_uint_eq(tx.frames, 2);
	ck_assert_uint_eq(tx.bytes, 2 * sizeof msg);
	tsm__aead_fini(&tx);
	tsm__aead_fini(&rx);
}
END_TEST

START_TEST(tamper_fails)
{
	int alg = _i;
	tsm__aead tx, rx;
	uint8_t hdr[40], msg[64], ct[64], tag[16], x[64], xh[40], xt[16];
	fill(hdr, sizeof hdr, 3);
	fill(msg, sizeof msg, 4);
	pair_make(alg, &tx, &rx);
	struct iovec v = iov1(msg, sizeof msg);
	CK_ERR(tsm__aead_seal(&tx, 9, hdr, 40, &v, 1, ct, tag), TSM_OK);
	for (size_t i = 0; i < 40 * 8; i++) { /* every header bit */
		memcpy(xh, hdr, 40);
		xh[i / 8] ^= (uint8_t)(1u << (i % 8));
		CK_ERR(tsm__aead_open(&rx, 9, xh, 40, ct, 64, x, tag),
		       TSM_ERR_AEAD_FAIL);
	}
	for (size_t i = 0; i < 64; i++) { /* every ciphertext byte */
		memcpy(x, ct, 64);
		x[i] ^= 0x80;
		CK_ERR(tsm__aead_open(&rx, 9, hdr, 40, x, 64, x, tag),
		       TSM_ERR_AEAD_FAIL);
		for (size_t j = 0; j < 64; j++) /* wiped, not leaked */
			ck_assert_uint_eq(x[j], 0);
	}
	for (size_t i = 0; i < 16 * 8; i++) { /* every tag bit */
		memcpy(xt, tag, 16);
		xt[i / 8] ^= (uint8_t)(1u << (i % 8));
		CK_ERR(tsm__aead_open(&rx, 9, hdr, 40, ct, 64, x, xt),
		       TSM_ERR_AEAD_FAIL);
	}
	CK_ERR(tsm__aead_open(&rx, 9, hdr, 39, ct, 64, x, tag),
	       TSM_ERR_AEAD_FAIL); /* truncated aad */
	CK_ERR(tsm__aead_open(&rx, 9, hdr, 40, ct, 63, x, tag),
	       TSM_ERR_AEAD_FAIL); /* truncated body */
	CK_ERR(tsm__aead_open(&rx, 10, hdr, 40, ct, 64, x, tag),
	       TSM_ERR_AEAD_FAIL); /* other seq */
	ck_assert_uint_eq(rx.fails, 40 * 8 + 64 + 16 * 8 + 3);
	CK_ERR(tsm__aead_open(&rx, 9, hdr, 40, ct, 64, x, tag), TSM_OK);
	ck_assert_mem_eq(x, msg, 64);
	tsm__aead_fini(&tx);
	tsm__aead_fini(&rx);
}
END_TEST

START_TEST(nonce_differs_per_seq)
{
	tsm__aead tx, rx;
	uint8_t msg[32] = {0}, c[4][32], t[4][16];
	const uint64_t seqs[4] = {0, 1, 1ull << 32, UINT64_MAX};
	pair_make(_i, &tx, &rx);
	struct iovec v = iov1(msg, sizeof msg);
	for (int i = 0; i < 4; i++)
		CK_ERR(tsm__aead_seal(&tx, seqs[i], NULL, 0, &v, 1, c[i], t[i]),
		       TSM_OK);
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++) {
			ck_assert_msg(memcmp(c[i], c[j], 32) != 0, "keystream "
			              "reused for seq %d and %d", i, j);
			ck_assert_msg(memcmp(t[i], t[j], 16) != 0, "tag");
		}
	tsm__aead_fini(&tx);
	tsm__aead_fini(&rx);
}
END_TEST

START_TEST(integrity_mode)
{
	int alg = _i;
	tsm__aead tx, rx;
	uint8_t hdr[40], msg[100], x[100], tag[16], ct[100], ctag[16];
	fill(hdr, sizeof hdr, 5);
	fill(msg, sizeof msg, 6);
	pair_make(alg, &tx, &rx);
	struct iovec parts[2] = {iov1(msg, 30), iov1(msg + 30, 70)};
	CK_ERR(tsm__aead_mac(&tx, 4, hdr, 40, parts, 2, tag), TSM_OK);
	CK_ERR(tsm__aead_verify(&rx, 4, hdr, 40, msg, 100, tag), TSM_OK);
	for (size_t i = 0; i < 100; i++) {
		memcpy(x, msg, 100);
		x[i] ^= 1;
		CK_ERR(tsm__aead_verify(&rx, 4, hdr, 40, x, 100, tag),
		       TSM_ERR_AEAD_FAIL);
	}
	hdr[5] ^= 1;
	CK_ERR(tsm__aead_verify(&rx, 4, hdr, 40, msg, 100, tag),
	       TSM_ERR_AEAD_FAIL);
	hdr[5] ^= 1;
	/* a MAC is not a seal of the same frame, nor the other way round */
	CK_ERR(tsm__aead_open(&rx, 4, hdr, 40, msg, 100, x, tag),
	       TSM_ERR_AEAD_FAIL);
	struct iovec v = iov1(msg, 100);
	CK_ERR(tsm__aead_seal(&tx, 5, hdr, 40, &v, 1, ct, ctag), TSM_OK);
	CK_ERR(tsm__aead_verify(&rx, 5, hdr, 40, ct, 100, ctag),
	       TSM_ERR_AEAD_FAIL);
	tsm__aead_fini(&tx);
	tsm__aead_fini(&rx);
}
END_TEST

START_TEST(bad_arguments)
{
	tsm__aead a, z;
	uint8_t k[32] = {0}, iv[12] = {0}, b[8] = {0}, tag[16];
	struct iovec bad = {.iov_base = NULL, .iov_len = 4};
	CK_ERR(tsm__aead_init_raw(&a, 2, k, iv), TSM_EINVAL);
	tsm__aead_fini(&a);
	CK_ERR(tsm__aead_init(&a, -1, k), TSM_EINVAL);
	tsm__aead_fini(&a);
	CK_ERR(tsm__aead_init_raw(&a, TSM_AEAD_AES256GCM, k, iv), TSM_OK);
	CK_ERR(tsm__aead_seal(&a, 0, NULL, 0, &bad, 1, b, tag), TSM_EINVAL);
	CK_ERR(tsm__aead_seal(&a, 0, NULL, 0, NULL, -1, b, tag), TSM_EINVAL);
	CK_ERR(tsm__aead_seal(&a, 0, NULL, 4, NULL, 0, b, tag), TSM_EINVAL);
	CK_ERR(tsm__aead_open(&a, 0, NULL, 0, b, 8, NULL, tag), TSM_EINVAL);
	/* empty body, empty aad: still a valid, authenticated frame */
	CK_ERR(tsm__aead_seal(&a, 0, NULL, 0, NULL, 0, b, tag), TSM_OK);
	CK_ERR(tsm__aead_open(&a, 0, NULL, 0, NULL, 0, b, tag), TSM_OK);
	CK_ERR(tsm__aead_ratchet(&a), TSM_ESTATE); /* raw key: no secret */
	tsm__aead_fini(&a);
	tsm__aead_fini(&a); /* idempotent */
	memset(&z, 0, sizeof z);
	CK_ERR(tsm__aead_seal(&z, 0, NULL, 0, NULL, 0, b, tag), TSM_ESTATE);
	tsm__aead_fini(NULL);
}
END_TEST

/* ---- key schedule and ratchet ------------------------------------------ */

START_TEST(keys_bind_dir_and_lane)
{
	uint8_t s[2][8][32], m2[32];
	for (int d = 0; d < 2; d++)
		for (unsigned l = 0; l < 8; l++)
			CK_ERR(tsm__keys_derive(master, d, l, s[d][l]), TSM_OK);
	for (int i = 0; i < 16; i++)
		for (int j = i + 1; j < 16; j++)
			ck_assert_msg(memcmp(s[i / 8][i % 8], s[j / 8][j % 8],
			                     32) != 0,
			              "secrets %d and %d equal", i, j);
	memcpy(m2, master, 32);
	m2[31] ^= 1;
	uint8_t o[32];
	CK_ERR(tsm__keys_derive(m2, 0, 0, o), TSM_OK);
	ck_assert_msg(memcmp(o, s[0][0], 32) != 0, "master ignored");
	CK_ERR(tsm__keys_derive(master, 2, 0, o), TSM_EINVAL);
	CK_ERR(tsm__keys_derive(master, -1, 0, o), TSM_EINVAL);
	CK_ERR(tsm__keys_derive(master, 0, 8, o), TSM_EINVAL);
}
END_TEST

/* A frame of one lane or direction never opens on another. */
START_TEST(cross_lane_fails)
{
	uint8_t s0[32], s1[32], msg[16] = {0}, ct[16], tag[16], x[16];
	tsm__aead a, b, c;
	CK_ERR(tsm__keys_derive(master, 0, 1, s0), TSM_OK);
	CK_ERR(tsm__keys_derive(master, 0, 2, s1), TSM_OK);
	CK_ERR(tsm__aead_init(&a, TSM_AEAD_AES256GCM, s0), TSM_OK);
	CK_ERR(tsm__aead_init(&b, TSM_AEAD_AES256GCM, s1), TSM_OK);
	CK_ERR(tsm__keys_derive(master, 1, 1, s1), TSM_OK);
	CK_ERR(tsm__aead_init(&c, TSM_AEAD_AES256GCM, s1), TSM_OK);
	struct iovec v = iov1(msg, 16);
	CK_ERR(tsm__aead_seal(&a, 0, NULL, 0, &v, 1, ct, tag), TSM_OK);
	CK_ERR(tsm__aead_open(&b, 0, NULL, 0, ct, 16, x, tag),
	       TSM_ERR_AEAD_FAIL);
	CK_ERR(tsm__aead_open(&c, 0, NULL, 0, ct, 16, x, tag),
	       TSM_ERR_AEAD_FAIL);
	tsm__aead_fini(&a);
	tsm__aead_fini(&b);
	tsm__aead_fini(&c);
}
END_TEST

START_TEST(ratchet_both_sides_agree)
{
	int alg = _i;
	tsm__aead tx, rx;
	uint8_t msg[48], ct[48], tag[16], x[48], old_secret[32], old_iv[12];
	fill(msg, sizeof msg, 7);
	pair_make(alg, &tx, &rx);
	struct iovec v = iov1(msg, sizeof msg);
	CK_ERR(tsm__aead_seal(&tx, 0, NULL, 0, &v, 1, ct, tag), TSM_OK);
	memcpy(old_secret, tx.secret, 32);
	memcpy(old_iv, tx.iv, 12);
	CK_ERR(tsm__aead_ratchet(&tx), TSM_OK);
	ck_assert_uint_eq(tx.epoch, 1);
	ck_assert_uint_eq(tx.frames, 0);
	ck_assert_uint_eq(tx.bytes, 0);
	ck_assert_msg(memcmp(old_secret, tx.secret, 32) != 0, "secret");
	ck_assert_msg(memcmp(old_iv, tx.iv, 12) != 0, "iv");
	/* the old frame no longer opens under the new key on a new sender */
	uint8_t ct2[48], tag2[16];
	CK_ERR(tsm__aead_seal(&tx, 0, NULL, 0, &v, 1, ct2, tag2), TSM_OK);
	ck_assert_msg(memcmp(ct, ct2, 48) != 0, "same keystream after ku");
	CK_ERR(tsm__aead_open(&rx, 0, NULL, 0, ct2, 48, x, tag2),
	       TSM_ERR_AEAD_FAIL);
	CK_ERR(tsm__aead_ratchet(&rx), TSM_OK);
	CK_ERR(tsm__aead_open(&rx, 0, NULL, 0, ct2, 48, x, tag2), TSM_OK);
	ck_assert_mem_eq(x, msg, 48);
	ck_assert_mem_eq(tx.secret, rx.secret, 32);
	for (int i = 0; i < 5; i++) {
		CK_ERR(tsm__aead_ratchet(&tx), TSM_OK);
		CK_ERR(tsm__aead_ratchet(&rx), TSM_OK);
	}
	ck_assert_uint_eq(rx.epoch, 6);
	CK_ERR(tsm__aead_seal(&tx, 3, NULL, 0, &v, 1, ct, tag), TSM_OK);
	CK_ERR(tsm__aead_open(&rx, 3, NULL, 0, ct, 48, x, tag), TSM_OK);
	ck_assert_mem_eq(x, msg, 48);
	tsm__aead_fini(&tx);
	tsm__aead_fini(&rx);
}
END_TEST

START_TEST(ratchet_epoch_ends)
{
	tsm__aead a;
	uint8_t s[32] = {9};
	CK_ERR(tsm__aead_init(&a, TSM_AEAD_AES256GCM, s), TSM_OK);
	a.epoch = UINT16_MAX - 1;
	CK_ERR(tsm__aead_ratchet(&a), TSM_OK);
	CK_ERR(tsm__aead_ratchet(&a), TSM_ESTATE);
	tsm__aead_fini(&a);
}
END_TEST

START_TEST(limits_trigger_rekey)
{
	tsm__aead tx, rx;
	uint8_t msg[100] = {0}, ct[100], tag[16];
	struct iovec v = iov1(msg, sizeof msg);
	pair_make(TSM_AEAD_AES256GCM, &tx, &rx);
	ck_assert(!tsm__aead_needs_rekey(&tx));
	tsm__aead_set_limits(3, 1u << 20);
	for (uint64_t s = 0; s < 2; s++)
		CK_ERR(tsm__aead_seal(&tx, s, NULL, 0, &v, 1, ct, tag), TSM_OK);
	ck_assert(!tsm__aead_needs_rekey(&tx));
	CK_ERR(tsm__aead_seal(&tx, 2, NULL, 0, &v, 1, ct, tag), TSM_OK);
	ck_assert(tsm__aead_needs_rekey(&tx));
	for (uint64_t s = 3; s < 6; s++) /* grace up to twice the limit */
		CK_ERR(tsm__aead_seal(&tx, s, NULL, 0, &v, 1, ct, tag), TSM_OK);
	CK_ERR(tsm__aead_seal(&tx, 6, NULL, 0, &v, 1, ct, tag), TSM_ESTATE);
	CK_ERR(tsm__aead_ratchet(&tx), TSM_OK);
	ck_assert(!tsm__aead_needs_rekey(&tx));
	CK_ERR(tsm__aead_seal(&tx, 0, NULL, 0, &v, 1, ct, tag), TSM_OK);

	/* bytes: 250 bytes allowed, 500 hard */
	tsm__aead_set_limits(1000, 250);
	CK_ERR(tsm__aead_ratchet(&tx), TSM_OK);
	CK_ERR(tsm__aead_seal(&tx, 0, NULL, 0, &v, 1, ct, tag), TSM_OK);
	CK_ERR(tsm__aead_seal(&tx, 1, NULL, 0, &v, 1, ct, tag), TSM_OK);
	ck_assert(!tsm__aead_needs_rekey(&tx));
	CK_ERR(tsm__aead_seal(&tx, 2, NULL, 0, &v, 1, ct, tag), TSM_OK);
	ck_assert(tsm__aead_needs_rekey(&tx));
	CK_ERR(tsm__aead_seal(&tx, 3, NULL, 0, &v, 1, ct, tag), TSM_OK);
	CK_ERR(tsm__aead_seal(&tx, 4, NULL, 0, &v, 1, ct, tag), TSM_OK);
	CK_ERR(tsm__aead_seal(&tx, 5, NULL, 0, &v, 1, ct, tag), TSM_ESTATE);
	CK_ERR(tsm__aead_mac(&tx, 5, NULL, 0, &v, 1, tag), TSM_ESTATE);

	/* opening counts too: the receiver's key wears out as well */
	tsm__aead_set_limits(2, 0);
	ck_assert(!tsm__aead_needs_rekey(&rx));
	CK_ERR(tsm__aead_ratchet(&tx), TSM_OK);
	CK_ERR(tsm__aead_ratchet(&tx), TSM_OK);
	for (int i = 0; i < 4; i++) /* catch up with tx's epoch 4 */
		CK_ERR(tsm__aead_ratchet(&rx), TSM_OK);
	ck_assert_uint_eq(rx.epoch, tx.epoch);
	for (uint64_t s = 0; s < 2; s++) {
		CK_ERR(tsm__aead_seal(&tx, s, NULL, 0, &v, 1, ct, tag), TSM_OK);
		CK_ERR(tsm__aead_open(&rx, s, NULL, 0, ct, 100, ct, tag),
		       TSM_OK);
	}
	ck_assert(tsm__aead_needs_rekey(&rx));
	tsm__aead_set_limits(0, 0); /* defaults */
	ck_assert(!tsm__aead_needs_rekey(&rx));
	tx.frames = TSM_AEAD_REKEY_FRAMES;
	ck_assert(tsm__aead_needs_rekey(&tx));
	tx.frames = 0;
	tx.bytes = TSM_AEAD_REKEY_BYTES;
	ck_assert(tsm__aead_needs_rekey(&tx));
	tsm__aead_fini(&tx);
	tsm__aead_fini(&rx);
}
END_TEST

/* ---- replay window ----------------------------------------------------- */

START_TEST(replay_in_order_and_duplicate)
{
	tsm__replay r = {0};
	for (uint64_t s = 0; s < 200; s++) {
		CK_ERR(tsm__replay_check_and_set(&r, s), TSM_OK);
		CK_ERR(tsm__replay_check_and_set(&r, s), TSM_ERR_REPLAY);
	}
	CK_ERR(tsm__replay_check(&r, 199), TSM_ERR_REPLAY);
	CK_ERR(tsm__replay_check(&r, 200), TSM_OK);
	CK_ERR(tsm__replay_check(&r, 200), TSM_OK); /* check alone sets nothing */
}
END_TEST

START_TEST(replay_out_of_order_in_window)
{
	tsm__replay r = {0};
	CK_ERR(tsm__replay_check_and_set(&r, 100), TSM_OK);
	/* the window reaches back 63 below the top */
	CK_ERR(tsm__replay_check_and_set(&r, 37), TSM_OK);
	CK_ERR(tsm__replay_check_and_set(&r, 36), TSM_ERR_REPLAY);
	CK_ERR(tsm__replay_check_and_set(&r, 99), TSM_OK);
	CK_ERR(tsm__replay_check_and_set(&r, 50), TSM_OK);
	CK_ERR(tsm__replay_check_and_set(&r, 50), TSM_ERR_REPLAY);
	CK_ERR(tsm__replay_check_and_set(&r, 37), TSM_ERR_REPLAY);
	CK_ERR(tsm__replay_check_and_set(&r, 101), TSM_OK);
	/* 37 is now out of the window, 38 still in it and unseen */
	CK_ERR(tsm__replay_check_and_set(&r, 37), TSM_ERR_REPLAY);
	CK_ERR(tsm__replay_check_and_set(&r, 38), TSM_OK);
	CK_ERR(tsm__replay_check_and_set(&r, 99), TSM_ERR_REPLAY);
	CK_ERR(tsm__replay_check_and_set(&r, 100), TSM_ERR_REPLAY);
	CK_ERR(tsm__replay_check_and_set(&r, 98), TSM_OK);
}
END_TEST

START_TEST(replay_far_ahead_and_edges)
{
	tsm__replay r = {0};
	CK_ERR(tsm__replay_check_and_set(&r, 0), TSM_OK);
	CK_ERR(tsm__replay_check_and_set(&r, 0), TSM_ERR_REPLAY);
	CK_ERR(tsm__replay_check_and_set(&r, 10), TSM_OK);
	CK_ERR(tsm__replay_check_and_set(&r, 1000000), TSM_OK); /* far ahead */
	CK_ERR(tsm__replay_check_and_set(&r, 10), TSM_ERR_REPLAY);
	CK_ERR(tsm__replay_check_and_set(&r, 1000000 - 63), TSM_OK);
	CK_ERR(tsm__replay_check_and_set(&r, 1000000 - 64), TSM_ERR_REPLAY);
	/* a jump of exactly the window size clears every old bit */
	CK_ERR(tsm__replay_check_and_set(&r, 1000000 + 64), TSM_OK);
	CK_ERR(tsm__replay_check_and_set(&r, 1000000 + 1), TSM_OK);
	CK_ERR(tsm__replay_check_and_set(&r, 1000000), TSM_ERR_REPLAY);
	CK_ERR(tsm__replay_check_and_set(&r, UINT64_MAX), TSM_OK);
	CK_ERR(tsm__replay_check_and_set(&r, UINT64_MAX), TSM_ERR_REPLAY);
	CK_ERR(tsm__replay_check_and_set(&r, UINT64_MAX - 63), TSM_OK);
	CK_ERR(tsm__replay_check_and_set(&r, 0), TSM_ERR_REPLAY);
	tsm__replay f = {0}; /* a first seq far from 0 */
	CK_ERR(tsm__replay_check_and_set(&f, 5000), TSM_OK);
	CK_ERR(tsm__replay_check_and_set(&f, 4999), TSM_OK);
	CK_ERR(tsm__replay_check_and_set(&f, 5000), TSM_ERR_REPLAY);
}
END_TEST

/* Model check against a set of every accepted seq. */
START_TEST(replay_random_against_model)
{
	tsm__replay r = {0};
	static uint8_t seen[4096];
	uint64_t top = 0, x = 0x12345678;
	bool any = false;
	memset(seen, 0, sizeof seen);
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t s = any ? top + 8 - x % 80 : x % 64;
		if (s >= sizeof seen)
			s = top;
		bool ok = !seen[s] && (!any || s > top || top - s < 64);
		tsm_err e = tsm__replay_check_and_set(&r, s);
		ck_assert_int_eq(e, ok ? TSM_OK : TSM_ERR_REPLAY);
		if (ok) {
			seen[s] = 1;
			if (!any || s > top)
				top = s;
			any = true;
		}
		if (top > sizeof seen - 100)
			break;
	}
}
END_TEST

static Suite *aead_suite(void)
{
	Suite *s = suite_create("aead");
	TCase *kc = tcase_create("kat");
	TCase *rt = tcase_create("round_trip");
	TCase *keys = tcase_create("keys");
	TCase *rp = tcase_create("replay");
	tcase_add_test(kc, kat_aes256gcm);
	tcase_add_test(kc, kat_chacha20poly1305);
	tcase_add_test(kc, kat_wrong_seq_fails);
	tcase_add_test(kc, kat_hkdf_expand);
	tcase_add_loop_test(rt, gather_equals_contiguous, 0, 2);
	tcase_add_loop_test(rt, tamper_fails, 0, 2);
	tcase_add_loop_test(rt, nonce_differs_per_seq, 0, 2);
	tcase_add_loop_test(rt, integrity_mode, 0, 2);
	tcase_add_test(rt, bad_arguments);
	tcase_add_test(keys, keys_bind_dir_and_lane);
	tcase_add_test(keys, cross_lane_fails);
	tcase_add_loop_test(keys, ratchet_both_sides_agree, 0, 2);
	tcase_add_test(keys, ratchet_epoch_ends);
	tcase_add_test(keys, limits_trigger_rekey);
	tcase_add_test(rp, replay_in_order_and_duplicate);
	tcase_add_test(rp, replay_out_of_order_in_window);
	tcase_add_test(rp, replay_far_ahead_and_edges);
	tcase_add_test(rp, replay_random_against_model);
	suite_add_tcase(s, kc);
	suite_add_tcase(s, rt);
	suite_add_tcase(s, keys);
	suite_add_tcase(s, rp);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(aead_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
