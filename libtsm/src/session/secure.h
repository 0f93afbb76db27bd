/*
 * session/secure.h - the session's security: the TLS 1.3 handshake carried
 * in HS frames, verification (chain, SPIFFE, expected peer, ACL), keys
 * exported from TLS and bound to both prefaces, and the sealing and
 * opening of every frame after the handshake (security.md, docs/wire.md
 * §3, §5).
 *
 * Threading: the progress thread of the session's context only.
 */
#ifndef TSM_SESSION_SECURE_H
#define TSM_SESSION_SECURE_H

#include <time.h>

#include "security/aead.h"
#include "security/tls.h"
#include "session/session.h"

#define TSM_PREFACE_BODY_MAX 1600u

typedef struct tsm__sec {
	tsm__tls *tls;
	uint8_t pref[2][TSM_PREFACE_BODY_MAX]; /* [0] initiator's, [1] responder's */
	size_t pref_len[2];
	bool keys;                 /* tx/rx keyed: frames are sealed from now on */
	tsm__aead tx[TSM_WIRE_LANES], rx[TSM_WIRE_LANES];
	char peer_id[2049];
	time_t not_after;          /* wall clock: the peer chain's end */
	uint8_t *sealbuf;          /* ciphertext of the send being built */
	size_t sealcap;
} tsm__sec;

/* tsm__sec_record_preface keeps a preface body for the key binding. */
void tsm__sec_record_preface(tsm__session *s, bool mine, const uint8_t *b,
                             size_t n);
/* tsm__sec_start begins the TLS handshake after both prefaces. */
void tsm__sec_start(tsm__session *s);
/* tsm__sec_on_hs feeds an HS frame body to TLS and sends what it answers. */
void tsm__sec_on_hs(tsm__session *s, const uint8_t *b, size_t n);

/* tsm__sec_sealing: frames of this type are sealed now. */
bool tsm__sec_sealing(const tsm__session *s, uint8_t type);

/*
 * tsm__sec_seal finishes header h (SEALED flag, epoch, body_len + tag),
 * encodes it to hdr_out and writes ciphertext and tag of the body pieces
 * to out (body_len + TSM_WIRE_TAG_LEN bytes). Ratchets the lane's key
 * first when its usage limit is reached (the caller has sent REKEY).
 */
tsm_err tsm__sec_seal(tsm__session *s, tsm__fhdr *h, uint8_t *hdr_out,
                      const struct iovec *body, int n, uint8_t *out);

/* tsm__sec_needs_rekey: the key of tx lane `lane` must be replaced. */
bool tsm__sec_needs_rekey(const tsm__session *s, unsigned lane);

/*
 * tsm__sec_open checks the frame at hdr (raw header bytes, decoded into
 * h) and decrypts its body in place; on success h->body_len no longer
 * counts the tag. An unsealed frame where a sealed one is due is refused
 * (downgrade). Returns TSM_ERR_AEAD_FAIL, TSM_ERR_OUT_OF_STATE.
 */
tsm_err tsm__sec_open(tsm__session *s, const uint8_t *hdr, tsm__fhdr *h,
                      uint8_t *body);

/*
 * tsm__sec_open_split is tsm__sec_open for a sealed frame whose body may
 * go to two places: its first `head` bytes are decrypted in place, then
 * place(arg, body, rest) may return where the remaining `rest` bytes go
 * (rest bytes of room, owned by the caller), or NULL for in place too.
 * place sees bytes not yet authenticated: it may only use them to choose
 * a destination, and that destination must hold nothing anyone sees
 * before the tag is checked. *out is what place returned. On failure both
 * places are wiped and *out is NULL. Needs body_len > head + tag.
 */
typedef uint8_t *(*tsm__sec_place_fn)(void *arg, const uint8_t *body,
                                      size_t rest);
tsm_err tsm__sec_open_split(tsm__session *s, const uint8_t *hdr, tsm__fhdr *h,
                            uint8_t *body, size_t head, tsm__sec_place_fn place,
                            void *arg, uint8_t **out);

/* tsm__sec_on_rekey ratchets the peer's key of the lane named in body. */
tsm_err tsm__sec_on_rekey(tsm__session *s, const uint8_t *b, size_t n);

/* tsm__sec_peer_id: the verified peer identity, "" before/without TLS. */
const char *tsm__sec_peer_id(const tsm__session *s);

/* tsm__sec_recheck verifies the live peer again against the context's
 * current credentials (after a reload); the reason if it fails. */
tsm_err tsm__sec_recheck(tsm__session *s);

void tsm__sec_free(tsm__session *s);

#endif
