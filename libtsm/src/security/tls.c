/*
 * security/tls.c - TLS 1.3 handshake engine on memory BIOs (security.md
 * "Handshake", "Identity"; RFC 8446).
 *
 * Each handshake is an SSL with two memory BIOs: what the peer sent is
 * written into the read BIO (tsm__tls_feed), SSL_do_handshake consumes it,
 * and what TLS wants to send is drained from the write BIO into HS frames
 * (tsm__tls_step). No socket, no blocking, any transport.
 *
 * Peer verification runs inside the handshake (SSL_CTX cert verify
 * callback), so a refused peer never completes it: X509_verify_cert
 * (chain, dates, CRLs, purpose), then the X.509-SVID leaf rules
 * (spiffe.h), then the per-trust-domain anchor rule (tls.h), then the
 * expected identity. The first failure is kept with its reason code and a
 * detail; OpenSSL's error queue only fills in failures TLS itself found
 * (version, ALPN, a missing certificate, the peer's alerts).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/common.h"
#include "security/spiffe.h"
#include "security/tls.h"

#define TLS_TRUST_FILE_MAX (4u * 1024u * 1024u)
#define TLS_DETAIL_MAX 384

static const unsigned char tls_alpn_wire[] = "\x05" TSM_TLS_ALPN;
#define TLS_ALPN_WIRE_LEN (sizeof(tls_alpn_wire) - 1)

typedef struct tls_anchor {
	X509 *ca;
	char td[TSM_SPIFFE_TD_MAX + 1];
} tls_anchor;

struct tsm__tls_cfg {
	_Atomic int refs;
	SSL_CTX *ctx;
	tls_anchor *anchors;
	size_t n_anchors;
	bool crl_soft_fail;
};

struct tsm__tls {
	tsm__tls_cfg *cfg;
	SSL *ssl;
	BIO *rbio; /* peer -> TLS */
	BIO *wbio; /* TLS -> peer */
	size_t fed;
	bool done;
	tsm_err err; /* first failure; sticky */
	char detail[TLS_DETAIL_MAX];
	char *expected;
	char peer_id[TSM_SPIFFE_ID_MAX + 1];
	time_t not_after;
};

/* ---- failures ---------------------------------------------------------- */

/* Keeps the first failure only: later ones are its consequences. */
static void tls_fail(tsm__tls *t, tsm_err e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void tls_fail(tsm__tls *t, tsm_err e, const char *fmt, ...)
{
	va_list ap;
	if (t->err != TSM_OK)
		return;
	t->err = e;
	va_start(ap, fmt);
	vsnprintf(t->detail, sizeof t->detail, fmt, ap);
	va_end(ap);
}

/* The X509_V_ERR_* families of security.md's reason codes. */
static tsm_err tls_x509_reason(int verr, int depth)
{
	switch (verr) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return TSM_ERR_CERT_EXPIRED;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return TSM_ERR_CERT_NOT_YET_VALID;
	case X509_V_ERR_CERT_REVOKED:
		return TSM_ERR_CERT_REVOKED;
	case X509_V_ERR_UNABLE_TO_GET_CRL:
	case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
	case X509_V_ERR_CRL_HAS_EXPIRED:
	case X509_V_ERR_CRL_NOT_YET_VALID:
	case X509_V_ERR_CRL_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
	case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
	case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
	case X509_V_ERR_DIFFERENT_CRL_SCOPE:
		return TSM_ERR_CRL_UNAVAILABLE;
	case X509_V_ERR_INVALID_PURPOSE: /* EKU: an X.509-SVID leaf rule */
		return depth == 0 ? TSM_ERR_SPIFFE_MALFORMED : TSM_ERR_UNKNOWN_CA;
	default: /* no path to a trust anchor, bad signature, bad CA */
		return TSM_ERR_UNKNOWN_CA;
	}
}

static bool tls_crl_missing(int verr)
{
	return tls_x509_reason(verr, 0) == TSM_ERR_CRL_UNAVAILABLE;
}

/*
 * A TLS alert from the peer (RFC 8446 §6.2): OpenSSL reports alert n as
 * reason SSL_AD_REASON_OFFSET + n. Alerts are coarse; the precise reason
 * reaches us in the peer's REJECT.
 */
static tsm_err tls_alert_reason(int alert)
{
	switch (alert) {
	case SSL_AD_UNKNOWN_CA: return TSM_ERR_UNKNOWN_CA;
	case SSL_AD_CERTIFICATE_EXPIRED: return TSM_ERR_CERT_EXPIRED;
	case SSL_AD_CERTIFICATE_REVOKED: return TSM_ERR_CERT_REVOKED;
	case SSL_AD_CERTIFICATE_REQUIRED: return TSM_ERR_NO_PEER_CERT;
	case SSL_AD_PROTOCOL_VERSION: return TSM_ERR_TLS_VERSION;
	case SSL_AD_NO_APPLICATION_PROTOCOL: return TSM_ERR_ALPN_MISMATCH;
	default: return TSM_ESECURITY;
	}
}

