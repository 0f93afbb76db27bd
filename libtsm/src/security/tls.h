/*
 * security/tls.h - the TLS 1.3 handshake engine (security.md "Handshake").
 *
 * The engine never touches a socket: the session feeds it the bytes of the
 * peer's HS frames (tsm__tls_feed) and sends what tsm__tls_step returns in
 * its own HS frames, on any transport. TLS protects the handshake only; the
 * data path uses keys exported from it (tsm__tls_export, aead.h).
 *
 * Threading: a tsm__tls_cfg is immutable once made and may be shared by
 * handshakes on any threads; it is reference counted, so a reload can make
 * a new one for new handshakes and free the old one while handshakes that
 * started with it finish. A tsm__tls is used by one thread at a time.
 *
 * Trust bundles per trust domain (security.md "Identity"): every CA
 * certificate in the trust file is a trust anchor for exactly one SPIFFE
 * trust domain, and a verified chain is accepted only if the trust domain
 * of its top certificate is that of the leaf's SPIFFE ID (and so is that of
 * every other CA in the chain that declares one). An anchor's trust domain
 * comes from, in this order, all of which must agree where several apply:
 *
 *   1. the CA certificate's own URI SAN "spiffe://td" (X509-SVID §3);
 *   2. a "td=path" entry: trust_file may be a comma-separated list of
 *      "td=path" entries ("td-a.test=a.pem,td-b.test=b.pem"); every
 *      certificate of that file belongs to td. The list form is recognised
 *      when the text before the first '=' is a valid trust domain name;
 *      a plain path is read as one file (write "./x=y.pem" for a path
 *      whose leading name could pass for a trust domain);
 *   3. a comment line "# trust-domain: td" in a PEM file: it applies to
 *      the certificates after it, up to the next such line.
 *
 * A CA certificate with no trust domain is refused when the configuration
 * is made (TSM_ERR_BAD_PARAMS naming the file and certificate): an anchor
 * that could vouch for any trust domain is exactly what this rule forbids.
 *
 * Handshake policy: TLS 1.3 only; the peer's certificate is required both
 * ways; verify depth 4; certificate list <= 32 KiB; no tickets, session
 * cache, resumption, PSK or 0-RTT; ALPN "tsm/1" required both ways. With a
 * CRL file, every certificate of the chain is checked (CRL_CHECK and
 * CRL_CHECK_ALL), and a missing or stale CRL refuses (CRL_UNAVAILABLE)
 * unless crl_soft_fail; a listed certificate is refused either way.
 */
#ifndef TSM_SECURITY_TLS_H
#define TSM_SECURITY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "tsm/err.h"

#define TSM_TLS_ALPN "tsm/1"
#define TSM_TLS_EXPORTER_LABEL "EXPORTER-tsm1"
#define TSM_TLS_HS_MAX (64u * 1024u) /* peer handshake bytes (security.md) */
#define TSM_TLS_CERT_LIST_MAX (32u * 1024u)
#define TSM_TLS_VERIFY_DEPTH 4

typedef struct tsm__tls_files {
	const char *cert_file;  /* our leaf then its chain, PEM */
	const char *key_file;   /* our private key, PEM */
	const char *trust_file; /* PEM bundle or "td=path,..." (see above) */
	const char *crl_file;   /* optional PEM CRLs; NULL = no revocation */
	bool crl_soft_fail;     /* a missing or stale CRL does not refuse */
} tsm__tls_files;

typedef struct tsm__tls_cfg tsm__tls_cfg;
typedef struct tsm__tls tsm__tls;

/*
 * tsm__tls_cfg_new loads the files of f into a configuration used for both
 * roles and stores it in *out (reference count 1; release with
 * tsm__tls_cfg_free). Reads each file once; later changes on disk need a
 * new configuration. Returns TSM_ERR_NO_CREDENTIALS when a file is not
 * given or cannot be read, TSM_ERR_BAD_PARAMS when a file holds no usable
 * PEM, the key does not match the certificate, or a CA has no trust domain,
 * TSM_ERR_CRL_UNAVAILABLE when crl_file cannot be read and crl_soft_fail
 * is false, TSM_ENOMEM. The detail names the file and the reason. *out is
 * untouched on failure. Our own certificate is not judged here (see
 * tsm__tls_cfg_own_id), so that an expired one can be replaced by a reload.
 */
tsm_err tsm__tls_cfg_new(const tsm__tls_files *f, tsm__tls_cfg **out);

/*
 * tsm__tls_cfg_own_id copies the SPIFFE ID of our own certificate into out
 * (cap TSM_SPIFFE_ID_MAX + 1 is enough). Returns TSM_ERR_SPIFFE_MALFORMED
 * if our certificate is not a valid X.509-SVID (spiffe.h),
 * TSM_ERR_BAD_PARAMS for a small cap.
 */
