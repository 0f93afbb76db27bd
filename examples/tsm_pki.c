/*
 * examples/tsm_pki.c - `tsm pki init|issue`: a development PKI for libtsm,
 * made with the OpenSSL 3 API (no openssl command line).
 *
 * init makes, in one directory: a root CA and an intermediate CA for one
 * SPIFFE trust domain, each with the URI SAN spiffe://TD (so the trust
 * bundle needs no label, though trust.pem carries one too); one X.509-SVID
 * leaf per name (EC P-256, exactly one URI SAN spiffe://TD/NAME, CA:FALSE
 * critical, keyUsage digitalSignature critical, EKU clientAuth +
 * serverAuth); and a policy that lets the whole trust domain publish and
 * subscribe to everything. issue adds or replaces one leaf later.
 *
 * Every file is written to a temporary name and renamed into place, so a
 * running node that re-reads its files (libtsm checks them every second)
 * sees the old file or the new one, never half of one. Keys are 0600.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tsm_cli.h"

#define PKI_NAMES_MAX 64
#define PKI_NAME_MAX 64
#define PKI_TD_MAX 255
#define PKI_CA_DAYS 3650
#define PKI_LEAF_DAYS 365
#define PKI_BACKDATE_S 300 /* tolerate clocks a little behind ours */

static const char pki_default_names[] = "pub,sub,stage,consumer,producer";

struct pki_cfg {
	const char *sub; /* "init" or "issue" */
	const char *dir, *td;
	char *names_buf;
	const char *names[PKI_NAMES_MAX];
	unsigned nnames;
	long days;
	bool force;
};

struct pki_ca {
	X509 *cert;
	EVP_PKEY *key;
};

struct pki_ext {
	int nid;
	const char *value;
};

/* ---- errors -------------------------------------------------------------- */

static int pki_usage(const struct pki_cfg *c, const char *problem,
                     const char *arg)
{
	fprintf(stderr, "tsm pki%s%s: %s%s%s%s\n", c->sub ? " " : "",
	        c->sub ? c->sub : "", problem, arg ? " '" : "", arg ? arg : "",
	        arg ? "'" : "");
	fprintf(stderr, "tsm pki: run 'tsm pki --help' for usage\n");
	return CLI_EXIT_USAGE;
}

/* OpenSSL's last error, for the rare failure of the API itself. */
static int pki_ossl_fail(const char *what)
{
	char buf[256];

	ERR_error_string_n(ERR_peek_last_error(), buf, sizeof buf);
	ERR_clear_error();
	fprintf(stderr, "tsm pki: %s failed: %s\n", what, buf);
	return CLI_EXIT_RUNTIME;
}

/* ---- names --------------------------------------------------------------- */

/* A trust domain by the SPIFFE grammar libtsm enforces: lowercase. */
static bool pki_td_ok(const char *td)
{
	size_t n = strlen(td);

	if (n == 0 || n > PKI_TD_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789.-_", td[i]))
			return false;
	return true;
}

/* One SPIFFE path segment that is also a harmless file name. */
static bool pki_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > PKI_NAME_MAX || s[0] == '.' || !strcmp(s, "ca") ||
	    !strcmp(s, "int"))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz"
		            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_", s[i]))
			return false;
	return true;
}

static int pki_split_names(struct pki_cfg *c, const char *list)
{
	char *save = NULL;

	free(c->names_buf);
	c->nnames = 0;
	if (!(c->names_buf = strdup(list)))
		return pki_usage(c, "out of memory", NULL);
	for (char *t = strtok_r(c->names_buf, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		if (!pki_name_ok(t))
			return pki_usage(c, "a name is 1..64 of [A-Za-z0-9._-], not "
			                 "starting with '.', and not 'ca' or 'int':", t);
		if (c->nnames == PKI_NAMES_MAX)
			return pki_usage(c, "too many names (at most 64)", NULL);
		c->names[c->nnames++] = t;
	}
	return c->nnames ? 0 : pki_usage(c, "--names is empty", NULL);
}

/* ---- keys and certificates ------------------------------------------------ */

static bool pki_serial(X509 *x)
{
	BIGNUM *bn = BN_new();
	bool ok = bn && BN_rand(bn, 127, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) &&
	          BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));

	BN_free(bn);
	return ok;
}

