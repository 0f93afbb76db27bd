/*
 * examples/pipeline/consumer.c - prints a live status line every second
 * (rates, latency p50/p99, deadline misses, drops) and a summary: results
 * from the stage and control messages from the producer.
 *
 *   consumer PKI_DIR PRODUCER_URL STAGE_URL SECONDS
 */
#include <string.h>
#include "common.h"

struct view {
	tsm_topic_stats res, ctl;
	uint64_t missed, dropped;
};

static void collect(void *arg, const tsm_topic_stats *s)
{
	struct view *v = arg;
	if (strcmp(s->topic, "infer/results") == 0)
		v->res = *s;
	if (strcmp(s->topic, "infer/control") == 0)
		v->ctl = *s;
	v->missed += s->deadline_missed;
	v->dropped += s->dropped_queue_full + s->dropped_other;
}

static void status(tsm_ctx *ctx, const char *tag)
{
	struct view v;
	memset(&v, 0, sizeof(v));
	tsm_stats_topics(ctx, collect, &v);
	printf("%s results=%llu (p50 %.1f ms, p99 %.1f ms)  control=%llu (p50 %.2f "
	       "ms, p99 %.2f ms)  deadline_missed=%llu dropped=%llu\n", tag,
	       (unsigned long long)v.res.delivered, v.res.latency.p50_ns / 1e6,
	       v.res.latency.p99_ns / 1e6, (unsigned long long)v.ctl.delivered,
	       v.ctl.latency.p50_ns / 1e6, v.ctl.latency.p99_ns / 1e6,
	       (unsigned long long)v.missed, (unsigned long long)v.dropped);
	fflush(stdout);
}

/* Control messages are taken by a callback on the delivery thread, so
 * their latency is not hidden behind this loop's waits for results. */
static void on_control(void *arg, tsm_msg *m)
{
	(void)arg;
	tsm_msg_free(m);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: consumer PKI_DIR PRODUCER_URL STAGE_URL SECONDS\n");
		return 2;
	}
	tsm_ctx *ctx = open_node(argv[1], "consumer", argv[2], 0);
	tsm_err e = tsm_ctx_dial(ctx, argv[3]);
	tsm_sub *res, *ctl;
	if (e || (e = tsm_sub_open(&res, ctx, "infer/results", NULL)) ||
	    (e = tsm_sub_open(&ctl, ctx, "infer/control", NULL)) ||
	    (e = tsm_sub_set_callback(ctl, on_control, NULL)))
		die("consumer", e);
	tsm_time end = tsm_now() + atoi(argv[4]) * TSM_SEC;
	tsm_time tick = tsm_now() + TSM_SEC;
	while (tsm_now() < end) {
		tsm_msg *m;
		if (tsm_sub_recv(res, &m, 50 * TSM_MSEC) == TSM_OK)
			tsm_msg_free(m);
		if (tsm_now() >= tick) {
			status(ctx, "consumer:");
			tick += TSM_SEC;
		}
	}
	status(ctx, "consumer: final");
	tsm_ctx_close(ctx);
	return 0;
}
