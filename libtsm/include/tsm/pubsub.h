/*
 * tsm/pubsub.h - publishers, subscribers, messages and their QoS.
 *
 * Threading: a tsm_pub may be used by several threads at once (each
 * tsm_publish is atomic with respect to the others); a tsm_sub's
 * tsm_sub_recv may be called from several threads, each message going to
 * exactly one of them. A tsm_msg belongs to whoever received it and may be
 * passed to another thread. Callbacks run on the context's delivery
 * thread, never on the network (progress) thread, one at a time; they must
 * not close their own subscriber or the context.
 */
#ifndef TSM_PUBSUB_H
#define TSM_PUBSUB_H

#include <stddef.h>
#include <stdint.h>
#include "ctx.h"
#include "err.h"
#include "time.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsm_pub tsm_pub;
typedef struct tsm_sub tsm_sub;
typedef struct tsm_msg tsm_msg;

#define TSM_PRIO_MAX 7       /* least urgent priority; 0 is most urgent */
#define TSM_PRIO_DEFAULT 4
#define TSM_TOPIC_MAX 256    /* bytes, without the NUL */
#define TSM_META_MAX 4096    /* bytes of user metadata per message */

typedef enum tsm_reliability {
	TSM_RELIABLE = 0,    /* every unexpired message arrives once, in order
	                        per lane */
	TSM_BEST_EFFORT = 1, /* may drop under load; drops are counted */
} tsm_reliability;

typedef enum tsm_backpressure {
	TSM_BP_BLOCK = 0,       /* wait (up to block_timeout), then QUEUE_FULL */
	TSM_BP_DROP_OLDEST = 1, /* evict the oldest queued message */
	TSM_BP_DROP_NEWEST = 2, /* refuse the new message */
	TSM_BP_LATEST_ONLY = 3, /* keep only the newest message */
} tsm_backpressure;

/*
 * tsm_qos: defaults for a publisher or a subscriber. Initialise with
 * tsm_qos_init(); size lets the struct grow without breaking callers.
 */
typedef struct tsm_qos {
	uint32_t size;
	uint8_t priority;           /* default priority 0..7 (publisher) */
	tsm_duration deadline_budget; /* default budget per message; 0 = none */
	tsm_reliability reliability;
	tsm_backpressure backpressure;
	tsm_duration block_timeout; /* for TSM_BP_BLOCK; default 1 s */
	uint32_t queue_depth;       /* subscriber queue, messages; default 4096 */
	uint64_t max_msg_size;      /* default 16 MiB */
	int timestamps;             /* publisher: send each message's publish
	                               time for latency statistics (8 bytes,
	                               docs/wire.md §6.1); default 1 */
} tsm_qos;

/* tsm_qos_init fills q with defaults; TSM_EINVAL if q is NULL. */
tsm_err tsm_qos_init(tsm_qos *q);

/* tsm_qos_size returns sizeof(tsm_qos) of the loaded library. */
size_t tsm_qos_size(void);

/*
 * tsm_qos_set sets one field by name from a string: "priority" (0..7),
 * "deadline_budget_us", "reliability" (reliable|best_effort),
 * "backpressure" (block|drop_oldest|drop_newest|latest_only),
 * "block_timeout_ms", "queue_depth", "max_msg_size", "timestamps" (0/1).
 * Returns
 * TSM_ERR_BAD_PARAMS for an unknown key or a bad value.
 */
tsm_err tsm_qos_set(tsm_qos *q, const char *key, const char *value);

/* Flags for tsm_pub_opts.flags. */
#define TSM_OPT_PRIORITY 0x1u /* use opts.priority, not the default */
#define TSM_OPT_DEADLINE 0x2u /* use opts.deadline (absolute) */
#define TSM_OPT_BUDGET 0x4u   /* use opts.budget (relative to now) */

/*
 * tsm_pub_opts: per-message overrides. Initialise with tsm_pub_opts_init.
 * If both DEADLINE and BUDGET are set the earlier one wins.
 */
typedef struct tsm_pub_opts {
	uint32_t size;
	uint32_t flags;
	uint8_t priority;
	tsm_time deadline;          /* absolute CLOCK_MONOTONIC ns */
	tsm_duration budget;        /* ns from now; must be > 0 */
	const void *meta;           /* msgpack map, borrowed; copied */
	size_t meta_len;            /* <= TSM_META_MAX */
	uint64_t msg_id;            /* out: the id given to the message */
} tsm_pub_opts;

/* tsm_pub_opts_init fills o with "use the publisher's defaults". */
tsm_err tsm_pub_opts_init(tsm_pub_opts *o);

/*
 * tsm_pub_open creates a publisher on one topic (no wildcards). qos may be
 * NULL for defaults; it is copied. On success *out owns the publisher
 * (release with tsm_pub_close); on failure *out is NULL. Fails with
 * TSM_ERR_BAD_TOPIC (see tsm_err_detail for where), TSM_ERR_BAD_PRIORITY,
 * TSM_ECLOSED if the context is closing.
 */
tsm_err tsm_pub_open(tsm_pub **out, tsm_ctx *ctx, const char *topic,
                     const tsm_qos *qos);

/*
 * tsm_publish sends len bytes of buf to every subscriber of the topic,
 * local and remote. The bytes are copied before return: the caller keeps
 * buf. opts may be NULL. Returns TSM_OK once the message is queued (its
 * later fate is counted in the stats), TSM_ERR_MSG_TOO_LARGE,
 * TSM_ERR_BAD_PRIORITY, TSM_ERR_BAD_DEADLINE, TSM_ERR_BAD_METADATA,
 * TSM_ERR_DEADLINE_EXPIRED (already past), TSM_ERR_QUEUE_FULL (the
 * queue stayed full for block_timeout, or drop_newest), TSM_ECLOSED.
 */
