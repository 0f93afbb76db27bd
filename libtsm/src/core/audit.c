/*
 * core/audit.c - one place where a refusal becomes visible: a counter per
 * reason code, a log line rate-limited per reason (one per second, with a
 * count of the ones suppressed), and the user's event callback.
 */
#include <stdarg.h>
#include <stdio.h>

#include "core/audit.h"

struct reason_stat {
	tsm_err err;
	enum tsm__stat st;
};

static const struct reason_stat reason_stats[] = {
	{TSM_ERR_NO_PEER_CERT, ST_R_NO_PEER_CERT},
	{TSM_ERR_UNKNOWN_CA, ST_R_UNKNOWN_CA},
	{TSM_ERR_CERT_EXPIRED, ST_R_CERT_EXPIRED},
	{TSM_ERR_CERT_NOT_YET_VALID, ST_R_CERT_NOT_YET_VALID},
	{TSM_ERR_CERT_REVOKED, ST_R_CERT_REVOKED},
	{TSM_ERR_CRL_UNAVAILABLE, ST_R_CRL_UNAVAILABLE},
	{TSM_ERR_SPIFFE_MALFORMED, ST_R_SPIFFE_MALFORMED},
	{TSM_ERR_PEER_ID_MISMATCH, ST_R_PEER_ID_MISMATCH},
	{TSM_ERR_TLS_VERSION, ST_R_TLS_VERSION},
	{TSM_ERR_ALPN_MISMATCH, ST_R_ALPN_MISMATCH},
	{TSM_ERR_AUTHZ_DENIED, ST_R_AUTHZ_DENIED},
	{TSM_ERR_PREAUTH_LIMIT, ST_R_PREAUTH_LIMIT},
	{TSM_ERR_HANDSHAKE_TIMEOUT, ST_R_HANDSHAKE_TIMEOUT},
	{TSM_ERR_AEAD_FAIL, ST_R_AEAD_FAIL},
	{TSM_ERR_REPLAY, ST_R_REPLAY},
	{TSM_ERR_MSG_TOO_LARGE, ST_R_MSG_TOO_LARGE},
	{TSM_ERR_PRIORITY_CAP, ST_R_PRIORITY_CAP},
	{TSM_ERR_INSECURE_MISMATCH, ST_R_INSECURE_MISMATCH},
	{TSM_ERR_PEER_LOST, ST_R_PEER_LOST},
};

static int reason_index(tsm_err err)
{
	for (size_t i = 0; i < TSM_ARRAY_LEN(reason_stats); i++)
		if (reason_stats[i].err == err)
			return (int)i;
	return -1;
}

/* One slot per reason plus "other"; racy by design: a log line more or
 * less under contention is fine, a lock on this path is not. */
static bool audit_may_log(tsm_ctx *ctx, int i, uint32_t *suppressed)
{
	size_t k = i < 0 ? TSM_ARRAY_LEN(reason_stats) : (size_t)i;
	tsm_time now = tsm__now();
	if (now - ctx->audit_last[k] < TSM_SEC) {
		ctx->audit_suppressed[k]++;
		return false;
	}
	ctx->audit_last[k] = now;
	*suppressed = ctx->audit_suppressed[k];
	ctx->audit_suppressed[k] = 0;
	return true;
}

void tsm__audit(tsm_ctx *ctx, tsm_err reason, const char *peer,
                const char *topic, const char *fmt, ...)
{
	char detail[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	int i = reason_index(reason);
	tsm__stat_add(&ctx->stats, i < 0 ? ST_R_OTHER : reason_stats[i].st, 1);
	uint32_t supp = 0;
	if (audit_may_log(ctx, i, &supp))
		tsm__log(ctx, TSM_LOG_WARN, "%s: peer %s%s%s: %s%s", tsm_err_name(reason),
		         peer && *peer ? peer : "?", topic ? " topic " : "",
		         topic ? topic : "", detail,
		         supp ? " (more of these suppressed)" : "");
	if (ctx->p.on_event) {
		tsm_event ev = {sizeof(ev), reason, peer ? peer : "", topic, detail};
		ctx->p.on_event(ctx->p.event_arg, &ev);
	}
}
