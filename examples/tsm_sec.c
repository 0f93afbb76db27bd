/*
 * examples/tsm_sec.c - the security flags of the tsm tool: turns --pki /
 * --name, --cert/--key/--trust/--policy/--crl, --expect, --insecure and
 * $TSM_PKI_DIR into tsm_ctx_params, and records libtsm's audit events so
 * that a refusal is summarised at exit.
 *
 * Secure is the default: with no flag at all the tool uses $TSM_PKI_DIR,
 * and without that it refuses with NO_CREDENTIALS and says what to run.
 * Explicit file flags win over the paths --pki derives, so one file of a
 * PKI directory can be swapped for a test.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tsm_cli.h"

/* ---- parsing ------------------------------------------------------------- */

int cli_sec_option(const char *cmd, struct cli_sec *s, int opt,
                   const char *arg)
{
	const char **slot = NULL;

	switch (opt) {
	case CLI_OPT_CERT: slot = &s->cert; break;
	case CLI_OPT_KEY: slot = &s->key; break;
	case CLI_OPT_TRUST: slot = &s->trust; break;
	case CLI_OPT_POLICY: slot = &s->policy; break;
	case CLI_OPT_CRL: slot = &s->crl; break;
	case CLI_OPT_PKI: slot = &s->pki; break;
	case CLI_OPT_NAME: slot = &s->name; break;
	case CLI_OPT_EXPECT: slot = &s->expect; break;
	case CLI_OPT_CRL_SOFT:
		s->crl_soft_fail = s->any = true;
		return 0;
	case CLI_OPT_INSECURE:
		s->insecure = true;
		return 0;
	default:
		return -1;
	}
	if (!arg || !*arg) {
		fprintf(stderr, "tsm %s: an empty value is not allowed here\n", cmd);
		return CLI_EXIT_USAGE;
	}
	*slot = arg;
	s->any = true;
	return 0;
}

/* ---- helpers ------------------------------------------------------------- */

/* sec_keep takes ownership of str (NULL = out of memory, reported). */
static const char *sec_keep(const char *cmd, struct cli_sec *s, char *str)
{
	if (!str || s->nowned >= sizeof s->owned / sizeof s->owned[0]) {
		fprintf(stderr, "tsm %s: out of memory\n", cmd);
		free(str);
		return NULL;
	}
	s->owned[s->nowned++] = str;
	return str;
}

static const char *sec_path(const char *cmd, struct cli_sec *s,
                            const char *dir, const char *file)
{
	size_t n = strlen(dir) + strlen(file) + 2;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/%s", dir, file);
	return sec_keep(cmd, s, p);
}

static int sec_fail(const char *cmd, const char *what, const char *todo)
{
	fprintf(stderr, "tsm %s: %s\n", cmd, what);
	fprintf(stderr, "tsm %s: what to do: %s\n", cmd, todo);
	return CLI_EXIT_USAGE;
}

/* The SPIFFE ID of the first certificate in path, for the startup line. */
static void sec_cert_id(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	GENERAL_NAMES *g = x ? X509_get_ext_d2i(x, NID_subject_alt_name, NULL,
	                                        NULL) : NULL;

	snprintf(out, cap, "(no URI SAN)");
	for (int i = 0; i < sk_GENERAL_NAME_num(g); i++) {
		const GENERAL_NAME *n = sk_GENERAL_NAME_value(g, i);

		if (n->type == GEN_URI)
			snprintf(out, cap, "%.*s", ASN1_STRING_length(n->d.ia5),
			         (const char *)ASN1_STRING_get0_data(n->d.ia5));
	}
	GENERAL_NAMES_free(g);
	X509_free(x);
	if (f)
		fclose(f);
}

/* ---- defaults ------------------------------------------------------------ */