static tsm_err tls_ssl_reason(int lib, int reason)
{
	if (lib != ERR_LIB_SSL)
		return TSM_EPROTO;
	if (reason > SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256)
		return tls_alert_reason(reason - SSL_AD_REASON_OFFSET);
	switch (reason) {
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		return TSM_ERR_NO_PEER_CERT;
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_NO_PROTOCOLS_AVAILABLE:
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_UNSUPPORTED_SSL_VERSION:
	case SSL_R_VERSION_TOO_LOW:
		return TSM_ERR_TLS_VERSION;
	case SSL_R_NO_APPLICATION_PROTOCOL:
		return TSM_ERR_ALPN_MISMATCH;
	case SSL_R_EXCESSIVE_MESSAGE_SIZE: /* certificate list > 32 KiB */
		return TSM_ERR_PREAUTH_LIMIT;
	default:
		return TSM_EPROTO;
	}
}

/* Failure that TLS itself detected: read OpenSSL's error queue. */
static void tls_fail_ssl(tsm__tls *t)
{
	unsigned long e = ERR_peek_last_error();
	char buf[200];
	long vr = SSL_get_verify_result(t->ssl);
	if (ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
	    vr != X509_V_OK) {
		tls_fail(t, tls_x509_reason((int)vr, 0), "peer certificate: %s",
		         X509_verify_cert_error_string(vr));
		return;
	}
	ERR_error_string_n(e, buf, sizeof buf);
	int lib = ERR_GET_LIB(e), reason = ERR_GET_REASON(e);
	if (lib == ERR_LIB_SSL && reason == SSL_R_EXCESSIVE_MESSAGE_SIZE) {
		tls_fail(t, TSM_ERR_PREAUTH_LIMIT, "peer's handshake message "
		         "is over the limit (certificate list <= %u bytes)",
		         TSM_TLS_CERT_LIST_MAX);
		return;
	}
	bool alert = lib == ERR_LIB_SSL && reason > SSL_AD_REASON_OFFSET;
	tls_fail(t, e ? tls_ssl_reason(lib, reason) : TSM_EPROTO, "%s%s",
	         alert ? "peer refused the handshake: " : "TLS: ",
	         e ? buf : "handshake failed");
}

/* ---- configuration: files ---------------------------------------------- */

/* Readable at all? Gives the errno reason OpenSSL would hide. */
static tsm_err tls_file_ok(const char *what, const char *path)
{
	if (path == NULL || path[0] == '\0')
		return tsm__err_set(TSM_ERR_NO_CREDENTIALS, "tls: no %s given",
		                    what);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return tsm__err_set(TSM_ERR_NO_CREDENTIALS, "tls: %s '%s': %s",
		                    what, path, strerror(errno));
	fclose(f);
	return TSM_OK;
}

static tsm_err tls_ossl_fail(tsm_err e, const char *what, const char *path)
{
	char buf[200];
	ERR_error_string_n(ERR_peek_last_error(), buf, sizeof buf);
	ERR_clear_error();
	return tsm__err_set(e, "tls: %s '%s': %s", what, path, buf);
}

static tsm_err tls_load_identity(SSL_CTX *ctx, const tsm__tls_files *f)
{
	tsm_err e = tls_file_ok("cert_file", f->cert_file);
	if (e == TSM_OK)
		e = tls_file_ok("key_file", f->key_file);
	if (e != TSM_OK)
		return e;
	if (SSL_CTX_use_certificate_chain_file(ctx, f->cert_file) != 1)
		return tls_ossl_fail(TSM_ERR_BAD_PARAMS, "cert_file",
		                     f->cert_file);
	if (SSL_CTX_use_PrivateKey_file(ctx, f->key_file, SSL_FILETYPE_PEM) != 1)
		return tls_ossl_fail(TSM_ERR_BAD_PARAMS, "key_file",
		                     f->key_file);
	if (SSL_CTX_check_private_key(ctx) != 1)
		return tls_ossl_fail(TSM_ERR_BAD_PARAMS, "key_file does not "
		                     "match cert_file", f->key_file);
	return TSM_OK;
}