tsm_err tsm_publish(tsm_pub *pub, const void *buf, size_t len,
                    tsm_pub_opts *opts);

/*
 * tsm_publish_msg publishes a received message on pub's topic: a
 * pipeline stage forwarding a request or a tensor. On TSM_OK libtsm owns
 * msg and has freed it (the caller must not touch it again); on any
 * error the caller still owns msg. The payload is not copied when msg
 * has a block of its own (a message that came in fragments, or one
 * delivered locally): it is shared read-only until the last send of it
 * completes (counted in pub.forwarded); a small message that sits in a
 * receive block shared with others is copied, as tsm_publish does, so a
 * queued forward never holds more than about twice its size.
 * The forward keeps msg's deadline (end to end: opts or the publisher's
 * budget may make it earlier, never later; TSM_ERR_DEADLINE_EXPIRED if
 * it has passed) and msg's user metadata unless opts gives its own;
 * priority and the other QoS come from opts and the publisher, as for
 * tsm_publish, which lists the other errors. opts may be NULL.
 */
tsm_err tsm_publish_msg(tsm_pub *pub, tsm_msg *msg, tsm_pub_opts *opts);

/*
 * tsm_pub_wait_subscribers blocks until at least n remote sessions have a
 * subscription matching the publisher's topic (local subscribers are not
 * counted), or the timeout passes (TSM_ETIMEDOUT).
 */
tsm_err tsm_pub_wait_subscribers(tsm_pub *pub, unsigned n,
                                 tsm_duration timeout);

/*
 * tsm_pub_flush blocks until everything this context queued before the
 * call has been handed to the kernel or dropped with a counted reason, or
 * the timeout passes (TSM_ETIMEDOUT).
 */
tsm_err tsm_pub_flush(tsm_pub *pub, tsm_duration timeout);

/* tsm_pub_close releases the publisher. NULL is a no-op. */
void tsm_pub_close(tsm_pub *pub);

/*
 * tsm_sub_cb receives one message; the callee owns msg and must release
 * it with tsm_msg_free (now or later, from any thread).
 */
typedef void (*tsm_sub_cb)(void *arg, tsm_msg *msg);

/*
 * tsm_sub_open subscribes to a topic pattern ("*" matches one segment,
 * "**" any number of trailing segments). qos may be NULL. On success *out
 * owns the subscriber (release with tsm_sub_close). Fails with
 * TSM_ERR_BAD_PATTERN, TSM_ECLOSED.
 */
tsm_err tsm_sub_open(tsm_sub **out, tsm_ctx *ctx, const char *pattern,
                     const tsm_qos *qos);

/*
 * tsm_sub_set_callback switches the subscriber to callback delivery on the
 * context's delivery thread. cb NULL switches back to tsm_sub_recv.
 * Messages already queued are handed to the callback.
 */
tsm_err tsm_sub_set_callback(tsm_sub *sub, tsm_sub_cb cb, void *arg);

/*
 * tsm_sub_recv waits up to timeout (0 = poll, TSM_NEVER = forever) for the
 * next message. On success *msg is owned by the caller (tsm_msg_free).
 * Messages whose deadline has passed are dropped and counted here, never
 * returned. Returns TSM_ETIMEDOUT, TSM_ESTATE in callback mode, TSM_ECLOSED
 * when the subscriber or context is closing.
 */
tsm_err tsm_sub_recv(tsm_sub *sub, tsm_msg **msg, tsm_duration timeout);

/* tsm_sub_close releases the subscriber and drops what is queued for it;
 * a callback already running finishes first, and a tsm_sub_recv blocked
 * in another thread returns TSM_ECLOSED. NULL is a no-op. */
void tsm_sub_close(tsm_sub *sub);

/* Message accessors. Pointers stay valid until tsm_msg_free. */
const void *tsm_msg_data(const tsm_msg *m);   /* zero-copy view of exactly
                                                 tsm_msg_size bytes: not
                                                 NUL-terminated */
size_t tsm_msg_size(const tsm_msg *m);
const char *tsm_msg_topic(const tsm_msg *m);  /* NUL-terminated */
uint8_t tsm_msg_priority(const tsm_msg *m);
tsm_time tsm_msg_deadline(const tsm_msg *m);  /* local monotonic; NEVER */
uint64_t tsm_msg_id(const tsm_msg *m);        /* publisher-assigned */
/* Sender's monotonic send time in its own clock (informational). */
tsm_time tsm_msg_sent_at(const tsm_msg *m);
/* User metadata (msgpack map) or NULL/0. */
const void *tsm_msg_meta(const tsm_msg *m, size_t *len);

/* tsm_msg_free releases a received message. NULL is a no-op. */
void tsm_msg_free(tsm_msg *m);

/*
 * tsm_msg_new makes an empty message of len bytes for the caller to fill
 * and then hand to tsm_publish_msg without a copy (a producer writing a
 * tensor straight into libtsm's buffer). On TSM_OK *out is owned by the
 * caller (tsm_publish_msg takes it, or tsm_msg_free), and *data is where
 * its len bytes go: writable until it is published, never after; their
 * contents are undefined until written. It has no topic yet ("") and no
 * deadline (TSM_NEVER): tsm_publish_msg gives the publisher's. Errors:
 * TSM_EINVAL (NULL out or data), TSM_ERR_MSG_TOO_LARGE (over 16 MiB),
 * TSM_ENOMEM.
 */
tsm_err tsm_msg_new(tsm_msg **out, size_t len, void **data);

#ifdef __cplusplus
}
#endif
#endif
