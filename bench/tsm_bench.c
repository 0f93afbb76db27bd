/*
 * bench/tsm_bench.c - the raw_tcp cases, through the libtsm public API.
 *
 * Two processes, as raw_tcp: the parent (A, CPU 0) opens a context that
 * listens on tcp://127.0.0.1:<port> and sends the listen URL down a pipe;
 * the child (B, CPU 1) dials it. Each pins itself before opening its
 * context, so the library's threads inherit the CPU.
 *
 *   rt      A publishes "bench/ping", B's subscriber echoes each message
 *           on "bench/pong", A receives it: one sample per round trip,
 *           after a warm-up. --busy opens both contexts with
 *           TSM_PROGRESS_BUSY_POLL. Both sides send on the message they
 *           received (tsm_publish_msg), as the raw floors send back the
 *           buffer they received: a pipeline stage's path, without a copy
 *           where libtsm can hand the payload over. --ping-copy makes A
 *           publish from its own buffer instead (tsm_publish: one copy).
 *   stream  A publishes count messages on "bench/stream" as fast as
 *           tsm_publish takes them (default reliable QoS, blocking
 *           back-pressure). B receives them, checks every size and
 *           sequence number, and takes the time of the last one; any
 *           loss or reordering fails the run.
 *
 * --max-secs bounds a run's time: A stops early, tells B through shared
 * memory how many messages it sent, and reports what it measured; this
 * keeps bench/run.sh within its time even when a mode is pathologically
 * slow, while still checking that every message sent arrived.
 *
 * Both sides wait for the session (tsm_ctx_wait_peers) and for the remote
 * subscription (tsm_pub_wait_subscribers) before anything is measured.
 * Contexts are insecure unless --secure is given with credentials.
 *
 * Output, parsed by bench/run.sh:
 *   tsm: case=rt mode=blocking transport=io_uring secure=0 size=64 ...
 *   tsm: case=stream mode=blocking transport=... msgs_per_s=... ...
 */
#include "bench_util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tsm/tsm.h>

#define TB_URL_MAX 256
#define TB_SETUP_TIMEOUT (10 * TSM_SEC) /* session and subscription */
#define TB_RECV_TIMEOUT (10 * TSM_SEC)  /* a message this late is lost */
#define TB_RECV_SLICE (50 * TSM_MSEC)   /* how often B looks for A's stop */
#define TB_MIN_SAMPLES 100 /* a time budget still leaves this many */
#define TB_FLUSH_TIMEOUT (60 * TSM_SEC)
#define TB_MAX_QUEUE_FULL 10 /* consecutive block_timeouts before giving up */

struct tb_opts {
	int stream;
	int busy;
	int recv_spin;   /* poll tsm_sub_recv with timeout 0 */
	int ping_copy;   /* rt: A publishes from its buffer, not the pong */
	int pin;
	int stats;       /* print every counter at the end */
	int port;        /* 0: let the kernel choose */
	double max_secs; /* time budget of a run, 0 = none */
	size_t size;
	uint64_t iters, warmup, count;
	int secure;
	const char *cert, *key, *trust, *policy;
	const char *cert_b, *key_b; /* B's identity; defaults to A's */
	const char *url;  /* --url: A listens there (a %d takes a free port) */
};

/* ---- errors and stats ---- */

static void tb_fail(const char *who, const char *what, tsm_err e)
{
	fprintf(stderr, "tsm_bench %s: %s: %s (%s) %s\n", who, what,
	        tsm_err_name(e), tsm_strerror(e), tsm_err_detail());
}

static void tb_stat_line(void *arg, const char *name, uint64_t value)
{
	const int *all = arg;

	if (*all || value != 0)
		fprintf(stderr, "  stat %s = %llu\n", name,
		        (unsigned long long)value);
}

/* Non-zero counters say where a lost message went; all with --stats. */
static void tb_dump_stats(tsm_ctx *ctx, const char *who, int all)
{
	if (!ctx)
		return;
	fprintf(stderr, "tsm_bench %s: counters%s:\n", who,
	        all ? "" : " (non-zero)");
	tsm_stats_foreach(ctx, tb_stat_line, &all);
}

/* ---- context ---- */

