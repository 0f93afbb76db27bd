/*
 * examples/pipeline/common.h - shared by the pipeline demo's C programs:
 * open a secure context from a development PKI directory made by
 * `tsm pki init DIR` (DIR/NAME.crt, NAME.key, trust.pem, policy.txt).
 */
#ifndef PIPELINE_COMMON_H
#define PIPELINE_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <tsm/tsm.h>

static inline _Noreturn void die(const char *what, tsm_err e)
{
	fprintf(stderr, "%s: %s (%s): %s\n", what, tsm_err_name(e), tsm_strerror(e),
	        tsm_err_detail());
	exit(1);
}

/* listen or dial `url` as identity NAME of the PKI in dir. */
static inline tsm_ctx *open_node(const char *dir, const char *name,
                                 const char *url, int listen)
{
	static char f[4][512];
	tsm_ctx_params p;
	tsm_ctx *ctx;
	tsm_err e;
	tsm_ctx_params_init(&p);
	snprintf(f[0], sizeof(f[0]), "%s/%s.crt", dir, name);
	snprintf(f[1], sizeof(f[1]), "%s/%s.key", dir, name);
	snprintf(f[2], sizeof(f[2]), "%s/trust.pem", dir);
	snprintf(f[3], sizeof(f[3]), "%s/policy.txt", dir);
	p.cert_file = f[0];
	p.key_file = f[1];
	p.trust_file = f[2];
	p.policy_file = f[3];
	p.name = name;
	if (listen)
		p.listen[0] = url;
	else
		p.connect[0] = url;
	if ((e = tsm_ctx_open(&ctx, &p)) != TSM_OK)
		die("tsm_ctx_open", e);
	return ctx;
}

#endif
