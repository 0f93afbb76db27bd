/*
 * transport/fault/fault.h - the fault-injection decorator of the I/O
 * engine (issue 9; semantics in fault.c's header and docs/design/faults.md).
 *
 * Off unless asked for: TSM_FAULT="seed=1,loss=0.01,..." in the
 * environment of a context's process, read once at tsm_ctx_open. When it
 * is unset the context runs its engine directly (no indirection, no
 * copy). When it is set the context logs a WARN line, the stat
 * fault.enabled is 1, the engine's name gains "+fault" and every injected
 * fault is counted in fault.*.
 */
#ifndef TSM_TRANSPORT_FAULT_H
#define TSM_TRANSPORT_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/stats.h"
#include "transport/io.h"

struct tsm_ctx;

/* Default bytes a connection may hold back before its sends wait. */
#define TSM_FAULT_HOLD_DEFAULT (1u << 20)
/* How long a closed connection still writes what it holds (like TCP). */
#define TSM_FAULT_LINGER (500 * TSM_MSEC)
/* A segment held for reordering goes out unswapped after this long
 * (reorder_wait_ms= changes it). */
#define TSM_FAULT_REORDER_WAIT (10 * TSM_MSEC)

typedef struct tsm__fault_spec {
	uint64_t seed;
	bool seed_given;
	double loss, corrupt, dup, reorder; /* probability per send, 0..1 */
	tsm_duration delay, jitter;         /* per send: delay +- jitter */
	tsm_duration part_len, part_at, part_every; /* partition schedule */
	tsm_duration from, until;           /* window of the per-send faults,
	                                       from open; until 0 = no end */
	tsm_duration reorder_wait;          /* 0 = TSM_FAULT_REORDER_WAIT */
	uint64_t hold_max;                  /* bytes held per connection */
	char ctx_name[65];                  /* "" = every context */
} tsm__fault_spec;

/* tsm__fault_parse reads a TSM_FAULT string; TSM_ERR_BAD_PARAMS with a
 * detail naming the offending item. */
tsm_err tsm__fault_parse(const char *text, tsm__fault_spec *out);

/* tsm__fault_describe writes the canonical form (for the log line). */
void tsm__fault_describe(const tsm__fault_spec *s, char *buf, size_t cap);

/*
 * tsm__fault_wrap initialises the engine `inner` under a decorator that
 * applies spec. cbs are the caller's callbacks; stats receives fault.*
 * counters; ctx (may be NULL) is used only for log lines. *ops_out is the
 * decorator instance's own table (its name is "<inner>+fault"), valid
 * until its fini.
 */
tsm_err tsm__fault_wrap(const tsm__io_ops *inner, const tsm__io_cbs *cbs,
                        bool busy, const tsm__fault_spec *spec,
                        tsm__stats *stats, struct tsm_ctx *ctx,
                        const tsm__io_ops **ops_out, tsm__io **out);

/*
 * tsm__fault_install: the context's hook, called once its engine is up.
 * Without TSM_FAULT it returns at once. With it, it re-creates the engine
 * under the decorator. A malformed TSM_FAULT refuses the context
 * (TSM_ERR_BAD_PARAMS), after releasing the engine.
 */
tsm_err tsm__fault_install(struct tsm_ctx *ctx);

#endif