static tsm_err tb_ctx_open(tsm_ctx **ctx, const struct tb_opts *o, int is_b,
                           const char *listen, const char *connect)
{
	tsm_ctx_params p;

	tsm_ctx_params_init(&p);
	p.name = is_b ? "bench-b" : "bench-a";
	p.listen[0] = listen;
	p.connect[0] = connect;
	p.progress = o->busy ? TSM_PROGRESS_BUSY_POLL : TSM_PROGRESS_BLOCKING;
	p.insecure = !o->secure;
	if (o->secure) {
		p.cert_file = is_b && o->cert_b ? o->cert_b : o->cert;
		p.key_file = is_b && o->key_b ? o->key_b : o->key;
		p.trust_file = o->trust;
		p.policy_file = o->policy;
	}
	return tsm_ctx_open(ctx, &p);
}

/* A: open the context and learn the URL that B must dial. */
static tsm_err tb_open_a(tsm_ctx **ctx, const struct tb_opts *o, char *url)
{
	tsm_err e;

	if (o->url) { /* e.g. ofi+tcp://127.0.0.1:%d or ofi+shm://tsmb%d */
		/* Other jobs on the machine may hold the port: try the next. */
		for (int k = 0; k < 16; k++) {
			snprintf(url, TB_URL_MAX, o->url, 20000 + (getpid() + k * 977) % 20000);
			e = tb_ctx_open(ctx, o, 0, url, NULL);
			if (e != TSM_ERR_ADDR_IN_USE)
				break;
		}
		return e;
	}
	if (o->port) {
		snprintf(url, TB_URL_MAX, "tcp://127.0.0.1:%d", o->port);
		return tb_ctx_open(ctx, o, 0, url, NULL);
	}
	e = tb_ctx_open(ctx, o, 0, NULL, NULL);
	if (e == TSM_OK)
		e = tsm_ctx_listen(*ctx, "tcp://127.0.0.1:0", url, TB_URL_MAX);
	return e;
}

/* 1 when A has stopped early and B has the have messages A sent. */
static int tb_stopped(struct bench_shared *sh, uint64_t have)
{
	return sh && atomic_load(&sh->stop) && have >= atomic_load(&sh->sent);
}

/*
 * Receive one message, waiting at most TB_RECV_TIMEOUT. recv_spin polls
 * so the application thread spins as the raw busy floor's receiver does;
 * otherwise libtsm decides how to wait. B (sh not NULL) wakes every slice
 * to see whether A stopped early; *done then says there is no more.
 */
static tsm_err tb_recv(tsm_sub *sub, tsm_msg **m, const struct tb_opts *o,
                       struct bench_shared *sh, uint64_t have, int *done)
{
	int64_t until = bench_now_ns() + TB_RECV_TIMEOUT;
	tsm_duration slice = o->recv_spin ? 0 : sh ? TB_RECV_SLICE
	                                            : TB_RECV_TIMEOUT;
	tsm_err e;

	*done = 0;
	do {
		e = tsm_sub_recv(sub, m, slice);
		if (tsm_err_class(e) != TSM_ETIMEDOUT)
			return e;
		*done = tb_stopped(sh, have);
	} while (!*done && bench_now_ns() < until);
	return e;
}

/*
 * 1 once share of the time budget has passed since t0 and n (what was
 * measured so far) is at least TB_MIN_SAMPLES.
 */
static int tb_over_budget(const struct tb_opts *o, double share, int64_t t0,
                          uint64_t n)
{
	return o->max_secs > 0 && n >= TB_MIN_SAMPLES &&
	       (double)(bench_now_ns() - t0) / 1e9 > o->max_secs * share;
}

/* A: tell B how many messages it will get. */
static void tb_announce_end(struct bench_shared *sh, uint64_t sent)
{
	atomic_store(&sh->sent, sent);
	atomic_store(&sh->stop, 1);
}

/* ---- rt ---- */

/* B: echo warm-up + iters messages (or as many as A sent) to pong. */
static int rt_echo(tsm_ctx *ctx, const struct tb_opts *o,
                   struct bench_shared *sh)
{
	tsm_pub *pub = NULL;
	tsm_sub *sub = NULL;
	uint64_t total = o->warmup + o->iters, i = 0;
	int done = 0;
	tsm_err e;

