/*
 * examples/hello_sub.c - the smallest subscriber: dials the publisher,
 * expecting it to be spiffe://TD/pub, and prints COUNT messages.
 *
 *   hello_sub PKI_DIR tcp://127.0.0.1:5555 [COUNT [PEER_ID]]
 *
 * PEER_ID defaults to spiffe://dev.local/pub, the publisher of a PKI made
 * by `tsm pki init` with its default trust domain.
 */
#include <stdio.h>
#include <stdlib.h>
#include <tsm/tsm.h>

int main(int argc, char **argv)
{
	char cert[512], key[512], trust[512], policy[512], url[600];
	if (argc < 3) {
		fprintf(stderr, "usage: hello_sub PKI_DIR URL [COUNT [PEER_ID]]\n");
		return 2;
	}
	snprintf(cert, sizeof(cert), "%s/sub.crt", argv[1]);
	snprintf(key, sizeof(key), "%s/sub.key", argv[1]);
	snprintf(trust, sizeof(trust), "%s/trust.pem", argv[1]);
	snprintf(policy, sizeof(policy), "%s/policy.txt", argv[1]);
	/* "#id": the identity the dialed peer must prove (or be refused). */
	snprintf(url, sizeof(url), "%s#%s", argv[2],
	         argc > 4 ? argv[4] : "spiffe://dev.local/pub");
	int count = argc > 3 ? atoi(argv[3]) : 3;

	tsm_ctx_params p;
	tsm_ctx_params_init(&p);
	p.cert_file = cert;
	p.key_file = key;
	p.trust_file = trust;
	p.policy_file = policy;
	p.connect[0] = url;
	tsm_ctx *ctx;
	tsm_sub *sub;
	tsm_err e = tsm_ctx_open(&ctx, &p);
	if (!e)
		e = tsm_sub_open(&sub, ctx, "hello/**", NULL);
	for (int i = 0; !e && i < count; i++) {
		tsm_msg *m;
		if ((e = tsm_sub_recv(sub, &m, 10 * TSM_SEC)))
			break;
		printf("%s: %.*s\n", tsm_msg_topic(m), (int)tsm_msg_size(m),
		       (const char *)tsm_msg_data(m));
		tsm_msg_free(m);
	}
	if (e)
		fprintf(stderr, "hello_sub: %s: %s\n", tsm_err_name(e), tsm_err_detail());
	tsm_ctx_close(ctx);
	return e ? 1 : 0;
}
