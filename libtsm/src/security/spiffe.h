/*
 * security/spiffe.h - SPIFFE identities: the ID grammar, the X.509-SVID leaf
 * rules, and identity patterns (security.md "Identity").
 *
 * Threading: every function here is pure or reads only the certificate it
 * is given; all are thread-safe. Failures record a detail for the calling
 * thread (tsm_err_detail()) naming the byte offset or the rule broken.
 *
 * Grammar (strict subset of the SPIFFE-ID spec, §2):
 *
 *   id      = "spiffe://" td 1*( "/" segment )
 *   td      = 1*255( %x61-7A / DIGIT / "." / "-" / "_" )     ; lowercase
 *   segment = 1*( ALPHA / DIGIT / "." / "-" / "_" ), not "." or ".."
 *
 * at most TSM_SPIFFE_ID_MAX bytes, no NUL. So there is no port, userinfo,
 * query, fragment, percent-encoding, empty segment or trailing slash, and
 * a trust-domain-only ID ("spiffe://td") is refused: workloads have paths.
 * Nothing is normalised; equal identities are equal byte strings.
 *
 * Identity patterns (policies and expected peers) are IDs in which a whole
 * path segment may be "*" (exactly one segment) and the last segment may be
 * "**" (one or more segments), plus the lone pattern "*" that matches every
 * valid identity. The trust domain is never a wildcard: a pattern names its
 * trust domain exactly, so a rule for td-a can never admit td-b.
 */
#ifndef TSM_SECURITY_SPIFFE_H
#define TSM_SECURITY_SPIFFE_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/types.h>

#include "tsm/err.h"

#define TSM_SPIFFE_ID_MAX 2048 /* bytes, without the NUL */
#define TSM_SPIFFE_TD_MAX 255  /* bytes, without the NUL */

/*
 * tsm__spiffe_check returns TSM_OK if the len bytes at s are a valid SPIFFE
 * ID, else TSM_ERR_SPIFFE_MALFORMED with a detail naming the byte offset and
 * the rule ("port in trust domain at byte 18"). s need not be
 * NUL-terminated; a NUL inside the len bytes is an error.
 */
tsm_err tsm__spiffe_check(const char *s, size_t len);

/*
 * tsm__spiffe_td copies the trust domain of the NUL-terminated ID id into
 * td (NUL-terminated). Returns TSM_ERR_SPIFFE_MALFORMED if id is not a
 * valid ID, TSM_ERR_BAD_PARAMS if td is NULL or cap is too small
 * (TSM_SPIFFE_TD_MAX + 1 is always enough). td is unchanged on failure.
 */
tsm_err tsm__spiffe_td(const char *id, char *td, size_t cap);

/*
 * tsm__spiffe_from_cert applies the X.509-SVID leaf rules to leaf and
 * copies its SPIFFE ID into out (NUL-terminated; cap TSM_SPIFFE_ID_MAX + 1
 * is always enough). The rules: no malformed or repeated extension; one
 * subjectAltName extension holding exactly one URI, a valid SPIFFE ID (the
 * subject CN is never read); not a CA (basicConstraints CA false or
 * absent); keyUsage present with digitalSignature and without keyCertSign
 * or cRLSign; extendedKeyUsage, if present, with both clientAuth and
 * serverAuth. Returns TSM_ERR_SPIFFE_MALFORMED naming the rule broken, or
 * TSM_ERR_BAD_PARAMS for a NULL leaf or out, or a cap too small for the ID.
 * The chain, signatures and validity dates are not checked here: that is
 * the TLS verifier's job. The caller keeps ownership of leaf; out is
 * unchanged on failure.
 */
tsm_err tsm__spiffe_from_cert(X509 *leaf, char *out, size_t cap);

/*
 * tsm__id_pattern_check returns TSM_OK if the len bytes at p are a valid
 * identity pattern, else TSM_ERR_SPIFFE_MALFORMED with a detail naming the
 * byte offset and the rule.
 */
tsm_err tsm__id_pattern_check(const char *p, size_t len);

/*
 * tsm__id_match returns true if the NUL-terminated identity id matches the
 * NUL-terminated pattern. It fails closed: false if either is NULL, the
 * pattern is invalid or the id is not a valid SPIFFE ID. It never touches
 * the thread's error detail.
 */
bool tsm__id_match(const char *pattern, const char *id);

#endif