	/* Know A's pong subscription before A can see ours and start. */
	if ((e = tsm_pub_open(&pub, ctx, "bench/pong", NULL)) ||
	    (e = tsm_pub_wait_subscribers(pub, 1, TB_SETUP_TIMEOUT)) ||
	    (e = tsm_sub_open(&sub, ctx, "bench/ping", NULL))) {
		tb_fail("B", "rt setup", e);
		goto out;
	}
	for (; i < total; i++) {
		tsm_msg *m;

		if ((e = tb_recv(sub, &m, o, sh, i, &done))) {
			if (!done)
				tb_fail("B", "recv ping", e);
			break;
		}
		/* Forward what came in, as a pipeline stage does and as the
		 * raw floors send back the buffer they received: no copy
		 * where libtsm can hand the payload over (tsm_publish_msg). */
		e = tsm_publish_msg(pub, m, NULL);
		if (e)
			tsm_msg_free(m);
		if (e) {
			tb_fail("B", "publish pong", e);
			break;
		}
	}
out:
	if (i < total && !done)
		fprintf(stderr, "tsm_bench B: echoed %llu of %llu\n",
		        (unsigned long long)i, (unsigned long long)total);
	tsm_sub_close(sub);
	tsm_pub_close(pub);
	return i == total || done ? 0 : -1;
}

/*
 * A: one round trip; returns 0 or -1 after saying why. The ping is the
 * last pong (*last, handed over by tsm_publish_msg) once there is one,
 * else buf; the new pong is kept in *last for the next round trip.
 */
static int rt_once(tsm_pub *pub, tsm_sub *sub, const void *buf,
                   tsm_msg **last, const struct tb_opts *o, uint64_t i)
{
	tsm_msg *m;
	tsm_err e;
	size_t got;
	int done;

	e = *last ? tsm_publish_msg(pub, *last, NULL)
	          : tsm_publish(pub, buf, o->size, NULL);
	if (e) {
		tb_fail("A", "publish ping", e);
		return -1;
	}
	*last = NULL; /* libtsm's now */
	if ((e = tb_recv(sub, &m, o, NULL, 0, &done))) {
		fprintf(stderr, "tsm_bench A: round trip %llu: no pong\n",
		        (unsigned long long)i);
		tb_fail("A", "recv pong", e);
		return -1;
	}
	got = tsm_msg_size(m);
	if (got != o->size) {
		fprintf(stderr, "tsm_bench A: pong of %zu bytes, sent %zu\n",
		        got, o->size);
		tsm_msg_free(m);
		return -1;
	}
	if (o->ping_copy)
		tsm_msg_free(m);
	else
		*last = m;
	return 0;
}

static void rt_report(tsm_ctx *ctx, const struct tb_opts *o,
                      int64_t *samples, uint64_t n)
{
	struct bench_lat l = bench_lat_compute(samples, n);

	printf("tsm: case=rt mode=%s transport=%s secure=%d size=%zu "
	       "iters=%llu capped=%d p50_us=%.2f p99_us=%.2f p999_us=%.2f "
	       "max_us=%.2f\n", o->busy ? "busy" : "blocking",
	       tsm_ctx_transport(ctx), o->secure, o->size,
	       (unsigned long long)n, n < o->iters, l.p50, l.p99, l.p999,
	       l.max);
}

static int rt_ping(tsm_ctx *ctx, const struct tb_opts *o,
                   struct bench_shared *sh)
{
	uint64_t warm = o->warmup, i = 0;
	int64_t start;
	int64_t *samples = calloc(o->iters, sizeof(int64_t));
	char *buf = calloc(1, o->size);
	tsm_msg *last = NULL; /* the pong to send back as the next ping */
	tsm_pub *pub = NULL;
	tsm_sub *sub = NULL;
	tsm_err e;
	int rc = -1;

	if (!samples || !buf)
		goto out;
	if ((e = tsm_sub_open(&sub, ctx, "bench/pong", NULL)) ||
	    (e = tsm_pub_open(&pub, ctx, "bench/ping", NULL)) ||
	    (e = tsm_pub_wait_subscribers(pub, 1, TB_SETUP_TIMEOUT))) {
		tb_fail("A", "rt setup", e);
		goto out;
	}
	start = bench_now_ns();
	for (; i < warm + o->iters; i++) {
		int64_t t0 = bench_now_ns();

		/* A slow mode gets a fifth of the budget to warm up. */
		if (i < warm && tb_over_budget(o, 0.2, start, i))
			warm = i;
		if (i >= warm && tb_over_budget(o, 1.0, start, i - warm))
			break;
		if (rt_once(pub, sub, buf, &last, o, i) < 0)
			goto out;
		if (i >= warm)
			samples[i - warm] = bench_now_ns() - t0;
	}
	rt_report(ctx, o, samples, i - warm);
	rc = 0;
out:
	tb_announce_end(sh, i);
	tsm_msg_free(last);
	tsm_pub_close(pub);
	tsm_sub_close(sub);
	free(buf);
	free(samples);
	return rc;
}

