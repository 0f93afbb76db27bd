/*
 * security/aead.h - data protection: key schedule, frame sealing, usage
 * limits, key ratchet and replay window (security.md "Data protection").
 *
 * Threading: a tsm__aead and a tsm__replay belong to one lane of one
 * direction of one session and are used by one thread at a time (the
 * owner serialises); they hold no locks. tsm__keys_derive and
 * tsm__hkdf_expand are thread-safe. tsm__aead_set_limits is a process-wide
 * test hook (atomic), read by every tsm__aead.
 *
 * Key schedule (RFC 5869 HKDF-Expand with SHA-256 through OpenSSL EVP_KDF):
 *
 *   master  = TLS exporter, 32 bytes (tls.h, tsm__tls_export)
 *   secret  = HKDF-Expand(master, "tsm1 dir<d> lane<n>", 32)
 *   key     = HKDF-Expand(secret, "key", 32)
 *   iv      = HKDF-Expand(secret, "iv", 12)
 *   secret' = HKDF-Expand(secret, "tsm1 ku", 32)       (ratchet, epoch+1)
 *   nonce   = iv XOR (0^32 || big-endian seq64)          (RFC 8446 §5.3)
 *
 * Expand-only is sound because the master is already a uniformly random
 * key (RFC 5869 §3.3); the labels keep every (direction, lane, epoch) on
 * its own key and IV, so that a frame can never be moved to another lane
 * or direction, and a seq never repeats under one key (the caller's seq
 * is per direction and lane, docs/wire.md §2).
 *
 * Integrity-only mode (per-topic protection=integrity) authenticates the
 * header and the plaintext as associated data with an empty ciphertext:
 * GMAC for AES-GCM, Poly1305 for ChaCha20-Poly1305. It shares the nonce
 * space (the seq) with sealing, so a seq is still used once per key.
 */
#ifndef TSM_SECURITY_AEAD_H
#define TSM_SECURITY_AEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <openssl/evp.h>

#include "tsm/err.h"

#define TSM_AEAD_AES256GCM 0
#define TSM_AEAD_CHACHA20 1 /* ChaCha20-Poly1305, RFC 8439 */

#define TSM_AEAD_SECRET_LEN 32u
#define TSM_AEAD_KEY_LEN 32u
#define TSM_AEAD_IV_LEN 12u
#define TSM_AEAD_TAG_LEN 16u

/* security.md: rekey before min(2^23 messages, 2^36 bytes) per key. */
#define TSM_AEAD_REKEY_FRAMES (UINT64_C(1) << 23)
#define TSM_AEAD_REKEY_BYTES (UINT64_C(1) << 36)

/*
 * One key of one lane in one direction. Fields are read-only outside
 * aead.c except for tests. frames/bytes count what this key protected
 * (seal or mac) or verified (open or verify); fails counts bad tags so the
 * session can close after too many (security.md).
 */
typedef struct tsm__aead {
	EVP_CIPHER_CTX *ctx; /* keyed once; only the nonce changes per frame */
	int alg;
	uint16_t epoch; /* 0 for the first key, +1 per ratchet */
	uint8_t secret[TSM_AEAD_SECRET_LEN];
	uint8_t iv[TSM_AEAD_IV_LEN];
	uint64_t frames;
	uint64_t bytes;
	uint64_t fails;
} tsm__aead;

/*
 * tsm__hkdf_expand writes out_len bytes of HKDF-Expand(prk, info) with
 * SHA-256 (RFC 5869 §2.3) into out. out_len <= 255 * 32. Returns
 * TSM_EINVAL for bad lengths, TSM_EINTERNAL if OpenSSL fails.
 */
tsm_err tsm__hkdf_expand(const uint8_t *prk, size_t prk_len,
                         const char *info, uint8_t *out, size_t out_len);

/*
 * tsm__keys_derive writes the 32-byte traffic secret of direction dir
 * (0 = initiator to responder, 1 = responder to initiator) and lane
 * (< TSM_WIRE_LANES) derived from the session master into secret.
 * Returns TSM_EINVAL for a bad dir or lane, TSM_EINTERNAL if OpenSSL fails.
 */
tsm_err tsm__keys_derive(const uint8_t master[32], int dir, unsigned lane,
                         uint8_t secret[32]);

/*
 * tsm__aead_init makes a ready tsm__aead of algorithm alg
 * (TSM_AEAD_AES256GCM or TSM_AEAD_CHACHA20) from a traffic secret: derives
 * key and IV, allocates its one EVP_CIPHER_CTX and keys it. The caller owns
 * *a and must call tsm__aead_fini (also after a failure: safe on a zeroed
 * or half-made struct). Returns TSM_EINVAL for an unknown alg, TSM_ENOMEM,
 * TSM_ENOTSUP if the OpenSSL providers lack the cipher, TSM_EINTERNAL.
 */
tsm_err tsm__aead_init(tsm__aead *a, int alg, const uint8_t secret[32]);

/*
 * tsm__aead_init_raw is tsm__aead_init with the key and IV given directly
 * (no secret, so no ratchet): for known-answer tests only.
 */
tsm_err tsm__aead_init_raw(tsm__aead *a, int alg, const uint8_t key[32],
                           const uint8_t iv[12]);

