/*
 * bench/fan.h - the fan-out case (S1) shared by its raw floor
 * (raw_fanout) and its libtsm run (tsm_fanout): options, what the
 * publisher and its N subscriber processes share, the paced or
 * full-speed publishing loop and the result line.
 *
 *   cost  the publisher sends count messages as fast as the transport
 *         takes them; every subscriber checks every sequence number. The
 *         result is the publisher process's CPU time per message
 *         (CLOCK_PROCESS_CPUTIME_ID: every thread, the library's too) and
 *         the rate at which the slowest subscriber got them all.
 *   lat   the publisher sends at a fixed rate (1 kHz) and each subscriber
 *         takes, per message, its one-way latency: its CLOCK_MONOTONIC at
 *         hand-over minus the publisher's at send, carried in the payload
 *         (one host, one clock). The latencies of subscribers 1..N-1 are
 *         pooled; subscriber 0 is left out because --stalled makes it the
 *         one that subscribes and never reads, so that runs with and
 *         without the stall compare the same N-1 subscribers.
 *
 * Threading: one thread per process uses these; the shared block is
 * atomics (and each subscriber's own slice of samples).
 */
#ifndef BENCH_FAN_H
#define BENCH_FAN_H

#include <getopt.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define FAN_MAX 16
#define FAN_HDR 16 /* payload: sequence number, send time */
#define FAN_QUIET_NS ((int64_t)5000000000) /* a subscriber gives up */

struct fan_opts {
	int lat;          /* 0: cost, 1: lat */
	uint64_t subs;
	size_t size;
	uint64_t count;   /* cost: messages */
	uint64_t rate;    /* lat: messages per second */
	uint64_t iters;   /* lat: sampled messages */
	uint64_t warmup;  /* lat: messages before the samples */
	int stalled;      /* subscriber 0 never reads */
	double max_secs;  /* the publisher stops early past it; 0 = none */
	int pin;
};

struct fan_sub {
	_Atomic uint64_t rcvd;
	_Atomic uint64_t bad;     /* a wrong size or sequence number */
	_Atomic uint64_t gaps;    /* sequence numbers never seen */
	_Atomic int64_t t_end;    /* its clock at its last message */
	_Atomic uint64_t drops;   /* counted by its transport or library */
	_Atomic int done;         /* 1 ok, -1 failed */
};

struct fan_shared {
	_Atomic int stop;         /* the publisher sent its last message */
	_Atomic uint64_t sent;
	struct fan_sub sub[FAN_MAX];
	int64_t samples[];        /* lat: subs x iters, row per subscriber */
};

/* What the publisher measured. */
struct fan_result {
	uint64_t sent;
	int64_t t_start, t_pub_end;
	int64_t cpu_ns;           /* publisher process, whole run */
	int capped;
};

/*
 * The transport's one publish: message seq, already stamped in buf.
 * Called once more with buf NULL after the last message, for a transport
 * that batches to send what it holds. Returns 0 or -1 (the run fails).
 */
typedef int (*fan_publish_fn)(void *arg, const unsigned char *buf,
                              uint64_t seq);

enum {
	FAN_OPT_SUBS = 0x300,
	FAN_OPT_SIZE,
	FAN_OPT_COUNT,
	FAN_OPT_RATE,
	FAN_OPT_ITERS,
	FAN_OPT_WARMUP,
	FAN_OPT_STALLED,
	FAN_OPT_MAX_SECS,
	FAN_OPT_NO_PIN,
};

#define FAN_LONGOPTS                                                    \
	{"subs", required_argument, NULL, FAN_OPT_SUBS},                \
	{"size", required_argument, NULL, FAN_OPT_SIZE},                \
	{"count", required_argument, NULL, FAN_OPT_COUNT},              \
	{"rate", required_argument, NULL, FAN_OPT_RATE},                \
	{"iters", required_argument, NULL, FAN_OPT_ITERS},              \
	{"warmup", required_argument, NULL, FAN_OPT_WARMUP},            \
	{"stalled", no_argument, NULL, FAN_OPT_STALLED},                \
	{"max-secs", required_argument, NULL, FAN_OPT_MAX_SECS},        \
	{"no-pin", no_argument, NULL, FAN_OPT_NO_PIN}

#define FAN_USAGE                                                       \
	" cost [--subs N] [--size B] [--count N]\n"                      \
	"       %s lat [--subs N] [--size B] [--rate HZ] [--iters N]\n"  \
	"           [--warmup N] [--stalled]\n"                          \
	"       common: [--max-secs S] [--no-pin]\n"

/*
 * fan_parse reads the mode (argv[1]) and the fan options; other options
 * go to extra (may be NULL), which returns 0 when it took one. Returns 0
 * or -1.
 */
int fan_parse(int argc, char **argv, const struct option *lo,
              struct fan_opts *o, int (*extra)(int c, const char *arg));

/* fan_shared_map maps the shared block with room for the samples. */
struct fan_shared *fan_shared_map(const struct fan_opts *o);

/*
 * fan_run publishes: count messages at full speed (cost) or warm-up +
 * iters paced at rate (lat), each stamped with its sequence number and
 * send time; then tells the subscribers how many and waits until each
 * active one has them all (or FAN_QUIET_NS passes). Returns 0 or -1.
 */
int fan_run(const struct fan_opts *o, struct fan_shared *sh,
            fan_publish_fn fn, void *arg, struct fan_result *r);

/* fan_sub_check: subscriber i's checks of one received payload. */
void fan_sub_check(const struct fan_opts *o, struct fan_shared *sh, int i,
                   const void *data, size_t len, int64_t now);

/* fan_sub_done: 1 once the publisher stopped and i has all it sent. */
int fan_sub_done(struct fan_shared *sh, int i);

/* fan_active: 1 when subscriber i reads (it is not the stalled one). */
int fan_active(const struct fan_opts *o, int i);

/*
 * fan_report prints "<tag>: case=fanout mode=cost|lat subs=N ..." with
 * extra (may be "") after the mode. Returns 0, or -1 when a subscriber
 * lost, corrupted or reordered a message.
 */
int fan_report(const char *tag, const char *extra, const struct fan_opts *o,
               struct fan_shared *sh, const struct fan_result *r);

#endif