/* ---- stream ---- */

/* Publish one message, retrying while blocking back-pressure times out. */
static tsm_err stream_publish(tsm_pub *pub, const void *buf, size_t len,
                              uint64_t *queue_full)
{
	tsm_err e;
	int tries = 0;

	while ((e = tsm_publish(pub, buf, len, NULL)) == TSM_ERR_QUEUE_FULL &&
	       ++tries < TB_MAX_QUEUE_FULL)
		(*queue_full)++;
	return e;
}

/* A: publish count messages, each starting with its sequence number. */
static int stream_send(tsm_ctx *ctx, const struct tb_opts *o,
                       struct bench_shared *sh, uint64_t *queue_full)
{
	unsigned char *buf = malloc(o->size);
	tsm_pub *pub = NULL;
	tsm_err e;
	uint64_t seq = 0;

	if (!buf)
		return -1;
	memset(buf, 0xa5, o->size);
	if ((e = tsm_pub_open(&pub, ctx, "bench/stream", NULL)) ||
	    (e = tsm_pub_wait_subscribers(pub, 1, TB_SETUP_TIMEOUT))) {
		tb_fail("A", "stream setup", e);
		goto out;
	}
	atomic_store(&sh->t_start, bench_now_ns());
	for (; seq < o->count; seq++) {
		if (tb_over_budget(o, 1.0, sh->t_start, seq))
			break;
		bench_put_seq(buf, seq);
		if ((e = stream_publish(pub, buf, o->size, queue_full))) {
			fprintf(stderr, "tsm_bench A: message %llu refused\n",
			        (unsigned long long)seq);
			tb_fail("A", "publish", e);
			goto out;
		}
	}
	tb_announce_end(sh, seq);
	if ((e = tsm_pub_flush(pub, TB_FLUSH_TIMEOUT)))
		tb_fail("A", "flush", e);
out:
	tb_announce_end(sh, seq);
	tsm_pub_close(pub);
	free(buf);
	return e == TSM_OK ? 0 : -1;
}

/* B: 0 if m is message number n of the stream, else -1 after saying why. */
static int stream_check(const tsm_msg *m, const struct tb_opts *o,
                        uint64_t n)
{
	uint64_t seq;

	if (tsm_msg_size(m) != o->size) {
		fprintf(stderr, "tsm_bench B: message %llu has %zu bytes, "
		        "want %zu\n", (unsigned long long)n, tsm_msg_size(m),
		        o->size);
		return -1;
	}
	seq = bench_get_seq(tsm_msg_data(m));
	if (seq == n)
		return 0;
	fprintf(stderr, "tsm_bench B: got sequence %llu, expected %llu (%s)\n",
	        (unsigned long long)seq, (unsigned long long)n,
	        seq > n ? "messages lost" : "duplicate or reordered");
	return -1;
}

static int stream_recv(tsm_ctx *ctx, const struct tb_opts *o,
                       struct bench_shared *sh)
{
	tsm_sub *sub = NULL;
	tsm_err e;
	uint64_t n = 0;
	int done = 0;

	if ((e = tsm_sub_open(&sub, ctx, "bench/stream", NULL))) {
		tb_fail("B", "stream setup", e);
		return -1;
	}
	for (; n < o->count && !tb_stopped(sh, n); n++) {
		tsm_msg *m;
		int bad;

		if ((e = tb_recv(sub, &m, o, sh, n, &done))) {
			if (!done)
				tb_fail("B", "recv", e);
			break;
		}
		bad = stream_check(m, o, n);
		tsm_msg_free(m);
		if (bad)
			break;
	}
	atomic_store(&sh->t_end, bench_now_ns());
	atomic_store(&sh->received, n);
	done = n == o->count || tb_stopped(sh, n);
	if (!done)
		fprintf(stderr, "tsm_bench B: received %llu of %llu messages\n",
		        (unsigned long long)n,
		        (unsigned long long)(atomic_load(&sh->stop)
		                             ? atomic_load(&sh->sent) : o->count));
	tsm_sub_close(sub);
	return done ? 0 : -1;
}

