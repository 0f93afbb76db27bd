/*
 * bench/tsm_fanout.c - the fan-out case (S1) through libtsm: one
 * publisher context (CPU 0) and N subscriber processes (CPU 1), each
 * with its own context and session, all subscribed to bench/fan.
 * Modes and results as fan.h says.
 *
 * The publisher uses the default QoS (reliable, blocking back-pressure)
 * and calls tsm_publish per message. Active subscribers use the default
 * QoS too and check every size and sequence number. With --stalled,
 * subscriber 0 subscribes with a small queue (8) and drop_oldest and
 * never calls tsm_sub_recv: its own losses are counted by its context
 * (drops_stalled); the others must not lose anything nor slow down.
 *
 * Output, parsed by bench/run.sh:
 *   tsm: case=fanout mode=lat transport=io_uring secure=0 subs=8 ...
 */
#include "bench_util.h"
#include "fan.h"
#include "tsm_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TF_TOPIC "bench/fan"
#define TF_SLICE (50 * TSM_MSEC)
#define TF_STALLED_QUEUE 8
#define TF_MAX_QUEUE_FULL 30 /* consecutive block_timeouts: give up */

static struct tc_cred tf_cred;
static int tf_stats;

struct tf_pub {
	tsm_pub *pub;
	size_t size;
	uint64_t queue_full;
};

static int tf_publish(void *arg, const unsigned char *buf, uint64_t seq)
{
	struct tf_pub *p = arg;
	int tries = 0;
	tsm_err e;

	if (!buf)
		return 0;
	while ((e = tsm_publish(p->pub, buf, p->size, NULL)) ==
	               TSM_ERR_QUEUE_FULL &&
	       ++tries < TF_MAX_QUEUE_FULL)
		p->queue_full++;
	if (e) {
		fprintf(stderr, "tsm_fanout: message %llu refused\n",
		        (unsigned long long)seq);
		tc_fail("publisher", "publish", e);
		return -1;
	}
	return 0;
}

/* ---- publisher ---- */

static int tf_measure(tsm_ctx *ctx, const struct fan_opts *o,
                      struct fan_shared *sh, struct tf_pub *p,
                      struct fan_result *r)
{
	tsm_err e;

	if ((e = tsm_ctx_wait_peers(ctx, (unsigned)o->subs, TC_SETUP_TIMEOUT)) ||
	    (e = tsm_pub_open(&p->pub, ctx, TF_TOPIC, NULL)) ||
	    (e = tsm_pub_wait_subscribers(p->pub, (unsigned)o->subs,
	                                  TC_SETUP_TIMEOUT))) {
		tc_fail("publisher", "fanout setup", e);
		return -1;
	}
	return fan_run(o, sh, tf_publish, p, r);
}

static int tf_parent(int wfd, const pid_t *kids, const struct fan_opts *o,
                     struct fan_shared *sh)
{
	char url[TC_URL_MAX] = "", extra[128];
	struct tf_pub p = {.size = o->size};
	struct fan_result r = {0};
	tsm_ctx *ctx = NULL;
	tsm_err e;
	int rc = -1;

	if ((e = tc_open_listen(&ctx, &tf_cred, "fan-pub", "127.0.0.1",
	                        (unsigned)o->subs, url))) {
		tc_fail("publisher", "open and listen", e);
	} else {
		rc = 0;
		for (int i = 0; i < (int)o->subs && rc == 0; i++)
			rc = tc_send_url(wfd, url);
		if (rc == 0)
			rc = tf_measure(ctx, o, sh, &p, &r);
	}
	atomic_store(&sh->stop, 1); /* subscribers stop waiting */
	close(wfd);
	for (int i = 0; i < (int)o->subs; i++)
		if (bench_wait_child(kids[i], "tsm_fanout subscriber") < 0)
			rc = -1;
	if (r.sent) {
		snprintf(extra, sizeof(extra), "transport=%s secure=%d "
		         "queue_full=%llu drops_pub=%llu",
		         tsm_ctx_transport(ctx), tf_cred.secure,
		         (unsigned long long)p.queue_full,
		         (unsigned long long)tc_drops(ctx));
		if (fan_report("tsm", extra, o, sh, &r) < 0)
			rc = -1;
	}
	if (ctx && (rc < 0 || tf_stats))
		tc_dump_stats(ctx, "publisher", tf_stats);
	tsm_pub_close(p.pub);
	tsm_ctx_close(ctx);
	return rc == 0 ? 0 : 1;
}

/* ---- subscribers ---- */

/* Receive until the publisher stopped and i has all it sent. */
static int tf_sub_loop(tsm_sub *sub, const struct fan_opts *o,
                       struct fan_shared *sh, int i)
{
	int64_t quiet = bench_now_ns();