/*
 * tsm__aead_seal encrypts the niov pieces of in, in order, into one
 * contiguous ciphertext at out (sum of the lengths; out may equal
 * in[0].iov_base when niov == 1) and writes the tag. aad is authenticated,
 * not encrypted (the frame header). seq must never repeat under one key.
 * Returns TSM_EINVAL for bad arguments (a piece over INT_MAX), TSM_ESTATE
 * if this key is past twice its usage limit (the caller skipped a
 * ratchet), TSM_EINTERNAL if OpenSSL fails.
 */
tsm_err tsm__aead_seal(tsm__aead *a, uint64_t seq, const uint8_t *aad,
                       size_t aad_len, const struct iovec *in, int niov,
                       uint8_t *out, uint8_t tag[16]);

/*
 * tsm__aead_open checks tag over aad and the len bytes of ciphertext at in
 * and decrypts them to out (out == in allowed). Returns TSM_ERR_AEAD_FAIL
 * on a bad tag, after wiping out: nothing unauthenticated is ever exposed.
 * TSM_EINVAL for bad arguments, TSM_EINTERNAL if OpenSSL fails.
 */
tsm_err tsm__aead_open(tsm__aead *a, uint64_t seq, const uint8_t *aad,
                       size_t aad_len, const uint8_t *in, size_t len,
                       uint8_t *out, const uint8_t tag[16]);

/*
 * Streaming open, for a body whose plaintext goes to more than one place
 * (session/rx.c decrypts a fragment's payload straight into the message
 * being reassembled): tsm__aead_open_begin (nonce, aad), then
 * tsm__aead_open_update for each piece in order (out == in allowed, out
 * may differ from piece to piece), then tsm__aead_open_final with the tag
 * and the total length. What update wrote is not authenticated until
 * final succeeds: the caller may look at it only to choose where the next
 * piece goes, and must wipe every piece if any step fails. Errors as
 * tsm__aead_open (final: TSM_ERR_AEAD_FAIL on a bad tag).
 */
tsm_err tsm__aead_open_begin(tsm__aead *a, uint64_t seq, const uint8_t *aad,
                             size_t aad_len);
tsm_err tsm__aead_open_update(tsm__aead *a, const uint8_t *in, size_t len,
                              uint8_t *out);
tsm_err tsm__aead_open_final(tsm__aead *a, uint64_t seq, size_t len,
                             const uint8_t tag[16]);

/*
 * tsm__aead_mac (integrity-only) writes a tag over aad then the niov
 * pieces of in, which stay in clear. Same errors as tsm__aead_seal.
 */
tsm_err tsm__aead_mac(tsm__aead *a, uint64_t seq, const uint8_t *aad,
                      size_t aad_len, const struct iovec *in, int niov,
                      uint8_t tag[16]);

/*
 * tsm__aead_verify (integrity-only) checks tag over aad then the len bytes
 * at in. Returns TSM_ERR_AEAD_FAIL on a bad tag; as tsm__aead_open else.
 */
tsm_err tsm__aead_verify(tsm__aead *a, uint64_t seq, const uint8_t *aad,
                         size_t aad_len, const uint8_t *in, size_t len,
                         const uint8_t tag[16]);

/*
 * tsm__aead_needs_rekey is true once this key has protected the frame or
 * byte limit (TSM_AEAD_REKEY_*, or those set by tsm__aead_set_limits):
 * the sender then sends REKEY and ratchets before its next frame.
 */
bool tsm__aead_needs_rekey(const tsm__aead *a);

/*
 * tsm__aead_set_limits sets the process-wide rekey limits (tests); 0
 * restores a default. Sealing is refused at twice the limit.
 */
void tsm__aead_set_limits(uint64_t frames, uint64_t bytes);

/*
 * tsm__aead_ratchet moves a to the next key: secret' = HKDF-Expand(secret,
 * "tsm1 ku"), new key and IV in the same EVP_CIPHER_CTX, counters reset,
 * epoch + 1. Both sides ratchet at the same frame boundary (REKEY).
 * Returns TSM_ESTATE after 65535 ratchets or on a raw (test) key,
 * TSM_EINTERNAL if OpenSSL fails (a is then unusable: fini it).
 */
tsm_err tsm__aead_ratchet(tsm__aead *a);

/* tsm__aead_fini frees the context and wipes every secret; idempotent. */
void tsm__aead_fini(tsm__aead *a);

/*
 * Replay window of one lane of one receiving direction (security.md, RFC
 * 4303 §3.4.3 style): top is the highest accepted seq, bit i of bits
 * says top - i was accepted. Zero-initialise before use.
 */
#define TSM_REPLAY_WINDOW 64u

typedef struct tsm__replay {
	uint64_t top;
	uint64_t bits;
	bool any; /* false until the first seq is accepted */
} tsm__replay;

/*
 * tsm__replay_check returns TSM_ERR_REPLAY if seq was already accepted or
 * is older than the window, TSM_OK otherwise; it changes nothing, so a
 * receiver can drop replays before spending a decryption on them.
 */
tsm_err tsm__replay_check(const tsm__replay *r, uint64_t seq);

/*
 * tsm__replay_check_and_set is tsm__replay_check, then marks seq accepted
 * (sliding the window forward if seq is new). Call it only after the tag
 * verified, so that forged frames cannot move the window.
 */
tsm_err tsm__replay_check_and_set(tsm__replay *r, uint64_t seq);

#endif
