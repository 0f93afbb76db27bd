/*
 * core/internal.h - the objects behind the public handles and the calls
 * between core, pubsub and session.
 *
 * Threading model (design.md §8):
 *  - the progress thread owns the I/O engine, sessions, routes, and every
 *    field marked [P]; nothing else touches them, except that in
 *    busy-poll mode an application thread inside tsm_publish or
 *    tsm_sub_recv may run the loop itself while it holds prog_mu (which
 *    the progress thread holds whenever it runs the loop): the loop is
 *    still run by one thread at a time (docs/design/progress.md);
 *  - application threads talk to it through the lock-free publish ring
 *    and the mutex-protected command list, then wake it;
 *  - subscriber queues are shared (mutex per subscriber), so local
 *    publishers, the progress thread and receivers can all use them;
 *  - fields marked [A] are atomics readable from any thread.
 */
#ifndef TSM_CORE_INTERNAL_H
#define TSM_CORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/common.h"
#include "core/stats.h"
#include "platform/clock.h"
#include "platform/mpmc.h"
#include "transport/io.h"
#include "transport/url.h"

typedef struct tsm__session tsm__session;

/* A refcounted topic name, shared by messages and routes. */
typedef struct tsm__topic {
	atomic_uint refs;
	uint32_t id;          /* publisher side: context-wide id; else 0 */
	uint16_t len;
	char name[];          /* NUL-terminated */
} tsm__topic;

tsm__topic *tsm__topic_new(const char *name, size_t len);
tsm__topic *tsm__topic_ref(tsm__topic *t);
void tsm__topic_unref(tsm__topic *t);

/* A refcounted byte block: a received frame block or a publisher's copy. */
typedef struct tsm__buf {
	atomic_uint refs;
	size_t cap;
	uint8_t data[];
} tsm__buf;

tsm__buf *tsm__buf_new(size_t cap);
static inline tsm__buf *tsm__buf_ref(tsm__buf *b)
{
	atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
	return b;
}
void tsm__buf_unref(tsm__buf *b);

/*
 * An outgoing message: one copy of the payload, shared by every session
 * that sends it (refcounted through its own buf), plus local deliveries.
 */
typedef struct tsm__omsg {
	tsm__buf *buf;        /* holds this struct, its meta and its payload */
	tsm__buf *pbuf;       /* ref: holds the payload instead, when it was
	                         handed over (tsm_publish_msg); else NULL */
	tsm__topic *topic;    /* ref */
	uint64_t id;
	tsm_time deadline;    /* local monotonic; TSM_NEVER */
	tsm_time created;
	uint8_t prio;
	uint8_t reliability;
	uint8_t bp;           /* the publisher's tsm_backpressure */
	tsm_duration block_timeout;
	uint16_t meta_len;
	bool timestamps;      /* send its publish time (docs/wire.md §6.1) */
	uint32_t nlocal;      /* local subscribers it was delivered to */
	uint32_t refs_sess;   /* [P] sessions still holding it */
	const uint8_t *meta;
	const uint8_t *payload;
	size_t len;
	atomic_uint refs;
} tsm__omsg;

tsm__omsg *tsm__omsg_ref(tsm__omsg *m);
void tsm__omsg_unref(tsm__omsg *m);

/* What a subscriber receives (public tsm_msg). */
struct tsm_msg {
	tsm__buf *buf;        /* owns data (ref), may be NULL for inline */
	tsm__topic *topic;    /* ref */
	const uint8_t *data;
	size_t len;
	const uint8_t *meta;
	size_t meta_len;
	uint64_t id;
	tsm_time deadline;
	tsm_time sent_at;         /* sender's send timestamp, or 0 */
	tsm_time arrived;         /* when this node received it, or 0 */
	uint8_t prio;
};

tsm_msg *tsm__msg_new(tsm__buf *buf, tsm__topic *topic, const uint8_t *data,
                      size_t len);

/* A subscriber's bounded delivery queue. */
struct tsm_sub {
	tsm_ctx *ctx;
	char pattern[TSM_TOPIC_MAX + 1];
	size_t plen;
	tsm_qos qos;
	pthread_mutex_t mu;
	pthread_cond_t cv;         /* a message arrived or the sub closes */
	pthread_cond_t space_cv;   /* a slot was freed (local publishers) */
	tsm_msg **ring;
	uint32_t cap, head, count;
	uint32_t waiters;
	bool closing;
	atomic_bool want_space;    /* [A] progress thread is parked on us */
	atomic_uint avail;         /* [A] mirror of count for busy-poll */
	bool lagging;              /* [mu] full for longer than block_timeout:
	                              its overflow is dropped, not parked */
	tsm_sub_cb cb;
	void *cb_arg;
	bool in_cb;                /* [mu] the delivery thread is in cb */
	atomic_uint refs;          /* app handle + progress thread routes */
	struct tsm_sub *next;      /* [ctx->mu] list of subscribers */
	bool registered;           /* [P] known to the progress thread */
};