static tsm_err tls_read_file(const char *what, const char *path, char **buf,
                             size_t *len)
{
	tsm_err e = tls_file_ok(what, path);
	FILE *f = e == TSM_OK ? fopen(path, "r") : NULL;
	char *b = f ? malloc(TLS_TRUST_FILE_MAX + 1) : NULL;
	size_t n = b ? fread(b, 1, TLS_TRUST_FILE_MAX + 1, f) : 0;
	if (e == TSM_OK && b == NULL)
		e = tsm__err_set(TSM_ENOMEM, "tls: reading %s '%s'", what, path);
	else if (e == TSM_OK && (ferror(f) || n > TLS_TRUST_FILE_MAX))
		e = tsm__err_set(TSM_ERR_BAD_PARAMS, "tls: %s '%s': cannot "
		                 "read it whole (limit %u bytes)", what, path,
		                 TLS_TRUST_FILE_MAX);
	if (f != NULL)
		fclose(f);
	if (e != TSM_OK) {
		free(b);
		return e;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return TSM_OK;
}

/* ---- configuration: trust anchors per trust domain ---------------------- */

/* A trust domain name, by the SPIFFE grammar of spiffe.h. */
static bool tls_td_valid(const char *td, size_t len)
{
	char id[TSM_SPIFFE_TD_MAX + 16];
	if (len == 0 || len > TSM_SPIFFE_TD_MAX)
		return false;
	int n = snprintf(id, sizeof id, "spiffe://%.*s/x", (int)len, td);
	return tsm__spiffe_check(id, (size_t)n) == TSM_OK;
}

/* URI SAN "spiffe://td" of a CA (X509-SVID §3), "" if it has none. */
static tsm_err tls_ca_san_td(X509 *ca, char td[TSM_SPIFFE_TD_MAX + 1])
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(ca, NID_subject_alt_name,
	                                       NULL, NULL);
	tsm_err e = TSM_OK;
	td[0] = '\0';
	for (int i = 0; e == TSM_OK && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_URI)
			continue;
		const char *u = (const char *)ASN1_STRING_get0_data(g->d.ia5);
		size_t ulen = (size_t)ASN1_STRING_length(g->d.ia5);
		if (ulen < 9 || memcmp(u, "spiffe://", 9) != 0)
			continue;
		const char *slash = memchr(u + 9, '/', ulen - 9);
		size_t n = (slash ? (size_t)(slash - u) : ulen) - 9;
		if (!tls_td_valid(u + 9, n) ||
		    (td[0] && (strlen(td) != n || memcmp(td, u + 9, n) != 0)))
			e = TSM_ERR_BAD_PARAMS;
		else {
			memcpy(td, u + 9, n);
			td[n] = '\0';
		}
	}
	GENERAL_NAMES_free(gens);
	return e;
}

/* Where the current certificate of a trust file came from. */
typedef struct tls_src {
	const char *path;
	int index;             /* 1-based, in the file */
	const char *forced_td; /* from "td=path", or NULL */
	char comment_td[TSM_SPIFFE_TD_MAX + 1]; /* "# trust-domain:", or "" */
} tls_src;

/* Picks the anchor's trust domain; every source that names one agrees. */
static tsm_err tls_anchor_td(X509 *ca, const tls_src *s, char *td)
{
	const char *cand[2] = {s->forced_td, s->comment_td};
	if (tls_ca_san_td(ca, td) != TSM_OK)
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "tls: trust_file '%s' "
		                    "certificate %d: bad or conflicting spiffe "
		                    "URI SANs", s->path, s->index);
	for (int i = 0; i < 2; i++) {
		if (cand[i] == NULL || cand[i][0] == '\0')
			continue;
		if (td[0] != '\0' && strcmp(td, cand[i]) != 0)
			return tsm__err_set(TSM_ERR_BAD_PARAMS, "tls: trust_file"
			                    " '%s' certificate %d: trust domain "
			                    "'%s' conflicts with '%s'", s->path,
			                    s->index, cand[i], td);
		snprintf(td, TSM_SPIFFE_TD_MAX + 1, "%s", cand[i]);
	}
	if (td[0] == '\0')
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "tls: trust_file '%s' "
		                    "certificate %d has no trust domain: give it "
		                    "a URI SAN spiffe://td, a '# trust-domain: td'"
		                    " line before it, or write trust_file as "
		                    "'td=%s'", s->path, s->index, s->path);
	return TSM_OK;
}

static tsm_err tls_add_anchor(tsm__tls_cfg *cfg, X509 *ca, const tls_src *s)
{
	char td[TSM_SPIFFE_TD_MAX + 1];
	if (X509_check_ca(ca) == 0)
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "tls: trust_file '%s' "
		                    "certificate %d is not a CA", s->path,
		                    s->index);
	tsm_err e = tls_anchor_td(ca, s, td);
	if (e != TSM_OK)
		return e;
	tls_anchor *a = realloc(cfg->anchors,
	                        (cfg->n_anchors + 1) * sizeof *a);
	if (a == NULL)
		return tsm__err_set(TSM_ENOMEM, "tls: trust anchors");
	cfg->anchors = a;
	if (X509_STORE_add_cert(SSL_CTX_get_cert_store(cfg->ctx), ca) != 1)
		return tls_ossl_fail(TSM_ERR_BAD_PARAMS, "trust_file", s->path);
	X509_up_ref(ca);
	a[cfg->n_anchors].ca = ca;
	memcpy(a[cfg->n_anchors].td, td, sizeof td);
	cfg->n_anchors++;
	return TSM_OK;
}

static tsm_err tls_add_pem_cert(tsm__tls_cfg *cfg, const char *pem,
                                size_t len, const tls_src *s)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (x == NULL)
		return tls_ossl_fail(TSM_ERR_BAD_PARAMS, "trust_file", s->path);
	tsm_err e = tls_add_anchor(cfg, x, s);
	X509_free(x);
	return e;
}

static bool tls_line_is(const char *line, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n >= l && memcmp(line, lit, l) == 0;
}

