/*
 * core/params.c - setting tsm_ctx_params and tsm_qos fields by name, so
 * that bindings (Python ctypes) need not mirror structs that grow.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

static tsm_err parse_u64(const char *key, const char *v, uint64_t max,
                         uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (!*v || *end || errno || v[0] == '-' || x > max)
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "%s: '%s' is not a number in "
		                    "0..%llu", key, v, (unsigned long long)max);
	*out = x;
	return TSM_OK;
}

/* name=value tables for enumerations */
struct kv {
	const char *name;
	int value;
};

static tsm_err parse_enum(const char *key, const char *v, const struct kv *t,
                          int *out)
{
	for (; t->name; t++) {
		if (strcmp(t->name, v) == 0) {
			*out = t->value;
			return TSM_OK;
		}
	}
	return tsm__err_set(TSM_ERR_BAD_PARAMS, "%s: unknown value '%s'", key, v);
}

static tsm_err append_url(const char **list, const char *key, const char *v)
{
	for (int i = 0; i < TSM_MAX_URLS - 1; i++) {
		if (!list[i]) {
			list[i] = v;
			return TSM_OK;
		}
	}
	return tsm__err_set(TSM_ERR_BAD_PARAMS, "%s: at most %d URLs", key,
	                    TSM_MAX_URLS - 1);
}

static tsm_err set_ms(tsm_duration *d, const char *key, const char *v)
{
	uint64_t x;
	tsm_err e = parse_u64(key, v, 86400000ull, &x);
	if (!e)
		*d = (tsm_duration)x * TSM_MSEC;
	return e;
}

static tsm_err set_u32(uint32_t *d, const char *key, const char *v)
{
	uint64_t x;
	tsm_err e = parse_u64(key, v, UINT32_MAX, &x);
	if (!e)
		*d = (uint32_t)x;
	return e;
}

static const struct kv progress_kv[] = {
	{"blocking", TSM_PROGRESS_BLOCKING}, {"busy_poll", TSM_PROGRESS_BUSY_POLL},
	{NULL, 0}};
static const struct kv level_kv[] = {
	{"error", TSM_LOG_ERROR}, {"warn", TSM_LOG_WARN}, {"info", TSM_LOG_INFO},
	{"debug", TSM_LOG_DEBUG}, {NULL, 0}};
static const struct kv bool_kv[] = {{"0", 0}, {"1", 1}, {NULL, 0}};
static const struct kv cipher_kv[] = {
	{"aes-256-gcm", 0}, {"chacha20-poly1305", 1}, {NULL, 0}};

static tsm_err params_str(tsm_ctx_params *p, const char *k, const char *v,
                          bool *found)
{
	const char **slot = NULL;
	*found = true;
	if (strcmp(k, "listen") == 0)
		return append_url(p->listen, k, v);
	if (strcmp(k, "connect") == 0 || strcmp(k, "seed") == 0)
		return append_url(p->connect, k, v);
	if (strcmp(k, "advertise") == 0)
		return append_url(p->advertise, k, v);
	if (strcmp(k, "name") == 0)
		slot = &p->name;
	else if (strcmp(k, "cert_file") == 0)
		slot = &p->cert_file;
	else if (strcmp(k, "key_file") == 0)
		slot = &p->key_file;
	else if (strcmp(k, "trust_file") == 0)
		slot = &p->trust_file;
	else if (strcmp(k, "policy_file") == 0)
		slot = &p->policy_file;
	else if (strcmp(k, "crl_file") == 0)
		slot = &p->crl_file;
	else if (strcmp(k, "beacon") == 0)
		slot = &p->beacon;
	*found = slot != NULL;
	if (slot)
		*slot = v;
	return TSM_OK;
}

/* "46,46,34,26,18,10,0,0": one value per lane, -1 = unmarked. */
static tsm_err parse_dscp(tsm_ctx_params *p, const char *v)
{
	int8_t out[8];
	const char *s = v;
	for (int i = 0; i < 8; i++) {
		char *end;
		long x = strtol(s, &end, 10);
		if (end == s || x < -1 || x > 63 || (i < 7 ? *end != ',' : *end != '\0'))
			return tsm__err_set(TSM_ERR_BAD_PARAMS, "lane_dscp: '%s': want 8 "
			                    "comma-separated values in -1..63", v);
		out[i] = (int8_t)x;
		s = end + 1;
	}
	memcpy(p->lane_dscp, out, sizeof(out));
	return TSM_OK;
}

