/*
 * test_tls.c - the TLS 1.3 engine (security.md "Handshake", "Identity",
 * "What the tests must show").
 *
 * Two engines, client and server, pass their HS bytes to each other in
 * memory, with certificates from the test PKI (tests/support/pki.sh,
 * names in tests/support/README.md). Every bad certificate is presented
 * by the client and by the server and must be refused by the other side
 * with its reason code. Peers that break the protocol rather than the
 * certificate rules (no client certificate, TLS 1.2, no or other ALPN)
 * are plain OpenSSL endpoints driven by the test.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/common.h"
#include "security/spiffe.h"
#include "security/tls.h"

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

static char pki[256];

/* ---- fixture: one PKI for the whole suite ------------------------------ */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void append_file(FILE *out, const char *path)
{
	char buf[4096];
	size_t n;
	FILE *in = fopen(path, "r");
	ck_assert_msg(in != NULL, "open %s", path);
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		fwrite(buf, 1, n, out);
	fclose(in);
}

/* path of a PKI file; four rotating buffers so calls can nest in one line */
static const char *P(const char *name)
{
	static char buf[4][512];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s/%s", pki, name);
	return buf[i];
}

/* Bundles with trust-domain comments, and a certificate list > 32 KiB. */
static void extra_files(void)
{
	FILE *f = fopen(P("bundle-ab-annotated.pem"), "w");
	fputs("# trust-domain: td-a.test\n", f);
	append_file(f, P("a-root.crt"));
	fputs("# trust-domain:   td-b.test  \n", f);
	append_file(f, P("b-root.crt"));
	fclose(f);
	f = fopen(P("bundle-a-says-b.pem"), "w");
	fputs("# trust-domain: td-b.test\n", f);
	append_file(f, P("a-root.crt"));
	fclose(f);
	f = fopen(P("bundle-bad-td.pem"), "w");
	fputs("# trust-domain: TD-A.test\n", f);
	append_file(f, P("a-root.crt"));
	fclose(f);
	f = fopen(P("crl-ab.pem"), "w");
	append_file(f, P("crl-a.pem"));
	append_file(f, P("crl-b.pem"));
	fclose(f);
	f = fopen(P("a-pub.huge.pem"), "w");
	append_file(f, P("a-pub.chain.pem"));
	for (int i = 0; i < 80; i++)
		append_file(f, P("a-int.crt"));
	fclose(f);
	write_file(P("empty.pem"), "# nothing here\n");
}