/* "# trust-domain: td" sets the trust domain of the certificates after it. */
static tsm_err tls_comment(const char *line, size_t n, tls_src *s)
{
	static const char key[] = "# trust-domain:";
	const char *p = line + sizeof key - 1, *end = line + n;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	if (!tls_td_valid(p, (size_t)(end - p)))
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "tls: trust_file '%s':"
		                    " bad trust domain in '%.*s'", s->path,
		                    (int)TSM_MIN(n, 300), line);
	memcpy(s->comment_td, p, (size_t)(end - p));
	s->comment_td[end - p] = '\0';
	return TSM_OK;
}

/* Walks the PEM text line by line: comments and certificate blocks. */
static tsm_err tls_parse_bundle(tsm__tls_cfg *cfg, const char *text,
                                size_t len, tls_src *s)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	static const char endm[] = "-----END CERTIFICATE-----";
	const char *p = text, *end = text + len;
	tsm_err e = TSM_OK;
	while (e == TSM_OK && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (tls_line_is(p, n, "# trust-domain:")) {
			e = tls_comment(p, n, s);
		} else if (tls_line_is(p, n, begin)) {
			const char *stop = strstr(p, endm);
			if (stop == NULL)
				return tsm__err_set(TSM_ERR_BAD_PARAMS, "tls: "
				                    "trust_file '%s': unterminated"
				                    " certificate", s->path);
			s->index++;
			stop += sizeof endm - 1;
			e = tls_add_pem_cert(cfg, p, (size_t)(stop - p), s);
			nl = memchr(stop, '\n', (size_t)(end - stop));
		}
		p = nl ? nl + 1 : end;
	}
	return e;
}

static tsm_err tls_load_bundle(tsm__tls_cfg *cfg, const char *path,
                               const char *forced_td)
{
	char *text = NULL;
	size_t len = 0;
	tls_src s = {.path = path, .forced_td = forced_td};
	tsm_err e = tls_read_file("trust_file", path, &text, &len);
	if (e != TSM_OK)
		return e;
	e = tls_parse_bundle(cfg, text, len, &s);
	free(text);
	if (e == TSM_OK && s.index == 0)
		e = tsm__err_set(TSM_ERR_BAD_PARAMS, "tls: trust_file '%s' "
		                 "holds no certificate", path);
	return e;
}

/* "td=path,td=path": the text before the first '=' is a trust domain. */
static bool tls_is_td_list(const char *spec)
{
	const char *eq = strchr(spec, '=');
	return eq != NULL && tls_td_valid(spec, (size_t)(eq - spec));
}

static tsm_err tls_load_td_list(tsm__tls_cfg *cfg, const char *spec)
{
	char *copy = strdup(spec), *save = NULL;
	tsm_err e = copy ? TSM_OK : TSM_ENOMEM;
	for (char *ent = copy ? strtok_r(copy, ",", &save) : NULL;
	     e == TSM_OK && ent != NULL; ent = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(ent, '=');
		if (eq == NULL || !tls_td_valid(ent, (size_t)(eq - ent))) {
			e = tsm__err_set(TSM_ERR_BAD_PARAMS, "tls: trust_file "
			                 "entry '%.200s' is not td=path", ent);
			break;
		}
		*eq = '\0';
		e = tls_load_bundle(cfg, eq + 1, ent);
	}
	free(copy);
	return e == TSM_ENOMEM ? tsm__err_set(e, "tls: trust_file") : e;
}

static tsm_err tls_load_trust(tsm__tls_cfg *cfg, const char *spec)
{
	if (spec == NULL || spec[0] == '\0')
		return tsm__err_set(TSM_ERR_NO_CREDENTIALS, "tls: no "
		                    "trust_file given");
	if (tls_is_td_list(spec))
		return tls_load_td_list(cfg, spec);
	return tls_load_bundle(cfg, spec, NULL);
}

/* ---- configuration: CRLs ----------------------------------------------- */

static int tls_read_crls(X509_STORE *store, const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	X509_CRL *crl;
	int n = 0;
	while (b && (crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL))) {
		if (X509_STORE_add_crl(store, crl) == 1)
			n++;
		X509_CRL_free(crl);
	}
	BIO_free(b);
	ERR_clear_error(); /* the end of the file reads as an error */
	return n;
}

/*
 * Revocation is checked for every certificate of the chain whenever a CRL
 * file is configured (security.md "Identity"), even if it cannot be read:
 * then every handshake fails closed, or, soft-fail, is let through.
 */
static tsm_err tls_load_crl(tsm__tls_cfg *cfg, const tsm__tls_files *f)
{
	if (f->crl_file == NULL || f->crl_file[0] == '\0')
		return TSM_OK;
	X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(cfg->ctx),
	                            X509_V_FLAG_CRL_CHECK |
	                                    X509_V_FLAG_CRL_CHECK_ALL);
	if (tls_read_crls(SSL_CTX_get_cert_store(cfg->ctx), f->crl_file) > 0 ||
	    f->crl_soft_fail)
		return TSM_OK;
	return tsm__err_set(TSM_ERR_CRL_UNAVAILABLE, "tls: crl_file '%s': %s",
	                    f->crl_file,
	                    access(f->crl_file, R_OK) ? strerror(errno)
	                                              : "no PEM CRL in it");
}

/* ---- verification ------------------------------------------------------ */

