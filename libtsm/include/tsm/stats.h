/*
 * tsm/stats.h - counters readable by name.
 *
 * Every refusal, drop and fallback in libtsm increments a named counter
 * ("drop.deadline_expired", "session.established", "ctx.insecure",
 * "transport.epoll_fallback", ...); docs/stats.md lists them. Reads are
 * thread-safe and lock-free; values are monotonic unless documented as
 * gauges.
 */
#ifndef TSM_STATS_H
#define TSM_STATS_H

#include <stdint.h>
#include "ctx.h"
#include "err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * tsm_stats_get reads the counter called name into *value. Returns
 * TSM_EINVAL for NULL arguments and TSM_ERR_BAD_PARAMS for an unknown name.
 */
tsm_err tsm_stats_get(tsm_ctx *ctx, const char *name, uint64_t *value);

/* tsm_stats_fn is called once per counter; name is static. */
typedef void (*tsm_stats_fn)(void *arg, const char *name, uint64_t value);

/* tsm_stats_foreach calls fn for every counter, in a stable order. */
tsm_err tsm_stats_foreach(tsm_ctx *ctx, tsm_stats_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif
