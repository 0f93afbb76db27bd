/*
 * core/tstats.h - per (topic, lane) delivery statistics with latency
 * histograms, and the outcome of every dropped message (design.md §5:
 * "every refusal or drop has an outcome code and a counter").
 *
 * Threading: any thread; one mutex per context guards the table (taken
 * once per delivered or dropped message, and by readers).
 */
#ifndef TSM_CORE_TSTATS_H
#define TSM_CORE_TSTATS_H

#include "core/internal.h"

/* A message was handed to a subscriber now. */
void tsm__ts_delivered(tsm_ctx *ctx, const tsm_msg *m, tsm_time now);
/*
 * tsm__subs_each_queued (api_sub.c) calls fn for every message waiting in
 * a local subscriber queue now; tsm_stats_topics counts `queued` so when
 * it is read (a live gauge cost two locked table look-ups per message).
 */
void tsm__subs_each_queued(tsm_ctx *ctx, void (*fn)(void *, const tsm_msg *),
                           void *arg);
/*
 * tsm__outcome counts a dropped message under its (topic, lane) and
 * reason, and tells the user's tsm_outcome_fn.
 */
void tsm__outcome(tsm_ctx *ctx, const tsm__topic *t, uint8_t lane,
                  uint64_t msg_id, tsm_err reason, tsm_where where);
/* A dropped message: its drop.* counter and its outcome, in one call. */
void tsm__drop_msg(tsm_ctx *ctx, const tsm_msg *m, tsm_err reason,
                   tsm_where where);
void tsm__drop_omsg(tsm_ctx *ctx, const tsm__omsg *m, tsm_err reason,
                    tsm_where where);
void tsm__ts_free(tsm_ctx *ctx);

#endif
