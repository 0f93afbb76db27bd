/*
 * bench/mix.h - the urgent-behind-bulk case (P1, P2) shared by its raw
 * floor (raw_prio) and its libtsm run (tsm_prio): options, what the two
 * processes share, the paced urgent round trips and the result line.
 *
 * A (the parent) sends a small urgent message at a fixed rate and waits
 * for B to echo it back, one CLOCK_MONOTONIC sample per round trip,
 * while a second thread of A streams large bulk messages to B as fast as
 * the transport takes them. B checks every sequence number of both.
 *
 * Threading: mix_urgent_run runs on A's urgent thread; the shared block
 * is atomics only, written by both processes.
 */
#ifndef BENCH_MIX_H
#define BENCH_MIX_H

#include <getopt.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define MIX_ECHO_TIMEOUT_NS ((int64_t)2000000000) /* later = lost */
#define MIX_HDR 16 /* urgent and bulk payloads start with seq, send time */

struct mix_opts {
	size_t urgent_size;   /* bytes of each urgent message */
	size_t bulk_size;     /* bytes of each bulk message */
	uint64_t rate;        /* urgent messages per second */
	uint64_t iters;       /* sampled urgent round trips */
	uint64_t warmup;      /* urgent round trips before the samples */
	double max_secs;      /* time budget of the urgent phase, 0 = none */
	int pin;
	int no_bulk;          /* urgent alone, for reference */
	int naive;            /* raw only: urgent and bulk on one connection */
	const char *addr;     /* IPv4 address A listens on */
	const char *netns_b;  /* B enters this network namespace */
};

struct mix_shared {
	/* A to B */
	_Atomic int stop;            /* A sent its last message */
	_Atomic uint64_t urgent_sent;
	_Atomic uint64_t bulk_sent;
	_Atomic int bulk_stop;       /* A's urgent thread to its bulk thread */
	/* B to A */
	_Atomic uint64_t urgent_rcvd;
	_Atomic uint64_t urgent_gaps; /* sequence numbers B never saw */
	_Atomic uint64_t bulk_rcvd;
	_Atomic uint64_t bulk_gaps;  /* bulk sequence numbers B never saw */
	_Atomic uint64_t bulk_bytes;
	_Atomic int bad;             /* a wrong size, a duplicate, reordering */
};

/* What A's urgent thread measured. */
struct mix_result {
	uint64_t sent;      /* urgent messages sent */
	uint64_t lost;      /* of which no echo came back in time */
	uint64_t stale;     /* echoes that came back after their time-out */
	uint64_t samples;
	int capped;         /* stopped by max_secs before iters samples */
	int64_t t0, t1;     /* the sampled window */
	uint64_t bulk_b0, bulk_b1; /* B's bulk bytes at its edges */
};

/*
 * One urgent exchange: send message seq (buf, already stamped), wait at
 * most MIX_ECHO_TIMEOUT_NS for its echo, discarding older echoes (count
 * them in *stale). Returns 0 (echoed), 1 (timed out) or -1 (broken).
 */
typedef int (*mix_exchange_fn)(void *arg, unsigned char *buf, uint64_t seq,
                               uint64_t *stale);

/* getopt_long codes, above any letter and the credential options. */
enum {
	MIX_OPT_URGENT = 0x200,
	MIX_OPT_BULK,
	MIX_OPT_RATE,
	MIX_OPT_ITERS,
	MIX_OPT_WARMUP,
	MIX_OPT_MAX_SECS,
	MIX_OPT_NO_PIN,
	MIX_OPT_NO_BULK,
	MIX_OPT_NAIVE,
	MIX_OPT_ADDR,
	MIX_OPT_NETNS_B,
};

#define MIX_LONGOPTS                                                    \
	{"urgent-size", required_argument, NULL, MIX_OPT_URGENT},       \
	{"bulk-size", required_argument, NULL, MIX_OPT_BULK},           \
	{"rate", required_argument, NULL, MIX_OPT_RATE},                \
	{"iters", required_argument, NULL, MIX_OPT_ITERS},              \
	{"warmup", required_argument, NULL, MIX_OPT_WARMUP},            \
	{"max-secs", required_argument, NULL, MIX_OPT_MAX_SECS},        \
	{"no-pin", no_argument, NULL, MIX_OPT_NO_PIN},                  \
	{"no-bulk", no_argument, NULL, MIX_OPT_NO_BULK},                \
	{"addr", required_argument, NULL, MIX_OPT_ADDR},                \
	{"netns-b", required_argument, NULL, MIX_OPT_NETNS_B}

#define MIX_USAGE                                                       \
	"        [--urgent-size B] [--bulk-size B] [--rate HZ] [--iters N]\n" \
	"        [--warmup N] [--max-secs S] [--no-bulk] [--no-pin]\n"  \
	"        [--addr IPV4] [--netns-b NAME]\n"

/* mix_opts_init fills the defaults: 64 B at 1 kHz behind 1 MiB bulk. */
void mix_opts_init(struct mix_opts *o);

/* mix_opt takes option c: 0 taken, 1 not a mix option, -1 bad value. */
int mix_opt(int c, const char *arg, struct mix_opts *o);

/* mix_opts_check: 0, or -1 after saying what is wrong. */
int mix_opts_check(const struct mix_opts *o);

/*
 * mix_urgent_run paces warm-up + iters urgent exchanges at o->rate,
 * stamping each message with its sequence number and send time, and
 * puts the sampled round trips in samples (o->iters of them at most).
 * It stops early once max_secs has passed. Returns 0, or -1 when an
 * exchange broke.
 */
int mix_urgent_run(const struct mix_opts *o, struct mix_shared *sh,
                   mix_exchange_fn fn, void *arg, int64_t *samples,
                   struct mix_result *r);

/*
 * mix_b_urgent / mix_b_bulk: B's checks of one received message; they
 * update the shared counters and set bad on a wrong size or a sequence
 * number that goes back. Skipped sequence numbers are counted as gaps
 * (lost messages), and B goes on, so that one loss is not followed by
 * others that only the checking caused.
 */
void mix_b_urgent(struct mix_shared *sh, const void *data, size_t len,
                  size_t want);
void mix_b_bulk(struct mix_shared *sh, const void *data, size_t len,
                size_t want);

/* mix_b_done: 1 once A has stopped and B has all it sent. */
int mix_b_done(struct mix_shared *sh);

/*
 * mix_report prints "<tag>: case=prio mode=<mode> ..." with the
 * percentiles, losses and the bulk rate over the sampled window; extra
 * (may be "") follows mode as is. Printed for failed runs too, so that
 * what was measured before the failure is seen.
 */
void mix_report(const char *tag, const char *mode, const char *extra,
                const struct mix_opts *o, int64_t *samples,
                const struct mix_result *r, struct mix_shared *sh);

/* mix_failed: 1 when the run lost, corrupted or reordered a message. */
int mix_failed(const struct mix_result *r, struct mix_shared *sh);

#endif
