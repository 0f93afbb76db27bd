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

/* Percentiles of one latency histogram (log-linear buckets: a value is
 * reported within 1/16 of itself). All 0 when count is 0. */
typedef struct tsm_latency {
	uint64_t count;
	uint64_t p50_ns, p99_ns, p999_ns, max_ns;
} tsm_latency;

/*
 * tsm_topic_stats: what this node delivered and lost for one topic and
 * lane (messages it received, or published to local subscribers).
 */
typedef struct tsm_topic_stats {
	uint32_t size;              /* sizeof(tsm_topic_stats) */
	const char *topic;          /* valid during the callback */
	uint8_t lane;               /* priority 0..7 */
	uint64_t delivered;         /* handed to a subscriber */
	uint64_t deadline_missed;   /* dropped with DEADLINE_EXPIRED, anywhere */
	uint64_t dropped_queue_full;
	uint64_t dropped_other;     /* authorisation, caps, peer lost, ... */
	uint64_t queued;            /* waiting in local subscriber queues,
	                               counted when tsm_stats_topics runs */
	tsm_latency latency;        /* publish -> hand-over, from the sender's
	                               send timestamp: meaningful when both
	                               run on one host (one monotonic clock) */
	tsm_latency local;          /* arrival at this node -> hand-over */
	tsm_latency slack;          /* deadline - hand-over (deadlined only) */
} tsm_topic_stats;

/* tsm_topic_stats_fn is called once per (topic, lane) seen. */
typedef void (*tsm_topic_stats_fn)(void *arg, const tsm_topic_stats *s);

/*
 * tsm_stats_topics calls fn for every (topic, lane) this context has
 * delivered or dropped messages of (at most 4096; beyond that they are
 * summed under the topic "*"). Takes a lock briefly per entry, and each
 * subscriber's queue lock once to count `queued`; fn must not call back
 * into libtsm.
 */
tsm_err tsm_stats_topics(tsm_ctx *ctx, tsm_topic_stats_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif
