/*
 * bench/tsm_prio.c - the urgent-behind-bulk case (P1, P2) through
 * libtsm: one publisher context, one subscriber context in another
 * process, one session between them.
 *
 * A (the parent, CPU 0) listens; B (the child, CPU 1) dials it. A's
 * urgent thread publishes a 64 B message on bench/prio/urgent at
 * priority 0, at 1 kHz, and waits for B's echo on bench/prio/echo (also
 * priority 0): one CLOCK_MONOTONIC sample per round trip. A's bulk
 * thread meanwhile publishes 1 MiB messages on bench/prio/bulk at
 * priority 7 as fast as tsm_publish takes them (reliable, blocking
 * back-pressure). Both publishers share A's context, so urgent and bulk
 * travel in the same session over one TCP connection; the library's
 * lanes must keep the urgent message from waiting behind the bulk.
 *
 * B echoes every urgent message from one thread and receives the bulk
 * on another (queue_depth 64, so a slow B holds at most 64 MiB), checking
 * every size and sequence number. Urgent messages whose echo does not
 * come back within 2 s count as lost; any loss fails the run.
 *
 * With --netns-b, B enters that network namespace before it opens its
 * context and dials --addr (bench/run.sh's prio-tbf case).
 *
 * --stats prints each side's counters (tx.backlog_* among them) and its
 * per-topic latencies: B's bench/prio/urgent is the one-way A -> B time
 * from A's publish, A's bench/prio/echo the way back (one host, one
 * clock), which tells where a slow round trip spent its time.
 *
 * Output, parsed by bench/run.sh:
 *   tsm: case=prio mode=session transport=io_uring secure=0 ...
 */
#include "bench_util.h"
#include "mix.h"
#include "tsm_common.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TP_URGENT "bench/prio/urgent"
#define TP_ECHO "bench/prio/echo"
#define TP_BULK "bench/prio/bulk"
#define TP_BULK_PRIO 7
#define TP_BULK_QUEUE 64           /* B's bulk queue, messages */
#define TP_SLICE (50 * TSM_MSEC)   /* how often B looks for A's stop */
#define TP_IDLE_NS ((int64_t)5000000000) /* B gives up after this quiet */
#define TP_FLUSH (30 * TSM_SEC)
#define TP_MAX_QUEUE_FULL 30 /* consecutive block_timeouts: A gives up */

struct tp_opts {
	struct mix_opts m;
	struct tc_cred cr;
	int stats;
};

/* A's side: what the urgent exchange and the bulk thread need. */
struct tp_a {
	const struct tp_opts *o;
	struct mix_shared *sh;
	tsm_pub *urgent, *bulk;
	tsm_sub *echo;
	int bulk_err;
	uint64_t queue_full;
};

/* ---- --stats: per (topic, lane) latency, on stderr ---- */

static void tp_topic_line(void *arg, const tsm_topic_stats *t)
{
	fprintf(stderr, "tsm %s: topic %s lane %u: delivered %llu, latency "
	        "p50/p99/max %.0f/%.0f/%.0f us, local p50/p99 %.0f/%.0f us\n",
	        (const char *)arg, t->topic, t->lane,
	        (unsigned long long)t->delivered, t->latency.p50_ns / 1e3,
	        t->latency.p99_ns / 1e3, t->latency.max_ns / 1e3,
	        t->local.p50_ns / 1e3, t->local.p99_ns / 1e3);
}

static void tp_dump(tsm_ctx *ctx, const char *who, int all)
{
	tc_dump_stats(ctx, who, all);
	tsm_stats_topics(ctx, tp_topic_line, (void *)who);
}

/* ---- A ---- */

