/*
 * core/audit.h - refusals and security events (security.md "Reason
 * codes"): each one counted under reason.<name>, logged at most once a
 * second per reason, and passed to the user's tsm_event_fn. Thread-safe
 * enough for its purpose (counters are atomic; the rate limiter is racy
 * by design).
 */
#ifndef TSM_CORE_AUDIT_H
#define TSM_CORE_AUDIT_H

#include "core/internal.h"

void tsm__audit(tsm_ctx *ctx, tsm_err reason, const char *peer,
                const char *topic, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#endif
