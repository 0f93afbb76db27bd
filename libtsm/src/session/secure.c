/*
 * session/secure.c - TLS 1.3 in HS frames, verification, key export and
 * frame sealing for one session (security.md "Handshake", "Data
 * protection"; docs/wire.md §3, §5).
 *
 * Flow: both prefaces are kept; after them the initiator's TLS client and
 * the responder's TLS server exchange records in HS frames. When TLS says
 * done (chain, SPIFFE leaf, trust domain, expected peer, ALPN verified) the
 * ACL must admit the peer; then the 32-byte master is exported with the
 * hash of both prefaces as context (a tampered preface gives other keys),
 * per-direction per-lane AEAD keys are derived, and the first sealed frame
 * is our ACCEPT. A refusal is a cleartext REJECT with the reason; the TLS
 * alert is not sent (the peer could not tell REJECT apart from it).
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "core/audit.h"
#include "security/policy.h"
#include "session/secure.h"

#define HS_CHUNK (TSM_WIRE_PREAUTH_MAX_BODY - 512u)

void tsm__sec_record_preface(tsm__session *s, bool mine, const uint8_t *b,
                             size_t n)
{
	if (!s->sec || n > TSM_PREFACE_BODY_MAX)
		return;
	int i = mine == s->initiator ? 0 : 1;
	memcpy(s->sec->pref[i], b, n);
	s->sec->pref_len[i] = n;
}

const char *tsm__sec_peer_id(const tsm__session *s)
{
	return s->sec ? s->sec->peer_id : "";
}

static void sec_fail(tsm__session *s, tsm_err e)
{
	const char *why = tsm_err_detail();
	tsm__audit(s->ctx, e, s->sec->peer_id[0] ? s->sec->peer_id : s->peer_addr,
	           NULL, "handshake: %s", why);
	if (strstr(why, "peer refused"))
		return tsm__session_close(s, e); /* its REJECT tells the rest */
	tsm__session_reject(s, e, why);
}

/* Sends what TLS has for the peer; returns the engine's verdict. */
static tsm_err sec_drain_hs(tsm__session *s, bool *done)
{
	uint8_t out[HS_CHUNK];
	size_t n;
	tsm_err e;
	do {
		e = tsm__tls_step(s->sec->tls, out, sizeof(out), &n, done);
		if (e)
			return e; /* an alert may be in out: not sent, see above */
		if (n)
			tsm__session_send_frame(s, TSM_F_HS, out, n);
	} while (n);
	return TSM_OK;
}

/* SHA-256(initiator's preface body || responder's preface body). */
static tsm_err sec_hash_prefaces(const tsm__sec *c, uint8_t out[32])
{
	unsigned n = 0;
	EVP_MD_CTX *h = EVP_MD_CTX_new();
	bool ok = h && EVP_DigestInit_ex(h, EVP_sha256(), NULL) &&
	          EVP_DigestUpdate(h, c->pref[0], c->pref_len[0]) &&
	          EVP_DigestUpdate(h, c->pref[1], c->pref_len[1]) &&
	          EVP_DigestFinal_ex(h, out, &n) && n == 32;
	EVP_MD_CTX_free(h);
	return ok ? TSM_OK : tsm__err_set(TSM_EINTERNAL, "SHA-256 of the prefaces");
}

static tsm_err sec_keys(tsm__session *s)
{
	tsm__sec *c = s->sec;
	uint8_t ctxhash[32], master[32], secret[32];
	tsm_err e = sec_hash_prefaces(c, ctxhash);
	if (!e)
		e = tsm__tls_export(c->tls, ctxhash, sizeof(ctxhash), master);
	int mine = s->initiator ? 0 : 1;
	for (unsigned l = 0; !e && l < TSM_WIRE_LANES; l++) {
		if (!(e = tsm__keys_derive(master, mine, l, secret)))
			e = tsm__aead_init(&c->tx[l], s->aead_alg, secret);
		if (!e && !(e = tsm__keys_derive(master, !mine, l, secret)))
			e = tsm__aead_init(&c->rx[l], s->aead_alg, secret);
	}
	OPENSSL_cleanse(master, sizeof(master));
	OPENSSL_cleanse(secret, sizeof(secret));
	c->sealcap = TSM_TX_BUDGET + s->ctx->p.fragment_size + 2 * TSM_META_MAX + 4096;
	if (!e && !(c->sealbuf = malloc(c->sealcap)))
		e = tsm__err_set(TSM_ENOMEM, "seal buffer");
	c->keys = !e;
	return e;
}