static int tp_exchange(void *arg, unsigned char *buf, uint64_t seq,
                       uint64_t *stale)
{
	struct tp_a *a = arg;
	int64_t until = bench_now_ns() + MIX_ECHO_TIMEOUT_NS;
	tsm_pub_opts po;
	tsm_err e;

	tsm_pub_opts_init(&po);
	po.flags = TSM_OPT_PRIORITY;
	po.priority = 0;
	if ((e = tsm_publish(a->urgent, buf, a->o->m.urgent_size, &po))) {
		tc_fail("A", "publish urgent", e);
		return -1;
	}
	for (;;) {
		int64_t left = until - bench_now_ns();
		tsm_msg *m;
		uint64_t s;
		size_t n;

		if (left <= 0)
			return 1;
		e = tsm_sub_recv(a->echo, &m, left);
		if (tsm_err_class(e) == TSM_ETIMEDOUT)
			return 1;
		if (e) {
			tc_fail("A", "recv echo", e);
			return -1;
		}
		n = tsm_msg_size(m);
		s = n >= 8 ? bench_get_seq(tsm_msg_data(m)) : UINT64_MAX;
		tsm_msg_free(m);
		if (n != a->o->m.urgent_size || s > seq) {
			fprintf(stderr, "tsm_prio A: bad echo: %zu B, seq %llu "
			        "(sent %llu)\n", n, (unsigned long long)s,
			        (unsigned long long)seq);
			return -1;
		}
		if (s == seq)
			return 0;
		(*stale)++;
	}
}

static void *tp_bulk(void *arg)
{
	struct tp_a *a = arg;
	size_t n = a->o->m.bulk_size;
	unsigned char *msg = malloc(n);
	uint64_t seq = 0;
	tsm_pub_opts po;

	if (!msg) {
		a->bulk_err = 1;
		return NULL;
	}
	memset(msg, 0x5a, n);
	while (!atomic_load(&a->sh->bulk_stop)) {
		tsm_err e;
		int tries = 0;

		bench_put_seq(msg, seq);
		bench_put_seq(msg + 8, (uint64_t)bench_now_ns());
		tsm_pub_opts_init(&po);
		po.flags = TSM_OPT_PRIORITY;
		po.priority = TP_BULK_PRIO;
		while ((e = tsm_publish(a->bulk, msg, n, &po)) ==
		               TSM_ERR_QUEUE_FULL &&
		       ++tries < TP_MAX_QUEUE_FULL &&
		       !atomic_load(&a->sh->bulk_stop))
			a->queue_full++;
		if (e == TSM_ERR_QUEUE_FULL && atomic_load(&a->sh->bulk_stop))
			break; /* not sent; the urgent phase is over */
		if (e) {
			fprintf(stderr, "tsm_prio A: bulk %llu refused\n",
			        (unsigned long long)seq);
			tc_fail("A", "publish bulk", e);
			a->bulk_err = 1;
			break;
		}
		atomic_store(&a->sh->bulk_sent, ++seq);
	}
	free(msg);
	return NULL;
}

static tsm_err tp_a_setup(tsm_ctx *ctx, struct tp_a *a)
{
	tsm_err e;

	if ((e = tsm_sub_open(&a->echo, ctx, TP_ECHO, NULL)) ||
	    (e = tsm_pub_open(&a->urgent, ctx, TP_URGENT, NULL)) ||
	    (e = tsm_pub_open(&a->bulk, ctx, TP_BULK, NULL)) ||
	    (e = tsm_pub_wait_subscribers(a->urgent, 1, TC_SETUP_TIMEOUT)) ||
	    (e = tsm_pub_wait_subscribers(a->bulk, 1, TC_SETUP_TIMEOUT)))
		return e;
	return TSM_OK;
}

/* A: the measurement proper, once the session is up. */
static int tp_measure(tsm_ctx *ctx, struct tp_a *a, int64_t *samples,
                      struct mix_result *r)
{
	const struct mix_opts *o = &a->o->m;
	pthread_t bulk;
	int started = 0, rc;
	tsm_err e;

