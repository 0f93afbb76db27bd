/*
 * examples/reqrep.c - request/reply on top of publish/subscribe: the
 * server answers each request on "rpc/reply/<client>" from a callback;
 * the client correlates replies by message id. Two nodes in one process
 * over inproc://, each with its own identity from the PKI.
 *
 *   reqrep PKI_DIR
 */
#include <stdio.h>
#include <string.h>
#include <tsm/tsm.h>

static tsm_ctx *node(const char *dir, const char *name, const char *url, int lst)
{
	static char f[2][4][512];
	static int k;
	tsm_ctx_params p;
	tsm_ctx *ctx = NULL;
	tsm_ctx_params_init(&p);
	const char *fmt[4] = {"%s/%s.crt", "%s/%s.key", "%s/trust.pem", "%s/policy.txt"};
	for (int i = 0; i < 4; i++)
		snprintf(f[k][i], sizeof(f[k][i]), fmt[i], dir, name);
	p.cert_file = f[k][0], p.key_file = f[k][1];
	p.trust_file = f[k][2], p.policy_file = f[k][3];
	k++;
	if (lst)
		p.listen[0] = url;
	else
		p.connect[0] = url;
	if (tsm_ctx_open(&ctx, &p))
		fprintf(stderr, "%s: %s\n", name, tsm_err_detail());
	return ctx;
}

static tsm_pub *replies; /* the server's reply publisher */

/* A message's bytes as a C string: a payload is not NUL-terminated
 * (what follows it in libtsm's buffer is anything), so it is copied into
 * buf first, cut to fit. */
static const char *msg_text(const tsm_msg *m, char *buf, size_t cap)
{
	size_t n = tsm_msg_size(m) < cap - 1 ? tsm_msg_size(m) : cap - 1;
	memcpy(buf, tsm_msg_data(m), n);
	buf[n] = '\0';
	return buf;
}

/* Server: square the number in the request and answer it. */
static void serve(void *arg, tsm_msg *req)
{
	long x = 0, id = (long)tsm_msg_id(req);
	char text[32];
	sscanf(msg_text(req, text, sizeof(text)), "%ld", &x);
	char out[64];
	int n = snprintf(out, sizeof(out), "%ld %ld", id, x * x);
	tsm_publish(replies, out, (size_t)n, NULL);
	tsm_msg_free(req);
	(void)arg;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: reqrep PKI_DIR\n");
		return 2;
	}
	tsm_ctx *srv = node(argv[1], "stage", "inproc://rpc", 1);
	tsm_ctx *cli = node(argv[1], "consumer", "inproc://rpc", 0);
	tsm_sub *reqs, *reps;
	tsm_pub *calls;
	if (!srv || !cli || tsm_sub_open(&reqs, srv, "rpc/request", NULL) ||
	    tsm_pub_open(&replies, srv, "rpc/reply/consumer", NULL) ||
	    tsm_sub_set_callback(reqs, serve, NULL) ||
	    tsm_sub_open(&reps, cli, "rpc/reply/consumer", NULL) ||
	    tsm_pub_open(&calls, cli, "rpc/request", NULL) ||
	    tsm_pub_wait_subscribers(calls, 1, 10 * TSM_SEC) ||
	    tsm_pub_wait_subscribers(replies, 1, 10 * TSM_SEC)) {
		fprintf(stderr, "reqrep: set-up failed: %s\n", tsm_err_detail());
		return 1;
	}
	int ok = 0;
	for (long x = 1; x <= 5; x++) {
		tsm_pub_opts o;
		tsm_pub_opts_init(&o);
		char req[32];
		int n = snprintf(req, sizeof(req), "%ld", x) + 1; /* with the NUL */
		tsm_msg *rep;
		if (tsm_publish(calls, req, (size_t)n, &o) ||
		    tsm_sub_recv(reps, &rep, 5 * TSM_SEC))
			break;
		long id = 0, y = 0;
		char text[64];
		sscanf(msg_text(rep, text, sizeof(text)), "%ld %ld", &id, &y);
		printf("request %llu: %ld -> %ld\n", (unsigned long long)o.msg_id, x, y);
		ok += (unsigned long long)id == o.msg_id && y == x * x;
		tsm_msg_free(rep);
	}
	tsm_ctx_close(cli);
	tsm_ctx_close(srv);
	printf("reqrep: %d of 5 answered correctly\n", ok);
	return ok == 5 ? 0 : 1;
}