static int sec_no_credentials(const char *cmd)
{
	fprintf(stderr, "tsm %s: NO_CREDENTIALS: no certificate, key, trust "
	        "bundle and policy given (--pki, --cert/--key/--trust/--policy), "
	        "and TSM_PKI_DIR is not set\n", cmd);
	fprintf(stderr, "tsm %s: what to do: make a development PKI once with "
	        "'tsm pki init DIR', then run 'tsm %s ... --pki DIR --name %s' "
	        "(or export TSM_PKI_DIR=DIR); or pass --insecure to run without "
	        "authentication or encryption\n", cmd, cmd, cmd);
	return CLI_EXIT_USAGE;
}

/* --pki DIR (or $TSM_PKI_DIR): fills the file flags not given explicitly. */
static int sec_from_pki(const char *cmd, struct cli_sec *s)
{
	char file[300];

	if (!s->name)
		s->name = getenv("TSM_NAME") && *getenv("TSM_NAME")
		                  ? getenv("TSM_NAME") : cmd;
	if (strchr(s->name, '/') || strlen(s->name) > 200)
		return sec_fail(cmd, "--name must be a plain name, like 'pub'",
		                "use the NAME of a DIR/NAME.crt made by "
		                "'tsm pki init' or 'tsm pki issue'");
	snprintf(file, sizeof file, "%s.crt", s->name);
	if (!s->cert && !(s->cert = sec_path(cmd, s, s->pki, file)))
		return CLI_EXIT_RUNTIME;
	snprintf(file, sizeof file, "%s.key", s->name);
	if ((!s->key && !(s->key = sec_path(cmd, s, s->pki, file))) ||
	    (!s->trust && !(s->trust = sec_path(cmd, s, s->pki, "trust.pem"))) ||
	    (!s->policy && !(s->policy = sec_path(cmd, s, s->pki, "policy.txt"))))
		return CLI_EXIT_RUNTIME;
	if (access(s->cert, R_OK) != 0) {
		fprintf(stderr, "tsm %s: NO_CREDENTIALS: no certificate for '%s' "
		        "in %s (%s): %s\n", cmd, s->name, s->pki_from, s->cert,
		        strerror(errno));
		fprintf(stderr, "tsm %s: what to do: 'tsm pki issue %s %s' adds "
		        "it; 'tsm pki init %s' makes the PKI if there is none\n",
		        cmd, s->pki, s->name, s->pki);
		return CLI_EXIT_USAGE;
	}
	return 0;
}

static int sec_resolve(const char *cmd, struct cli_sec *s)
{
	const char *env = getenv("TSM_PKI_DIR");

	if (s->insecure && s->any)
		return sec_fail(cmd, "--insecure cannot be combined with "
		                "credentials or --expect",
		                "drop --insecure to run secure, or the "
		                "security flags to run without security");
	if (s->insecure)
		return 0;
	if (s->pki)
		s->pki_from = "--pki";
	else if (!s->cert && !s->key && !s->trust && !s->policy && env && *env) {
		s->pki = env;
		s->pki_from = "TSM_PKI_DIR";
	}
	if (s->pki)
		return sec_from_pki(cmd, s);
	if (!s->any)
		return sec_no_credentials(cmd);
	if (s->name)
		return sec_fail(cmd, "--name needs --pki DIR",
		                "add --pki DIR, or name the files with "
		                "--cert/--key/--trust/--policy");
	return 0; /* partial flags: libtsm names what is missing */
}

/* --expect ID: "URL#ID" for every dialed URL. */
static int sec_expect(const char *cmd, struct cli_sec *s, tsm_ctx_params *p)
{
	if (!s->expect)
		return 0;
	if (!p->connect[0])
		return sec_fail(cmd, "--expect applies to dialed URLs, and this "
		                "command dials none",
		                "use --connect URL (or the URL of 'tsm sub')");
	for (unsigned i = 0; i < TSM_MAX_URLS && p->connect[i]; i++) {
		size_t n = strlen(p->connect[i]) + strlen(s->expect) + 2;
		char *u = malloc(n);

		if (strchr(p->connect[i], '#')) {
			free(u);
			return sec_fail(cmd, "a URL already names its expected "
			                "peer after '#'; --expect would add another",
			                "use either URL#ID or --expect ID");
		}
		if (u)
			snprintf(u, n, "%s#%s", p->connect[i], s->expect);
		if (!(p->connect[i] = sec_keep(cmd, s, u)))
			return CLI_EXIT_RUNTIME;
	}
	return 0;
}