static tsm__tls *tls_of_store_ctx(X509_STORE_CTX *sctx)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
		sctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	return ssl ? SSL_get_app_data(ssl) : NULL;
}

/* Per-certificate hook: only lets a missing or stale CRL pass on
 * soft-fail; a listed certificate is refused either way. */
static int tls_depth_cb(int ok, X509_STORE_CTX *sctx)
{
	tsm__tls *t = tls_of_store_ctx(sctx);
	if (ok || t == NULL || !t->cfg->crl_soft_fail)
		return ok;
	return tls_crl_missing(X509_STORE_CTX_get_error(sctx));
}

static const tls_anchor *tls_find_anchor(const tsm__tls_cfg *cfg, X509 *x)
{
	for (size_t i = 0; i < cfg->n_anchors; i++)
		if (X509_cmp(cfg->anchors[i].ca, x) == 0)
			return &cfg->anchors[i];
	return NULL;
}

static void tls_name(X509 *x, char *buf, size_t cap)
{
	X509_NAME_oneline(X509_get_subject_name(x), buf, (int)cap);
}

/* The chain must end at an anchor of the leaf's own trust domain, and no
 * CA in it may belong to another one (tls.h). */
static bool tls_check_td(tsm__tls *t, STACK_OF(X509) *chain)
{
	char td[TSM_SPIFFE_TD_MAX + 1], ca_td[TSM_SPIFFE_TD_MAX + 1], nm[128];
	int n = sk_X509_num(chain);
	if (tsm__spiffe_td(t->peer_id, td, sizeof td) != TSM_OK)
		return false;
	for (int i = 1; i < n; i++) {
		X509 *ca = sk_X509_value(chain, i);
		const tls_anchor *a = tls_find_anchor(t->cfg, ca);
		bool top = i == n - 1;
		if (tls_ca_san_td(ca, ca_td) != TSM_OK)
			snprintf(ca_td, sizeof ca_td, "(bad SAN)");
		if (a != NULL && ca_td[0] == '\0')
			memcpy(ca_td, a->td, sizeof ca_td);
		if ((top && a == NULL) ||
		    (ca_td[0] != '\0' && strcmp(ca_td, td) != 0)) {
			tls_name(ca, nm, sizeof nm);
			tls_fail(t, TSM_ERR_UNKNOWN_CA, "peer %s: CA '%s' at "
			         "depth %d belongs to trust domain '%s', not "
			         "'%s'", t->peer_id, nm, i,
			         ca_td[0] ? ca_td : "(none)", td);
			return false;
		}
	}
	return true;
}

static time_t tls_time(const ASN1_TIME *at)
{
	struct tm tm;
	if (at == NULL || ASN1_TIME_to_tm(at, &tm) != 1)
		return 0;
	return timegm(&tm);
}

/* The chain stops being valid at its earliest notAfter. */
static time_t tls_chain_not_after(STACK_OF(X509) *chain)
{
	time_t min = 0;
	for (int i = 0; i < sk_X509_num(chain); i++) {
		time_t na = tls_time(X509_get0_notAfter(sk_X509_value(chain, i)));
		if (min == 0 || (na != 0 && na < min))
			min = na;
	}
	return min;
}

/* After X509_verify_cert: SVID leaf rules, trust domain, expected id. */
static bool tls_check_peer(tsm__tls *t, X509_STORE_CTX *sctx)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(sctx);
	X509 *leaf = sk_X509_value(chain, 0);
	tsm_err e = tsm__spiffe_from_cert(leaf, t->peer_id, sizeof t->peer_id);
	if (e != TSM_OK) {
		t->peer_id[0] = '\0';
		tls_fail(t, e, "peer certificate: %s", tsm_err_detail());
		return false;
	}
	if (!tls_check_td(t, chain))
		return false;
	if (t->expected != NULL && !tsm__id_match(t->expected, t->peer_id)) {
		tls_fail(t, TSM_ERR_PEER_ID_MISMATCH, "peer is '%s', expected "
		         "'%s'", t->peer_id, t->expected);
		return false;
	}
	t->not_after = tls_chain_not_after(chain);
	return true;
}

static void tls_fail_x509(tsm__tls *t, X509_STORE_CTX *sctx)
{
	int verr = X509_STORE_CTX_get_error(sctx);
	int depth = X509_STORE_CTX_get_error_depth(sctx);
	X509 *x = X509_STORE_CTX_get_current_cert(sctx);
	char nm[128] = "?";
	if (x != NULL)
		tls_name(x, nm, sizeof nm);
	tls_fail(t, tls_x509_reason(verr, depth), "peer certificate at depth "
	         "%d ('%s'): %s%s", depth, nm,
	         X509_verify_cert_error_string(verr),
	         tls_crl_missing(verr) ? " (revocation unknown; "
	                                 "crl_soft_fail is off)" : "");
}

/*
 * Replaces OpenSSL's chain check (SSL_CTX_set_cert_verify_callback) so
 * that our rules run inside the handshake. Returning 0 aborts it with an
 * alert; X509_V_ERR_APPLICATION_VERIFICATION gives handshake_failure.
 */