static void stream_report(tsm_ctx *ctx, const struct tb_opts *o,
                          struct bench_shared *sh, uint64_t queue_full)
{
	double secs = (double)(atomic_load(&sh->t_end) -
	                       atomic_load(&sh->t_start)) / 1e9;
	uint64_t got = atomic_load(&sh->received);
	double mps = (double)got / secs;

	printf("tsm: case=stream mode=%s transport=%s secure=%d size=%zu "
	       "count=%llu received=%llu capped=%d queue_full=%llu secs=%.3f "
	       "msgs_per_s=%.0f mb_per_s=%.1f\n",
	       o->busy ? "busy" : "blocking", tsm_ctx_transport(ctx),
	       o->secure, o->size, (unsigned long long)o->count,
	       (unsigned long long)got, got < o->count,
	       (unsigned long long)queue_full, secs, mps,
	       mps * (double)o->size / 1e6);
}

/* ---- processes ---- */

/* B: read A's URL, dial it, run its half. Returns the exit status. */
static int tb_child(int rfd, const struct tb_opts *o,
                    struct bench_shared *sh)
{
	char url[TB_URL_MAX] = "";
	tsm_ctx *ctx = NULL;
	ssize_t r;
	tsm_err e;
	int rc = -1;

	if (o->pin)
		bench_pin(1);
	r = read(rfd, url, sizeof(url) - 1);
	if (r <= 0) {
		fprintf(stderr, "tsm_bench B: no URL from A\n");
		return 1;
	}
	if ((e = tb_ctx_open(&ctx, o, 1, NULL, url))) {
		tb_fail("B", "tsm_ctx_open", e);
		return 1;
	}
	if ((e = tsm_ctx_wait_peers(ctx, 1, TB_SETUP_TIMEOUT)))
		tb_fail("B", "wait for A", e);
	else
		rc = o->stream ? stream_recv(ctx, o, sh) : rt_echo(ctx, o, sh);
	if (rc < 0 || o->stats)
		tb_dump_stats(ctx, "B", o->stats);
	tsm_ctx_close(ctx);
	return rc == 0 ? 0 : 1;
}

/* A: listen, hand B the URL, measure, wait for B's verdict. */
static int tb_parent(int wfd, pid_t child, const struct tb_opts *o,
                     struct bench_shared *sh)
{
	char url[TB_URL_MAX] = "";
	tsm_ctx *ctx = NULL;
	uint64_t queue_full = 0;
	tsm_err e;
	int rc = -1;

	if ((e = tb_open_a(&ctx, o, url))) {
		tb_fail("A", "open and listen", e);
	} else if (write(wfd, url, strlen(url)) < 0) {
		perror("tsm_bench A: write URL");
	} else if ((e = tsm_ctx_wait_peers(ctx, 1, TB_SETUP_TIMEOUT))) {
		tb_fail("A", "wait for B", e);
	} else {
		rc = o->stream ? stream_send(ctx, o, sh, &queue_full)
		               : rt_ping(ctx, o, sh);
	}
	if (rc < 0)
		tb_announce_end(sh, 0); /* B stops waiting for what never comes */
	close(wfd); /* B, still waiting for a URL, sees EOF */
	/* Keep the context open until B has everything it needs. */
	if (bench_wait_child(child, "tsm_bench B") < 0)
		rc = -1;
	if (rc == 0 && o->stream)
		stream_report(ctx, o, sh, queue_full);
	if (ctx && (rc < 0 || o->stats))
		tb_dump_stats(ctx, "A", o->stats);
	tsm_ctx_close(ctx);
	return rc == 0 ? 0 : 1;
}

/* ---- options ---- */

static void tb_usage(void)
{
	fprintf(stderr,
	        "usage: tsm_bench rt [--busy] [--size B] [--iters N] "
	        "[--warmup N] [--ping-copy]\n"
	        "       tsm_bench stream [--size B] [--count N]\n"
	        "common: [--max-secs S] [--recv-spin] [--no-pin] [--stats]\n"
	        "        [--port P]\n"
	        "        [--secure --cert F --key F --trust F [--policy F]\n"
	        "         [--cert-b F --key-b F]]\n"
	        "sizes take K/KiB/M/MiB suffixes; stream needs size >= 8.\n"
	        "Without --secure the contexts run insecure (no TLS, no AEAD).\n"
	        "TSM_NO_URING=1 in the environment selects the epoll engine.\n");
}