static void pki_setup(void)
{
	const char *src = getenv("TSM_SRC_DIR");
	char cmd[1024];
	if (pki[0] != '\0')
		return; /* one PKI for every test case; removed in main */
	ck_assert_msg(src != NULL, "TSM_SRC_DIR is not set");
	snprintf(pki, sizeof pki, "/tmp/tsm-test-tls-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(pki));
	snprintf(cmd, sizeof cmd, "'%s/tests/support/pki.sh' '%s' >/dev/null",
	         src, pki);
	ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
	extra_files();
}

static void pki_teardown(void)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", pki);
	if (pki[0] != '\0' && system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", pki);
}

/* ---- configurations ---------------------------------------------------- */

static char trust_a[600], trust_b[600], trust_ab[1200];

static void trust_specs(void)
{
	snprintf(trust_a, sizeof trust_a, "td-a.test=%s", P("bundle-a.pem"));
	snprintf(trust_b, sizeof trust_b, "td-b.test=%s", P("bundle-b.pem"));
	snprintf(trust_ab, sizeof trust_ab, "td-a.test=%s,td-b.test=%s",
	         P("bundle-a.pem"), P("bundle-b.pem"));
}

static tsm__tls_cfg *cfg_full(const char *leaf, const char *trust,
                              const char *crl, bool soft)
{
	char cert[512], key[512], crlp[512];
	tsm__tls_cfg *cfg = NULL;
	snprintf(cert, sizeof cert, "%s/%s.chain.pem", pki, leaf);
	snprintf(key, sizeof key, "%s/%s.key", pki, leaf);
	if (crl != NULL)
		snprintf(crlp, sizeof crlp, "%s/%s", pki, crl);
	tsm__tls_files f = {.cert_file = cert, .key_file = key,
	                    .trust_file = trust ? trust : trust_a,
	                    .crl_file = crl ? crlp : NULL,
	                    .crl_soft_fail = soft};
	CK_ERR(tsm__tls_cfg_new(&f, &cfg), TSM_OK);
	return cfg;
}

static tsm__tls_cfg *cfg_of(const char *leaf)
{
	return cfg_full(leaf, NULL, NULL, false);
}

/* ---- pumping ------------------------------------------------------------ */

typedef struct side {
	tsm__tls *t;
	tsm_err err;
	bool done;
} side;

/* Steps one side until it has nothing more to say; returns bytes moved. */
static size_t drain(side *from, side *to)
{
	uint8_t buf[4096]; /* smaller than a flight: exercises partial reads */
	size_t n, total = 0;
	do {
		from->err = tsm__tls_step(from->t, buf, sizeof buf, &n,
		                          &from->done);
		if (n > 0 && to != NULL)
			(void)tsm__tls_feed(to->t, buf, n);
		total += n;
	} while (n > 0);
	return total;
}

static void pump(side *c, side *s)
{
	for (int round = 0; round < 20; round++)
		if (drain(c, s) + drain(s, c) == 0)
			break;
}

typedef struct hs {
	side c, s;
	tsm__tls_cfg *cc, *sc;
} hs;

static void hs_run(hs *h, tsm__tls_cfg *cc, tsm__tls_cfg *sc,
                   const char *expect)
{
	memset(h, 0, sizeof *h);
	h->cc = cc;
	h->sc = sc;
	CK_ERR(tsm__tls_new(cc, true, expect, &h->c.t), TSM_OK);
	CK_ERR(tsm__tls_new(sc, false, NULL, &h->s.t), TSM_OK);
	pump(&h->c, &h->s);
}

static void hs_free(hs *h)
{
	tsm__tls_free(h->c.t);
	tsm__tls_free(h->s.t);
	tsm__tls_cfg_free(h->cc);
	tsm__tls_cfg_free(h->sc);
}

static void assert_ok(const hs *h)
{
	ck_assert_msg(h->c.err == TSM_OK && h->c.done, "client: %s",
	              tsm_err_name(h->c.err));
	ck_assert_msg(h->s.err == TSM_OK && h->s.done, "server: %s",
	              tsm_err_name(h->s.err));
}

/* The refusing side names want; the refused side never ends verified. */
static void assert_refused(const hs *h, bool by_server, tsm_err want)
{
	const side *judge = by_server ? &h->s : &h->c;
	const side *other = by_server ? &h->c : &h->s;
	ck_assert_msg(judge->err == want, "%s: got %s, want %s",
	              by_server ? "server" : "client", tsm_err_name(judge->err),
	              tsm_err_name(want));
	ck_assert(!judge->done);
	ck_assert_ptr_null(tsm__tls_peer_id(judge->t));
	ck_assert_msg(other->err != TSM_OK, "refused side did not notice");
	ck_assert_ptr_null(tsm__tls_peer_id(other->t));
}

/* ---- success ------------------------------------------------------------ */

START_TEST(handshake_ok)
{
	hs h;
	uint8_t m1[32], m2[32], m3[32], m4[32];
	const uint8_t ctx1[32] = {1}, ctx2[32] = {2};
	hs_run(&h, cfg_of("a-pub"), cfg_of("a-sub"), "spiffe://td-a.test/sub");
	assert_ok(&h);
	ck_assert_str_eq(tsm__tls_peer_id(h.c.t), "spiffe://td-a.test/sub");
	ck_assert_str_eq(tsm__tls_peer_id(h.s.t), "spiffe://td-a.test/pub");
	CK_ERR(tsm__tls_export(h.c.t, ctx1, 32, m1), TSM_OK);
	CK_ERR(tsm__tls_export(h.s.t, ctx1, 32, m2), TSM_OK);
	ck_assert_mem_eq(m1, m2, 32);
	CK_ERR(tsm__tls_export(h.c.t, ctx2, 32, m3), TSM_OK);
	CK_ERR(tsm__tls_export(h.s.t, ctx2, 32, m4), TSM_OK);
	ck_assert_mem_eq(m3, m4, 32);
	ck_assert_msg(memcmp(m1, m3, 32) != 0, "context ignored");
	CK_ERR(tsm__tls_export(h.s.t, ctx1, 31, m4), TSM_OK);
	ck_assert_msg(memcmp(m1, m4, 32) != 0, "context length ignored");
	CK_ERR(tsm__tls_export(h.s.t, NULL, 0, m4), TSM_EINVAL);
	/* the PKI's leaves live 10 years; the chain's earliest notAfter */
	time_t na = tsm__tls_peer_not_after(h.c.t), now = time(NULL);
	ck_assert_msg(na > now + 9L * 365 * 86400 &&
	                      na < now + 11L * 365 * 86400,
	              "not_after %lld", (long long)na);
	ck_assert_int_gt(tsm__tls_peer_not_after(h.s.t), now);
	hs_free(&h);
}
END_TEST

/* A second handshake on the same cfgs is independent: no resumption. */
START_TEST(handshake_twice_distinct_masters)
{
	tsm__tls_cfg *cc = cfg_of("a-pub"), *sc = cfg_of("a-sub");
	const uint8_t ctx[8] = "preface";
	uint8_t m[2][32];
	for (int i = 0; i < 2; i++) {
		side c = {0}, s = {0};
		CK_ERR(tsm__tls_new(cc, true, NULL, &c.t), TSM_OK);
		CK_ERR(tsm__tls_new(sc, false, NULL, &s.t), TSM_OK);
		pump(&c, &s);
		ck_assert(c.done && s.done);
		CK_ERR(tsm__tls_export(c.t, ctx, 8, m[i]), TSM_OK);
		tsm__tls_free(c.t);
		tsm__tls_free(s.t);
	}
	ck_assert_msg(memcmp(m[0], m[1], 32) != 0, "two sessions, one key");
	/* the cfg may go first: handshakes hold a reference */
	side c = {0}, s = {0};
	CK_ERR(tsm__tls_new(cc, true, NULL, &c.t), TSM_OK);
	CK_ERR(tsm__tls_new(sc, false, NULL, &s.t), TSM_OK);
	tsm__tls_cfg_free(cc);
	tsm__tls_cfg_free(sc);
	pump(&c, &s);
	ck_assert(c.done && s.done);
	tsm__tls_free(c.t);
	tsm__tls_free(s.t);
}
END_TEST

START_TEST(export_before_done)
{
	tsm__tls_cfg *cc = cfg_of("a-pub");
	tsm__tls *t;
	uint8_t m[32], out[4096];
	size_t n;
	bool done;
	CK_ERR(tsm__tls_new(cc, true, NULL, &t), TSM_OK);
	CK_ERR(tsm__tls_export(t, m, 32, m), TSM_ESTATE);
	CK_ERR(tsm__tls_step(t, out, sizeof out, &n, &done), TSM_OK);
	ck_assert_uint_gt(n, 0); /* ClientHello */
	ck_assert(!done);
	CK_ERR(tsm__tls_export(t, m, 32, m), TSM_ESTATE);
	ck_assert_ptr_null(tsm__tls_peer_id(t));
	ck_assert_int_eq(tsm__tls_peer_not_after(t), 0);
	tsm__tls_free(t);
	tsm__tls_cfg_free(cc);
}
END_TEST

/* ---- every bad certificate, both directions ---------------------------- */

typedef struct bad_cert {
	const char *leaf;
	const char *crl; /* the verifier's CRL file, or NULL */
	tsm_err want;
} bad_cert;

/* tests/support/README.md, "Leaves", with the expected refusal */
static const bad_cert bad_certs[] = {
	{"a-expired", NULL, TSM_ERR_CERT_EXPIRED},
	{"a-notyet", NULL, TSM_ERR_CERT_NOT_YET_VALID},
	{"a-revoked", "crl-a.pem", TSM_ERR_CERT_REVOKED},
	{"a-wrong-eku", NULL, TSM_ERR_SPIFFE_MALFORMED},
	{"a-ca-leaf", NULL, TSM_ERR_SPIFFE_MALFORMED},
	{"a-self-signed", NULL, TSM_ERR_UNKNOWN_CA},
	{"a-bad-spiffe", NULL, TSM_ERR_SPIFFE_MALFORMED},
	{"a-two-uris", NULL, TSM_ERR_SPIFFE_MALFORMED},
	{"a-no-uri", NULL, TSM_ERR_SPIFFE_MALFORMED},
	{"b-forged-a", NULL, TSM_ERR_UNKNOWN_CA},
};
#define N_BAD ((int)TSM_ARRAY_LEN(bad_certs))

START_TEST(bad_cert_refused)
{
	const bad_cert *b = &bad_certs[_i % N_BAD];
	bool bad_client = _i < N_BAD;
	tsm__tls_cfg *bad = cfg_of(b->leaf);
	tsm__tls_cfg *judge = cfg_full(bad_client ? "a-sub" : "a-pub", NULL,
	                               b->crl, false);
	hs h;
	if (bad_client)
		hs_run(&h, bad, judge, NULL);
	else
		hs_run(&h, judge, bad, NULL);
	assert_refused(&h, bad_client, b->want);
	hs_free(&h);
}
END_TEST

/* Same refusals when the judge trusts both domains (mixed store). */
START_TEST(bad_cert_refused_mixed_store)
{
	const bad_cert *b = &bad_certs[_i];
	char annotated[600];
	snprintf(annotated, sizeof annotated, "%s", P("bundle-ab-annotated.pem"));
	const char *stores[2] = {trust_ab, annotated};
	for (int k = 0; k < 2; k++) {
		hs h;
		hs_run(&h, cfg_of(b->leaf),
		       cfg_full("a-sub", stores[k], b->crl, false), NULL);
		assert_refused(&h, true, b->want);
		hs_free(&h);
	}
}
END_TEST

/* The CA of td-b, trusted for td-b, still cannot vouch for td-a. */
START_TEST(forged_identity_detail)
{
	hs h;
	hs_run(&h, cfg_of("b-forged-a"), cfg_full("a-sub", trust_ab, NULL, 0),
	       NULL);
	assert_refused(&h, true, TSM_ERR_UNKNOWN_CA);
	tsm__err_clear();
	size_t n;
	bool done;
	uint8_t out[64];
	(void)tsm__tls_step(h.s.t, out, sizeof out, &n, &done);
	ck_assert_msg(strstr(tsm_err_detail(), "td-b.test") != NULL,
	              "detail: %s", tsm_err_detail());
	hs_free(&h);
}
END_TEST

/* ---- trust domains ------------------------------------------------------ */

START_TEST(wrong_trust_domain_bundle)
{
	hs h;
	/* the server trusts only td-b: a-pub's chain has no anchor */
	hs_run(&h, cfg_of("a-pub"), cfg_full("a-sub", trust_b, NULL, 0), NULL);
	assert_refused(&h, true, TSM_ERR_UNKNOWN_CA);
	hs_free(&h);
	/* the client trusts only td-b: refuses a-sub */
	hs_run(&h, cfg_full("a-pub", trust_b, NULL, 0), cfg_of("a-sub"), NULL);
	assert_refused(&h, false, TSM_ERR_UNKNOWN_CA);
	hs_free(&h);
	/* a bundle that wrongly labels A's root as td-b refuses A's leaves */
	hs_run(&h, cfg_of("a-pub"),
	       cfg_full("a-sub", P("bundle-a-says-b.pem"), NULL, 0), NULL);
	assert_refused(&h, true, TSM_ERR_UNKNOWN_CA);
	hs_free(&h);
}
END_TEST

START_TEST(two_trust_domains_ok)
{
	hs h;
	hs_run(&h, cfg_full("b-pub", trust_ab, NULL, 0),
	       cfg_full("a-sub", trust_ab, NULL, 0), NULL);
	assert_ok(&h);
	ck_assert_str_eq(tsm__tls_peer_id(h.s.t), "spiffe://td-b.test/pub");
	hs_free(&h);
	hs_run(&h, cfg_full("b-pub", P("bundle-ab-annotated.pem"), NULL, 0),
	       cfg_full("a-sub", P("bundle-ab-annotated.pem"), NULL, 0),
	       "spiffe://td-a.test/sub");
	assert_ok(&h);
	hs_free(&h);
}
END_TEST

/* ---- expected peer (MITM with another valid identity) ------------------ */

START_TEST(expected_peer_mismatch)
{
	hs h;
	hs_run(&h, cfg_of("a-pub"), cfg_of("a-sub2"), "spiffe://td-a.test/sub");
	assert_refused(&h, false, TSM_ERR_PEER_ID_MISMATCH);
	hs_free(&h);
	hs_run(&h, cfg_full("a-pub", trust_ab, NULL, 0),
	       cfg_full("b-pub", trust_ab, NULL, 0), "spiffe://td-a.test/*");
	assert_refused(&h, false, TSM_ERR_PEER_ID_MISMATCH);
	hs_free(&h);
	hs_run(&h, cfg_of("a-pub"), cfg_of("a-sub2"), "spiffe://td-a.test/*");
	assert_ok(&h);
	hs_free(&h);
	hs_run(&h, cfg_of("a-pub"), cfg_of("a-pub-rot"), "spiffe://td-a.test/pub");
	assert_ok(&h); /* same identity, new key: rotation */
	hs_free(&h);
}
END_TEST

START_TEST(expected_peer_invalid_pattern)
{
	tsm__tls_cfg *cc = cfg_of("a-pub");
	tsm__tls *t = NULL;
	CK_ERR(tsm__tls_new(cc, true, "spiffe://TD/x", &t), TSM_ERR_BAD_PARAMS);
	CK_ERR(tsm__tls_new(cc, true, "spiffe://td-a.test", &t),
	       TSM_ERR_BAD_PARAMS);
	ck_assert_ptr_null(t);
	tsm__tls_cfg_free(cc);
}
END_TEST

/* ---- CRLs --------------------------------------------------------------- */

START_TEST(crl_rules)
{
	hs h;
	/* an empty CRL of the same CA admits the certificate */
	hs_run(&h, cfg_of("a-revoked"),
	       cfg_full("a-sub", NULL, "crl-a-empty.pem", false), NULL);
	assert_ok(&h);
	hs_free(&h);
	/* stale CRL: fail closed, both directions */
	hs_run(&h, cfg_of("a-pub"),
	       cfg_full("a-sub", NULL, "crl-a-stale.pem", false), NULL);
	assert_refused(&h, true, TSM_ERR_CRL_UNAVAILABLE);
	hs_free(&h);
	hs_run(&h, cfg_full("a-pub", NULL, "crl-a-stale.pem", false),
	       cfg_of("a-sub"), NULL);
	assert_refused(&h, false, TSM_ERR_CRL_UNAVAILABLE);
	hs_free(&h);
	/* soft-fail lets a stale CRL pass ... */
	hs_run(&h, cfg_of("a-pub"),
	       cfg_full("a-sub", NULL, "crl-a-stale.pem", true), NULL);
	assert_ok(&h);
	hs_free(&h);
	/* ... but never a listed certificate */
	hs_run(&h, cfg_of("a-revoked"),
	       cfg_full("a-sub", NULL, "crl-a.pem", true), NULL);
	assert_refused(&h, true, TSM_ERR_CERT_REVOKED);
	hs_free(&h);
}
END_TEST

/* Every CA of every chain needs its CRL: td-a's CRLs do not cover td-b. */
START_TEST(crl_per_trust_domain)
{
	hs h;
	hs_run(&h, cfg_full("b-pub", trust_ab, NULL, 0),
	       cfg_full("a-sub", trust_ab, "crl-a.pem", false), NULL);
	assert_refused(&h, true, TSM_ERR_CRL_UNAVAILABLE);
	hs_free(&h);
	hs_run(&h, cfg_full("b-pub", trust_ab, NULL, 0),
	       cfg_full("a-sub", trust_ab, "crl-ab.pem", false), NULL);
	assert_ok(&h);
	hs_free(&h);
}
END_TEST

START_TEST(crl_file_missing)
{
	char cert[512], key[512];
	tsm__tls_cfg *cfg = NULL;
	snprintf(cert, sizeof cert, "%s", P("a-sub.chain.pem"));
	snprintf(key, sizeof key, "%s", P("a-sub.key"));
	tsm__tls_files f = {.cert_file = cert, .key_file = key,
	                    .trust_file = trust_a,
	                    .crl_file = "/nonexistent/crl.pem"};
	CK_ERR(tsm__tls_cfg_new(&f, &cfg), TSM_ERR_CRL_UNAVAILABLE);
	ck_assert(strstr(tsm_err_detail(), "/nonexistent/crl.pem") != NULL);
	ck_assert_ptr_null(cfg);
	f.crl_file = P("empty.pem");
	CK_ERR(tsm__tls_cfg_new(&f, &cfg), TSM_ERR_CRL_UNAVAILABLE);
	/* soft-fail: accepted, and handshakes pass without revocation data */
	f.crl_file = "/nonexistent/crl.pem";
	f.crl_soft_fail = true;
	CK_ERR(tsm__tls_cfg_new(&f, &cfg), TSM_OK);
	hs h;
	hs_run(&h, cfg_of("a-pub"), cfg, NULL);
	assert_ok(&h);
	hs_free(&h);
}
END_TEST

/* ---- protocol: OpenSSL peers that break the rules ---------------------- */

typedef struct raw {
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *in, *out;
} raw;

/* A plain OpenSSL endpoint; the flags say how it misbehaves. */
static void raw_make(raw *r, bool client, const char *leaf, int max_version,
                     const char *alpn)
{
	r->ctx = SSL_CTX_new(TLS_method());
	ck_assert_ptr_nonnull(r->ctx);
	if (max_version)
		SSL_CTX_set_max_proto_version(r->ctx, max_version);
	if (leaf != NULL) {
		char cert[512], key[512];
		snprintf(cert, sizeof cert, "%s/%s.chain.pem", pki, leaf);
		snprintf(key, sizeof key, "%s/%s.key", pki, leaf);
		ck_assert_int_eq(SSL_CTX_use_certificate_chain_file(r->ctx, cert), 1);
		ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(r->ctx, key,
		                                             SSL_FILETYPE_PEM), 1);
	}
	if (alpn != NULL) {
		unsigned char wire[64];
		wire[0] = (unsigned char)strlen(alpn);
		memcpy(wire + 1, alpn, wire[0]);
		ck_assert_int_eq(SSL_CTX_set_alpn_protos(r->ctx, wire,
		                                         wire[0] + 1u), 0);
	}
	r->ssl = SSL_new(r->ctx);
	r->in = BIO_new(BIO_s_mem());
	r->out = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(r->in, -1);
	SSL_set_bio(r->ssl, r->in, r->out);
	if (client)
		SSL_set_connect_state(r->ssl);
	else
		SSL_set_accept_state(r->ssl);
}