	if ((e = tp_a_setup(ctx, a))) {
		tc_fail("A", "prio setup", e);
		return -1;
	}
	if (!o->no_bulk) {
		if (pthread_create(&bulk, NULL, tp_bulk, a) != 0)
			return -1;
		started = 1;
	}
	rc = mix_urgent_run(o, a->sh, tp_exchange, a, samples, r);
	atomic_store(&a->sh->bulk_stop, 1);
	if (started)
		pthread_join(bulk, NULL);
	atomic_store(&a->sh->urgent_sent, r->sent);
	atomic_store(&a->sh->stop, 1);
	if ((e = tsm_pub_flush(a->bulk, TP_FLUSH))) {
		tc_fail("A", "flush", e);
		rc = -1;
	}
	return rc < 0 || a->bulk_err ? -1 : 0;
}

static int tp_parent(int wfd, pid_t child, const struct tp_opts *o,
                     struct mix_shared *sh)
{
	char url[TC_URL_MAX] = "", extra[160];
	struct tp_a a = {.o = o, .sh = sh};
	struct mix_result r = {0};
	int64_t *samples = calloc(o->m.iters, sizeof(int64_t));
	tsm_ctx *ctx = NULL;
	tsm_err e;
	int rc = -1, measured;

	if (!samples) {
		perror("tsm_prio A: alloc");
	} else if ((e = tc_open_listen(&ctx, &o->cr, "prio-a", o->m.addr, 0,
	                               url))) {
		tc_fail("A", "open and listen", e);
	} else if (tc_send_url(wfd, url) < 0) {
		perror("tsm_prio A: write URL");
	} else if ((e = tsm_ctx_wait_peers(ctx, 1, TC_SETUP_TIMEOUT))) {
		tc_fail("A", "wait for B", e);
	} else {
		rc = tp_measure(ctx, &a, samples, &r);
	}
	measured = r.sent > 0;
	atomic_store(&sh->stop, 1); /* B stops waiting for what never comes */
	close(wfd);
	if (bench_wait_child(child, "tsm_prio B") < 0)
		rc = -1;
	if (measured) {
		snprintf(extra, sizeof(extra), "transport=%s secure=%d "
		         "queue_full=%llu drops_a=%llu", tsm_ctx_transport(ctx),
		         o->cr.secure, (unsigned long long)a.queue_full,
		         (unsigned long long)tc_drops(ctx));
		mix_report("tsm", "session", extra, &o->m, samples, &r, sh);
		if (mix_failed(&r, sh)) {
			fprintf(stderr, "tsm_prio: FAILED: %llu urgent without "
			        "echo, %llu urgent missing at B, %llu of %llu "
			        "bulk received (%llu missing)%s\n",
			        (unsigned long long)r.lost,
			        (unsigned long long)atomic_load(&sh->urgent_gaps),
			        (unsigned long long)atomic_load(&sh->bulk_rcvd),
			        (unsigned long long)atomic_load(&sh->bulk_sent),
			        (unsigned long long)atomic_load(&sh->bulk_gaps),
			        atomic_load(&sh->bad) ? ", corrupted" : "");
			rc = -1;
		}
	}
	if (ctx && (rc < 0 || o->stats))
		tp_dump(ctx, "A", o->stats);
	tsm_pub_close(a.urgent);
	tsm_pub_close(a.bulk);
	tsm_sub_close(a.echo);
	tsm_ctx_close(ctx);
	free(samples);
	return rc == 0 ? 0 : 1;
}

/* ---- B ---- */

struct tp_b {
	const struct tp_opts *o;
	struct mix_shared *sh;
	tsm_sub *bulk;
	int err;
};

/*
 * Receive on sub until have() says B has all A sent, or B has heard
 * nothing for TP_IDLE_NS after A stopped. on_msg handles one message:
 * 0, or -1 to stop.
 */