/* sub queue results. */
enum tsm__push { TSM_PUSH_OK, TSM_PUSH_FULL, TSM_PUSH_DROPPED };

/* tsm__sub_push offers msg (ownership passes in every case). For a full
 * reliable/block queue it returns TSM_PUSH_FULL and leaves msg with the
 * caller; drop policies evict or refuse and count. */
enum tsm__push tsm__sub_push(struct tsm_sub *s, tsm_msg *msg, bool can_wait,
                             tsm_duration wait);
void tsm__sub_unref(struct tsm_sub *s);
bool tsm__sub_matches(const struct tsm_sub *s, const tsm__topic *t);

struct tsm_pub {
	tsm_ctx *ctx;
	tsm__topic *topic;         /* ref; id is assigned at open */
	tsm_qos qos;
	atomic_uint nremote;       /* [A] sessions subscribed to the topic */
	pthread_mutex_t mu;        /* local subscriber cache below */
	struct tsm_sub **locals;   /* matching local subscribers (refs) */
	uint32_t nlocals;
	uint64_t local_epoch;
	struct tsm_pub *next;      /* [ctx->mu] */
};

/* Routing entry for a published topic on the progress thread. */
typedef struct tsm__route {
	tsm__topic *topic;
	uint32_t npubs;
	tsm__session **sess;       /* established sessions that want it and
	                              whose peer may subscribe to it */
	struct tsm__grant *grants; /* each one's grant (caps), same index */
	uint32_t nsess, capsess;
} tsm__route;

/* Control commands from application threads to the progress thread. */
enum tsm__cmd_kind { CMD_LISTEN = 1, CMD_DIAL, CMD_SUB_ADD, CMD_SUB_DEL,
                     CMD_PUB_ADD, CMD_PUB_DEL, CMD_ADOPT_FD, CMD_PEERS,
                     CMD_STOP };
typedef struct tsm__cmd {
	enum tsm__cmd_kind kind;
	tsm__url url;
	void *obj;
	int fd;
	tsm_err result;
	bool done;
	char bound[128];
	struct tsm__cmd *next;
} tsm__cmd;

/* CMD_PEERS: tsm_ctx_peers' request, filled on the progress thread. */
struct tsm__peers_req {
	struct tsm_peer_info *out;
	size_t max, n;
};

typedef struct tsm__listener {
	tsm__url url;
	tsm__lst lst;
	struct tsm__listener *next;
} tsm__listener;

typedef struct tsm__dialer {
	tsm__url url;
	char text[128];
	tsm__session *sess;        /* current attempt or live session */
	tsm_duration backoff;
	tsm_time next_try;
	uint64_t peer_node_id;     /* learned from its preface (or known in
	                              advance by discovery); 0 unknown */
	bool discovered;           /* added by discovery, removed by it */
	int64_t reauth_from;       /* peer notAfter already re-authenticated
	                              from: a replacement with no later one is
	                              not retried (the peer did not renew) */
	struct tsm__dialer *next;
} tsm__dialer;

struct tsm_ctx {
	char name[64 + 1];
	tsm_ctx_params p;          /* copy; string pointers cleared */
	uint64_t node_id;
	bool insecure, busy;
	int family;                /* 0 none yet, 1 tcp/inproc, 2 libfabric */
	char ofi_provider[48];     /* family 2: the provider of every URL */
	char transport_name[64];   /* family 2: "ofi:" + provider granted */
	bool ofi_listens, ofi_loopback_peer;
	const tsm__io_ops *io_ops;
	tsm__io *io;
	pthread_t thread;
	pthread_t dlv_thread;
	bool dlv_started, dlv_stop, dlv_kick; /* [mu] */

	/* tsm__omsg* from publishers, one ring per priority, so that a lane
	 * held by back-pressure never delays a more urgent one */
	tsm__mpmc pubq[8];
	atomic_uint_fast64_t pubq_bytes; /* [A] payload bytes in the rings */
	atomic_bool sleeping;      /* [A] progress thread may be asleep */
	atomic_bool stopping;
	/* Busy-poll: whoever runs the loop holds prog_mu; an application
	 * thread that wants to run it stamps app_drive_at, and the progress
	 * thread steps aside while the stamp is fresh (loop.c). */
	pthread_mutex_t prog_mu;
	_Atomic tsm_time app_drive_at;
	atomic_uint spinners;      /* [A] threads in a busy tsm_sub_recv: a
	                              closing context waits for them */