static void raw_free(raw *r)
{
	SSL_free(r->ssl);
	SSL_CTX_free(r->ctx);
}

static size_t raw_sent; /* bytes our engine sent to the raw peer */

/* Runs our engine against the raw peer; returns our final error. */
static tsm_err raw_pump(tsm__tls *t, raw *r, bool *done)
{
	uint8_t buf[16384];
	tsm_err e = TSM_OK;
	raw_sent = 0;
	for (int round = 0; round < 20; round++) {
		size_t n, moved = 0;
		do {
			e = tsm__tls_step(t, buf, sizeof buf, &n, done);
			if (n > 0)
				BIO_write(r->in, buf, (int)n);
			moved += n;
			raw_sent += n;
		} while (n > 0);
		(void)SSL_do_handshake(r->ssl);
		ERR_clear_error();
		int k;
		while ((k = BIO_read(r->out, buf, sizeof buf)) > 0) {
			(void)tsm__tls_feed(t, buf, (size_t)k);
			moved += (size_t)k;
		}
		if (moved == 0)
			break;
	}
	return e;
}

static tsm_err against_raw(bool we_client, const char *raw_leaf,
                           int max_version, const char *alpn)
{
	tsm__tls_cfg *cfg = cfg_of(we_client ? "a-pub" : "a-sub");
	tsm__tls *t;
	raw r;
	bool done = false;
	raw_make(&r, !we_client, raw_leaf, max_version, alpn);
	CK_ERR(tsm__tls_new(cfg, we_client, NULL, &t), TSM_OK);
	tsm_err e = raw_pump(t, &r, &done);
	ck_assert(e == TSM_OK || !done);
	ck_assert(e != TSM_OK || tsm__tls_peer_id(t) != NULL);
	tsm__tls_free(t);
	tsm__tls_cfg_free(cfg);
	raw_free(&r);
	return e;
}

START_TEST(raw_peer_control)
{
	/* the raw peer itself is sound: a well-behaved one succeeds */
	ck_assert_int_eq(against_raw(false, "a-pub", 0, "tsm/1"), TSM_OK);
}
END_TEST

START_TEST(no_client_cert)
{
	ck_assert_int_eq(against_raw(false, NULL, 0, "tsm/1"),
	                 TSM_ERR_NO_PEER_CERT);
}
END_TEST

START_TEST(tls12_refused)
{
	ck_assert_int_eq(against_raw(false, "a-pub", TLS1_2_VERSION, "tsm/1"),
	                 TSM_ERR_TLS_VERSION);
	ck_assert_int_eq(against_raw(true, "a-sub", TLS1_2_VERSION, NULL),
	                 TSM_ERR_TLS_VERSION);
}
END_TEST

START_TEST(alpn_refused)
{
	ck_assert_int_eq(against_raw(false, "a-pub", 0, NULL),
	                 TSM_ERR_ALPN_MISMATCH);
	/* refused at the ClientHello: an alert, no certificate spent */
	ck_assert_uint_lt(raw_sent, 64);
	ck_assert_int_eq(against_raw(false, "a-pub", 0, "h2"),
	                 TSM_ERR_ALPN_MISMATCH);
	ck_assert_int_eq(against_raw(false, "a-pub", 0, "tsm/2"),
	                 TSM_ERR_ALPN_MISMATCH);
	/* a server that ignores ALPN: our client refuses after the fact */
	ck_assert_int_eq(against_raw(true, "a-sub", 0, NULL),
	                 TSM_ERR_ALPN_MISMATCH);
}
END_TEST