static int tp_b_loop(tsm_sub *sub, struct mix_shared *sh,
                     int (*done)(struct mix_shared *),
                     int (*on_msg)(void *, tsm_msg *), void *arg,
                     const char *what)
{
	int64_t quiet_since = bench_now_ns();

	while (!done(sh)) {
		tsm_msg *m;
		tsm_err e = tsm_sub_recv(sub, &m, TP_SLICE);

		if (tsm_err_class(e) == TSM_ETIMEDOUT) {
			if (!atomic_load(&sh->stop))
				quiet_since = bench_now_ns();
			else if (bench_now_ns() - quiet_since > TP_IDLE_NS)
				break;
			continue;
		}
		if (e) {
			tc_fail("B", what, e);
			return -1;
		}
		quiet_since = bench_now_ns();
		if (on_msg(arg, m) < 0)
			return -1;
	}
	return done(sh) ? 0 : -1;
}

static int tp_bulk_done(struct mix_shared *sh)
{
	return atomic_load(&sh->stop) &&
	       atomic_load(&sh->bulk_rcvd) + atomic_load(&sh->bulk_gaps) >=
	               atomic_load(&sh->bulk_sent);
}

static int tp_urgent_done(struct mix_shared *sh)
{
	return atomic_load(&sh->stop) &&
	       atomic_load(&sh->urgent_rcvd) + atomic_load(&sh->urgent_gaps) >=
	               atomic_load(&sh->urgent_sent);
}

static int tp_on_bulk(void *arg, tsm_msg *m)
{
	struct tp_b *b = arg;

	mix_b_bulk(b->sh, tsm_msg_data(m), tsm_msg_size(m), b->o->m.bulk_size);
	tsm_msg_free(m);
	return atomic_load(&b->sh->bad) ? -1 : 0;
}

static void *tp_b_bulk(void *arg)
{
	struct tp_b *b = arg;

	if (tp_b_loop(b->bulk, b->sh, tp_bulk_done, tp_on_bulk, b,
	              "recv bulk") < 0) {
		fprintf(stderr, "tsm_prio B: received %llu of %llu bulk\n",
		        (unsigned long long)atomic_load(&b->sh->bulk_rcvd),
		        (unsigned long long)atomic_load(&b->sh->bulk_sent));
		b->err = 1;
	}
	return NULL;
}

struct tp_echo {
	tsm_pub *pub;
	struct mix_shared *sh;
	size_t size;
};

static int tp_on_urgent(void *arg, tsm_msg *m)
{
	struct tp_echo *x = arg;
	tsm_pub_opts po;
	tsm_err e;

	tsm_pub_opts_init(&po);
	po.flags = TSM_OPT_PRIORITY;
	po.priority = 0;
	e = tsm_publish(x->pub, tsm_msg_data(m), tsm_msg_size(m), &po);
	mix_b_urgent(x->sh, tsm_msg_data(m), tsm_msg_size(m), x->size);
	tsm_msg_free(m);
	if (e) {
		tc_fail("B", "publish echo", e);
		return -1;
	}
	return atomic_load(&x->sh->bad) ? -1 : 0;
}

static int tp_b_run(tsm_ctx *ctx, const struct tp_opts *o,
                    struct mix_shared *sh)
{
	struct tp_b b = {.o = o, .sh = sh};
	struct tp_echo x = {.sh = sh, .size = o->m.urgent_size};
	tsm_sub *urgent = NULL;
	tsm_qos q;
	pthread_t t;
	int rc = -1;
	tsm_err e;

