/*
 * bench/tsm_common.c - contexts, credentials and counters for the libtsm
 * benchmarks of the prio, deadline and fanout cases (tsm_common.h).
 */
#include "tsm_common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int tc_cred_opt(int c, const char *arg, struct tc_cred *cr)
{
	switch (c) {
	case TC_OPT_SECURE: cr->secure = 1; return 0;
	case TC_OPT_CERT: cr->cert = arg; return 0;
	case TC_OPT_KEY: cr->key = arg; return 0;
	case TC_OPT_TRUST: cr->trust = arg; return 0;
	case TC_OPT_POLICY: cr->policy = arg; return 0;
	case TC_OPT_CERT_B: cr->cert_b = arg; return 0;
	case TC_OPT_KEY_B: cr->key_b = arg; return 0;
	default: return 1;
	}
}

int tc_cred_check(const struct tc_cred *cr)
{
	if (!cr->secure || (cr->cert && cr->key && cr->trust))
		return 0;
	fprintf(stderr, "tsm: --secure needs --cert, --key and --trust\n");
	return -1;
}

void tc_fail(const char *who, const char *what, tsm_err e)
{
	fprintf(stderr, "tsm %s: %s: %s (%s) %s\n", who, what, tsm_err_name(e),
	        tsm_strerror(e), tsm_err_detail());
}

static tsm_err tc_open(tsm_ctx **ctx, const struct tc_cred *cr, int is_b,
                       const char *name, const char *connect, unsigned peers)
{
	tsm_ctx_params p;

	tsm_ctx_params_init(&p);
	p.name = name;
	if (peers > 4) /* the documented default */
		p.preauth_per_source = peers;
	p.connect[0] = connect;
	p.progress = TSM_PROGRESS_BLOCKING;
	p.insecure = !cr->secure;
	if (cr->secure) {
		p.cert_file = is_b && cr->cert_b ? cr->cert_b : cr->cert;
		p.key_file = is_b && cr->key_b ? cr->key_b : cr->key;
		p.trust_file = cr->trust;
		p.policy_file = cr->policy;
	}
	return tsm_ctx_open(ctx, &p);
}

tsm_err tc_open_listen(tsm_ctx **ctx, const struct tc_cred *cr,
                       const char *name, const char *addr, unsigned peers,
                       char *url)
{
	char want[TC_URL_MAX];
	tsm_err e = tc_open(ctx, cr, 0, name, NULL, peers);

	if (e != TSM_OK)
		return e;
	snprintf(want, sizeof(want), "tcp://%s:0", addr);
	return tsm_ctx_listen(*ctx, want, url, TC_URL_MAX);
}

tsm_err tc_open_dial(tsm_ctx **ctx, const struct tc_cred *cr,
                     const char *name, const char *url)
{
	return tc_open(ctx, cr, 1, name, url, 0);
}

uint64_t tc_stat(tsm_ctx *ctx, const char *name)
{
	uint64_t v = 0;

	if (!ctx || tsm_stats_get(ctx, name, &v) != TSM_OK)
		return 0;
	return v;
}

static void tc_sum_drops(void *arg, const char *name, uint64_t value)
{
	uint64_t *sum = arg;

	if (strncmp(name, "drop.", 5) == 0)
		*sum += value;
}

uint64_t tc_drops(tsm_ctx *ctx)
{
	uint64_t sum = 0;

	if (ctx)
		tsm_stats_foreach(ctx, tc_sum_drops, &sum);
	return sum;
}

static void tc_stat_line(void *arg, const char *name, uint64_t value)
{
	const int *all = arg;

	if (*all || value != 0)
		fprintf(stderr, "  stat %s = %llu\n", name,
		        (unsigned long long)value);
}

void tc_dump_stats(tsm_ctx *ctx, const char *who, int all)
{
	if (!ctx)
		return;
	fprintf(stderr, "tsm %s: counters%s:\n", who, all ? "" : " (non-zero)");
	tsm_stats_foreach(ctx, tc_stat_line, &all);
}

int tc_send_url(int fd, const char *url)
{
	char rec[TC_URL_MAX] = "";

	snprintf(rec, sizeof(rec), "%s", url);
	return write(fd, rec, sizeof(rec)) == (ssize_t)sizeof(rec) ? 0 : -1;
}

int tc_recv_url(int fd, char *url)
{
	size_t got = 0;

	while (got < TC_URL_MAX) {
		ssize_t r = read(fd, url + got, TC_URL_MAX - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	url[TC_URL_MAX - 1] = '\0';
	return url[0] ? 0 : -1;
}