/* ---- events -------------------------------------------------------------- */

/* The first refusal is kept for the exit summary; the rest are counted. */
static struct {
	pthread_mutex_t mu;
	unsigned long n;
	tsm_err first;
	char peer[256], topic[260], detail[384];
} sec_ev = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Runs on libtsm's progress thread: copies, never calls back into libtsm. */
static void sec_on_event(void *arg, const tsm_event *ev)
{
	(void)arg;
	pthread_mutex_lock(&sec_ev.mu);
	if (sec_ev.n++ == 0) {
		sec_ev.first = ev->reason;
		snprintf(sec_ev.peer, sizeof sec_ev.peer, "%s", ev->peer);
		snprintf(sec_ev.topic, sizeof sec_ev.topic, "%s",
		         ev->topic ? ev->topic : "");
		snprintf(sec_ev.detail, sizeof sec_ev.detail, "%s",
		         ev->detail ? ev->detail : "");
	}
	pthread_mutex_unlock(&sec_ev.mu);
}

unsigned long cli_sec_report(const char *cmd)
{
	unsigned long n;

	pthread_mutex_lock(&sec_ev.mu);
	n = sec_ev.n;
	if (n)
		fprintf(stderr, "tsm %s: security: %lu refusal event(s); the first: "
		        "%s (peer %s%s%s): %s\n", cmd, n, tsm_err_name(sec_ev.first),
		        sec_ev.peer[0] ? sec_ev.peer : "?",
		        sec_ev.topic[0] ? ", topic " : "", sec_ev.topic,
		        sec_ev.detail);
	pthread_mutex_unlock(&sec_ev.mu);
	return n;
}

/* ---- apply --------------------------------------------------------------- */

static void sec_describe(const char *cmd, const struct cli_sec *s)
{
	char id[512];

	if (s->insecure)
		return; /* tsm.c prints the warning once the context is open */
	if (s->cert) {
		sec_cert_id(s->cert, id, sizeof id);
		fprintf(stderr, "tsm %s: security: mutual TLS 1.3, AES-256-GCM "
		        "sealed frames; identity %s (%s)\n", cmd, id, s->cert);
	}
	if (s->pki)
		fprintf(stderr, "tsm %s: credentials of '%s' from %s %s\n", cmd,
		        s->name, s->pki_from, s->pki);
	fprintf(stderr, "tsm %s: trust %s; policy %s; revocation %s%s\n", cmd,
	        s->trust ? s->trust : "(none)", s->policy ? s->policy : "(none)",
	        s->crl ? s->crl : "not checked (no --crl)",
	        s->crl ? (s->crl_soft_fail ? " (soft-fail)" : " (fail-closed)") : "");
	if (s->expect)
		fprintf(stderr, "tsm %s: dialed peers must be %s\n", cmd, s->expect);
}

int cli_sec_apply(const char *cmd, struct cli_sec *s, tsm_ctx_params *p)
{
	int rc;

	if ((rc = sec_resolve(cmd, s)) || (rc = sec_expect(cmd, s, p)))
		return rc;
	p->insecure = s->insecure;
	p->cert_file = s->cert;
	p->key_file = s->key;
	p->trust_file = s->trust;
	p->policy_file = s->policy;
	p->crl_file = s->crl;
	p->crl_soft_fail = s->crl_soft_fail;
	p->on_event = sec_on_event;
	p->event_arg = NULL;
	sec_describe(cmd, s);
	return 0;
}

void cli_sec_free(struct cli_sec *s)
{
	for (unsigned i = 0; i < s->nowned; i++)
		free(s->owned[i]);
	s->nowned = 0;
}
