/*
 * core/cred.c - credentials and policy of a context, and their rotation.
 *
 * Files are checked by (mtime, size, inode) every reload_interval (each
 * file of a "td=path,..." trust spec too); a change to any of them reloads
 * all of them, and the new set replaces the old one only if it loads
 * completely and our certificate is still a valid SVID: a half-written or
 * bad file never takes a node down; it is retried at every check (and
 * logged now and then) until it loads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/audit.h"
#include "core/cred.h"
#include "security/policy.h"
#include "security/tls.h"
#include "session/secure.h"

enum { F_CERT, F_KEY, F_TRUST, F_POLICY, F_CRL, F__N };

static void cred_stamp_file(const char *path, struct tsm__filestamp *st)
{
	struct stat sb;
	if (stat(path, &sb) != 0)
		return;
	/* folded (unsigned: wrapping is intended), so that a list of files
	 * changes when any one of them does */
	st->mtime_ns = (long long)((unsigned long long)st->mtime_ns * 31u +
	                           (unsigned long long)sb.st_mtim.tv_sec * 1000000000ull +
	                           (unsigned long long)sb.st_mtim.tv_nsec);
	st->size = (long long)((unsigned long long)st->size * 31u +
	                       (unsigned long long)sb.st_size);
	st->ino = (long long)((unsigned long long)st->ino * 31u +
	                      (unsigned long long)sb.st_ino);
}

/* A path, or a trust spec "td=path,td=path" (tls.h): every file counts. */
static void cred_stamp(const char *spec, struct tsm__filestamp *st)
{
	memset(st, 0, sizeof(*st));
	if (!spec)
		return;
	const char *eq = strchr(spec, '='), *slash = strchr(spec, '/');
	if (!eq || (slash && slash < eq))
		return cred_stamp_file(spec, st);
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", spec);
	char *save = NULL;
	for (char *e = strtok_r(buf, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
		char *path = strchr(e, '=');
		if (path)
			cred_stamp_file(path + 1, st);
	}
}

static tsm_err cred_load(tsm_ctx *ctx, struct tsm__tls_cfg **cfg,
                         struct tsm__policy **pol)
{
	tsm__tls_files f = {ctx->files[F_CERT], ctx->files[F_KEY],
	                    ctx->files[F_TRUST], ctx->files[F_CRL],
	                    ctx->p.crl_soft_fail != 0};
	tsm_err e = tsm__tls_cfg_new(&f, cfg);
	if (e)
		return e;
	if ((e = tsm__policy_load(ctx->files[F_POLICY], pol)) != TSM_OK) {
		tsm__tls_cfg_free(*cfg);
		*cfg = NULL;
	}
	return e;
}

tsm_err tsm__cred_open(tsm_ctx *ctx, const tsm_ctx_params *p)
{
	const char *src[F__N] = {p->cert_file, p->key_file, p->trust_file,
	                         p->policy_file, p->crl_file};
	for (int i = 0; i < F__N; i++) {
		if (src[i] && !(ctx->files[i] = strdup(src[i])))
			return tsm__err_set(TSM_ENOMEM, "credential paths");
		cred_stamp(ctx->files[i], &ctx->stamps[i]);
	}
	tsm_err e = cred_load(ctx, &ctx->tls_cfg, &ctx->policy);
	if (!e)
		e = tsm__tls_cfg_own_id(ctx->tls_cfg, ctx->own_id, sizeof(ctx->own_id));
	if (!e && tsm__policy_rules(ctx->policy) == 0)
		e = tsm__err_set(TSM_ERR_NO_CREDENTIALS, "policy %s has no rules: "
		                 "everything would be denied", ctx->files[F_POLICY]);
	return e;
}

/* Stamps are committed only after a successful reload (cred_reload), so
 * a half-written or invalid file is tried again at every check. */
static bool cred_changed(tsm_ctx *ctx, struct tsm__filestamp now[F__N])
{
	bool changed = false;
	for (int i = 0; i < F__N; i++) {
		cred_stamp(ctx->files[i], &now[i]);
		changed |= memcmp(&now[i], &ctx->stamps[i], sizeof(now[i])) != 0;
	}
	return changed;
}

void tsm__ctx_security_changed(tsm_ctx *ctx);

static void cred_reload(tsm_ctx *ctx, const struct tsm__filestamp st[F__N])
{
	struct tsm__tls_cfg *cfg;
	struct tsm__policy *pol;
	char own[sizeof(ctx->own_id)];
	tsm_err e = cred_load(ctx, &cfg, &pol);
	/* the same rules as at open: our own certificate must be an SVID */
	if (!e && (e = tsm__tls_cfg_own_id(cfg, own, sizeof(own))) != TSM_OK) {
		tsm__tls_cfg_free(cfg);
		tsm__policy_free(pol);
	}
	if (e) {
		if (ctx->reload_failing++ % 30 == 0)
			tsm__log(ctx, TSM_LOG_WARN, "reload refused, keeping the old "
			         "credentials (retrying): %s", tsm_err_detail());
		return;
	}
	ctx->reload_failing = 0;
	memcpy(ctx->stamps, st, sizeof(ctx->stamps));
	tsm__tls_cfg_free(ctx->tls_cfg);
	tsm__policy_free(ctx->policy);
	ctx->tls_cfg = cfg;
	ctx->policy = pol;
	memcpy(ctx->own_id, own, sizeof(own));
	tsm__stat_add(&ctx->stats, ST_CRED_RELOADS, 1);
	tsm__log(ctx, TSM_LOG_INFO, "credentials and policy reloaded");
	tsm__ctx_security_changed(ctx);
}

tsm_time tsm__cred_tick(tsm_ctx *ctx, tsm_time now)
{
	if (ctx->insecure)
		return TSM_NEVER;
	if (now >= ctx->next_reload_check) {
		struct tsm__filestamp st[F__N];
		ctx->next_reload_check = now + ctx->p.reload_interval;
		if (cred_changed(ctx, st))
			cred_reload(ctx, st);
	}
	return ctx->next_reload_check;
}

void tsm__cred_close(tsm_ctx *ctx)
{
	tsm__tls_cfg_free(ctx->tls_cfg);
	tsm__policy_free(ctx->policy);
	ctx->tls_cfg = NULL;
	ctx->policy = NULL;
	for (int i = 0; i < F__N; i++) {
		free(ctx->files[i]);
		ctx->files[i] = NULL;
	}
}