static tsm_err params_num(tsm_ctx_params *p, const char *k, const char *v)
{
	int x = 0;
	tsm_err e;
	if (strcmp(k, "insecure") == 0)
		return (e = parse_enum(k, v, bool_kv, &x)) ? e : (p->insecure = x, TSM_OK);
	if (strcmp(k, "discovery") == 0)
		return (e = parse_enum(k, v, bool_kv, &x)) ? e : (p->discovery = x, TSM_OK);
	if (strcmp(k, "crl_soft_fail") == 0)
		return (e = parse_enum(k, v, bool_kv, &x)) ? e : (p->crl_soft_fail = x, TSM_OK);
	if (strcmp(k, "cipher") == 0)
		return (e = parse_enum(k, v, cipher_kv, &x)) ? e : (p->cipher = x, TSM_OK);
	if (strcmp(k, "progress") == 0)
		return (e = parse_enum(k, v, progress_kv, &x)) ? e
		       : (p->progress = (tsm_progress_mode)x, TSM_OK);
	if (strcmp(k, "log_level") == 0)
		return (e = parse_enum(k, v, level_kv, &x)) ? e
		       : (p->log_level = (tsm_log_level)x, TSM_OK);
	if (strcmp(k, "lane_dscp") == 0)
		return parse_dscp(p, v);
	if (strcmp(k, "send_backlog_us") == 0) {
		uint64_t us;
		if (strcmp(v, "off") == 0)
			return p->send_backlog_us = TSM_SEND_BACKLOG_OFF, TSM_OK;
		return (e = parse_u64(k, v, 1000000, &us)) ? e
		       : (p->send_backlog_us = (uint32_t)us, TSM_OK);
	}
	if (strcmp(k, "session_queue_bytes") == 0)
		return parse_u64(k, v, UINT64_MAX, &p->session_queue_bytes);
	if (strcmp(k, "reassembly_bytes") == 0)
		return parse_u64(k, v, UINT64_MAX, &p->reassembly_bytes);
	if (strcmp(k, "publish_queue_bytes") == 0)
		return parse_u64(k, v, UINT64_MAX, &p->publish_queue_bytes);
	static const struct { const char *k; size_t off; } u32s[] = {
		{"publish_queue", offsetof(tsm_ctx_params, publish_queue)},
		{"fragment_size", offsetof(tsm_ctx_params, fragment_size)},
		{"preauth_max", offsetof(tsm_ctx_params, preauth_max)},
		{"preauth_per_source", offsetof(tsm_ctx_params, preauth_per_source)},
		{"max_peers", offsetof(tsm_ctx_params, max_peers)}};
	for (size_t i = 0; i < TSM_ARRAY_LEN(u32s); i++)
		if (strcmp(k, u32s[i].k) == 0)
			return set_u32((uint32_t *)((char *)p + u32s[i].off), k, v);
	static const struct { const char *k; size_t off; } durs[] = {
		{"handshake_timeout_ms", offsetof(tsm_ctx_params, handshake_timeout)},
		{"session_timeout_ms", offsetof(tsm_ctx_params, session_timeout)},
		{"reconnect_max_ms", offsetof(tsm_ctx_params, reconnect_max)},
		{"linger_ms", offsetof(tsm_ctx_params, linger)},
		{"reload_interval_ms", offsetof(tsm_ctx_params, reload_interval)},
		{"reauth_before_ms", offsetof(tsm_ctx_params, reauth_before)},
		{"accept_backoff_ms", offsetof(tsm_ctx_params, accept_backoff)},
		{"gossip_interval_ms", offsetof(tsm_ctx_params, gossip_interval)},
		{"peer_timeout_ms", offsetof(tsm_ctx_params, peer_timeout)}};
	for (size_t i = 0; i < TSM_ARRAY_LEN(durs); i++)
		if (strcmp(k, durs[i].k) == 0)
			return set_ms((tsm_duration *)((char *)p + durs[i].off), k, v);
	return tsm__err_set(TSM_ERR_BAD_PARAMS, "tsm_ctx_params_set: unknown key "
	                    "'%s'", k);
}

