/*
 * examples/pipeline/producer.c - the camera: 256 KiB frames at 30 fps
 * (priority 5, 50 ms deadline) and small control messages at 10 Hz
 * (priority 0) for SECONDS seconds, on one secure session.
 *
 *   producer PKI_DIR LISTEN_URL SECONDS
 */
#include <string.h>
#include <time.h>
#include "common.h"

static void publish(tsm_pub *p, const void *b, size_t n, int prio,
                    tsm_duration budget, unsigned *sent, unsigned *late)
{
	tsm_pub_opts o;
	tsm_pub_opts_init(&o);
	o.flags = TSM_OPT_PRIORITY | (budget ? TSM_OPT_BUDGET : 0);
	o.priority = (uint8_t)prio;
	o.budget = budget;
	tsm_err e = tsm_publish(p, b, n, &o);
	if (e == TSM_OK)
		(*sent)++;
	else if (e == TSM_ERR_DEADLINE_EXPIRED || e == TSM_ERR_QUEUE_FULL)
		(*late)++;
	else
		die("tsm_publish", e);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: producer PKI_DIR LISTEN_URL SECONDS\n");
		return 2;
	}
	tsm_ctx *ctx = open_node(argv[1], "producer", argv[2], 1);
	tsm_pub *frames, *control;
	tsm_err e;
	if ((e = tsm_pub_open(&frames, ctx, "infer/frames", NULL)) ||
	    (e = tsm_pub_open(&control, ctx, "infer/control", NULL)))
		die("tsm_pub_open", e);
	tsm_pub_wait_subscribers(frames, 1, 30 * TSM_SEC);
	tsm_pub_wait_subscribers(control, 1, 30 * TSM_SEC);
	static unsigned char frame[256 * 1024];
	unsigned nf = 0, nc = 0, refused = 0;
	tsm_time end = tsm_now() + atoi(argv[3]) * TSM_SEC, next = tsm_now();
	for (unsigned tick = 0; tsm_now() < end; tick++) {
		memset(frame, (int)tick, sizeof(frame));
		publish(frames, frame, sizeof(frame), 5, 50 * TSM_MSEC, &nf, &refused);
		if (tick % 3 == 0) {
			char cmd[32];
			int n = snprintf(cmd, sizeof(cmd), "ctl %u", tick / 3);
			publish(control, cmd, (size_t)n, 0, 0, &nc, &refused);
		}
		next += TSM_SEC / 30;
		struct timespec ts = {0, (long)(next > tsm_now() ? next - tsm_now() : 0)};
		nanosleep(&ts, NULL);
	}
	tsm_pub_flush(frames, 2 * TSM_SEC);
	printf("producer: frames=%u control=%u refused=%u transport=%s\n", nf, nc,
	       refused, tsm_ctx_transport(ctx));
	tsm_ctx_close(ctx);
	return 0;
}