/* security.md: VERIFYING = chain AND SPIFFE AND expected peer (all done
 * by TLS) AND the ACL admits the identity. */
static void sec_verified(tsm__session *s)
{
	tsm__sec *c = s->sec;
	snprintf(c->peer_id, sizeof(c->peer_id), "%s", tsm__tls_peer_id(c->tls));
	c->not_after = tsm__tls_peer_not_after(c->tls);
	if (!tsm__session_step(s, SE_HS_DONE))
		return;
	if (!tsm__policy_admits(s->ctx->policy, c->peer_id)) {
		tsm__err_set(TSM_ERR_AUTHZ_DENIED, "policy has no rule for %s", c->peer_id);
		return sec_fail(s, TSM_ERR_AUTHZ_DENIED);
	}
	tsm_err e = sec_keys(s);
	if (e)
		return sec_fail(s, e);
	tsm__session_send_frame(s, TSM_F_ACCEPT, NULL, 0); /* first sealed frame */
	s->accept_sent = true;
	tsm__session_maybe_established(s);
}

static void sec_pump(tsm__session *s)
{
	bool done = false;
	tsm_err e = sec_drain_hs(s, &done);
	if (e)
		return sec_fail(s, e);
	if (done && s->state == SS_HANDSHAKING)
		sec_verified(s);
	tsm__session_pump(s);
}

void tsm__sec_start(tsm__session *s)
{
	const char *expect = s->dialer && s->dialer->url.expect[0]
	                         ? s->dialer->url.expect : NULL;
	tsm_err e = tsm__tls_new(s->ctx->tls_cfg, s->initiator, expect, &s->sec->tls);
	if (e)
		return sec_fail(s, e);
	sec_pump(s);
}

void tsm__sec_on_hs(tsm__session *s, const uint8_t *b, size_t n)
{
	tsm_err e = tsm__tls_feed(s->sec->tls, b, n);
	if (e)
		return sec_fail(s, e);
	sec_pump(s);
}

bool tsm__sec_sealing(const tsm__session *s, uint8_t type)
{
	return s->sec && s->sec->keys && tsm__frame_sequenced(type);
}

static unsigned sec_lane(const tsm__fhdr *h)
{
	return h->type == TSM_F_DATA ? h->lane : 0;
}

bool tsm__sec_needs_rekey(const tsm__session *s, unsigned lane)
{
	return s->sec && s->sec->keys && tsm__aead_needs_rekey(&s->sec->tx[lane]);
}

tsm_err tsm__sec_seal(tsm__session *s, tsm__fhdr *h, uint8_t *hdr_out,
                      const struct iovec *body, int n, uint8_t *out)
{
	tsm__aead *a = &s->sec->tx[sec_lane(h)];
	h->flags |= TSM_FF_SEALED;
	h->epoch = a->epoch;
	h->body_len += TSM_WIRE_TAG_LEN;
	tsm__fhdr_encode(h, hdr_out);
	return tsm__aead_seal(a, h->seq, hdr_out, TSM_WIRE_HDR_LEN, body, n, out,
	                      out + h->body_len - TSM_WIRE_TAG_LEN);
}

/* The checks before opening a frame: *a is the key to open it with, or
 * NULL when the frame travels in clear. */
