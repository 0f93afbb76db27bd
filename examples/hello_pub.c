/*
 * examples/hello_pub.c - the smallest publisher: listens, waits for one
 * subscriber, publishes COUNT greetings. Credentials come from a
 * development PKI (`tsm pki init DIR`), identity "pub".
 *
 *   hello_pub PKI_DIR tcp://127.0.0.1:5555 [COUNT]
 */
#include <stdio.h>
#include <stdlib.h>
#include <tsm/tsm.h>

static int fail(const char *what, tsm_err e)
{
	fprintf(stderr, "%s: %s: %s\n", what, tsm_err_name(e), tsm_err_detail());
	return 1;
}

int main(int argc, char **argv)
{
	char cert[512], key[512], trust[512], policy[512];
	if (argc < 3) {
		fprintf(stderr, "usage: hello_pub PKI_DIR URL [COUNT]\n");
		return 2;
	}
	snprintf(cert, sizeof(cert), "%s/pub.crt", argv[1]);
	snprintf(key, sizeof(key), "%s/pub.key", argv[1]);
	snprintf(trust, sizeof(trust), "%s/trust.pem", argv[1]);
	snprintf(policy, sizeof(policy), "%s/policy.txt", argv[1]);
	int count = argc > 3 ? atoi(argv[3]) : 3;

	tsm_ctx_params p;
	tsm_ctx_params_init(&p);
	p.cert_file = cert;
	p.key_file = key;
	p.trust_file = trust;
	p.policy_file = policy;
	p.listen[0] = argv[2];
	tsm_ctx *ctx;
	tsm_pub *pub;
	tsm_err e = tsm_ctx_open(&ctx, &p);
	if (e)
		return fail("tsm_ctx_open", e);
	if ((e = tsm_pub_open(&pub, ctx, "hello/world", NULL)) ||
	    (e = tsm_pub_wait_subscribers(pub, 1, 10 * TSM_SEC)))
		return fail("waiting for a subscriber", e);
	for (int i = 0; i < count; i++) {
		char text[64];
		int n = snprintf(text, sizeof(text), "hello %d", i);
		if ((e = tsm_publish(pub, text, (size_t)n, NULL)))
			return fail("tsm_publish", e);
	}
	tsm_pub_flush(pub, 5 * TSM_SEC);
	printf("hello_pub: published %d\n", count);
	tsm_ctx_close(ctx); /* closes pub too */
	return 0;
}