static int tls_cert_verify(X509_STORE_CTX *sctx, void *arg)
{
	tsm__tls *t = tls_of_store_ctx(sctx);
	if (t == NULL)
		return 0;
	if (X509_verify_cert(sctx) <= 0) {
		tls_fail_x509(t, sctx);
		return 0;
	}
	if (!tls_check_peer(t, sctx)) {
		X509_STORE_CTX_set_error(sctx,
		                         X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	X509_STORE_CTX_set_error(sctx, X509_V_OK); /* soft-failed CRLs */
	return 1;
}

/* ---- ALPN (RFC 7301) --------------------------------------------------- */

/* A client that offers no ALPN never reaches the select callback. */
static int tls_client_hello(SSL *ssl, int *al, void *arg)
{
	const unsigned char *p;
	size_t n;
	if (SSL_client_hello_get0_ext(
		    ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
		    &n) == 1)
		return SSL_CLIENT_HELLO_SUCCESS;
	tls_fail(SSL_get_app_data(ssl), TSM_ERR_ALPN_MISMATCH, "peer offered "
	         "no ALPN; '" TSM_TLS_ALPN "' is required");
	*al = SSL_AD_NO_APPLICATION_PROTOCOL;
	return SSL_CLIENT_HELLO_ERROR;
}

static int tls_alpn_select(SSL *ssl, const unsigned char **out,
                           unsigned char *outlen, const unsigned char *in,
                           unsigned int inlen, void *arg)
{
	for (unsigned int i = 0; i < inlen; i += 1u + in[i]) {
		if (in[i] == TLS_ALPN_WIRE_LEN - 1 && i + 1u + in[i] <= inlen &&
		    memcmp(in + i + 1, TSM_TLS_ALPN, in[i]) == 0) {
			*out = in + i + 1;
			*outlen = in[i];
			return SSL_TLSEXT_ERR_OK;
		}
	}
	tls_fail(SSL_get_app_data(ssl), TSM_ERR_ALPN_MISMATCH, "peer's ALPN "
	         "list lacks '" TSM_TLS_ALPN "'");
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* ---- configuration: assembly ------------------------------------------- */

/* security.md "Handshake": the whole policy, one context for both roles. */
static tsm_err tls_ctx_policy(SSL_CTX *ctx)
{
	bool ok = SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1 &&
	          SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1 &&
	          SSL_CTX_set_num_tickets(ctx, 0) == 1 &&
	          SSL_CTX_set_max_early_data(ctx, 0) == 1 &&
	          SSL_CTX_set_recv_max_early_data(ctx, 0) == 1 &&
	          SSL_CTX_set_alpn_protos(ctx, tls_alpn_wire,
	                                  TLS_ALPN_WIRE_LEN) == 0;
	if (!ok)
		return tls_ossl_fail(TSM_EINTERNAL, "SSL_CTX", "policy");
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
	                                SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
	                   tls_depth_cb);
	SSL_CTX_set_verify_depth(ctx, TSM_TLS_VERIFY_DEPTH);
	SSL_CTX_set_cert_verify_callback(ctx, tls_cert_verify, NULL);
	SSL_CTX_set_max_cert_list(ctx, TSM_TLS_CERT_LIST_MAX);
	SSL_CTX_set_client_hello_cb(ctx, tls_client_hello, NULL);
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select, NULL);
	return TSM_OK;
}

tsm_err tsm__tls_cfg_new(const tsm__tls_files *f, tsm__tls_cfg **out)
{
	tsm__tls_cfg *cfg = calloc(1, sizeof *cfg);
	tsm_err e = TSM_OK;
	if (f == NULL || out == NULL)
		e = tsm__err_set(TSM_EINVAL, "tls_cfg_new: NULL argument");
	else if (cfg == NULL || (cfg->ctx = SSL_CTX_new(TLS_method())) == NULL)
		e = tsm__err_set(TSM_ENOMEM, "tls_cfg_new: SSL_CTX_new");
	if (e != TSM_OK)
		goto out;
	atomic_init(&cfg->refs, 1);
	cfg->crl_soft_fail = f->crl_soft_fail;
	ERR_clear_error();
	e = tls_ctx_policy(cfg->ctx);
	if (e == TSM_OK)
		e = tls_load_identity(cfg->ctx, f);
	if (e == TSM_OK)
		e = tls_load_trust(cfg, f->trust_file);
	if (e == TSM_OK)
		e = tls_load_crl(cfg, f);
out:
	if (e != TSM_OK) {
		tsm__tls_cfg_free(cfg);
		return e;
	}
	*out = cfg;
	return TSM_OK;
}

tsm_err tsm__tls_cfg_own_id(const tsm__tls_cfg *cfg, char *out, size_t cap)
{
	X509 *own = SSL_CTX_get0_certificate(cfg->ctx);
	if (own == NULL)
		return tsm__err_set(TSM_ERR_NO_CREDENTIALS, "tls: no own "
		                    "certificate");
	tsm_err e = tsm__spiffe_from_cert(own, out, cap);
	if (e != TSM_OK)
		return tsm__err_set(e, "tls: own certificate: %s",
		                    tsm_err_detail());
	return TSM_OK;
}

void tsm__tls_cfg_free(tsm__tls_cfg *cfg)
{
	if (cfg == NULL || atomic_fetch_sub(&cfg->refs, 1) != 1)
		return;
	for (size_t i = 0; i < cfg->n_anchors; i++)
		X509_free(cfg->anchors[i].ca);
	free(cfg->anchors);
	SSL_CTX_free(cfg->ctx);
	free(cfg);
}

/* ---- one handshake ----------------------------------------------------- */

static tsm_err tls_make_ssl(tsm__tls *t, bool client)
{
	t->ssl = SSL_new(t->cfg->ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		t->rbio = t->wbio = NULL;
		return tsm__err_set(TSM_ENOMEM, "tls_new: SSL_new");
	}
	/* An empty read BIO means "wait for more", not end of stream. */
	BIO_set_mem_eof_return(t->rbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio); /* the SSL owns them now */
	SSL_set_app_data(t->ssl, t);
	if (client)
		SSL_set_connect_state(t->ssl);
	else
		SSL_set_accept_state(t->ssl);
	return TSM_OK;
}

tsm_err tsm__tls_new(tsm__tls_cfg *cfg, bool client, const char *expected_peer,
                     tsm__tls **out)
{
	if (expected_peer != NULL &&
	    tsm__id_pattern_check(expected_peer, strlen(expected_peer)) != TSM_OK)
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "tls_new: expected peer"
		                    " pattern: %s", tsm_err_detail());
	tsm__tls *t = calloc(1, sizeof *t);
	tsm_err e = TSM_OK;
	if (t == NULL || (expected_peer && !(t->expected = strdup(expected_peer))))
		e = tsm__err_set(TSM_ENOMEM, "tls_new");
	if (e == TSM_OK) {
		atomic_fetch_add(&cfg->refs, 1);
		t->cfg = cfg;
		e = tls_make_ssl(t, client);
	}
	if (e != TSM_OK) {
		tsm__tls_free(t);
		return e;
	}
	*out = t;
	return TSM_OK;
}

