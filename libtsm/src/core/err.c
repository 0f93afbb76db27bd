/*
 * core/err.c - error names, sentences, classes and the thread-local detail.
 *
 * One table maps each code to its name and sentence, so that the Python
 * bindings, the CLI and logs all say the same thing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/common.h"

struct err_entry {
	tsm_err code;
	const char *name;
	const char *text;
};

#define E(c, n, t) {c, n, t}
static const struct err_entry err_table[] = {
	E(TSM_OK, "OK", "success"),
	E(TSM_EINVAL, "EINVAL", "invalid argument"),
	E(TSM_ENOMEM, "ENOMEM", "out of memory or over a memory budget"),
	E(TSM_ETIMEDOUT, "ETIMEDOUT", "timed out"),
	E(TSM_ECLOSED, "ECLOSED", "closed"),
	E(TSM_EAGAIN, "EAGAIN", "resource temporarily unavailable"),
	E(TSM_EPROTO, "EPROTO", "protocol error from a peer"),
	E(TSM_ESECURITY, "ESECURITY", "security refusal"),
	E(TSM_EQOS, "EQOS", "quality of service could not be met"),
	E(TSM_ETRANSPORT, "ETRANSPORT", "transport failure"),
	E(TSM_ENOTSUP, "ENOTSUP", "not supported"),
	E(TSM_ESTATE, "ESTATE", "not allowed in the current state"),
	E(TSM_EINTERNAL, "EINTERNAL", "internal error (a libtsm bug)"),
	E(TSM_ERR_TRUNCATED, "TRUNCATED", "frame or field truncated"),
	E(TSM_ERR_BAD_MAGIC, "BAD_MAGIC", "frame has a wrong magic number"),
	E(TSM_ERR_BAD_VERSION, "BAD_VERSION", "unsupported wire version"),
	E(TSM_ERR_BAD_TYPE, "BAD_TYPE", "unknown frame or record type"),
	E(TSM_ERR_BAD_LENGTH, "BAD_LENGTH", "length field is inconsistent"),
	E(TSM_ERR_BAD_FIELD, "BAD_FIELD", "field has an invalid value"),
	E(TSM_ERR_OUT_OF_STATE, "OUT_OF_STATE",
	  "frame not allowed in the session's state"),
	E(TSM_ERR_BAD_METADATA, "BAD_METADATA", "metadata refused"),
	E(TSM_ERR_FRAME_TOO_LARGE, "FRAME_TOO_LARGE", "frame exceeds its limit"),
	E(TSM_ERR_BAD_FRAGMENT, "BAD_FRAGMENT",
	  "fragment out of order or inconsistent"),
	E(TSM_ERR_UNKNOWN_TOPIC, "UNKNOWN_TOPIC", "data for an undeclared topic"),
	E(TSM_ERR_BAD_TOPIC, "BAD_TOPIC", "invalid topic name"),
	E(TSM_ERR_BAD_PATTERN, "BAD_PATTERN", "invalid topic pattern"),
	E(TSM_ERR_BAD_URL, "BAD_URL", "invalid or unsupported URL"),
	E(TSM_ERR_BAD_PRIORITY, "BAD_PRIORITY", "priority outside 0..7"),
	E(TSM_ERR_MSG_TOO_LARGE, "MSG_TOO_LARGE", "message exceeds the size limit"),
	E(TSM_ERR_BAD_DEADLINE, "BAD_DEADLINE", "invalid deadline or budget"),
	E(TSM_ERR_NO_CREDENTIALS, "NO_CREDENTIALS",
	  "no credentials or policy given (and insecure not requested)"),
	E(TSM_ERR_BAD_PARAMS, "BAD_PARAMS", "invalid parameters"),
	E(TSM_ERR_NO_PEER_CERT, "NO_PEER_CERT", "peer presented no certificate"),
	E(TSM_ERR_UNKNOWN_CA, "UNKNOWN_CA", "peer certificate from an unknown CA"),
	E(TSM_ERR_CERT_EXPIRED, "CERT_EXPIRED", "certificate expired"),
	E(TSM_ERR_CERT_NOT_YET_VALID, "CERT_NOT_YET_VALID",
	  "certificate not yet valid"),
	E(TSM_ERR_CERT_REVOKED, "CERT_REVOKED", "certificate revoked"),
	E(TSM_ERR_CRL_UNAVAILABLE, "CRL_UNAVAILABLE", "CRL missing or stale"),
	E(TSM_ERR_SPIFFE_MALFORMED, "SPIFFE_MALFORMED",
	  "certificate has no valid SPIFFE ID"),
	E(TSM_ERR_PEER_ID_MISMATCH, "PEER_ID_MISMATCH",
	  "peer is not the identity expected"),
	E(TSM_ERR_TLS_VERSION, "TLS_VERSION", "TLS version below 1.3"),
	E(TSM_ERR_ALPN_MISMATCH, "ALPN_MISMATCH", "ALPN tsm/1 not agreed"),
	E(TSM_ERR_AUTHZ_DENIED, "AUTHZ_DENIED", "not authorised by policy"),
	E(TSM_ERR_PREAUTH_LIMIT, "PREAUTH_LIMIT",
	  "pre-authentication budget exceeded"),
	E(TSM_ERR_HANDSHAKE_TIMEOUT, "HANDSHAKE_TIMEOUT", "handshake timed out"),
	E(TSM_ERR_AEAD_FAIL, "AEAD_FAIL", "frame failed authentication"),
	E(TSM_ERR_REPLAY, "REPLAY", "replayed or too old frame"),
	E(TSM_ERR_INSECURE_MISMATCH, "INSECURE_MISMATCH",
	  "one side is insecure and the other is not"),
	E(TSM_ERR_DEADLINE_EXPIRED, "DEADLINE_EXPIRED", "deadline expired"),
	E(TSM_ERR_PRIORITY_CAP, "PRIORITY_CAP", "priority above the granted cap"),
	E(TSM_ERR_QUEUE_FULL, "QUEUE_FULL", "queue full"),
	E(TSM_ERR_NO_SUBSCRIBER, "NO_SUBSCRIBER", "no subscriber"),
	E(TSM_ERR_PEER_LOST, "PEER_LOST", "peer lost"),
	E(TSM_ERR_CONN_REFUSED, "CONN_REFUSED", "connection refused"),
	E(TSM_ERR_ADDR_IN_USE, "ADDR_IN_USE", "address already in use"),
	E(TSM_ERR_NO_DEVICE, "NO_DEVICE", "no such device or provider"),
	E(TSM_ERR_URING_UNAVAILABLE, "URING_UNAVAILABLE",
	  "io_uring cannot be used here"),
};
#undef E

static const struct err_entry *err_find(tsm_err err)
{
	for (size_t i = 0; i < TSM_ARRAY_LEN(err_table); i++)
		if (err_table[i].code == err)
			return &err_table[i];
	return NULL;
}

TSM_API int tsm_err_class(tsm_err err)
{
	return (int)err & 0xff;
}

TSM_API const char *tsm_strerror(tsm_err err)
{
	const struct err_entry *e = err_find(err);
	return e ? e->text : "unknown error";
}

TSM_API const char *tsm_err_name(tsm_err err)
{
	const struct err_entry *e = err_find(err);
	return e ? e->name : "UNKNOWN";
}

static _Thread_local char err_detail[TSM__ERR_DETAIL_MAX];
/* tsm__err_divert: while set, details go to (and are read from) here. */
static _Thread_local char err_scratch[TSM__ERR_DETAIL_MAX];
static _Thread_local bool err_diverted;

static char *err_cur(void)
{
	return err_diverted ? err_scratch : err_detail;
}

TSM_API const char *tsm_err_detail(void)
{
	return err_cur();
}

/* Formats into a local buffer first: callers often wrap the previous
 * detail ("outer: %s", tsm_err_detail()), which must not be overwritten
 * while it is being read. */
tsm_err tsm__err_set(tsm_err err, const char *fmt, ...)
{
	char buf[sizeof(err_detail)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	memcpy(err_cur(), buf, sizeof(buf));
	return err;
}

void tsm__err_clear(void)
{
	err_cur()[0] = '\0';
}

void tsm__err_divert(bool on)
{
	err_diverted = on;
	if (on)
		err_scratch[0] = '\0';
}