	tsm_qos_init(&q);
	q.queue_depth = TP_BULK_QUEUE;
	/* Know A's echo subscription before A can see ours and start. */
	if ((e = tsm_pub_open(&x.pub, ctx, TP_ECHO, NULL)) ||
	    (e = tsm_pub_wait_subscribers(x.pub, 1, TC_SETUP_TIMEOUT)) ||
	    (e = tsm_sub_open(&b.bulk, ctx, TP_BULK, &q)) ||
	    (e = tsm_sub_open(&urgent, ctx, TP_URGENT, NULL))) {
		tc_fail("B", "prio setup", e);
		goto out;
	}
	if (pthread_create(&t, NULL, tp_b_bulk, &b) != 0)
		goto out;
	rc = tp_b_loop(urgent, sh, tp_urgent_done, tp_on_urgent, &x,
	               "recv urgent");
	if (rc < 0)
		fprintf(stderr, "tsm_prio B: received %llu (+%llu missing) of "
		        "%llu urgent\n",
		        (unsigned long long)atomic_load(&sh->urgent_rcvd),
		        (unsigned long long)atomic_load(&sh->urgent_gaps),
		        (unsigned long long)atomic_load(&sh->urgent_sent));
	pthread_join(t, NULL);
	if (b.err)
		rc = -1;
out:
	tsm_sub_close(urgent);
	tsm_sub_close(b.bulk);
	tsm_pub_close(x.pub);
	return rc;
}

static int tp_child(int rfd, const struct tp_opts *o, struct mix_shared *sh)
{
	char url[TC_URL_MAX];
	tsm_ctx *ctx = NULL;
	tsm_err e;
	int rc = -1;

	if (o->m.netns_b && bench_enter_netns(o->m.netns_b) < 0)
		return 1;
	if (o->m.pin)
		bench_pin(1);
	if (tc_recv_url(rfd, url) < 0) {
		fprintf(stderr, "tsm_prio B: no URL from A\n");
		return 1;
	}
	if ((e = tc_open_dial(&ctx, &o->cr, "prio-b", url))) {
		tc_fail("B", "tsm_ctx_open", e);
		return 1;
	}
	if ((e = tsm_ctx_wait_peers(ctx, 1, TC_SETUP_TIMEOUT)))
		tc_fail("B", "wait for A", e);
	else
		rc = tp_b_run(ctx, o, sh);
	if (rc < 0 || o->stats)
		tp_dump(ctx, "B", o->stats);
	tsm_ctx_close(ctx);
	return rc == 0 ? 0 : 1;
}

/* ---- options ---- */

static void tp_usage(void)
{
	fprintf(stderr, "usage: tsm_prio [--stats]\n" MIX_USAGE TC_CRED_USAGE
	        "defaults: 64 B urgent (priority 0) at 1000 Hz behind 1 MiB "
	        "bulk (priority 7),\n2000 samples after 200, 127.0.0.1. "
	        "TSM_NO_URING=1 selects the epoll engine.\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		MIX_LONGOPTS,
		TC_CRED_LONGOPTS,
		{"stats", no_argument, NULL, 'S'},
		{NULL, 0, NULL, 0},
	};
	struct tp_opts o = {0};
	struct mix_shared *sh;
	int c, bad = 0, fds[2];
	pid_t pid;

	mix_opts_init(&o.m);
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		int r = mix_opt(c, optarg, &o.m);

		if (r == 1 && c == 'S')
			o.stats = 1;
		else if (r == 1)
			bad |= tc_cred_opt(c, optarg, &o.cr) != 0;
		else
			bad |= r != 0;
	}
	if (bad || optind != argc || mix_opts_check(&o.m) < 0 ||
	    tc_cred_check(&o.cr) < 0) {
		tp_usage();
		return 2;
	}
	sh = bench_shm_map(sizeof(*sh));
	if (!sh || pipe(fds) < 0) {
		perror("tsm_prio: setup");
		return 1;
	}
	fflush(stdout);
	/* Fork before any libtsm call: a context owns threads. */
	pid = bench_fork();
	if (pid < 0) {
		perror("tsm_prio: fork");
		return 1;
	}
	if (pid == 0) {
		close(fds[1]);
		_exit(tp_child(fds[0], &o, sh));
	}
	close(fds[0]);
	if (o.m.pin)
		bench_pin(0);
	return tp_parent(fds[1], pid, &o, sh);
}