/* ---- pre-authentication budgets and garbage ---------------------------- */

START_TEST(preauth_limit)
{
	tsm__tls_cfg *sc = cfg_of("a-sub");
	tsm__tls *t;
	static uint8_t junk[TSM_TLS_HS_MAX];
	CK_ERR(tsm__tls_new(sc, false, NULL, &t), TSM_OK);
	CK_ERR(tsm__tls_feed(t, junk, 1000), TSM_OK);
	CK_ERR(tsm__tls_feed(t, junk, TSM_TLS_HS_MAX - 1000), TSM_OK);
	CK_ERR(tsm__tls_feed(t, junk, 1), TSM_ERR_PREAUTH_LIMIT);
	size_t n;
	bool done;
	uint8_t out[64];
	CK_ERR(tsm__tls_step(t, out, sizeof out, &n, &done),
	       TSM_ERR_PREAUTH_LIMIT); /* sticky */
	ck_assert(!done);
	tsm__tls_free(t);
	tsm__tls_cfg_free(sc);
}
END_TEST

START_TEST(cert_list_too_large)
{
	char cert[512], key[512];
	tsm__tls_cfg *big = NULL;
	snprintf(cert, sizeof cert, "%s", P("a-pub.huge.pem"));
	snprintf(key, sizeof key, "%s", P("a-pub.key"));
	tsm__tls_files f = {.cert_file = cert, .key_file = key,
	                    .trust_file = trust_a};
	CK_ERR(tsm__tls_cfg_new(&f, &big), TSM_OK);
	hs h;
	hs_run(&h, big, cfg_of("a-sub"), NULL);
	assert_refused(&h, true, TSM_ERR_PREAUTH_LIMIT);
	hs_free(&h);
}
END_TEST

START_TEST(garbage_refused)
{
	tsm__tls_cfg *sc = cfg_of("a-sub");
	uint64_t x = 88172645463325252ull;
	for (int trial = 0; trial < 50; trial++) {
		tsm__tls *t;
		uint8_t junk[512], out[4096];
		size_t n;
		bool done;
		for (size_t i = 0; i < sizeof junk; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			junk[i] = (uint8_t)x;
		}
		if (trial % 2) /* a plausible handshake record header */
			memcpy(junk, "\x16\x03\x01\x01\xfb\x01", 6);
		CK_ERR(tsm__tls_new(sc, false, NULL, &t), TSM_OK);
		CK_ERR(tsm__tls_feed(t, junk, sizeof junk), TSM_OK);
		tsm_err e = tsm__tls_step(t, out, sizeof out, &n, &done);
		ck_assert_msg(e != TSM_OK, "garbage accepted (trial %d)", trial);
		ck_assert(!done);
		ck_assert_ptr_null(tsm__tls_peer_id(t));
		tsm__tls_free(t);
	}
	tsm__tls_cfg_free(sc);
}
END_TEST

/* ---- configuration errors ---------------------------------------------- */

static tsm_err try_cfg(const char *cert, const char *key, const char *trust)
{
	tsm__tls_cfg *cfg = NULL;
	tsm__tls_files f = {.cert_file = cert, .key_file = key,
	                    .trust_file = trust};
	tsm__err_clear();
	tsm_err e = tsm__tls_cfg_new(&f, &cfg);
	ck_assert(e == TSM_OK ? cfg != NULL : cfg == NULL);
	tsm__tls_cfg_free(cfg);
	ck_assert(e == TSM_OK || tsm_err_detail()[0] != '\0');
	return e;
}

START_TEST(cfg_errors_name_the_file)
{
	char c[512], k[512], k2[512], leafbundle[600], bad_list[600];
	snprintf(c, sizeof c, "%s", P("a-pub.chain.pem"));
	snprintf(k, sizeof k, "%s", P("a-pub.key"));
	snprintf(k2, sizeof k2, "%s", P("a-sub.key"));
	ck_assert_int_eq(try_cfg(c, k, trust_a), TSM_OK);
	ck_assert_int_eq(try_cfg(NULL, k, trust_a), TSM_ERR_NO_CREDENTIALS);
	ck_assert_int_eq(try_cfg(c, "/nonexistent.key", trust_a),
	                 TSM_ERR_NO_CREDENTIALS);
	ck_assert(strstr(tsm_err_detail(), "/nonexistent.key") != NULL);
	ck_assert_int_eq(try_cfg(c, k, NULL), TSM_ERR_NO_CREDENTIALS);
	ck_assert_int_eq(try_cfg(c, k2, trust_a), TSM_ERR_BAD_PARAMS);
	ck_assert(strstr(tsm_err_detail(), "match") != NULL);
	ck_assert_int_eq(try_cfg(P("empty.pem"), k, trust_a),
	                 TSM_ERR_BAD_PARAMS);
	/* an anchor without a trust domain could vouch for any: refused */
	ck_assert_int_eq(try_cfg(c, k, P("bundle-ab.pem")), TSM_ERR_BAD_PARAMS);
	ck_assert(strstr(tsm_err_detail(), "trust domain") != NULL);
	ck_assert_int_eq(try_cfg(c, k, P("empty.pem")), TSM_ERR_BAD_PARAMS);
	ck_assert_int_eq(try_cfg(c, k, P("bundle-bad-td.pem")),
	                 TSM_ERR_BAD_PARAMS);
	snprintf(bad_list, sizeof bad_list, "td-a.test=%s",
	         P("bundle-a-says-b.pem"));
	ck_assert_int_eq(try_cfg(c, k, bad_list), TSM_ERR_BAD_PARAMS);
	ck_assert(strstr(tsm_err_detail(), "conflicts") != NULL);
	snprintf(leafbundle, sizeof leafbundle, "td-a.test=%s", P("a-pub.crt"));
	ck_assert_int_eq(try_cfg(c, k, leafbundle), TSM_ERR_BAD_PARAMS);
	ck_assert(strstr(tsm_err_detail(), "not a CA") != NULL);
	snprintf(bad_list, sizeof bad_list, "td-a.test=%s,junk",
	         P("bundle-a.pem"));
	ck_assert_int_eq(try_cfg(c, k, bad_list), TSM_ERR_BAD_PARAMS);
	snprintf(bad_list, sizeof bad_list, "td-a.test=/nonexistent.pem");
	ck_assert_int_eq(try_cfg(c, k, bad_list), TSM_ERR_NO_CREDENTIALS);
}
END_TEST