static tsm_err sec_open_key(tsm__session *s, const tsm__fhdr *h, tsm__aead **a)
{
	bool sealed = h->flags & TSM_FF_SEALED;
	*a = NULL;
	if (!s->sec || !s->sec->keys) {
		if (sealed)
			return tsm__err_set(TSM_ERR_OUT_OF_STATE, "sealed frame before keys");
		return TSM_OK;
	}
	if (!tsm__frame_sequenced(h->type))
		return TSM_OK; /* REJECT stays cleartext (see the file comment) */
	if (!sealed)
		return tsm__err_set(TSM_ERR_AEAD_FAIL, "unsealed %u frame after the "
		                    "handshake (downgrade)", h->type);
	*a = &s->sec->rx[sec_lane(h)];
	if (h->epoch != (*a)->epoch)
		return tsm__err_set(TSM_ERR_AEAD_FAIL, "key epoch %u, expected %u",
		                    h->epoch, (*a)->epoch);
	return TSM_OK;
}

tsm_err tsm__sec_open(tsm__session *s, const uint8_t *hdr, tsm__fhdr *h,
                      uint8_t *body)
{
	tsm__aead *a;
	tsm_err e = sec_open_key(s, h, &a);
	if (e || !a)
		return e;
	size_t n = h->body_len - TSM_WIRE_TAG_LEN;
	e = tsm__aead_open(a, h->seq, hdr, TSM_WIRE_HDR_LEN, body, n, body,
	                   body + n);
	if (!e)
		h->body_len = (uint32_t)n;
	return e;
}

tsm_err tsm__sec_open_split(tsm__session *s, const uint8_t *hdr, tsm__fhdr *h,
                            uint8_t *body, size_t head, tsm__sec_place_fn place,
                            void *arg, uint8_t **out)
{
	tsm__aead *a;
	*out = NULL;
	tsm_err e = sec_open_key(s, h, &a);
	if (e || !a)
		return e;
	if (h->body_len <= head + TSM_WIRE_TAG_LEN)
		return tsm__sec_open(s, hdr, h, body);
	size_t n = h->body_len - TSM_WIRE_TAG_LEN, rest = n - head;
	uint8_t *dst = NULL;
	e = tsm__aead_open_begin(a, h->seq, hdr, TSM_WIRE_HDR_LEN);
	if (!e)
		e = tsm__aead_open_update(a, body, head, body);
	if (!e) {
		dst = place(arg, body, rest);
		e = tsm__aead_open_update(a, body + head, rest,
		                          dst ? dst : body + head);
	}
	if (!e)
		e = tsm__aead_open_final(a, h->seq, n, body + n);
	if (e) { /* never leave unverified bytes anywhere */
		OPENSSL_cleanse(body, n);
		if (dst)
			OPENSSL_cleanse(dst, rest);
		return e;
	}
	h->body_len = (uint32_t)n;
	*out = dst;
	return TSM_OK;
}

tsm_err tsm__sec_on_rekey(tsm__session *s, const uint8_t *b, size_t n)
{
	if (!s->sec || !s->sec->keys || n != 1 || b[0] >= TSM_WIRE_LANES)
		return tsm__err_set(TSM_ERR_BAD_FIELD, "bad REKEY");
	return tsm__aead_ratchet(&s->sec->rx[b[0]]);
}

tsm_err tsm__sec_recheck(tsm__session *s)
{
	if (!s->sec || !s->sec->keys)
		return TSM_OK;
	return tsm__tls_recheck(s->sec->tls, s->ctx->tls_cfg);
}

void tsm__sec_free(tsm__session *s)
{
	tsm__sec *c = s->sec;
	if (!c)
		return;
	tsm__tls_free(c->tls);
	for (unsigned l = 0; l < TSM_WIRE_LANES; l++) {
		tsm__aead_fini(&c->tx[l]);
		tsm__aead_fini(&c->rx[l]);
	}
	free(c->sealbuf);
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
	s->sec = NULL;
}