void tsm__tls_free(tsm__tls *t)
{
	if (t == NULL)
		return;
	SSL_free(t->ssl); /* frees both BIOs */
	free(t->expected);
	tsm__tls_cfg_free(t->cfg);
	free(t);
}

tsm_err tsm__tls_feed(tsm__tls *t, const uint8_t *in, size_t len)
{
	if (t->err != TSM_OK)
		return tsm__err_set(t->err, "%s", t->detail);
	if (len > TSM_TLS_HS_MAX - t->fed) {
		tls_fail(t, TSM_ERR_PREAUTH_LIMIT, "peer sent over %u "
		         "handshake bytes", TSM_TLS_HS_MAX);
		return tsm__err_set(t->err, "%s", t->detail);
	}
	if (len != 0 && BIO_write(t->rbio, in, (int)len) != (int)len)
		return tsm__err_set(TSM_ENOMEM, "tls_feed: BIO_write");
	t->fed += len;
	return TSM_OK;
}

/* Completed TLS, now the parts of the policy TLS does not enforce. */
static void tls_post_checks(tsm__tls *t)
{
	const unsigned char *alpn;
	unsigned int n;
	SSL_get0_alpn_selected(t->ssl, &alpn, &n);
	if (n != TLS_ALPN_WIRE_LEN - 1 || memcmp(alpn, TSM_TLS_ALPN, n) != 0)
		tls_fail(t, TSM_ERR_ALPN_MISMATCH, "peer did not agree to "
		         "ALPN '" TSM_TLS_ALPN "'");
	else if (SSL_version(t->ssl) != TLS1_3_VERSION)
		tls_fail(t, TSM_ERR_TLS_VERSION, "negotiated %s, not TLSv1.3",
		         SSL_get_version(t->ssl));
	else if (SSL_session_reused(t->ssl) || t->peer_id[0] == '\0')
		tls_fail(t, TSM_EPROTO, "TLS completed without verifying a "
		         "peer certificate");
	else
		t->done = true;
}

static void tls_advance(tsm__tls *t)
{
	int r = SSL_do_handshake(t->ssl);
	if (r == 1) {
		tls_post_checks(t);
		return;
	}
	int se = SSL_get_error(t->ssl, r);
	if (se != SSL_ERROR_WANT_READ && se != SSL_ERROR_WANT_WRITE)
		tls_fail_ssl(t);
}

/* After done the peer may only send an alert (it refused us after all:
 * TLS 1.3 clients finish before the server has judged them). */
static void tls_after_done(tsm__tls *t)
{
	uint8_t scratch[256];
	if (BIO_ctrl_pending(t->rbio) == 0)
		return;
	int r = SSL_read(t->ssl, scratch, sizeof scratch);
	if (r > 0) {
		tls_fail(t, TSM_ERR_OUT_OF_STATE, "peer sent application data "
		         "inside TLS");
		return;
	}
	int se = SSL_get_error(t->ssl, r);
	if (se == SSL_ERROR_ZERO_RETURN)
		tls_fail(t, TSM_EPROTO, "peer closed TLS after the handshake");
	else if (se != SSL_ERROR_WANT_READ)
		tls_fail_ssl(t);
}