START_TEST(own_id)
{
	char id[TSM_SPIFFE_ID_MAX + 1];
	tsm__tls_cfg *good = cfg_of("a-pub"), *bad = cfg_of("a-bad-spiffe");
	CK_ERR(tsm__tls_cfg_own_id(good, id, sizeof id), TSM_OK);
	ck_assert_str_eq(id, "spiffe://td-a.test/pub");
	CK_ERR(tsm__tls_cfg_own_id(bad, id, sizeof id), TSM_ERR_SPIFFE_MALFORMED);
	tsm__tls_cfg_free(good);
	tsm__tls_cfg_free(bad);
	tsm__tls_cfg_free(NULL);
	tsm__tls_free(NULL);
}
END_TEST

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *ok = tcase_create("success");
	TCase *bad = tcase_create("bad_certs");
	TCase *id = tcase_create("identity");
	TCase *crl = tcase_create("crl");
	TCase *proto = tcase_create("protocol");
	TCase *cfg = tcase_create("config");
	TCase *all[] = {ok, bad, id, crl, proto, cfg};
	for (size_t i = 0; i < TSM_ARRAY_LEN(all); i++) {
		tcase_add_unchecked_fixture(all[i], pki_setup, NULL);
		tcase_add_checked_fixture(all[i], trust_specs, NULL);
		tcase_set_timeout(all[i], 60);
		suite_add_tcase(s, all[i]);
	}
	tcase_add_test(ok, handshake_ok);
	tcase_add_test(ok, handshake_twice_distinct_masters);
	tcase_add_test(ok, export_before_done);
	tcase_add_loop_test(bad, bad_cert_refused, 0, 2 * N_BAD);
	tcase_add_loop_test(bad, bad_cert_refused_mixed_store, 0, N_BAD);
	tcase_add_test(bad, forged_identity_detail);
	tcase_add_test(id, wrong_trust_domain_bundle);
	tcase_add_test(id, two_trust_domains_ok);
	tcase_add_test(id, expected_peer_mismatch);
	tcase_add_test(id, expected_peer_invalid_pattern);
	tcase_add_test(crl, crl_rules);
	tcase_add_test(crl, crl_per_trust_domain);
	tcase_add_test(crl, crl_file_missing);
	tcase_add_test(proto, raw_peer_control);
	tcase_add_test(proto, no_client_cert);
	tcase_add_test(proto, tls12_refused);
	tcase_add_test(proto, alpn_refused);
	tcase_add_test(proto, preauth_limit);
	tcase_add_test(proto, cert_list_too_large);
	tcase_add_test(proto, garbage_refused);
	tcase_add_test(cfg, cfg_errors_name_the_file);
	tcase_add_test(cfg, own_id);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tls_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	pki_teardown();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