TSM_API size_t tsm_ctx_params_size(void)
{
	return sizeof(tsm_ctx_params);
}

TSM_API tsm_err tsm_ctx_params_set(tsm_ctx_params *p, const char *key,
                                   const char *value)
{
	bool found;
	if (!p || !key || !value)
		return tsm__err_set(TSM_EINVAL, "tsm_ctx_params_set: NULL argument");
	tsm_err e = params_str(p, key, value, &found);
	return found ? e : params_num(p, key, value);
}

static const struct kv rel_kv[] = {
	{"reliable", TSM_RELIABLE}, {"best_effort", TSM_BEST_EFFORT}, {NULL, 0}};
static const struct kv bp_kv[] = {
	{"block", TSM_BP_BLOCK}, {"drop_oldest", TSM_BP_DROP_OLDEST},
	{"drop_newest", TSM_BP_DROP_NEWEST}, {"latest_only", TSM_BP_LATEST_ONLY},
	{NULL, 0}};

TSM_API size_t tsm_qos_size(void)
{
	return sizeof(tsm_qos);
}

TSM_API tsm_err tsm_qos_set(tsm_qos *q, const char *k, const char *v)
{
	uint64_t x;
	int en = 0;
	tsm_err e;
	if (!q || !k || !v)
		return tsm__err_set(TSM_EINVAL, "tsm_qos_set: NULL argument");
	if (strcmp(k, "priority") == 0) {
		if (parse_u64(k, v, TSM_PRIO_MAX, &x))
			return tsm__err_set(TSM_ERR_BAD_PRIORITY, "priority: '%s' is not "
			                    "0..7", v);
		q->priority = (uint8_t)x;
		return TSM_OK;
	}
	if (strcmp(k, "timestamps") == 0)
		return (e = parse_enum(k, v, bool_kv, &en)) ? e
		       : (q->timestamps = en, TSM_OK);
	if (strcmp(k, "deadline_budget_us") == 0)
		return (e = parse_u64(k, v, INT64_MAX / TSM_USEC, &x)) ? e
		       : (q->deadline_budget = (tsm_duration)x * TSM_USEC, TSM_OK);
	if (strcmp(k, "reliability") == 0)
		return (e = parse_enum(k, v, rel_kv, &en)) ? e
		       : (q->reliability = (tsm_reliability)en, TSM_OK);
	if (strcmp(k, "backpressure") == 0)
		return (e = parse_enum(k, v, bp_kv, &en)) ? e
		       : (q->backpressure = (tsm_backpressure)en, TSM_OK);
	if (strcmp(k, "block_timeout_ms") == 0)
		return set_ms(&q->block_timeout, k, v);
	if (strcmp(k, "queue_depth") == 0)
		return set_u32(&q->queue_depth, k, v);
	if (strcmp(k, "max_msg_size") == 0)
		return parse_u64(k, v, UINT64_MAX, &q->max_msg_size);
	return tsm__err_set(TSM_ERR_BAD_PARAMS, "tsm_qos_set: unknown key '%s'", k);
}

TSM_API tsm_err tsm_ctx_params_set_log(tsm_ctx_params *p, tsm_log_fn fn, void *arg)
{
	if (!p)
		return tsm__err_set(TSM_EINVAL, "tsm_ctx_params_set_log: NULL");
	p->log = fn;
	p->log_arg = arg;
	return TSM_OK;
}

TSM_API tsm_err tsm_ctx_params_set_event(tsm_ctx_params *p, tsm_event_fn fn,
                                         void *arg)
{
	if (!p)
		return tsm__err_set(TSM_EINVAL, "tsm_ctx_params_set_event: NULL");
	p->on_event = fn;
	p->event_arg = arg;
	return TSM_OK;
}

TSM_API tsm_err tsm_ctx_params_set_outcome(tsm_ctx_params *p, tsm_outcome_fn fn,
                                           void *arg)
{
	if (!p)
		return tsm__err_set(TSM_EINVAL, "tsm_ctx_params_set_outcome: NULL");
	p->on_outcome = fn;
	p->outcome_arg = arg;
	return TSM_OK;
}
