/*
 * brokerless/disc.h - the discovery plane behind one ops table that the
 * context calls (design.md §9, docs/design/discovery.md).
 *
 * Threading: open runs in tsm_ctx_open before the progress thread starts
 * and close after it stopped; every other op runs on the progress thread,
 * which owns the discovery state like it owns the sessions.
 */
#ifndef TSM_BROKERLESS_DISC_H
#define TSM_BROKERLESS_DISC_H

#include "core/internal.h"
#include "tsm/ctx.h"

typedef struct tsm__disc tsm__disc;

typedef struct tsm__disc_ops {
	uint32_t size;             /* sizeof(struct tsm__disc_ops) */
	const char *name;          /* "gossip" */
	/* p: the caller's params (its strings are still valid). */
	tsm_err (*open)(tsm_ctx *ctx, const tsm_ctx_params *p, tsm__disc **out);
	void (*close)(tsm__disc *d);
	/* The context is closing: tell the peers (LEAVING), queued on s. */
	void (*leave)(tsm__disc *d);
	void (*session_up)(tsm__disc *d, tsm__session *s);
	/* CTRL ADVERT records from s (docs/wire.md §12); an error closes s. */
	tsm_err (*on_advert)(tsm__disc *d, tsm__session *s, const uint8_t *b,
	                     size_t n);
	/* Local publishers, subscribers or listeners changed. */
	void (*local_changed)(tsm__disc *d);
	/* Timers; returns when it next needs to run. */
	tsm_time (*tick)(tsm__disc *d, tsm_time now);
	/* tsm_ctx_peers, on the progress thread. */
	size_t (*peers)(tsm__disc *d, tsm_peer_info *out, size_t max);
} tsm__disc_ops;

extern const tsm__disc_ops tsm__disc_gossip_ops;

#endif