/* Everything but the extensions: version, serial, names, dates, key. */
static X509 *pki_cert_base(EVP_PKEY *key, const char *cn, X509 *issuer,
                           long days)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	bool ok = x && n && X509_set_version(x, X509_VERSION_3) &&
	          pki_serial(x) &&
	          X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	                                     (const unsigned char *)cn, -1, -1, 0) &&
	          X509_set_subject_name(x, n) &&
	          X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n) &&
	          X509_gmtime_adj(X509_getm_notBefore(x), -PKI_BACKDATE_S) &&
	          X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) &&
	          X509_set_pubkey(x, key);

	X509_NAME_free(n);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static bool pki_ext_add(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *e;
	bool ok;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
	ok = e && X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok;
}

/*
 * pki_cert issues a certificate for key with the extensions ext (then the
 * URI SAN san), signed by `by`, or self-signed when by is NULL.
 */
static X509 *pki_cert(EVP_PKEY *key, const char *cn, const struct pki_ca *by,
                      long days, const struct pki_ext *ext, const char *san)
{
	X509 *x = pki_cert_base(key, cn, by ? by->cert : NULL, days);
	X509 *issuer = by ? by->cert : x;
	bool ok = x != NULL;

	for (; ok && ext->value; ext++)
		ok = pki_ext_add(x, issuer, ext->nid, ext->value);
	ok = ok && pki_ext_add(x, issuer, NID_subject_alt_name, san) &&
	     X509_sign(x, by ? by->key : key, EVP_sha256()) > 0;
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* The subject key identifier comes first: the authority one reads it. */
static const struct pki_ext pki_root_ext[] = {
	{NID_basic_constraints, "critical,CA:TRUE"},
	{NID_key_usage, "critical,keyCertSign,cRLSign"},
	{NID_subject_key_identifier, "hash"},
	{0, NULL},
};

static const struct pki_ext pki_int_ext[] = {
	{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
	{NID_key_usage, "critical,keyCertSign,cRLSign"},
	{NID_subject_key_identifier, "hash"},
	{NID_authority_key_identifier, "keyid:always"},
	{0, NULL},
};

/* An X.509-SVID leaf (SPIFFE X509-SVID §4). */
static const struct pki_ext pki_leaf_ext[] = {
	{NID_basic_constraints, "critical,CA:FALSE"},
	{NID_key_usage, "critical,digitalSignature"},
	{NID_ext_key_usage, "clientAuth,serverAuth"},
	{NID_subject_key_identifier, "hash"},
	{NID_authority_key_identifier, "keyid:always"},
	{0, NULL},
};

/* pki_make_ca: a CA key and certificate for td, self-signed without by. */
static bool pki_make_ca(struct pki_ca *ca, const char *td, const char *what,
                        const struct pki_ca *by)
{
	char cn[PKI_TD_MAX + 32], san[PKI_TD_MAX + 32];

	snprintf(cn, sizeof cn, "%s %s", td, what);
	snprintf(san, sizeof san, "URI:spiffe://%s", td);
	ca->key = EVP_EC_gen("P-256");
	ca->cert = ca->key ? pki_cert(ca->key, cn, by, PKI_CA_DAYS,
	                              by ? pki_int_ext : pki_root_ext, san)
	                   : NULL;
	return ca->cert != NULL;
}

static void pki_ca_free(struct pki_ca *ca)
{
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	ca->cert = NULL;
	ca->key = NULL;
}

/* ---- files ---------------------------------------------------------------- */

typedef bool (*pki_writer)(FILE *f, const void *a, const void *b);

static bool pki_w_key(FILE *f, const void *key, const void *unused)
{
	(void)unused;
	return PEM_write_PrivateKey(f, (EVP_PKEY *)key, NULL, NULL, 0, NULL,
	                            NULL) == 1;
}

static bool pki_w_cert(FILE *f, const void *x, const void *unused)
{
	(void)unused;
	return PEM_write_X509(f, (X509 *)x) == 1;
}

/* What a peer presents: the leaf, then the intermediate that signed it. */
static bool pki_w_chain(FILE *f, const void *leaf, const void *inter)
{
	return PEM_write_X509(f, (X509 *)leaf) == 1 &&
	       PEM_write_X509(f, (X509 *)inter) == 1;
}

static bool pki_w_trust(FILE *f, const void *root, const void *td)
{
	fprintf(f, "# libtsm trust bundle made by 'tsm pki init'.\n"
	        "# The root CA also names its trust domain in a URI SAN; the\n"
	        "# label below says the same for tools that only read comments.\n"
	        "# trust-domain: %s\n", (const char *)td);
	return PEM_write_X509(f, (X509 *)root) == 1;
}

static bool pki_w_policy(FILE *f, const void *td, const void *unused)
{
	const char *t = td;

	(void)unused;
	return fprintf(f,
	        "# libtsm policy made by 'tsm pki init' (docs/security.md).\n"
	        "#\n"
	        "#   allow|deny publish|subscribe IDENTITY TOPIC [max_priority=N]\n"
	        "#              [max_bytes=N] [protection=encrypt|integrity|none]\n"
	        "#\n"
	        "# Default deny; a matching deny wins over every allow; the first\n"
	        "# matching allow gives the caps. In patterns '*' is one segment,\n"
	        "# a final '**' one or more.\n"
	        "#\n"
	        "# This development policy lets every identity of %s publish\n"
	        "# and subscribe to every topic. To tighten it, replace the two\n"
	        "# rules below with one rule per workload and topic, e.g.:\n"
	        "#   allow publish   spiffe://%s/pub  demo/**\n"
	        "#   allow subscribe spiffe://%s/sub  demo/** max_priority=2\n"
	        "#   deny  subscribe spiffe://%s/**   secret/**\n"
	        "# Running nodes re-read this file when it changes: write the new\n"
	        "# version next to it and mv it into place.\n"
	        "allow publish   spiffe://%s/** **\n"
	        "allow subscribe spiffe://%s/** **\n",
	        t, t, t, t, t, t) > 0;
}

/* pki_write writes DIR/file through a temporary name and a rename. */
static bool pki_write(const char *dir, const char *file, mode_t mode,
                      pki_writer w, const void *a, const void *b)
{
	char dst[PATH_MAX], tmp[PATH_MAX];
	int fd;
	FILE *f = NULL;
	bool ok;

	snprintf(dst, sizeof dst, "%s/%s", dir, file);
	snprintf(tmp, sizeof tmp, "%s/.%s.tmp%ld", dir, file, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd >= 0 && !(f = fdopen(fd, "w")))
		close(fd);
	ok = f && fchmod(fd, mode) == 0 && w(f, a, b) && fflush(f) == 0 &&
	     fsync(fd) == 0;
	if (f && fclose(f) != 0)
		ok = false;
	ok = ok && rename(tmp, dst) == 0;
	if (!ok) {
		fprintf(stderr, "tsm pki: cannot write %s: %s\n", dst,
		        errno ? strerror(errno) : "OpenSSL failed");
		unlink(tmp);
	}
	return ok;
}

static bool pki_exists(const char *dir, const char *file)
{
	char p[PATH_MAX];

	snprintf(p, sizeof p, "%s/%s", dir, file);
	return access(p, F_OK) == 0;
}

/* mkdir -p, the last directory 0700: it will hold the CA keys. */
static int pki_mkdir(const char *dir)
{
	char p[PATH_MAX];

	snprintf(p, sizeof p, "%s", dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			break;
		*s = '/';
	}
	if (mkdir(p, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "tsm pki: cannot create %s: %s\n", dir,
		        strerror(errno));
		return CLI_EXIT_RUNTIME;
	}
	return 0;
}

/* ---- leaves ----------------------------------------------------------------- */

/* Key first, then certificate: a node that reloads between the two
 * refuses the mismatched pair and keeps its old one (docs/security.md). */
static int pki_leaf(const struct pki_cfg *c, const struct pki_ca *inter,
                    const char *td, const char *name)
{
	char san[PKI_TD_MAX + PKI_NAME_MAX + 32], file[PKI_NAME_MAX + 8];
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x;
	int rc = 0;

	snprintf(san, sizeof san, "URI:spiffe://%s/%s", td, name);
	x = key ? pki_cert(key, name, inter, c->days, pki_leaf_ext, san) : NULL;
	if (!x) {
		EVP_PKEY_free(key);
		return pki_ossl_fail("issuing a leaf certificate");
	}
	snprintf(file, sizeof file, "%s.key", name);
	if (!pki_write(c->dir, file, 0600, pki_w_key, key, NULL))
		rc = CLI_EXIT_RUNTIME;
	snprintf(file, sizeof file, "%s.crt", name);
	if (!rc && !pki_write(c->dir, file, 0644, pki_w_chain, x, inter->cert))
		rc = CLI_EXIT_RUNTIME;
	if (!rc)
		printf("  %s/%s.crt, %s.key  spiffe://%s/%s, %ld days (leaf then "
		       "intermediate; key 0600)\n", c->dir, name, name, td, name,
		       c->days);
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

/* ---- init ------------------------------------------------------------------- */

static int pki_init_refuse(const struct pki_cfg *c)
{
	static const char *const base[] = {"ca.key", "int.key", "trust.pem",
	                                   "policy.txt"};
	char leaf[PKI_NAME_MAX + 8];
	const char *found = NULL;

	if (c->force)
		return 0;
	for (size_t i = 0; !found && i < sizeof base / sizeof base[0]; i++)
		if (pki_exists(c->dir, base[i]))
			found = base[i];
	for (unsigned i = 0; !found && i < c->nnames; i++) {
		snprintf(leaf, sizeof leaf, "%s.crt", c->names[i]);
		if (pki_exists(c->dir, leaf))
			found = leaf;
	}
	if (!found)
		return 0;
	fprintf(stderr, "tsm pki init: refusing to overwrite %s/%s: %s already "
	        "holds a PKI\n", c->dir, found, c->dir);
	fprintf(stderr, "tsm pki init: what to do: use it as it is; add a leaf "
	        "with 'tsm pki issue %s NAME'; or pass --force to replace every "
	        "file (peers that trust the old root will refuse the new "
	        "certificates)\n", c->dir);
	return CLI_EXIT_USAGE;
}

static int pki_write_cas(const struct pki_cfg *c, const struct pki_ca *root,
                         const struct pki_ca *inter)
{
	bool ok = pki_write(c->dir, "ca.key", 0600, pki_w_key, root->key, NULL) &&
	          pki_write(c->dir, "ca.crt", 0644, pki_w_cert, root->cert, NULL) &&
	          pki_write(c->dir, "int.key", 0600, pki_w_key, inter->key, NULL) &&
	          pki_write(c->dir, "int.crt", 0644, pki_w_cert, inter->cert, NULL) &&
	          pki_write(c->dir, "trust.pem", 0644, pki_w_trust, root->cert,
	                    c->td) &&
	          pki_write(c->dir, "policy.txt", 0644, pki_w_policy, c->td, NULL);

	if (!ok)
		return CLI_EXIT_RUNTIME;
	printf("tsm pki: a development PKI for trust domain '%s' in %s:\n"
	       "  %s/trust.pem  trust bundle: the root CA (URI SAN spiffe://%s)\n"
	       "  %s/ca.crt, ca.key  root CA, %d days (key 0600: keep it private)\n"
	       "  %s/int.crt, int.key  intermediate CA, pathlen 0, signs the "
	       "leaves (key 0600)\n"
	       "  %s/policy.txt  everyone in %s may publish and subscribe to "
	       "everything (tighten it: see its comments)\n",
	       c->td, c->dir, c->dir, c->td, c->dir, PKI_CA_DAYS, c->dir, c->dir,
	       c->td);
	return 0;
}

/* The next commands, with the first two names (pub and sub by default). */
static void pki_next(const struct pki_cfg *c)
{
	const char *pub = c->names[0], *sub = c->names[c->nnames > 1 ? 1 : 0];

	for (unsigned i = 0; i < c->nnames; i++) {
		if (!strcmp(c->names[i], "pub"))
			pub = c->names[i];
		if (!strcmp(c->names[i], "sub"))
			sub = c->names[i];
	}
	printf("next, in two shells:\n"
	       "  tsm sub tcp://127.0.0.1:5555 'demo/**' --pki %s --name %s "
	       "--verify --count 10\n"
	       "  tsm pub tcp://127.0.0.1:5555 demo/hello --pki %s --name %s "
	       "--count 10 --wait-subs 1\n"
	       "(or export TSM_PKI_DIR=%s and pass --name only)\n",
	       c->dir, sub, c->dir, pub, c->dir);
}

static int pki_init(const struct pki_cfg *c)
{
	struct pki_ca root = {0}, inter = {0};
	int rc;

	if ((rc = pki_init_refuse(c)) || (rc = pki_mkdir(c->dir)))
		return rc;
	if (!pki_make_ca(&root, c->td, "root CA", NULL) ||
	    !pki_make_ca(&inter, c->td, "intermediate CA", &root)) {
		rc = pki_ossl_fail("making the CAs");
		goto out;
	}
	if ((rc = pki_write_cas(c, &root, &inter)))
		goto out;
	for (unsigned i = 0; i < c->nnames && !rc; i++)
		rc = pki_leaf(c, &inter, c->td, c->names[i]);
	if (!rc)
		pki_next(c);
out:
	pki_ca_free(&root);
	pki_ca_free(&inter);
	return rc;
}

/* ---- issue ------------------------------------------------------------------ */

/* The intermediate of DIR and its trust domain (from its URI SAN). */
static int pki_load_int(const struct pki_cfg *c, struct pki_ca *inter,
                        char *td, size_t cap)
{
	char p[PATH_MAX];
	FILE *f;
	GENERAL_NAMES *g;

	snprintf(p, sizeof p, "%s/int.crt", c->dir);
	if ((f = fopen(p, "r"))) {
		inter->cert = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	snprintf(p, sizeof p, "%s/int.key", c->dir);
	if ((f = fopen(p, "r"))) {
		inter->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (!inter->cert || !inter->key) {
		fprintf(stderr, "tsm pki issue: %s has no readable int.crt and "
		        "int.key: make it with 'tsm pki init %s'\n", c->dir, c->dir);
		return CLI_EXIT_USAGE;
	}
	td[0] = '\0';
	g = X509_get_ext_d2i(inter->cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; i < sk_GENERAL_NAME_num(g); i++) {
		const GENERAL_NAME *n = sk_GENERAL_NAME_value(g, i);
		const char *u = (const char *)ASN1_STRING_get0_data(n->d.ia5);

		if (n->type == GEN_URI && !strncmp(u, "spiffe://", 9))
			snprintf(td, cap, "%.*s", ASN1_STRING_length(n->d.ia5) - 9, u + 9);
	}
	GENERAL_NAMES_free(g);
	if (!pki_td_ok(td)) {
		fprintf(stderr, "tsm pki issue: %s/int.crt names no trust domain "
		        "(URI SAN spiffe://TD): not made by 'tsm pki init'\n", c->dir);
		return CLI_EXIT_USAGE;
	}
	return 0;
}

static int pki_issue(const struct pki_cfg *c)
{
	struct pki_ca inter = {0};
	char td[PKI_TD_MAX + 1], leaf[PKI_NAME_MAX + 8];
	int rc;

	snprintf(leaf, sizeof leaf, "%s.crt", c->names[0]);
	if (!c->force && pki_exists(c->dir, leaf)) {
		fprintf(stderr, "tsm pki issue: %s/%s exists: pass --force to "
		        "replace it (running nodes pick the new one up)\n", c->dir,
		        leaf);
		return CLI_EXIT_USAGE;
	}
	if (!(rc = pki_load_int(c, &inter, td, sizeof td))) {
		printf("tsm pki issue: in %s, trust domain '%s':\n", c->dir, td);
		rc = pki_leaf(c, &inter, td, c->names[0]);
	}
	pki_ca_free(&inter);
	return rc;
}

/* ---- command line ----------------------------------------------------------- */

static const char pki_help[] =
	"usage: tsm pki init DIR [--trust-domain TD] [--names A,B,...] [--days N]\n"
	"                        [--force]\n"
	"       tsm pki issue DIR NAME [--days N] [--force]\n"
	"\n"
	"A development PKI for libtsm (EC P-256, made with OpenSSL 3).\n"
	"\n"
	"init makes DIR/trust.pem (the root CA), DIR/ca.crt+ca.key (root, 10 years),\n"
	"DIR/int.crt+int.key (intermediate, pathlen 0), DIR/policy.txt (the whole\n"
	"trust domain may publish and subscribe to everything) and, per NAME,\n"
	"DIR/NAME.crt (leaf then intermediate) and DIR/NAME.key (0600): an\n"
	"X.509-SVID with the one URI SAN spiffe://TD/NAME. It refuses to replace\n"
	"an existing PKI without --force.\n"
	"issue adds (or with --force replaces) the leaf NAME, signed by DIR/int.key.\n"
	"\n"
	"  --trust-domain TD  SPIFFE trust domain, lowercase (default dev.local)\n"
	"  --names A,B,...    leaves to make (default pub,sub,stage,consumer,producer)\n"
	"  --days N           leaf validity in days (default 365)\n"
	"  --force            overwrite existing files\n"
	"  -h, --help         this text\n"
	"\n"
	"Then: tsm pub URL TOPIC --pki DIR --name pub; tsm sub URL PATTERN --pki DIR\n"
	"--name sub. Exit 0 ok, 1 failure, 2 usage (or a PKI that is already there).\n";

enum { PKI_OPT_TD = 1, PKI_OPT_NAMES, PKI_OPT_DAYS, PKI_OPT_FORCE };

static const struct option pki_longopts[] = {
	{"trust-domain", required_argument, NULL, PKI_OPT_TD},
	{"names", required_argument, NULL, PKI_OPT_NAMES},
	{"days", required_argument, NULL, PKI_OPT_DAYS},
	{"force", no_argument, NULL, PKI_OPT_FORCE},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static int pki_option(struct pki_cfg *c, int opt, const char *arg)
{
	char *end;

	switch (opt) {
	case PKI_OPT_TD:
		if (!pki_td_ok(arg))
			return pki_usage(c, "a trust domain is 1..255 of "
			                 "[a-z0-9._-] (lowercase), not", arg);
		c->td = arg;
		return 0;
	case PKI_OPT_NAMES:
		return pki_split_names(c, arg);
	case PKI_OPT_DAYS:
		errno = 0;
		c->days = strtol(arg, &end, 10);
		if (errno || *end || c->days < 1 || c->days > PKI_CA_DAYS)
			return pki_usage(c, "--days takes 1..3650, not", arg);
		return 0;
	case PKI_OPT_FORCE:
		c->force = true;
		return 0;
	case 'h':
		fputs(pki_help, stdout);
		exit(0);
	default:
		return pki_usage(c, "unknown option", NULL);
	}
}

/* Positionals: init DIR, issue DIR NAME. */
static int pki_positionals(struct pki_cfg *c, int argc, char **argv)
{
	int want = strcmp(c->sub, "issue") == 0 ? 2 : 1;

	if (argc - optind != want)
		return pki_usage(c, want == 2 ? "expected DIR and NAME"
		                              : "expected one DIR", NULL);
	c->dir = argv[optind];
	if (want == 2 && c->nnames)
		return pki_usage(c, "issue takes NAME, not --names", NULL);
	if (want == 2)
		return pki_split_names(c, argv[optind + 1]);
	return c->nnames ? 0 : pki_split_names(c, pki_default_names);
}

int cli_pki_main(int argc, char **argv)
{
	struct pki_cfg c = {.td = "dev.local", .days = PKI_LEAF_DAYS};
	int opt, rc = 0;

	c.sub = argc > 1 ? argv[1] : NULL;
	if (c.sub && (!strcmp(c.sub, "-h") || !strcmp(c.sub, "--help"))) {
		fputs(pki_help, stdout);
		return 0;
	}
	if (!c.sub || (strcmp(c.sub, "init") && strcmp(c.sub, "issue"))) {
		c.sub = NULL;
		return pki_usage(&c, "expected 'init' or 'issue'", argc > 1 ? argv[1]
		                                                            : NULL);
	}
	/* getopt sees "init ..." with the subcommand as its argv[0]. */
	while (!rc && (opt = getopt_long(argc - 1, argv + 1, "h", pki_longopts,
	                                 NULL)) != -1)
		rc = pki_option(&c, opt, optarg);
	if (!rc)
		rc = pki_positionals(&c, argc - 1, argv + 1);
	if (!rc)
		rc = strcmp(c.sub, "init") == 0 ? pki_init(&c) : pki_issue(&c);
	free(c.names_buf);
	return rc;
}