	pthread_mutex_t mu;        /* cmds, pubs, subs, waits below */
	pthread_cond_t cv;         /* peers/subscribers/flush/cmd changes */
	pthread_cond_t pubq_cv;    /* room in pubq */
	pthread_cond_t dlv_cv;     /* callback subscriber has messages */
	tsm__cmd *cmds, **cmds_tail;
	struct tsm_sub *subs;
	struct tsm_pub *pubs;
	atomic_uint pubq_waiters_a; /* [A] publishers blocked on a full pubq */
	uint64_t flush_req, flush_done; /* [mu] */
	tsm_time accept_log_at;    /* [P] last accept failure logged */
	unsigned accept_log_quiet; /* [P] failures since, not logged */
	atomic_bool flush_wanted;  /* [A] flush_done < flush_req (set and
	                              cleared under mu): the loop looks at
	                              the counters, under mu, only then */
	unsigned nestablished;
	atomic_uint_fast64_t sub_epoch; /* [A] bumped when local subs change */
	uint32_t next_topic_id;    /* [mu] */
	atomic_uint_fast64_t next_msg_id;
	atomic_uint_fast64_t reasm_used; /* [A] bytes held by reassemblies */

	atomic_bool cmd_pending;   /* [A] cmds is not empty */
	atomic_bool resume;        /* [A] a full subscriber queue has room */
	atomic_bool routes_dirty;  /* [A] */

	/* [P] progress-thread state */
	tsm__session *sessions;
	tsm__session *reap;        /* closed, freed at the top of the loop */
	tsm__route **route_by_id;  /* indexed by topic id */
	uint32_t nroutes;
	tsm__listener *listeners;
	tsm__dialer *dialers;
	tsm__omsg *held[8];        /* per lane: popped, held by back-pressure */
	tsm_time held_until[8];    /* when each hold ends at the latest */
	tsm_time next_tick;

	/* Security (NULL in insecure mode); replaced on reload, on the
	 * progress thread (rotation.c). */
	struct tsm__tls_cfg *tls_cfg;
	struct tsm__policy *policy;
	int aead_alg;
	char own_id[2049];
	char *files[5];            /* cert, key, trust, policy, crl (copies) */
	struct tsm__filestamp { long long mtime_ns, size, ino; } stamps[5];
	tsm_time next_reload_check;
	uint64_t sec_epoch;        /* [P] bumped when policy/credentials change */
	uint32_t reload_failing;   /* [P] consecutive refused reloads */
	tsm_time badframe_log_at;  /* [P] last "bad frame" log line */
	uint64_t dial_gen;         /* [P] generation of our latest dial */

	/* Reliable delivery across lost sessions (session/resume.c). [P] */
	struct tsm__rsm_ctx *rsm;

	/* Discovery plane (brokerless/disc.h); [P] after open. */
	const struct tsm__disc_ops *disc_ops;
	struct tsm__disc *disc;

	tsm__stats stats;
	struct tsm__tstats *tstats; /* per topic and lane (tstats.c) */
	tsm_time audit_last[24];   /* per reason: last log line (audit.c) */
	uint32_t audit_suppressed[24];
};

/* Progress-thread entry points used by session and transport code. */
void tsm__ctx_wake(tsm_ctx *ctx);
/* Busy-poll only (else nothing): the calling application thread runs one
 * loop iteration, without waiting, if no other thread is running it. now:
 * the caller's recent clock read (a few microseconds old at most; busy
 * callers run this millions of times a second and need not read it).
 * Returns false when another thread was running the loop. */
bool tsm__ctx_drive(tsm_ctx *ctx, tsm_time now);
/* The progress thread's body until the context stops (loop.c). */
void tsm__loop_run(tsm_ctx *ctx);
void tsm__ctx_session_up(tsm_ctx *ctx, tsm__session *s);
void tsm__ctx_session_down(tsm_ctx *ctx, tsm__session *s);
void tsm__ctx_routes_dirty(tsm_ctx *ctx);
/* tsm__ctx_rings_empty: nothing published waits for the progress thread. */
bool tsm__ctx_rings_empty(tsm_ctx *ctx);
/* tsm__ctx_redial: dial the peer of s again; the new session replaces s
 * once established (make-before-break). */
void tsm__ctx_redial(tsm_ctx *ctx, tsm__session *s);
/* auto:// and EFA (docs/transports.md "auto"): a listener offers its EFA
 * name on each session it accepts (CTRL TIERS); a dialer that hears it
 * remembers it and, when the session runs below EFA, dials again over
 * EFA (make-before-break). Malformed text: TSM_ERR_BAD_FIELD. */
void tsm__ctx_tiers_offer(tsm_ctx *ctx, tsm__session *s);
tsm_err tsm__ctx_tiers_learn(tsm_ctx *ctx, tsm__session *s,
                             const uint8_t *ad, size_t n);
void tsm__ctx_notify(tsm_ctx *ctx);
/* Discovery's hooks into the progress thread (loop.c). */
bool tsm__ctx_peer_up(tsm_ctx *ctx, uint64_t node_id);
tsm__dialer *tsm__ctx_dialer_add(tsm_ctx *ctx, const tsm__url *u,
                                 uint64_t node_id);
void tsm__ctx_dialer_remove(tsm_ctx *ctx, tsm__dialer *d);
void tsm__ctx_deliver_cb(tsm_ctx *ctx);
/* tsm__ctx_local_subs returns matching local subs for a received topic. */
void tsm__log(tsm_ctx *ctx, tsm_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
