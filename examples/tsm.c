/*
 * examples/tsm.c - the tsm command-line tool: publish and subscribe from a
 * shell.
 *
 * `tsm pub` sends self-describing payloads: a 32-byte header (magic,
 * publisher stream id, sequence number, total size, priority, FNV-1a
 * checksum) followed by filler derived from the sequence number. `tsm sub
 * --verify` recomputes the checksum and tracks, per publisher stream, the
 * sequence numbers seen overall (duplicates, gaps) and per priority lane
 * (order), so scripts and tests can prove that every message arrived
 * intact, once, and in order per lane. Both commands end with one summary
 * line on stdout that scripts parse; everything else goes to stderr.
 *
 * Security flags (--pki/--name, --cert/--key/--trust/--policy, --expect,
 * --insecure) live in tsm_sec.c and `tsm pki` in tsm_pki.c.
 *
 * Exit codes: 0 ok, 1 runtime failure (timeout, missing messages, failed
 * verification, transport error), 2 usage or configuration error
 * (including credentials that cannot be used).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tsm/tsm.h>

#include "tsm_cli.h"

enum { EXIT_RUNTIME = CLI_EXIT_RUNTIME, EXIT_USAGE = CLI_EXIT_USAGE };

/* Set by SIGINT/SIGTERM so that loops stop and still print a summary. */
static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* A second Ctrl-C kills for real (SA_RESETHAND): never trap the user. */
static void signals_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* ---- errors ------------------------------------------------------------ */

/* What the user can do about err; NULL when only the class can tell. */
static const char *err_hint_specific(tsm_err err)
{
	switch (err) {
	case TSM_ERR_NO_CREDENTIALS:
		return "give --pki DIR --name NAME (make DIR once with 'tsm pki "
		       "init DIR'), or all of --cert, --key, --trust and --policy; "
		       "or pass --insecure to run without authentication or "
		       "encryption";
	case TSM_ERR_SPIFFE_MALFORMED:
		return "the certificate is not a valid X.509-SVID: it needs exactly "
		       "one URI SAN spiffe://TD/PATH (lowercase TD), CA:FALSE, "
		       "keyUsage digitalSignature, EKU clientAuth and serverAuth; "
		       "'tsm pki issue DIR NAME' makes one";
	case TSM_ERR_CRL_UNAVAILABLE:
		return "--crl must name a readable PEM file of CRLs (or pass "
		       "--crl-soft-fail to accept peers when revocation is unknown)";
	case TSM_ERR_BAD_PARAMS:
		return "fix the file or value named above (formats: "
		       "docs/security.md)";
	case TSM_ERR_BAD_TOPIC:
		return "a topic is 1..256 bytes of '/'-separated non-empty segments "
		       "of [A-Za-z0-9._-], without wildcards (e.g. infer/frames)";
	case TSM_ERR_BAD_PATTERN:
		return "a pattern is a topic whose segments may be '*' (one segment) "
		       "or, last, '**' (any trailing segments), e.g. infer/**";
	case TSM_ERR_BAD_URL:
		return "use tcp://HOST:PORT (e.g. tcp://127.0.0.1:5555) or "
		       "inproc://NAME";
	case TSM_ERR_ADDR_IN_USE:
		return "another process listens on that address: stop it or choose "
		       "another port";
	case TSM_ERR_QUEUE_FULL:
		return "the receivers do not keep up: lower --rate, or raise the "
		       "subscribers' --queue-depth";
	case TSM_ERR_MSG_TOO_LARGE:
		return "the default limit is 16 MiB: lower --size";
	case TSM_ERR_BAD_DEADLINE:
		return "--deadline-us must be greater than 0";
	case TSM_ERR_INSECURE_MISMATCH:
		return "run both sides secure (credentials from the same PKI) or "
		       "both with --insecure";
	case TSM_ERR_URING_UNAVAILABLE:
		return "set TSM_NO_URING=1 to use the epoll engine";
	default:
		return NULL;
	}
}

static const char *err_hint(tsm_err err)
{
	const char *h = err_hint_specific(err);

	if (h)
		return h;
	switch (tsm_err_class(err)) {
	case TSM_ENOTSUP:
		return "this transport is not built into this libtsm: use tcp:// or "
		       "inproc://";
	case TSM_ETRANSPORT:
		return "check that the address is valid and reachable and that the "
		       "peer runs; rerun with --verbose for libtsm's log";
	case TSM_ESECURITY:
		return "both peers need certificates from CAs in each other's "
		       "trust bundle, and a policy that admits the other; rerun "
		       "with --verbose for libtsm's log";
	case TSM_EINTERNAL:
		return "this is a libtsm bug: please report it with the command line "
		       "and the --verbose output";
	default:
		return "rerun with --verbose to see libtsm's log";
	}
}

/* Usage and configuration errors exit 2; everything else is runtime (1). */
static int err_exit_code(tsm_err err)
{
	int cls = tsm_err_class(err);

	if (cls == TSM_EINVAL || cls == TSM_ENOTSUP || err == TSM_ERR_ADDR_IN_USE)
		return EXIT_USAGE;
	return EXIT_RUNTIME;
}

/*
 * report prints a libtsm failure (name, sentence, detail, what to do) and
 * returns the exit code it deserves. The detail is copied first: any later
 * libtsm call, even tsm_err_name, may overwrite it. hint overrides the
 * generic advice when the caller knows better (e.g. for a timeout).
 */
static int report(const char *cmd, const char *call, tsm_err err,
                  const char *hint)
{
	char detail[512];

	snprintf(detail, sizeof detail, "%s", tsm_err_detail());
	fprintf(stderr, "tsm %s: %s failed: %s (%s)%s%s\n", cmd, call,
	        tsm_err_name(err), tsm_strerror(err), detail[0] ? ": " : "",
	        detail);
	fprintf(stderr, "tsm %s: what to do: %s\n", cmd, hint ? hint : err_hint(err));
	return err_exit_code(err);
}

/* usage_error prints problem and where to read more; returns 2. */
static int usage_error(const char *cmd, const char *problem, const char *arg)
{
	fprintf(stderr, "tsm %s: %s%s%s%s\n", cmd, problem, arg ? " '" : "",
	        arg ? arg : "", arg ? "'" : "");
	fprintf(stderr, "tsm %s: run 'tsm %s --help' for usage\n", cmd, cmd);
	return EXIT_USAGE;
}

/* ---- number parsing ------------------------------------------------------ */

/* parse_u64 accepts decimal with an optional K/M/G (binary) suffix. */
static bool parse_u64(const char *s, uint64_t *out, bool suffix_ok)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return false;
	if (suffix_ok && *end) {
		shift = *end == 'K' || *end == 'k' ? 10 : *end == 'M' ? 20
		      : *end == 'G' ? 30 : 64;
		if (shift == 64 || end[1] || v > (UINT64_MAX >> shift))
			return false;
		end++;
	}
	if (*end)
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

/* ---- payload: header + filler ------------------------------------------ */

/*
 * Layout, little-endian:
 *   0 magic u32 "TSMP"   4 stream u32   8 seq u64   16 size u32
 *  20 priority u8        21 reserved[3] = 0         24 checksum u64
 *  32 filler: splitmix64 stream seeded by seq, size - 32 bytes.
 * The checksum is FNV-1a 64 over bytes 0..23 and 32..size-1, so it covers
 * every byte except itself.
 */
#define PL_MAGIC 0x504d5354u
#define PL_HDR_LEN 32u
#define PL_SUM_OFF 24u
#define PL_MAX_SIZE ((uint64_t)UINT32_MAX)
#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

struct pl_hdr {
	uint32_t stream;
	uint64_t seq;
	uint32_t size;
	uint8_t prio;
};

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * FNV_PRIME;
	return h;
}

static uint64_t pl_sum(const uint8_t *buf, size_t len)
{
	uint64_t h = fnv1a(FNV_OFFSET, buf, PL_SUM_OFF);

	return fnv1a(h, buf + PL_HDR_LEN, len - PL_HDR_LEN);
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Filler depends on seq so that a payload swapped between messages shows. */
static void pl_fill(uint8_t *buf, size_t len, uint64_t seq)
{
	uint64_t x = seq;
	size_t i = PL_HDR_LEN;

	for (; i + 8 <= len; i += 8)
		put_le(buf + i, splitmix64(&x), 8);
	if (i < len)
		put_le(buf + i, splitmix64(&x), (unsigned)(len - i));
}

static void pl_build(uint8_t *buf, const struct pl_hdr *h)
{
	pl_fill(buf, h->size, h->seq);
	put_le(buf, PL_MAGIC, 4);
	put_le(buf + 4, h->stream, 4);
	put_le(buf + 8, h->seq, 8);
	put_le(buf + 16, h->size, 4);
	buf[20] = h->prio;
	memset(buf + 21, 0, 3);
	put_le(buf + PL_SUM_OFF, pl_sum(buf, h->size), 8);
}

/* pl_parse returns false for anything that is not an intact tsm payload. */
static bool pl_parse(const uint8_t *buf, size_t len, struct pl_hdr *h)
{
	if (len < PL_HDR_LEN || get_le(buf, 4) != PL_MAGIC)
		return false;
	h->stream = (uint32_t)get_le(buf + 4, 4);
	h->seq = get_le(buf + 8, 8);
	h->size = (uint32_t)get_le(buf + 16, 4);
	h->prio = buf[20];
	if (h->size != len || h->prio > TSM_PRIO_MAX || buf[21] || buf[22] ||
	    buf[23])
		return false;
	return get_le(buf + PL_SUM_OFF, 8) == pl_sum(buf, len);
}

/* ---- shared options and context ---------------------------------------- */

struct net_cfg {
	const char *listen[TSM_MAX_URLS];
	const char *connect[TSM_MAX_URLS];
	const char *advertise[TSM_MAX_URLS];
	unsigned nlisten, nconnect, nadvertise;
	bool verbose, stats, no_discovery;
	const char *beacon;
	uint64_t session_timeout_ms, peer_timeout_ms, gossip_ms;
	struct cli_sec sec;
};

enum {
	OPT_LISTEN = 256, OPT_CONNECT, OPT_STATS, OPT_TIMEOUT,
	OPT_SIZE, OPT_RATE, OPT_PRIORITY, OPT_DEADLINE, OPT_WAIT_SUBS,
	OPT_VERIFY, OPT_QUEUE, OPT_SEED, OPT_ADVERTISE, OPT_NO_DISCOVERY,
	OPT_SESSION_TIMEOUT, OPT_PEER_TIMEOUT, OPT_GOSSIP, OPT_WATCH,
	OPT_BEACON,
};

/* The network options every command takes, for getopt and for --help. */
#define NET_LONGOPTS                                                        \
	{"listen", required_argument, NULL, OPT_LISTEN},                    \
	{"connect", required_argument, NULL, OPT_CONNECT},                  \
	{"seed", required_argument, NULL, OPT_SEED},                        \
	{"advertise", required_argument, NULL, OPT_ADVERTISE},              \
	{"no-discovery", no_argument, NULL, OPT_NO_DISCOVERY},              \
	{"session-timeout-ms", required_argument, NULL, OPT_SESSION_TIMEOUT}, \
	{"peer-timeout-ms", required_argument, NULL, OPT_PEER_TIMEOUT},     \
	{"gossip-ms", required_argument, NULL, OPT_GOSSIP},                 \
	{"beacon", required_argument, NULL, OPT_BEACON},                    \
	{"stats", no_argument, NULL, OPT_STATS},                            \
	{"verbose", no_argument, NULL, 'v'}

#define NET_HELP                                                            \
	"  --listen URL       listen on URL (repeatable)\n"                   \
	"  --connect URL      dial URL (repeatable)\n"                        \
	"  --seed URL         a seed peer to learn the others from (repeatable;\n" \
	"                     best with '#SPIFFE-ID' of the seed)\n"           \
	"  --advertise URL    the URL peers should dial us on (default: the\n" \
	"                     --listen URLs; a 0.0.0.0 host becomes the address\n" \
	"                     each peer sees)\n"                               \
	"  --no-discovery     dial only --connect/--seed, gossip nothing\n"    \
	"  --session-timeout-ms T  silence before a session is lost (10000)\n" \
	"  --peer-timeout-ms T     silence before a node is forgotten (30000)\n" \
	"  --gossip-ms T      gossip interval (500)\n"                          \
	"  --beacon G:P       multicast beacons on group G, port P (off)\n"     \
	"  --stats            print libtsm's counters at exit\n"              \
	"  -v, --verbose      libtsm debug log on stderr\n"

/* The arrays are NULL-terminated for tsm_ctx_params, hence MAX - 1. */
static int net_add(const char *cmd, const char **v, unsigned *n,
                   const char *url)
{
	if (*n >= TSM_MAX_URLS - 1)
		return usage_error(cmd, "too many --listen/--connect URLs at", url);
	v[(*n)++] = url;
	return 0;
}

/* net_option handles the options every command shares; -1 = not one. */
static int net_option(const char *cmd, struct net_cfg *n, int opt,
                      const char *arg)
{
	int rc = cli_sec_option(cmd, &n->sec, opt, arg);

	if (rc >= 0)
		return rc;
	switch (opt) {
	case OPT_LISTEN:
		return net_add(cmd, n->listen, &n->nlisten, arg);
	case OPT_CONNECT:
	case OPT_SEED:
		return net_add(cmd, n->connect, &n->nconnect, arg);
	case OPT_ADVERTISE:
		return net_add(cmd, n->advertise, &n->nadvertise, arg);
	case OPT_NO_DISCOVERY:
		n->no_discovery = true;
		return 0;
	case OPT_BEACON:
		n->beacon = arg;
		return 0;
	case OPT_SESSION_TIMEOUT:
	case OPT_PEER_TIMEOUT:
	case OPT_GOSSIP: {
		uint64_t v;
		if (!parse_u64(arg, &v, false) || v == 0 || v > 86400000)
			return usage_error(cmd, "expected milliseconds in 1..86400000, "
			                   "got", arg);
		*(opt == OPT_SESSION_TIMEOUT ? &n->session_timeout_ms
		  : opt == OPT_PEER_TIMEOUT ? &n->peer_timeout_ms : &n->gossip_ms) = v;
		return 0;
	}
	case OPT_STATS:
		n->stats = true;
		return 0;
	case 'v':
		n->verbose = true;
		return 0;
	default:
		return -1;
	}
}

static void net_log_endpoints(const char *cmd, const struct net_cfg *n)
{
	for (unsigned i = 0; i < n->nlisten; i++)
		fprintf(stderr, "tsm %s: listening on %s\n", cmd, n->listen[i]);
	for (unsigned i = 0; i < n->nconnect; i++)
		fprintf(stderr, "tsm %s: dialing %s (retried in the background)\n",
		        cmd, n->connect[i]);
}

static int net_open(const char *cmd, struct net_cfg *n, tsm_ctx **ctx)
{
	tsm_ctx_params p;
	tsm_err err;
	int rc;

	tsm_ctx_params_init(&p);
	p.name = cmd;
	memcpy(p.listen, n->listen, sizeof p.listen);
	memcpy(p.connect, n->connect, sizeof p.connect);
	memcpy(p.advertise, n->advertise, sizeof p.advertise);
	p.discovery = !n->no_discovery;
	p.beacon = n->beacon;
	p.session_timeout = (tsm_duration)n->session_timeout_ms * TSM_MSEC;
	p.peer_timeout = (tsm_duration)n->peer_timeout_ms * TSM_MSEC;
	p.gossip_interval = (tsm_duration)n->gossip_ms * TSM_MSEC;
	p.log_level = n->verbose ? TSM_LOG_DEBUG : TSM_LOG_WARN;
	if ((rc = cli_sec_apply(cmd, &n->sec, &p)))
		return rc;
	err = tsm_ctx_open(ctx, &p);
	if (err) {
		rc = report(cmd, "tsm_ctx_open", err, NULL);
		/* Unusable credentials are configuration, not a runtime fault. */
		return tsm_err_class(err) == TSM_ESECURITY ? EXIT_USAGE : rc;
	}
	/* The engine is printed so a silent epoll fallback cannot happen. */
	fprintf(stderr, "tsm %s: transport engine: %s\n", cmd,
	        tsm_ctx_transport(*ctx));
	if (n->sec.insecure)
		fprintf(stderr, "tsm %s: WARNING: --insecure: no authentication, "
		        "no encryption, no access control: anyone who can reach "
		        "these addresses can read and inject messages; only "
		        "--insecure peers are accepted\n", cmd);
	net_log_endpoints(cmd, n);
	return 0;
}

static void stats_print_one(void *arg, const char *name, uint64_t value)
{
	fprintf(stderr, "tsm %s: stat %s = %" PRIu64 "\n", (const char *)arg,
	        name, value);
}

static void net_stats(const char *cmd, const struct net_cfg *n, tsm_ctx *ctx)
{
	tsm_err err;

	if (!n->stats)
		return;
	err = tsm_stats_foreach(ctx, stats_print_one, (void *)cmd);
	if (err)
		report(cmd, "tsm_stats_foreach", err, NULL);
}

/* net_close prints the counters, closes ctx, then summarises refusals. */
static void net_close(const char *cmd, struct net_cfg *n, tsm_ctx *ctx)
{
	if (ctx)
		net_stats(cmd, n, ctx);
	tsm_ctx_close(ctx);
	cli_sec_report(cmd);
	cli_sec_free(&n->sec);
}

/*
 * positional_url: `tsm pub URL TOPIC` listens on URL, `tsm sub URL PATTERN`
 * dials it; with explicit --listen/--connect the URL may be left out.
 */
static int take_positionals(const char *cmd, int argc, char **argv,
                            struct net_cfg *n, bool bare_listens,
                            const char **name)
{
	int left = argc - optind;
	int rc;

	if (left == 2) {
		rc = bare_listens ? net_add(cmd, n->listen, &n->nlisten, argv[optind])
		                  : net_add(cmd, n->connect, &n->nconnect, argv[optind]);
		if (rc)
			return rc;
		*name = argv[optind + 1];
		return 0;
	}
	if (left == 1 && n->nlisten + n->nconnect > 0) {
		*name = argv[optind];
		return 0;
	}
	if (left > 2)
		return usage_error(cmd, "too many arguments from", argv[optind + 2]);
	return usage_error(cmd, left ? "missing the URL (or --listen/--connect) for"
	                             : "missing URL and topic", left ? argv[optind] : NULL);
}

static int64_t ms_to_ns(uint64_t ms)
{
	return ms > (uint64_t)(INT64_MAX / TSM_MSEC) ? TSM_NEVER
	                                            : (int64_t)ms * TSM_MSEC;
}

/* ---- pub ----------------------------------------------------------------- */

struct pub_cfg {
	struct net_cfg net;
	const char *topic;
	uint64_t count, size, rate, deadline_us, timeout_ms;
	int prio; /* 0..7, or -1 for "mixed": seq % 8 */
	unsigned wait_subs;
};

struct pub_stats {
	uint64_t published, bytes, expired, no_sub, retries;
	tsm_time t0;
};

static const char pub_help[] =
	"usage: tsm pub [OPTIONS] URL TOPIC\n"
	"       tsm pub [OPTIONS] (--listen URL | --connect URL)... TOPIC\n"
	"\n"
	"Publish self-checking messages on TOPIC (see 'tsm sub --verify').\n"
	"A bare URL is listened on; subscribers dial it.\n"
	"\n"
	"  --count N          messages to send (default 1)\n"
	"  --size B           bytes per message, >= 32, K/M/G suffixes (default 64)\n"
	"  --rate R           messages per second, 0 = as fast as possible (default 0)\n"
	"  --priority P       0 (most urgent) .. 7, or 'mixed' to cycle 0..7 (default 4)\n"
	"  --deadline-us D    deadline budget per message in microseconds\n"
	"  --wait-subs N      wait for N remote subscribers before sending (default 0)\n"
	"  --timeout-ms T     limit for --wait-subs and for the final flush (default 10000)\n"
	NET_HELP
	"  -h, --help         this text\n"
	"\n"
	CLI_SEC_HELP
	"\n"
	"URLs: tcp://HOST:PORT (io_uring; epoll with TSM_NO_URING=1), inproc://NAME,\n"
	"auto://HOST:PORT (verbs, shm or TCP per peer), ofi+tcp://, ofi+shm://NAME;\n"
	"a dialed URL may end in '#SPIFFE-ID-PATTERN', the peer it must be.\n"
	"Prints 'pub: published=N ...' on stdout. Exit 0 ok, 1 failure, 2 usage.\n";

static const struct option pub_longopts[] = {
	{"count", required_argument, NULL, 'n'},
	{"size", required_argument, NULL, OPT_SIZE},
	{"rate", required_argument, NULL, OPT_RATE},
	{"priority", required_argument, NULL, OPT_PRIORITY},
	{"deadline-us", required_argument, NULL, OPT_DEADLINE},
	{"wait-subs", required_argument, NULL, OPT_WAIT_SUBS},
	{"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
	NET_LONGOPTS,
	CLI_SEC_LONGOPTS,
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static int pub_priority_arg(struct pub_cfg *c, const char *arg)
{
	uint64_t v;

	if (strcmp(arg, "mixed") == 0) {
		c->prio = -1;
		return 0;
	}
	if (!parse_u64(arg, &v, false) || v > TSM_PRIO_MAX)
		return usage_error("pub", "--priority takes 0..7 or 'mixed', not", arg);
	c->prio = (int)v;
	return 0;
}

static int pub_number_arg(int opt, const char *arg, struct pub_cfg *c)
{
	uint64_t v;

	if (!parse_u64(arg, &v, opt == OPT_SIZE))
		return usage_error("pub", "expected a non-negative number, got", arg);
	switch (opt) {
	case 'n': c->count = v; break;
	case OPT_SIZE: c->size = v; break;
	case OPT_RATE: c->rate = v; break;
	case OPT_DEADLINE: c->deadline_us = v; break;
	case OPT_TIMEOUT: c->timeout_ms = v; break;
	default:
		if (v > 65535)
			return usage_error("pub", "--wait-subs is too large:", arg);
		c->wait_subs = (unsigned)v;
	}
	return 0;
}

static int pub_option(struct pub_cfg *c, int opt, const char *arg)
{
	int rc = net_option("pub", &c->net, opt, arg);

	if (rc >= 0)
		return rc;
	switch (opt) {
	case 'h':
		fputs(pub_help, stdout);
		exit(0);
	case OPT_PRIORITY:
		return pub_priority_arg(c, arg);
	case 'n': case OPT_SIZE: case OPT_RATE: case OPT_DEADLINE:
	case OPT_TIMEOUT: case OPT_WAIT_SUBS:
		return pub_number_arg(opt, arg, c);
	default:
		return usage_error("pub", "unknown option", NULL);
	}
}

static int pub_parse(struct pub_cfg *c, int argc, char **argv)
{
	int opt, rc;

	memset(c, 0, sizeof *c);
	c->count = 1;
	c->size = 64;
	c->prio = TSM_PRIO_DEFAULT;
	c->timeout_ms = 10000;
	while ((opt = getopt_long(argc, argv, "n:vh", pub_longopts, NULL)) != -1)
		if ((rc = pub_option(c, opt, optarg)) != 0)
			return rc;
	if ((rc = take_positionals("pub", argc, argv, &c->net, true, &c->topic)))
		return rc;
	if (c->size < PL_HDR_LEN || c->size > PL_MAX_SIZE)
		return usage_error("pub", "--size must be between 32 (the "
		                   "checking header) and 4G, not", NULL);
	if (c->deadline_us > (uint64_t)(INT64_MAX / TSM_USEC))
		return usage_error("pub", "--deadline-us is too large", NULL);
	return 0;
}

/* pub_pace sleeps until message seq is due under --rate (absolute times,
 * so that a slow iteration does not lower the average rate). */
static void pub_pace(const struct pub_cfg *c, const struct pub_stats *s,
                     uint64_t seq)
{
	struct timespec ts;
	tsm_time due;

	if (c->rate == 0)
		return;
	due = s->t0 + (tsm_time)((double)seq * 1e9 / (double)c->rate);
	ts.tv_sec = due / TSM_SEC;
	ts.tv_nsec = due % TSM_SEC;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR &&
	       !g_stop)
		;
}

static void pub_opts_for(const struct pub_cfg *c, uint8_t prio,
                         tsm_pub_opts *o)
{
	tsm_pub_opts_init(o);
	o->flags = TSM_OPT_PRIORITY;
	o->priority = prio;
	if (c->deadline_us) {
		o->flags |= TSM_OPT_BUDGET;
		o->budget = (tsm_duration)c->deadline_us * TSM_USEC;
	}
}

/*
 * pub_send publishes one message. QUEUE_FULL is back-pressure, not loss:
 * the same message is retried until --timeout-ms. An expired deadline or
 * no subscriber is counted and skipped. Returns 0 or an exit code.
 */
static int pub_send(tsm_pub *pub, const struct pub_cfg *c, struct pub_stats *s,
                    const uint8_t *buf, uint8_t prio)
{
	tsm_time give_up = tsm_now() + ms_to_ns(c->timeout_ms);
	tsm_pub_opts o;
	tsm_err err;

	for (;;) {
		pub_opts_for(c, prio, &o);
		err = tsm_publish(pub, buf, c->size, &o);
		if (err != TSM_ERR_QUEUE_FULL || g_stop || tsm_now() >= give_up)
			break;
		s->retries++;
	}
	if (err == TSM_OK) {
		s->published++;
		s->bytes += c->size;
	} else if (err == TSM_ERR_DEADLINE_EXPIRED) {
		s->expired++;
	} else if (err == TSM_ERR_NO_SUBSCRIBER) {
		s->no_sub++;
	} else {
		return report("pub", "tsm_publish", err, NULL);
	}
	return 0;
}

static int pub_loop(tsm_pub *pub, const struct pub_cfg *c, struct pub_stats *s)
{
	uint8_t *buf = malloc(c->size);
	struct pl_hdr h;
	int rc = 0;

	if (!buf) {
		fprintf(stderr, "tsm pub: out of memory for a %" PRIu64 "-byte "
		        "message: lower --size\n", c->size);
		return EXIT_RUNTIME;
	}
	h.stream = (uint32_t)((uint64_t)getpid() ^ (uint64_t)tsm_now());
	h.size = (uint32_t)c->size;
	s->t0 = tsm_now();
	for (uint64_t seq = 0; seq < c->count && !g_stop && rc == 0; seq++) {
		h.seq = seq;
		h.prio = (uint8_t)(c->prio < 0 ? seq % (TSM_PRIO_MAX + 1) : (uint64_t)c->prio);
		pub_pace(c, s, seq);
		pl_build(buf, &h);
		rc = pub_send(pub, c, s, buf, h.prio);
	}
	free(buf);
	return rc;
}

static int pub_wait(tsm_pub *pub, const struct pub_cfg *c)
{
	tsm_err err;

	if (c->wait_subs == 0) {
		fprintf(stderr, "tsm pub: not waiting for subscribers: a subscriber "
		        "that connects late misses what was sent before "
		        "(use --wait-subs N)\n");
		return 0;
	}
	fprintf(stderr, "tsm pub: waiting up to %" PRIu64 " ms for %u "
	        "subscriber(s)\n", c->timeout_ms, c->wait_subs);
	err = tsm_pub_wait_subscribers(pub, c->wait_subs, ms_to_ns(c->timeout_ms));
	if (err)
		return report("pub", "tsm_pub_wait_subscribers", err,
		              err == TSM_ETIMEDOUT ? "start the subscribers ('tsm sub "
		              "URL PATTERN --pki DIR --name sub'), check that their "
		              "certificates and the policy admit them (--stats shows "
		              "reason.* counters), or raise --timeout-ms" : NULL);
	return 0;
}

static int pub_finish(tsm_pub *pub, const struct pub_cfg *c)
{
	tsm_err err = tsm_pub_flush(pub, ms_to_ns(c->timeout_ms));

	if (err)
		return report("pub", "tsm_pub_flush", err,
		              err == TSM_ETIMEDOUT ? "the receivers did not take the "
		              "messages in time: raise --timeout-ms or lower --rate"
		              : NULL);
	return 0;
}

static void pub_summary(const struct pub_cfg *c, const struct pub_stats *s,
                        const char *engine)
{
	double secs = (double)(tsm_now() - s->t0) / 1e9;

	printf("pub: published=%" PRIu64 " bytes=%" PRIu64 " expired=%" PRIu64
	       " no_subscriber=%" PRIu64 " retries=%" PRIu64 " topic=%s"
	       " engine=%s elapsed_ms=%.0f rate=%.0f msg/s\n",
	       s->published, s->bytes, s->expired, s->no_sub, s->retries,
	       c->topic, engine, secs * 1e3,
	       secs > 0 ? (double)s->published / secs : 0.0);
	fflush(stdout);
}

static int cmd_pub(int argc, char **argv)
{
	struct pub_cfg c;
	struct pub_stats s = {0};
	tsm_ctx *ctx = NULL;
	tsm_pub *pub = NULL;
	tsm_err err;
	int rc;

	if ((rc = pub_parse(&c, argc, argv)))
		return rc;
	if ((rc = net_open("pub", &c.net, &ctx)))
		goto out;
	err = tsm_pub_open(&pub, ctx, c.topic, NULL);
	if (err) {
		rc = report("pub", "tsm_pub_open", err, NULL);
		goto out;
	}
	s.t0 = tsm_now();
	if ((rc = pub_wait(pub, &c)) == 0 && (rc = pub_loop(pub, &c, &s)) == 0)
		rc = pub_finish(pub, &c);
	pub_summary(&c, &s, tsm_ctx_transport(ctx));
	if (rc == 0 && g_stop && s.published < c.count)
		rc = EXIT_RUNTIME;
out:
	tsm_pub_close(pub);
	net_close("pub", &c.net, ctx);
	return rc;
}

/* ---- sub ----------------------------------------------------------------- */

/* Sequence numbers above this are not tracked for duplicates (bitmap cap). */
#define SEQ_TRACK_MAX ((uint64_t)1 << 30)
#define ANOMALY_PRINT_MAX 10

struct stream_track {
	uint32_t id;
	uint8_t *seen;         /* bitmap of sequence numbers */
	uint64_t seen_bytes;
	uint64_t min, max, distinct;
	bool lane_any[TSM_PRIO_MAX + 1];
	uint64_t lane_last[TSM_PRIO_MAX + 1];
};

struct sub_cfg {
	struct net_cfg net;
	const char *pattern;
	uint64_t count, timeout_ms, queue_depth;
	bool quiet, verify;
};

struct sub_state {
	uint64_t received, bytes, dup, corrupt, order, prio_mismatch, untracked;
	uint64_t lane[TSM_PRIO_MAX + 1];
	uint64_t anomalies;
	struct stream_track *streams;
	size_t nstreams;
	tsm_time t0;
};

static const char sub_help[] =
	"usage: tsm sub [OPTIONS] URL PATTERN\n"
	"       tsm sub [OPTIONS] (--listen URL | --connect URL)... PATTERN\n"
	"\n"
	"Receive messages whose topic matches PATTERN ('*' = one segment,\n"
	"final '**' = any trailing segments). A bare URL is dialed.\n"
	"\n"
	"  --count N          stop after N messages; fewer by --timeout-ms = failure\n"
	"  --timeout-ms T     give up after T ms (default: no limit)\n"
	"  --verify           check 'tsm pub' payloads: checksum, duplicates, gaps,\n"
	"                     sequence order per priority lane\n"
	"  --quiet            print only the summary line\n"
	"  --queue-depth N    subscriber queue in messages (default: libtsm's, 4096)\n"
	NET_HELP
	"  -h, --help         this text\n"
	"\n"
	CLI_SEC_HELP
	"\n"
	"Ends with: sub: received=N bytes=B dup=0 corrupt=0 order_errors=0 lanes=...\n"
	"Exit 0 ok, 1 failure (fewer than --count, failed check), 2 usage.\n";

static const struct option sub_longopts[] = {
	{"count", required_argument, NULL, 'n'},
	{"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
	{"verify", no_argument, NULL, OPT_VERIFY},
	{"quiet", no_argument, NULL, 'q'},
	{"queue-depth", required_argument, NULL, OPT_QUEUE},
	NET_LONGOPTS,
	CLI_SEC_LONGOPTS,
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static int sub_number_arg(int opt, const char *arg, struct sub_cfg *c)
{
	uint64_t v;

	if (!parse_u64(arg, &v, false))
		return usage_error("sub", "expected a non-negative number, got", arg);
	if (opt == 'n')
		c->count = v;
	else if (opt == OPT_TIMEOUT)
		c->timeout_ms = v;
	else if (v == 0 || v > UINT32_MAX)
		return usage_error("sub", "--queue-depth takes 1..4294967295, not", arg);
	else
		c->queue_depth = v;
	return 0;
}

static int sub_option(struct sub_cfg *c, int opt, const char *arg)
{
	int rc = net_option("sub", &c->net, opt, arg);

	if (rc >= 0)
		return rc;
	switch (opt) {
	case 'h':
		fputs(sub_help, stdout);
		exit(0);
	case 'q':
		c->quiet = true;
		return 0;
	case OPT_VERIFY:
		c->verify = true;
		return 0;
	case 'n': case OPT_TIMEOUT: case OPT_QUEUE:
		return sub_number_arg(opt, arg, c);
	default:
		return usage_error("sub", "unknown option", NULL);
	}
}

static int sub_parse(struct sub_cfg *c, int argc, char **argv)
{
	int opt, rc;

	memset(c, 0, sizeof *c);
	while ((opt = getopt_long(argc, argv, "n:qvh", sub_longopts, NULL)) != -1)
		if ((rc = sub_option(c, opt, optarg)) != 0)
			return rc;
	return take_positionals("sub", argc, argv, &c->net, false, &c->pattern);
}

static struct stream_track *stream_get(struct sub_state *st, uint32_t id)
{
	struct stream_track *v;

	for (size_t i = 0; i < st->nstreams; i++)
		if (st->streams[i].id == id)
			return &st->streams[i];
	v = realloc(st->streams, (st->nstreams + 1) * sizeof *v);
	if (!v)
		return NULL;
	st->streams = v;
	v = &st->streams[st->nstreams++];
	memset(v, 0, sizeof *v);
	v->id = id;
	v->min = UINT64_MAX;
	return v;
}

/* stream_mark records seq; returns true if it had been seen already. */
static bool stream_mark(struct stream_track *t, uint64_t seq, bool *tracked)
{
	uint64_t byte = seq / 8, need;
	uint8_t *p;

	*tracked = false;
	if (seq >= SEQ_TRACK_MAX)
		return false;
	if (byte >= t->seen_bytes) {
		need = byte + 1 > 2 * t->seen_bytes ? byte + 1 : 2 * t->seen_bytes;
		if (!(p = realloc(t->seen, need)))
			return false;
		memset(p + t->seen_bytes, 0, need - t->seen_bytes);
		t->seen = p;
		t->seen_bytes = need;
	}
	*tracked = true;
	if (t->seen[byte] & (1u << (seq % 8)))
		return true;
	t->seen[byte] |= (uint8_t)(1u << (seq % 8));
	return false;
}

/* stream_order: within one lane, sequence numbers must only increase. */
static bool stream_order_ok(struct stream_track *t, uint8_t lane, uint64_t seq)
{
	bool ok = !t->lane_any[lane] || seq > t->lane_last[lane];

	t->lane_any[lane] = true;
	t->lane_last[lane] = seq;
	return ok;
}

static void sub_anomaly(struct sub_state *st, const char *what,
                        const tsm_msg *m, uint64_t seq)
{
	if (++st->anomalies > ANOMALY_PRINT_MAX)
		return;
	char seqs[24] = "?";

	if (seq != UINT64_MAX)
		snprintf(seqs, sizeof seqs, "%" PRIu64, seq);
	fprintf(stderr, "tsm sub: %s: topic=%s seq=%s prio=%u size=%zu%s\n",
	        what, tsm_msg_topic(m), seqs, tsm_msg_priority(m), tsm_msg_size(m),
	        st->anomalies == ANOMALY_PRINT_MAX ? " (further ones not shown)" : "");
}

/* sub_verify checks one message; returns a word for the per-message line. */
static const char *sub_verify(struct sub_state *st, const tsm_msg *m,
                              struct pl_hdr *h)
{
	struct stream_track *t;
	bool tracked;

	if (!pl_parse(tsm_msg_data(m), tsm_msg_size(m), h)) {
		st->corrupt++;
		sub_anomaly(st, "CORRUPT payload (bad magic, size or checksum)", m,
		            UINT64_MAX);
		return "CORRUPT";
	}
	st->lane[h->prio]++;
	if (!(t = stream_get(st, h->stream)))
		return "untracked";
	if (h->prio != tsm_msg_priority(m)) {
		st->prio_mismatch++;
		sub_anomaly(st, "PRIORITY differs from the sender's", m, h->seq);
	}
	if (stream_mark(t, h->seq, &tracked)) {
		st->dup++;
		sub_anomaly(st, "DUPLICATE", m, h->seq);
		return "DUP";
	}
	st->untracked += !tracked;
	t->distinct++;
	t->min = h->seq < t->min ? h->seq : t->min;
	t->max = h->seq > t->max ? h->seq : t->max;
	if (!stream_order_ok(t, h->prio, h->seq)) {
		st->order++;
		sub_anomaly(st, "OUT OF ORDER in its lane", m, h->seq);
		return "ORDER";
	}
	return "ok";
}

/* Short printable payloads are shown; others are summarised. */
static void sub_print_data(const tsm_msg *m)
{
	const unsigned char *d = tsm_msg_data(m);
	size_t n = tsm_msg_size(m);

	if (n > 64)
		return;
	for (size_t i = 0; i < n; i++)
		if (d[i] < 0x20 || d[i] > 0x7e)
			return;
	printf(" data=\"%.*s\"", (int)n, (const char *)d);
}

static void sub_handle(struct sub_state *st, const struct sub_cfg *c,
                       const tsm_msg *m)
{
	struct pl_hdr h;
	const char *verdict = NULL;

	st->received++;
	st->bytes += tsm_msg_size(m);
	if (c->verify)
		verdict = sub_verify(st, m, &h);
	else
		st->lane[tsm_msg_priority(m) & TSM_PRIO_MAX]++;
	if (c->quiet)
		return;
	printf("sub: topic=%s prio=%u size=%zu", tsm_msg_topic(m),
	       tsm_msg_priority(m), tsm_msg_size(m));
	if (verdict && strcmp(verdict, "CORRUPT") != 0)
		printf(" stream=%08" PRIx32 " seq=%" PRIu64, h.stream, h.seq);
	if (verdict)
		printf(" %s\n", verdict);
	else {
		sub_print_data(m);
		putchar('\n');
	}
}

static uint64_t sub_gaps(const struct sub_state *st)
{
	uint64_t gaps = 0;

	for (size_t i = 0; i < st->nstreams; i++) {
		const struct stream_track *t = &st->streams[i];

		if (t->distinct)
			gaps += (t->max - t->min + 1) - t->distinct;
	}
	return gaps;
}

static void sub_lanes(const struct sub_state *st, char *out, size_t len)
{
	size_t off = 0;

	out[0] = '\0';
	for (unsigned i = 0; i <= TSM_PRIO_MAX && off < len; i++)
		if (st->lane[i])
			off += (size_t)snprintf(out + off, len - off, "%s%u:%" PRIu64,
			                        off ? "," : "", i, st->lane[i]);
	if (!off)
		snprintf(out, len, "none");
}

/* sub_summary prints the line scripts parse; returns true if all passed. */
static bool sub_summary(const struct sub_state *st, const struct sub_cfg *c)
{
	char lanes[256];
	uint64_t gaps = c->verify ? sub_gaps(st) : 0;
	double secs = (double)(tsm_now() - st->t0) / 1e9;
	bool ok = !st->dup && !st->corrupt && !st->order && !st->prio_mismatch &&
	          !gaps;

	sub_lanes(st, lanes, sizeof lanes);
	printf("sub: received=%" PRIu64 " bytes=%" PRIu64 " dup=%" PRIu64
	       " corrupt=%" PRIu64 " order_errors=%" PRIu64 " lanes=%s gaps=%"
	       PRIu64 " prio_mismatch=%" PRIu64 " streams=%zu verify=%s"
	       " elapsed_ms=%.0f\n",
	       st->received, st->bytes, st->dup, st->corrupt, st->order, lanes,
	       gaps, st->prio_mismatch, st->nstreams, c->verify ? "on" : "off",
	       secs * 1e3);
	fflush(stdout);
	if (st->untracked)
		fprintf(stderr, "tsm sub: note: %" PRIu64 " sequence numbers beyond "
		        "the duplicate tracker's range were not checked\n",
		        st->untracked);
	return ok;
}

/*
 * sub_loop receives until --count, --timeout-ms or a signal. recv waits in
 * slices of 100 ms so a signal is noticed promptly. Returns 0 or an exit
 * code for a receive error.
 */
static int sub_loop(tsm_sub *sub, const struct sub_cfg *c, struct sub_state *st)
{
	tsm_time end = c->timeout_ms ? st->t0 + ms_to_ns(c->timeout_ms) : TSM_NEVER;
	tsm_msg *m;
	tsm_err err;

	while (!g_stop && (c->count == 0 || st->received < c->count)) {
		tsm_time now = tsm_now();
		tsm_duration slice = 100 * TSM_MSEC;

		if (now >= end)
			break;
		if (end - now < slice)
			slice = end - now;
		err = tsm_sub_recv(sub, &m, slice);
		if (err == TSM_ETIMEDOUT)
			continue;
		if (err)
			return report("sub", "tsm_sub_recv", err, NULL);
		sub_handle(st, c, m);
		tsm_msg_free(m);
		if (!c->quiet)
			fflush(stdout);
	}
	return 0;
}

static int sub_open(tsm_sub **sub, tsm_ctx *ctx, const struct sub_cfg *c)
{
	tsm_qos q;
	tsm_err err;

	tsm_qos_init(&q);
	if (c->queue_depth)
		q.queue_depth = (uint32_t)c->queue_depth;
	err = tsm_sub_open(sub, ctx, c->pattern, &q);
	if (err)
		return report("sub", "tsm_sub_open", err, NULL);
	fprintf(stderr, "tsm sub: subscribed to '%s'\n", c->pattern);
	return 0;
}

/* Decides the exit status from what arrived; explains any failure. */
static int sub_verdict(const struct sub_state *st, const struct sub_cfg *c,
                       bool checks_ok)
{
	if (c->count && st->received < c->count) {
		fprintf(stderr, "tsm sub: FAILED: %" PRIu64 " of %" PRIu64
		        " messages arrived%s; check that the publisher runs and "
		        "waits for subscribers (tsm pub --wait-subs N), or raise "
		        "--timeout-ms\n", st->received, c->count,
		        g_stop ? " before the signal" : " before --timeout-ms");
		return EXIT_RUNTIME;
	}
	if (!checks_ok) {
		fprintf(stderr, "tsm sub: FAILED: verification found errors (see "
		        "the summary line and the messages above); this is a "
		        "transport or library fault: rerun with --verbose\n");
		return EXIT_RUNTIME;
	}
	return 0;
}

static void sub_state_free(struct sub_state *st)
{
	for (size_t i = 0; i < st->nstreams; i++)
		free(st->streams[i].seen);
	free(st->streams);
}

static int cmd_sub(int argc, char **argv)
{
	struct sub_cfg c;
	struct sub_state st = {0};
	tsm_ctx *ctx = NULL;
	tsm_sub *sub = NULL;
	bool ok;
	int rc;

	if ((rc = sub_parse(&c, argc, argv)))
		return rc;
	if ((rc = net_open("sub", &c.net, &ctx)))
		goto out;
	if ((rc = sub_open(&sub, ctx, &c)))
		goto out;
	st.t0 = tsm_now();
	rc = sub_loop(sub, &c, &st);
	ok = sub_summary(&st, &c);
	if (rc == 0)
		rc = sub_verdict(&st, &c, ok);
out:
	tsm_sub_close(sub);
	net_close("sub", &c.net, ctx);
	sub_state_free(&st);
	return rc;
}


/* ---- stat: live per-topic statistics -------------------------------------- */

static const char stat_help[] =
	"usage: tsm stat URL PATTERN [OPTIONS]\n"
	"\n"
	"Subscribes to PATTERN and prints, every --interval-ms, what this node\n"
	"delivered and lost per topic and priority lane: deadline misses, drops\n"
	"by reason, queue depth, and latency histograms (p50/p99/p99.9/max of\n"
	"publish-to-hand-over latency from the sender's timestamp on one host,\n"
	"of time spent in this node, and of deadline slack at hand-over).\n"
	"\n"
	"  --seconds N        stop after N seconds (default 10; 0 = until Ctrl-C)\n"
	"  --interval-ms MS   print every MS milliseconds (default 1000)\n"
	"  --listen URL, --connect URL   as for tsm sub\n"
	CLI_SEC_HELP
	"\n"
	"Exit 0 ok, 1 failure, 2 usage.\n";

static const struct option stat_longopts[] = {
	{"seconds", required_argument, NULL, 'n'},
	{"interval-ms", required_argument, NULL, OPT_TIMEOUT},
	NET_LONGOPTS,
	CLI_SEC_LONGOPTS,
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

struct stat_cfg {
	struct net_cfg net;
	const char *pattern;
	uint64_t seconds, interval_ms;
};

static int stat_parse(struct stat_cfg *c, int argc, char **argv)
{
	int opt, rc;
	uint64_t v;

	memset(c, 0, sizeof *c);
	c->seconds = 10;
	c->interval_ms = 1000;
	while ((opt = getopt_long(argc, argv, "n:vh", stat_longopts, NULL)) != -1) {
		if ((rc = net_option("stat", &c->net, opt, optarg)) >= 0) {
			if (rc)
				return rc;
			continue;
		}
		if (opt == 'h') {
			fputs(stat_help, stdout);
			exit(0);
		}
		if ((opt != 'n' && opt != OPT_TIMEOUT) || !parse_u64(optarg, &v, false))
			return usage_error("stat", "bad option or value", optarg);
		*(opt == 'n' ? &c->seconds : &c->interval_ms) = v;
	}
	if (c->interval_ms == 0)
		return usage_error("stat", "--interval-ms must be > 0", NULL);
	return take_positionals("stat", argc, argv, &c->net, false, &c->pattern);
}

static void stat_row(void *arg, const tsm_topic_stats *s)
{
	(void)arg;
	printf("%-24s %4u %9" PRIu64 " %7" PRIu64 " %7" PRIu64 " %7" PRIu64 " %6" PRIu64
	       "  %8.3f %8.3f %8.3f %8.3f  %8.3f %8.3f  %9.3f %9.3f\n",
	       s->topic, s->lane, s->delivered, s->deadline_missed,
	       s->dropped_queue_full, s->dropped_other, s->queued,
	       s->latency.p50_ns / 1e6, s->latency.p99_ns / 1e6,
	       s->latency.p999_ns / 1e6, s->latency.max_ns / 1e6,
	       s->local.p50_ns / 1e6, s->local.p99_ns / 1e6,
	       s->slack.p50_ns / 1e6, s->slack.p99_ns / 1e6);
}

static uint64_t stat_of(tsm_ctx *ctx, const char *name)
{
	uint64_t v = 0;
	tsm_stats_get(ctx, name, &v);
	return v;
}

/* Which transport carries this node's connections; for auto:// which
 * tier each took and the fallbacks on the way (docs/transports.md). */
static void stat_transport(tsm_ctx *ctx)
{
	static const char *const tier[] = {"-", "verbs", "efa", "shm", "tcp"};
	uint64_t chosen = stat_of(ctx, "transport.chosen");
	printf("transport %s", tsm_ctx_transport(ctx));
	if (stat_of(ctx, "transport.auto"))
		printf(": latest=%s connections verbs=%" PRIu64 " efa=%" PRIu64
		       " shm=%" PRIu64 " tcp=%" PRIu64 "; fallbacks=%" PRIu64
		       " (verbs %" PRIu64 ", efa %" PRIu64 ", shm %" PRIu64 ")",
		       chosen < 5 ? tier[chosen] : "?",
		       stat_of(ctx, "transport.chosen_verbs"),
		       stat_of(ctx, "transport.chosen_efa"),
		       stat_of(ctx, "transport.chosen_shm"),
		       stat_of(ctx, "transport.chosen_tcp"),
		       stat_of(ctx, "transport.fallbacks"),
		       stat_of(ctx, "transport.fallback_verbs"),
		       stat_of(ctx, "transport.fallback_efa"),
		       stat_of(ctx, "transport.fallback_shm"));
	printf("\n");
}

static void stat_table(tsm_ctx *ctx)
{
	stat_transport(ctx);
	printf("%-24s %4s %9s %7s %7s %7s %6s  %8s %8s %8s %8s  %8s %8s  %9s %9s\n",
	       "topic", "lane", "delivered", "missed", "q_full", "other", "queued",
	       "lat_p50", "lat_p99", "lat_p999", "lat_max", "node_p50", "node_p99",
	       "slack_p50", "slack_p99");
	tsm_stats_topics(ctx, stat_row, NULL);
	printf("(times in ms)\n");
	fflush(stdout);
}

static int cmd_stat(int argc, char **argv)
{
	struct stat_cfg c;
	tsm_ctx *ctx = NULL;
	tsm_sub *sub = NULL;
	tsm_err err;
	int rc;

	if ((rc = stat_parse(&c, argc, argv)))
		return rc;
	if ((rc = net_open("stat", &c.net, &ctx)))
		goto out;
	if ((err = tsm_sub_open(&sub, ctx, c.pattern, NULL))) {
		rc = report("stat", "tsm_sub_open", err, c.pattern);
		goto out;
	}
	tsm_time end = c.seconds ? tsm_now() + (tsm_time)c.seconds * TSM_SEC : TSM_NEVER;
	tsm_time next = tsm_now() + ms_to_ns(c.interval_ms);
	while (!g_stop && tsm_now() < end) {
		tsm_msg *m;
		if (tsm_sub_recv(sub, &m, 10 * TSM_MSEC) == TSM_OK)
			tsm_msg_free(m);
		if (tsm_now() >= next) {
			stat_table(ctx);
			next += ms_to_ns(c.interval_ms);
		}
	}
	stat_table(ctx);
out:
	tsm_sub_close(sub);
	net_close("stat", &c.net, ctx);
	return rc;
}

/* ---- peers --------------------------------------------------------------- */

static const char peers_help[] =
	"usage: tsm peers [OPTIONS] [SEED-URL]\n"
	"\n"
	"Join through seeds, listen to the gossip, and list the nodes this one\n"
	"knows: identity, state, transport, URL and topic adverts. Only nodes\n"
	"whose topics this identity may use are shown to it (policy). With\n"
	"--watch it stays up as a node (a seed, say) and prints the list again\n"
	"every interval until signalled.\n"
	"\n"
	"  --wait-ms T        how long to gossip before printing (default 2000)\n"
	"  -n, --count N      print as soon as N other nodes are known; exit 1\n"
	"                     if fewer are known after --wait-ms\n"
	"  --watch MS         keep running, print every MS ms\n"
	NET_HELP
	"  -h, --help         this text\n"
	"\n"
	CLI_SEC_HELP
	"\n"
	"Prints 'peer: node=ID identity=ID state=S transport=T url=U pub=N sub=N\n"
	"heard_ms=N' per node, then 'peers: known=N connected=N'.\n"
	"Exit 0 ok, 1 failure, 2 usage.\n";

static const struct option peers_longopts[] = {
	{"wait-ms", required_argument, NULL, OPT_TIMEOUT},
	{"count", required_argument, NULL, 'n'},
	{"watch", required_argument, NULL, OPT_WATCH},
	NET_LONGOPTS,
	CLI_SEC_LONGOPTS,
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

struct peers_cfg {
	struct net_cfg net;
	uint64_t wait_ms, count, watch_ms;
};

static int peers_parse(struct peers_cfg *c, int argc, char **argv)
{
	int opt, rc;
	uint64_t v;

	memset(c, 0, sizeof *c);
	c->wait_ms = 2000;
	while ((opt = getopt_long(argc, argv, "n:vh", peers_longopts, NULL)) != -1) {
		if ((rc = net_option("peers", &c->net, opt, optarg)) >= 0) {
			if (rc)
				return rc;
			continue;
		}
		if (opt == 'h') {
			fputs(peers_help, stdout);
			exit(0);
		}
		if ((opt != 'n' && opt != OPT_TIMEOUT && opt != OPT_WATCH) ||
		    !parse_u64(optarg, &v, false))
			return usage_error("peers", "bad option or value", optarg);
		*(opt == 'n' ? &c->count : opt == OPT_WATCH ? &c->watch_ms
		                                             : &c->wait_ms) = v;
	}
	if (argc - optind > 1)
		return usage_error("peers", "too many arguments from", argv[optind + 1]);
	if (argc - optind == 1 &&
	    (rc = net_add("peers", c->net.connect, &c->net.nconnect, argv[optind])))
		return rc;
	if (c->net.nlisten + c->net.nconnect == 0 && !c->net.beacon)
		return usage_error("peers", "give a seed URL (or --listen/--seed/--beacon)",
		                   NULL);
	return 0;
}

#define PEERS_MAX 1024

/* Lists the known nodes; returns how many besides this one. */
static size_t peers_list(tsm_ctx *ctx, tsm_peer_info *v, bool print)
{
	size_t n = 0, connected = 0;
	tsm_err err = tsm_ctx_peers(ctx, v, PEERS_MAX, &n);
	if (err) {
		report("peers", "tsm_ctx_peers", err, NULL);
		return 0;
	}
	size_t shown = n < PEERS_MAX ? n : PEERS_MAX;
	for (size_t i = 0; i < shown; i++) {
		connected += strcmp(v[i].state, "connected") == 0;
		if (print)
			printf("peer: node=%016" PRIx64 " identity=%s state=%s "
			       "transport=%s url=%s pub=%u sub=%u heard_ms=%" PRId64 "\n",
			       v[i].node_id, *v[i].identity ? v[i].identity : "-",
			       v[i].state, *v[i].transport ? v[i].transport : "-",
			       *v[i].url ? v[i].url : "-", v[i].npub, v[i].nsub,
			       v[i].heard_ms);
	}
	if (print) {
		printf("peers: known=%zu connected=%zu\n", n ? n - 1 : 0, connected);
		fflush(stdout);
	}
	return n ? n - 1 : 0;
}

static int cmd_peers(int argc, char **argv)
{
	struct peers_cfg c;
	tsm_ctx *ctx = NULL;
	int rc = peers_parse(&c, argc, argv);
	if (rc)
		return rc;
	tsm_peer_info *v = calloc(PEERS_MAX, sizeof(*v));
	if (!v)
		return report("peers", "calloc", TSM_ENOMEM, NULL);
	if ((rc = net_open("peers", &c.net, &ctx))) {
		free(v);
		return rc;
	}
	tsm_time end = tsm_now() + ms_to_ns(c.wait_ms);
	size_t known = 0;
	while (!g_stop && tsm_now() < end &&
	       (c.count == 0 || (known = peers_list(ctx, v, false)) < c.count))
		nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
	known = peers_list(ctx, v, true);
	if (c.count && known < c.count) {
		fprintf(stderr, "tsm peers: %zu of %" PRIu64 " nodes known after "
		        "%" PRIu64 " ms\n", known, c.count, c.wait_ms);
		rc = EXIT_FAILURE;
	}
	while (c.watch_ms && !g_stop) {
		tsm_time next = tsm_now() + ms_to_ns(c.watch_ms);
		while (!g_stop && tsm_now() < next)
			nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
		if (!g_stop)
			peers_list(ctx, v, true);
	}
	net_close("peers", &c.net, ctx);
	free(v);
	return rc;
}

/* ---- main ---------------------------------------------------------------- */

static const char main_help[] =
	"usage: tsm COMMAND [OPTIONS]\n"
	"\n"
	"The libtsm command-line tool.\n"
	"\n"
	"Commands:\n"
	"  pub URL TOPIC      publish self-checking messages (tsm pub --help)\n"
	"  sub URL PATTERN    receive and optionally verify them (tsm sub --help)\n"
	"  stat URL PATTERN   live per-topic latency, misses and drops (tsm stat --help)\n"
	"  peers [SEED-URL]   the nodes discovery knows of (tsm peers --help)\n"
	"  pki init DIR       make a development PKI: CAs, certificates, policy\n"
	"  pki issue DIR NAME add a certificate to it (tsm pki --help)\n"
	"\n"
	"  -h, --help         this text\n"
	"  -V, --version      print the library version\n"
	"\n"
	"Example (once, then two shells):\n"
	"  tsm pki init ./pki\n"
	"  tsm sub tcp://127.0.0.1:5555 'demo/**' --pki ./pki --name sub --verify --count 10\n"
	"  tsm pub tcp://127.0.0.1:5555 demo/hello --pki ./pki --name pub --count 10 --wait-subs 1\n"
	"\n"
	"Sessions are mutual TLS 1.3 with SPIFFE identities and per-topic policy;\n"
	"--insecure (on every peer) turns all of it off. TSM_PKI_DIR=DIR stands in\n"
	"for --pki DIR. Set TSM_NO_URING=1 to use the epoll engine instead of io_uring.\n";

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	signals_install();
	if (!cmd) {
		fputs(main_help, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		fputs(main_help, stdout);
		return 0;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		printf("tsm %s (headers %s)\n", tsm_version(), TSM_VERSION_STRING);
		return 0;
	}
	/* getopt sees "pub ..." with the command name as its argv[0]. */
	if (!strcmp(cmd, "pub"))
		return cmd_pub(argc - 1, argv + 1);
	if (!strcmp(cmd, "sub"))
		return cmd_sub(argc - 1, argv + 1);
	if (!strcmp(cmd, "pki"))
		return cli_pki_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "stat"))
		return cmd_stat(argc - 1, argv + 1);
	if (!strcmp(cmd, "peers"))
		return cmd_peers(argc - 1, argv + 1);
	fprintf(stderr, "tsm: unknown command '%s': use 'pub', 'sub', 'stat', 'peers' or 'pki' "
	        "(run 'tsm --help' for usage)\n", cmd);
	return EXIT_USAGE;
}