tsm_err tsm__tls_cfg_own_id(const tsm__tls_cfg *cfg, char *out, size_t cap);

/* tsm__tls_cfg_free drops one reference; NULL is a no-op. */
void tsm__tls_cfg_free(tsm__tls_cfg *cfg);

/*
 * tsm__tls_new starts one handshake as client (the initiator) or server.
 * expected_peer, an identity pattern (spiffe.h) or NULL for any, is what
 * the peer's SPIFFE ID must match (security.md: the initiator knows whom it
 * dials); it is copied. Takes a reference on cfg. Returns
 * TSM_ERR_BAD_PARAMS for an invalid pattern, TSM_ENOMEM. *out is the
 * caller's, freed with tsm__tls_free.
 */
tsm_err tsm__tls_new(tsm__tls_cfg *cfg, bool client, const char *expected_peer,
                     tsm__tls **out);

/*
 * tsm__tls_feed queues len bytes from the peer's HS frames (copied).
 * Returns TSM_ERR_PREAUTH_LIMIT once the peer has sent more than
 * TSM_TLS_HS_MAX bytes in all, the sticky error of a failed handshake,
 * TSM_ENOMEM.
 */
tsm_err tsm__tls_feed(tsm__tls *t, const uint8_t *in, size_t len);

/*
 * tsm__tls_step advances the handshake with what was fed and writes up to
 * cap bytes for the peer (one HS frame body) into out, their count in
 * *out_len. Call it after every feed and again while *out_len > 0.
 * *done becomes true once the handshake is complete and the peer verified
 * (chain, SPIFFE leaf rules, trust domain, expected_peer, ALPN); even then
 * drain *out_len to 0 (the client's Finished travels after done).
 * A client is done before the server has judged the client's certificate;
 * the server's ACCEPT or REJECT settles it (docs/wire.md §3). Fed bytes
 * after done are read for alerts only.
 *
 * Returns TSM_OK while all is well, else the reason, sticky from then on:
 * TSM_ERR_NO_PEER_CERT, UNKNOWN_CA, CERT_EXPIRED, CERT_NOT_YET_VALID,
 * CERT_REVOKED, CRL_UNAVAILABLE, SPIFFE_MALFORMED, PEER_ID_MISMATCH,
 * TLS_VERSION, ALPN_MISMATCH for a refusal by either side (when the peer
 * refused us, the detail says "peer refused"), TSM_ERR_OUT_OF_STATE for
 * application data inside TLS, TSM_EPROTO for other TLS failures. On a
 * failure *out_len may still be > 0: a TLS alert the caller may send
 * before its REJECT.
 */
tsm_err tsm__tls_step(tsm__tls *t, uint8_t *out, size_t cap, size_t *out_len,
                      bool *done);

/* tsm__tls_peer_id is the verified peer's SPIFFE ID once done, else NULL. */
const char *tsm__tls_peer_id(const tsm__tls *t);

/*
 * tsm__tls_peer_not_after is when the verified chain stops being valid: the
 * earliest notAfter of the peer's leaf and the CAs above it (0 before done).
 * The session re-authenticates before it and closes at it.
 */
time_t tsm__tls_peer_not_after(const tsm__tls *t);

/*
 * tsm__tls_export writes the 32-byte session master: the TLS exporter
 * (RFC 8446 §7.5) with label "EXPORTER-tsm1" and context = the caller's
 * hash of both prefaces, so that a tampered preface gives different keys.
 * Returns TSM_ESTATE before done, TSM_EINVAL for a NULL context,
 * TSM_EINTERNAL if OpenSSL fails.
 */
tsm_err tsm__tls_export(tsm__tls *t, const uint8_t *context,
                        size_t context_len, uint8_t master[32]);

/*
 * tsm__tls_recheck verifies again, against cfg (new trust bundles, a new
 * CRL), the peer chain that t verified in its handshake: how a live
 * session learns that its peer was revoked or its CA distrusted after a
 * reload. Returns TSM_OK or the reason (CERT_REVOKED, CERT_EXPIRED,
 * UNKNOWN_CA, CRL_UNAVAILABLE, ...), TSM_ESTATE before done. Note: a
 * failure may leave t's own sticky error set; the session is closed then.
 */
tsm_err tsm__tls_recheck(tsm__tls *t, tsm__tls_cfg *cfg);

/* tsm__tls_free frees t and releases its cfg reference; NULL is a no-op. */
void tsm__tls_free(tsm__tls *t);

#endif