	while (!fan_sub_done(sh, i)) {
		tsm_msg *m;
		tsm_err e = tsm_sub_recv(sub, &m, TF_SLICE);
		int64_t now = bench_now_ns();

		if (tsm_err_class(e) == TSM_ETIMEDOUT) {
			if (!atomic_load(&sh->stop))
				quiet = now;
			else if (now - quiet > FAN_QUIET_NS)
				break;
			continue;
		}
		if (e) {
			tc_fail("subscriber", "recv", e);
			return -1;
		}
		fan_sub_check(o, sh, i, tsm_msg_data(m), tsm_msg_size(m), now);
		tsm_msg_free(m);
		quiet = now;
	}
	if (fan_sub_done(sh, i))
		return 0;
	fprintf(stderr, "tsm_fanout subscriber %d: received %llu of %llu\n",
	        i, (unsigned long long)atomic_load(&sh->sub[i].rcvd),
	        (unsigned long long)atomic_load(&sh->sent));
	return -1;
}

static int tf_sub_run(tsm_ctx *ctx, const struct fan_opts *o,
                      struct fan_shared *sh, int i)
{
	tsm_sub *sub = NULL;
	tsm_qos q;
	tsm_err e;
	int rc = 0;

	tsm_qos_init(&q);
	if (!fan_active(o, i)) {
		q.queue_depth = TF_STALLED_QUEUE;
		q.backpressure = TSM_BP_DROP_OLDEST;
	}
	if ((e = tsm_sub_open(&sub, ctx, TF_TOPIC, &q))) {
		tc_fail("subscriber", "subscribe", e);
		return -1;
	}
	if (fan_active(o, i))
		rc = tf_sub_loop(sub, o, sh, i);
	else
		while (!atomic_load(&sh->stop)) /* subscribed, never reads */
			bench_sleep_until(bench_now_ns() + 10000000);
	atomic_store(&sh->sub[i].drops, tc_drops(ctx));
	tsm_sub_close(sub);
	return rc;
}

static int tf_child(int i, int rfd, const struct fan_opts *o,
                    struct fan_shared *sh)
{
	char url[TC_URL_MAX], name[32];
	tsm_ctx *ctx = NULL;
	tsm_err e;
	int rc = -1;

	if (o->pin)
		bench_pin(1);
	if (tc_recv_url(rfd, url) < 0) {
		fprintf(stderr, "tsm_fanout subscriber %d: no URL\n", i);
		atomic_store(&sh->sub[i].done, -1);
		return 1;
	}
	snprintf(name, sizeof(name), "fan-sub%d", i);
	if ((e = tc_open_dial(&ctx, &tf_cred, name, url)))
		tc_fail("subscriber", "tsm_ctx_open", e);
	else if ((e = tsm_ctx_wait_peers(ctx, 1, TC_SETUP_TIMEOUT)))
		tc_fail("subscriber", "wait for the publisher", e);
	else
		rc = tf_sub_run(ctx, o, sh, i);
	atomic_store(&sh->sub[i].done, rc == 0 ? 1 : -1);
	if (ctx && (rc < 0 || tf_stats))
		tc_dump_stats(ctx, name, tf_stats);
	tsm_ctx_close(ctx);
	return rc == 0 ? 0 : 1;
}

static int tf_extra(int c, const char *arg)
{
	if (c == 'S') {
		tf_stats = 1;
		return 0;
	}
	return tc_cred_opt(c, arg, &tf_cred) ? -1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		FAN_LONGOPTS,
		TC_CRED_LONGOPTS,
		{"stats", no_argument, NULL, 'S'},
		{NULL, 0, NULL, 0},
	};
	struct fan_opts o;
	struct fan_shared *sh;
	pid_t kids[FAN_MAX];
	int fds[2];

	if (fan_parse(argc, argv, lo, &o, tf_extra) < 0 ||
	    tc_cred_check(&tf_cred) < 0) {
		fprintf(stderr, "usage: tsm_fanout" FAN_USAGE
		        "        [--stats]\n" TC_CRED_USAGE, "tsm_fanout");
		return 2;
	}
	sh = fan_shared_map(&o);
	if (!sh || pipe(fds) < 0) {
		perror("tsm_fanout: setup");
		return 1;
	}
	fflush(stdout);
	/* Fork before any libtsm call: a context owns threads. */
	for (int i = 0; i < (int)o.subs; i++) {
		kids[i] = bench_fork();
		if (kids[i] < 0) {
			perror("tsm_fanout: fork");
			return 1;
		}
		if (kids[i] == 0) {
			close(fds[1]);
			_exit(tf_child(i, fds[0], &o, sh));
		}
	}
	close(fds[0]);
	if (o.pin)
		bench_pin(0);
	return tf_parent(fds[1], kids, &o, sh);
}
