/*
 * examples/deadline.c - a deadline in practice: each message may wait at
 * most 20 ms; the subscriber needs 30 ms per message, so messages that
 * wait too long are dropped and reported, never delivered late.
 *
 *   deadline PKI_DIR
 */
#include <stdio.h>
#include <time.h>
#include <tsm/tsm.h>

static void on_drop(void *arg, const tsm_outcome *o)
{
	int *dropped = arg;
	(*dropped)++;
	printf("  dropped message %llu on %s: %s (where %d)\n",
	       (unsigned long long)o->msg_id, o->topic, tsm_err_name(o->reason),
	       (int)o->where);
}

int main(int argc, char **argv)
{
	char f[4][512];
	if (argc != 2) {
		fprintf(stderr, "usage: deadline PKI_DIR\n");
		return 2;
	}
	const char *fmt[4] = {"%s/pub.crt", "%s/pub.key", "%s/trust.pem", "%s/policy.txt"};
	for (int i = 0; i < 4; i++)
		snprintf(f[i], sizeof(f[i]), fmt[i], argv[1]);
	int dropped = 0, delivered = 0;
	tsm_ctx_params p;
	tsm_ctx_params_init(&p);
	p.cert_file = f[0], p.key_file = f[1], p.trust_file = f[2], p.policy_file = f[3];
	tsm_ctx_params_set_outcome(&p, on_drop, &dropped);
	tsm_ctx *ctx;
	tsm_pub *pub;
	tsm_sub *sub;
	if (tsm_ctx_open(&ctx, &p) || tsm_sub_open(&sub, ctx, "sensor/**", NULL) ||
	    tsm_pub_open(&pub, ctx, "sensor/reading", NULL)) {
		fprintf(stderr, "deadline: %s\n", tsm_err_detail());
		return 1;
	}
	tsm_pub_opts o;
	tsm_pub_opts_init(&o);
	o.flags = TSM_OPT_BUDGET;
	o.budget = 20 * TSM_MSEC;
	for (int i = 0; i < 10; i++)
		tsm_publish(pub, &i, sizeof(i), &o);
	tsm_msg *m;
	while (tsm_sub_recv(sub, &m, 100 * TSM_MSEC) == TSM_OK) {
		tsm_duration slack = tsm_msg_deadline(m) - tsm_now();
		printf("delivered reading %d with %.1f ms to spare\n",
		       *(const int *)tsm_msg_data(m), slack / 1e6);
		delivered++;
		tsm_msg_free(m);
		struct timespec ts = {0, 30 * 1000 * 1000}; /* a slow consumer */
		nanosleep(&ts, NULL);
	}
	printf("deadline: delivered=%d dropped=%d late=0\n", delivered, dropped);
	tsm_ctx_close(ctx);
	return delivered + dropped == 10 ? 0 : 1;
}
