/*
 * examples/tsm_cli.h - what the parts of the tsm tool share: exit codes,
 * the security options of every command that opens a context
 * (tsm_sec.c), and the `tsm pki` command (tsm_pki.c).
 *
 * Threading: everything here runs on the tool's main thread, except the
 * event callback installed by cli_sec_apply, which libtsm calls from its
 * progress thread; it only copies into state guarded by a mutex.
 */
#ifndef TSM_EXAMPLES_CLI_H
#define TSM_EXAMPLES_CLI_H

#include <getopt.h>
#include <stdbool.h>

#include <tsm/tsm.h>

enum { CLI_EXIT_RUNTIME = 1, CLI_EXIT_USAGE = 2 };

/* Option codes of the security flags; above those of tsm.c. */
enum {
	CLI_OPT_CERT = 512, CLI_OPT_KEY, CLI_OPT_TRUST, CLI_OPT_POLICY,
	CLI_OPT_CRL, CLI_OPT_CRL_SOFT, CLI_OPT_PKI, CLI_OPT_NAME,
	CLI_OPT_EXPECT, CLI_OPT_INSECURE,
};

/* The getopt_long entries of the security flags, for each command's table. */
#define CLI_SEC_LONGOPTS                                                    \
	{"cert", required_argument, NULL, CLI_OPT_CERT},                    \
	{"key", required_argument, NULL, CLI_OPT_KEY},                      \
	{"trust", required_argument, NULL, CLI_OPT_TRUST},                  \
	{"policy", required_argument, NULL, CLI_OPT_POLICY},                \
	{"crl", required_argument, NULL, CLI_OPT_CRL},                      \
	{"crl-soft-fail", no_argument, NULL, CLI_OPT_CRL_SOFT},             \
	{"pki", required_argument, NULL, CLI_OPT_PKI},                      \
	{"name", required_argument, NULL, CLI_OPT_NAME},                    \
	{"expect", required_argument, NULL, CLI_OPT_EXPECT},                \
	{"insecure", no_argument, NULL, CLI_OPT_INSECURE}

/* The help lines of the security flags, shared by pub and sub. */
#define CLI_SEC_HELP                                                        \
	"Security (mutual TLS 1.3 with SPIFFE IDs; one of these is required):\n" \
	"  --pki DIR          use DIR/NAME.crt, DIR/NAME.key, DIR/trust.pem and\n" \
	"                     DIR/policy.txt (make DIR with 'tsm pki init DIR');\n" \
	"                     default: $TSM_PKI_DIR when set\n"              \
	"  --name NAME        whose certificate in --pki DIR (default: $TSM_NAME,\n" \
	"                     else the command name, 'pub' or 'sub')\n"      \
	"  --cert F           our certificate, PEM, leaf then chain\n"       \
	"  --key F            our private key, PEM\n"                        \
	"  --trust SPEC       trust bundle: a PEM file, or td=FILE[,td=FILE...]\n" \
	"  --policy F         who may publish/subscribe what (docs/security.md)\n" \
	"  --crl F            PEM CRLs: revocation is checked, fail-closed\n" \
	"  --crl-soft-fail    a missing or stale CRL does not refuse a peer\n" \
	"  --expect ID        dialed peers must have this SPIFFE ID (or pattern,\n" \
	"                     e.g. 'spiffe://dev.local/pub'); appended to each\n" \
	"                     dialed URL as '#ID'\n"                         \
	"  --insecure         no authentication, no encryption (loud warning;\n" \
	"                     every peer must be --insecure too)\n"

/*
 * cli_sec: the security flags of one command as given, and what was
 * derived from them. Strings point into argv or into owned[].
 */
struct cli_sec {
	const char *cert, *key, *trust, *policy, *crl, *pki, *name, *expect;
	bool crl_soft_fail, insecure;
	bool any;             /* some security flag other than --insecure */
	const char *pki_from; /* "--pki" or "TSM_PKI_DIR" once resolved */
	char *owned[16];      /* paths and URLs built here; cli_sec_free */
	unsigned nowned;
};

/*
 * cli_sec_option handles one security flag: returns 0 when taken, -1 when
 * opt is not a security flag, or an exit code for a bad value.
 */
int cli_sec_option(const char *cmd, struct cli_sec *s, int opt,
                   const char *arg);

/*
 * cli_sec_apply resolves the defaults (--pki, TSM_PKI_DIR, NO_CREDENTIALS
 * when nothing is given), appends '#expect' to every dialed URL in
 * p->connect, fills p's security fields and installs an event recorder.
 * Prints what it chose on stderr. Returns 0 or an exit code (after saying
 * what to do).
 */
int cli_sec_apply(const char *cmd, struct cli_sec *s, tsm_ctx_params *p);

/*
 * cli_sec_report prints, after tsm_ctx_close, how many security events
 * libtsm reported and the first of them; returns that count.
 */
unsigned long cli_sec_report(const char *cmd);

/* cli_sec_free frees what cli_sec_apply built. */
void cli_sec_free(struct cli_sec *s);

/* cli_pki_main runs `tsm pki ...` with argv[0] == "pki". */
int cli_pki_main(int argc, char **argv);

#endif
