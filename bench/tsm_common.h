/*
 * bench/tsm_common.h - what the libtsm benchmarks of the prio, deadline
 * and fanout cases share: credential options (the same flags as
 * tsm_bench, so bench/run.sh --secure passes one set to every program),
 * opening a context that listens or dials, error lines and counters.
 *
 * Threading: tc_fail and the counter helpers may be called from any
 * thread; option parsing from main only.
 */
#ifndef BENCH_TSM_COMMON_H
#define BENCH_TSM_COMMON_H

#include <getopt.h>
#include <stdint.h>

#include <tsm/tsm.h>

#define TC_URL_MAX 256
#define TC_SETUP_TIMEOUT (10 * TSM_SEC) /* sessions and subscriptions */

/* Credentials: insecure unless secure is set (then cert, key, trust). */
struct tc_cred {
	int secure;
	const char *cert, *key, *trust, *policy;
	const char *cert_b, *key_b; /* the dialing side's identity */
};

/* getopt_long codes of the credential options, above any letter. */
enum {
	TC_OPT_SECURE = 0x100,
	TC_OPT_CERT,
	TC_OPT_KEY,
	TC_OPT_TRUST,
	TC_OPT_POLICY,
	TC_OPT_CERT_B,
	TC_OPT_KEY_B,
};

/* Entries for a struct option array (followed by more, or the end). */
#define TC_CRED_LONGOPTS                                                \
	{"secure", no_argument, NULL, TC_OPT_SECURE},                   \
	{"cert", required_argument, NULL, TC_OPT_CERT},                 \
	{"key", required_argument, NULL, TC_OPT_KEY},                   \
	{"trust", required_argument, NULL, TC_OPT_TRUST},               \
	{"policy", required_argument, NULL, TC_OPT_POLICY},             \
	{"cert-b", required_argument, NULL, TC_OPT_CERT_B},             \
	{"key-b", required_argument, NULL, TC_OPT_KEY_B}

#define TC_CRED_USAGE                                                   \
	"        [--secure --cert F --key F --trust F [--policy F]\n"   \
	"         [--cert-b F --key-b F]]\n"                            \
	"Without --secure the contexts run insecure (no TLS, no AEAD).\n"

/*
 * tc_cred_opt takes option c with argument arg: 0 when it was a
 * credential option, 1 when it is not one.
 */
int tc_cred_opt(int c, const char *arg, struct tc_cred *cr);

/* tc_cred_check: 0, or -1 after saying what --secure lacks. */
int tc_cred_check(const struct tc_cred *cr);

/* tc_fail prints "tsm <who>: <what>: <error> (<text>) <detail>". */
void tc_fail(const char *who, const char *what, tsm_err e);

/*
 * tc_open_listen opens the listening side's context (A's identity) and
 * listens on tcp://addr:0; url gets the address to dial (TC_URL_MAX).
 * peers dialers will come from one address at once: the per-source
 * handshake limit is raised to that (0: the default).
 */
tsm_err tc_open_listen(tsm_ctx **ctx, const struct tc_cred *cr,
                       const char *name, const char *addr, unsigned peers,
                       char *url);

/* tc_open_dial opens a dialing context (B's identity) towards url. */
tsm_err tc_open_dial(tsm_ctx **ctx, const struct tc_cred *cr,
                     const char *name, const char *url);

/* tc_stat returns the counter called name, 0 if it does not exist. */
uint64_t tc_stat(tsm_ctx *ctx, const char *name);

/* tc_drops returns the sum of every "drop.*" counter. */
uint64_t tc_drops(tsm_ctx *ctx);

/* tc_dump_stats prints the non-zero counters (all of them with all). */
void tc_dump_stats(tsm_ctx *ctx, const char *who, int all);

/*
 * tc_send_url / tc_recv_url: the listening side hands its URL to the
 * forked dialers down a pipe; each dialer reads one TC_URL_MAX record.
 */
int tc_send_url(int fd, const char *url);
int tc_recv_url(int fd, char *url);

#endif