static int tb_parse_opt(int c, struct tb_opts *o)
{
	uint64_t v;
	char *end;

	switch (c) {
	case 'b': o->busy = 1; return 0;
	case 'r': o->recv_spin = 1; return 0;
	case 'G': o->ping_copy = 1; return 0;
	case 'P': o->pin = 0; return 0;
	case 'S': o->stats = 1; return 0;
	case 'x': o->secure = 1; return 0;
	case 's': return bench_parse_size(optarg, &o->size);
	case 'i': return bench_parse_u64(optarg, &o->iters);
	case 'w': return bench_parse_u64(optarg, &o->warmup);
	case 'c': return bench_parse_u64(optarg, &o->count);
	case 'p':
		if (bench_parse_u64(optarg, &v) || v > 65535)
			return -1;
		o->port = (int)v;
		return 0;
	case 'M':
		o->max_secs = strtod(optarg, &end);
		return *end || o->max_secs < 0 ? -1 : 0;
	case 'C': o->cert = optarg; return 0;
	case 'K': o->key = optarg; return 0;
	case 'T': o->trust = optarg; return 0;
	case 'Y': o->policy = optarg; return 0;
	case 'D': o->cert_b = optarg; return 0;
	case 'E': o->key_b = optarg; return 0;
	case 'U': o->url = optarg; return 0;
	default: return -1;
	}
}

static int tb_parse(int argc, char **argv, struct tb_opts *o)
{
	static const struct option lo[] = {
		{"busy", no_argument, NULL, 'b'},
		{"recv-spin", no_argument, NULL, 'r'},
		{"ping-copy", no_argument, NULL, 'G'},
		{"no-pin", no_argument, NULL, 'P'},
		{"stats", no_argument, NULL, 'S'},
		{"secure", no_argument, NULL, 'x'},
		{"size", required_argument, NULL, 's'},
		{"iters", required_argument, NULL, 'i'},
		{"warmup", required_argument, NULL, 'w'},
		{"count", required_argument, NULL, 'c'},
		{"port", required_argument, NULL, 'p'},
		{"max-secs", required_argument, NULL, 'M'},
		{"cert", required_argument, NULL, 'C'},
		{"key", required_argument, NULL, 'K'},
		{"trust", required_argument, NULL, 'T'},
		{"policy", required_argument, NULL, 'Y'},
		{"cert-b", required_argument, NULL, 'D'},
		{"key-b", required_argument, NULL, 'E'},
		{"url", required_argument, NULL, 'U'},
		{NULL, 0, NULL, 0},
	};
	int c, bad = 0;

	if (argc < 2)
		return -1;
	o->stream = strcmp(argv[1], "stream") == 0;
	if (!o->stream && strcmp(argv[1], "rt") != 0)
		return -1;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1)
		bad |= tb_parse_opt(c, o);
	if (o->stream && o->size < 8)
		bad = -1;
	if (o->secure && (!o->cert || !o->key || !o->trust)) {
		fprintf(stderr, "tsm_bench: --secure needs --cert, --key and "
		        "--trust\n");
		bad = -1;
	}
	return bad || optind != argc ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct tb_opts o = {.pin = 1, .size = 64, .iters = 20000,
	                    .warmup = 2000, .count = 1000000};
	struct bench_shared *sh;
	int fds[2];
	pid_t pid;

	if (tb_parse(argc, argv, &o) < 0) {
		tb_usage();
		return 2;
	}
	sh = bench_shared_map();
	if (!sh || pipe(fds) < 0) {
		perror("tsm_bench: setup");
		return 1;
	}
	fflush(stdout);
	/* Fork before any libtsm call: a context owns threads. */
	pid = bench_fork();
	if (pid < 0) {
		perror("tsm_bench: fork");
		return 1;
	}
	if (pid == 0) {
		close(fds[1]);
		_exit(tb_child(fds[0], &o, sh));
	}
	close(fds[0]);
	if (o.pin)
		bench_pin(0);
	return tb_parent(fds[1], pid, &o, sh);
}