tsm_err tsm__tls_step(tsm__tls *t, uint8_t *out, size_t cap, size_t *out_len,
                      bool *done)
{
	*out_len = 0;
	*done = false;
	if (t->err == TSM_OK) {
		ERR_clear_error(); /* the queue is per thread, maybe stale */
		if (t->done)
			tls_after_done(t);
		else
			tls_advance(t);
		ERR_clear_error();
	}
	if (cap != 0 && BIO_ctrl_pending(t->wbio) != 0) {
		int r = BIO_read(t->wbio, out, (int)TSM_MIN(cap, INT32_MAX));
		*out_len = r > 0 ? (size_t)r : 0;
	}
	if (t->err != TSM_OK)
		return tsm__err_set(t->err, "%s", t->detail);
	*done = t->done;
	return TSM_OK;
}

const char *tsm__tls_peer_id(const tsm__tls *t)
{
	return t->done && t->err == TSM_OK ? t->peer_id : NULL;
}

time_t tsm__tls_peer_not_after(const tsm__tls *t)
{
	return t->done && t->err == TSM_OK ? t->not_after : 0;
}

tsm_err tsm__tls_export(tsm__tls *t, const uint8_t *context,
                        size_t context_len, uint8_t master[32])
{
	static const char label[] = TSM_TLS_EXPORTER_LABEL;
	if (!t->done || t->err != TSM_OK)
		return tsm__err_set(TSM_ESTATE, "tls_export: handshake not "
		                    "complete");
	if (context == NULL)
		return tsm__err_set(TSM_EINVAL, "tls_export: no context");
	if (SSL_export_keying_material(t->ssl, master, 32, label,
	                               sizeof label - 1, context, context_len,
	                               1) != 1) {
		ERR_clear_error();
		return tsm__err_set(TSM_EINTERNAL, "tls_export failed");
	}
	return TSM_OK;
}

/* ---- re-verification of a live session --------------------------------- */

static int tls_recheck_soft_cb(int ok, X509_STORE_CTX *sctx)
{
	return ok || tls_crl_missing(X509_STORE_CTX_get_error(sctx));
}

/* Verifies the peer chain kept from the handshake against cfg's store,
 * as the handshake did, without touching t's sticky state. */
static tsm_err tls_reverify(tsm__tls *t, tsm__tls_cfg *cfg, STACK_OF(X509) *vc)
{
	STACK_OF(X509) *untrusted = sk_X509_dup(vc);
	X509_STORE_CTX *sctx = X509_STORE_CTX_new();
	tsm_err e = TSM_ENOMEM;
	if (untrusted && sctx) {
		X509 *leaf = sk_X509_shift(untrusted);
		X509_STORE_CTX_init(sctx, SSL_CTX_get_cert_store(cfg->ctx), leaf,
		                    untrusted);
		X509_STORE_CTX_set_default(sctx, SSL_is_server(t->ssl) ? "ssl_client"
		                                                       : "ssl_server");
		/* The handshake's flags (CRL_CHECK_ALL, depth) live on the
		 * SSL_CTX's parameters, not on the store. */
		const X509_VERIFY_PARAM *cp = SSL_CTX_get0_param(cfg->ctx);
		X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(sctx);
		X509_VERIFY_PARAM_set_flags(vp, X509_VERIFY_PARAM_get_flags(cp));
		X509_VERIFY_PARAM_set_depth(vp, X509_VERIFY_PARAM_get_depth(cp));
		if (cfg->crl_soft_fail)
			X509_STORE_CTX_set_verify_cb(sctx, tls_recheck_soft_cb);
		e = TSM_OK;
		if (X509_verify_cert(sctx) <= 0) {
			int verr = X509_STORE_CTX_get_error(sctx);
			int depth = X509_STORE_CTX_get_error_depth(sctx);
			e = tsm__err_set(tls_x509_reason(verr, depth), "peer %s now: %s at "
			                 "depth %d", t->peer_id,
			                 X509_verify_cert_error_string(verr), depth);
		}
	}
	X509_STORE_CTX_free(sctx);
	sk_X509_free(untrusted);
	return e == TSM_ENOMEM ? tsm__err_set(e, "tls: recheck") : e;
}

tsm_err tsm__tls_recheck(tsm__tls *t, tsm__tls_cfg *cfg)
{
	STACK_OF(X509) *vc = t->done ? SSL_get0_verified_chain(t->ssl) : NULL;
	if (vc == NULL || sk_X509_num(vc) < 1)
		return tsm__err_set(TSM_ESTATE, "tls: no verified peer chain");
	tsm_err e = tls_reverify(t, cfg, vc);
	if (e)
		return e;
	/* The trust-domain rule with the new anchors (tls_check_td). */
	tsm__tls_cfg *old = t->cfg;
	t->cfg = cfg;
	bool ok = tls_check_td(t, vc);
	t->cfg = old;
	if (!ok)
		return tsm__err_set(TSM_ERR_UNKNOWN_CA, "%s", t->detail);
	return TSM_OK;
}
