/*
 * session/session.h - one session per peer node (design.md §3).
 *
 * A session owns one stream connection, runs the state table of fsm.h,
 * parses frames (rx.c) and schedules lanes into sends (tx.c).
 *
 * Threading: everything here runs on the owning context's progress thread.
 */
#ifndef TSM_SESSION_SESSION_H
#define TSM_SESSION_SESSION_H

#include "core/internal.h"
#include "session/fsm.h"
#include "security/policy.h"
#include "wire/frame.h"

/* A queued outgoing message on one lane (intrusive FIFO node). */
typedef struct tsm__txq {
	tsm__omsg *m;
	size_t off;               /* payload bytes already framed */
	uint32_t frag_index;
	struct tsm__txq *next;
} tsm__txq;

typedef struct tsm__lane {
	tsm__txq *head, *tail;
	uint64_t tx_seq;          /* next sequence number to send */
	uint64_t rx_seq;          /* next sequence number expected */
	/* reassembly of one fragmented message per lane (docs/wire.md §7) */
	tsm_msg *rs_msg;          /* message being filled (owns buffer) */
	uint64_t rs_id, rs_total, rs_got;
	uint32_t rs_topic_id;     /* §7: unchanged across the fragments */
	uint32_t rs_next;
	tsm__topic *rs_topic;
	bool rs_discard;          /* expired/dropped: skip remaining fragments */
	uint64_t rs_charged;      /* bytes of ctx->reasm_used it holds */
} tsm__lane;

/* A non-DATA frame waiting to be sent: its header (sequence number, and
 * later its seal) is made only when it is framed into a send, so that
 * sequence numbers follow wire order (docs/wire.md §2). */
typedef struct tsm__ctrlq {
	struct tsm__ctrlq *next;
	uint8_t type;
	size_t len;
	uint8_t body[];
} tsm__ctrlq;

/* tsm__frame_sequenced: frames that carry a lane sequence number (all but
 * the cleartext handshake frames); non-DATA ones use lane 0. */
static inline bool tsm__frame_sequenced(uint8_t type)
{
	return type != TSM_F_PREFACE && type != TSM_F_HS && type != TSM_F_REJECT &&
	       type != TSM_F_RETRY;
}

/* Remote topic table entry (peer's topic id -> name and local route). */
typedef struct tsm__rtopic {
	tsm__topic *topic;
	struct tsm_sub **subs;    /* matching local subscribers (refs) */
	uint32_t nsubs;
	uint64_t sub_epoch;       /* ctx->sub_epoch when subs was computed */
	tsm__grant grant;         /* may the peer publish it, with what caps */
	uint64_t grant_epoch;     /* ctx->sec_epoch + 1 when grant was computed */
} tsm__rtopic;

#define TSM_SESS_MAX_TOPICS 4096u
#define TSM_SESS_MAX_PATTERNS 1024u
#define TSM_RX_BLOCK (256u * 1024u)
#define TSM_TX_SCRATCH (256u * 1024u)
#define TSM_INLINE_MAX 2048u      /* smaller payloads are copied, not iovec-ed */
#define TSM_QOS_MAX_MSG (16ull << 20) /* largest message a session accepts */
#define TSM_TX_BUDGET (256u * 1024u) /* bytes per send call */

struct tsm__sec;

struct tsm__session {
	tsm_ctx *ctx;
	struct tsm__sec *sec;     /* NULL in insecure mode (secure.h) */
	tsm__conn conn;
	tsm__sstate state;
	tsm_time state_deadline;  /* timeout of the waiting state */
	tsm_time last_rx;         /* for keepalive */
	tsm_time last_ping;
	bool initiator;
	bool accept_rcvd, accept_sent;
	bool counted_up;
	bool close_after_tx;      /* refusal or CLOSE queued: close once the
	                             queues are sent */
	bool retiring;            /* replaced: drain, then CLOSE */
	/* A replacement session reads nothing until the one it replaces is
	 * closed, so per-lane order holds across the switch. */
	struct tsm__session *predecessor, *successor;
	bool close_sent;
	bool reauth_started;      /* a replacement session was dialed */
	uint64_t gen;             /* initiator's dial generation (preface) */
	tsm_err close_reason;
	uint64_t session_id;
	uint64_t peer_node_id;
	char peer_name[65];
	char peer_addr[128];
	char peer_src[64];        /* source IP of an accepted peer */
	struct tsm__dialer *dialer;
	uint64_t adv_cursor;      /* discovery: gossip sent up to this stamp */
	tsm_time adv_window;      /* discovery: rate-limit window start */
	uint32_t adv_frames;      /* ADVERT frames received in that window */
	struct tsm__rsm_sess *rsm; /* resume.c: unacknowledged, ACK state */
	struct rsm_orphan *rsm_orphan; /* resume.c: during close only */
	bool rsm_hold;            /* resume.c: new messages wait for RESUME */

	/* rx */
	tsm__buf *rxb;            /* current receive block */
	size_t rx_off, rx_len;    /* parsed up to / filled up to */
	bool rx_armed, rx_paused;
	uint8_t *rx_placed;       /* the frame being parsed: where its fragment
	                           * payload was opened to (rx.c rx_open) */
	/* Deliveries a full reliable queue refused: reading stops until they
	 * are all taken, so back-pressure reaches the publisher through TCP
	 * and nothing is lost. Bounded by the records of one frame. */
	struct tsm__pend { struct tsm_sub *sub; tsm_msg *msg; } *pend;
	uint32_t npend, pend_head, cappend;
	tsm__rtopic *rtopics;     /* indexed by peer topic id */
	uint32_t nrtopics;
	char **patterns;          /* peer's subscriptions (see session.c) */
	uint32_t npatterns;

	/* tx */
	tsm__lane lanes[TSM_WIRE_LANES];
	tsm__ctrlq *ctrl_head, **ctrl_tail;
	uint64_t queued_bytes;    /* payload bytes queued on lanes */
	tsm_time congested_since; /* [loop.c] over session_queue_bytes since */
	tsm_time last_tx_progress; /* a send last completed (bytes moved) */
	bool lagging;             /* congested too long: loses its own copies */
	tsm_time pend_since;      /* deliveries parked since (rx.c) */
	uint8_t *declared;        /* bitmap: our topic ids announced */
	uint32_t declared_cap;    /* bits */
	bool tx_busy;             /* a send is in flight */
	int8_t cur_dscp;          /* DSCP the socket has now; -1 unmarked */
	int aead_alg;             /* the session's cipher (initiator's choice) */
	size_t tx_total;          /* bytes in the in-flight send */
	uint8_t *scratch;         /* headers and inlined payloads */
	tsm__omsg **inflight;     /* messages referenced by the in-flight send */
	uint32_t ninflight, capinflight;
	/* Kernel send-queue budget (tx.c, send_backlog_us): bytes TCP may
	 * hold unsent; the rest waits in the lanes. */
	uint8_t kq_mode;          /* 0 not decided yet, 1 on, 2 off */
	bool kq_waiting;          /* the in-flight "send" waits for room */
	bool kq_woke;             /* that wait ended: send at least a bit */
	uint32_t kq_budget;       /* bytes, = the socket's NOTSENT_LOWAT */
	uint64_t kq_rate;         /* smoothed delivery rate, bytes/s */
	tsm_time kq_sampled;      /* last TCP_INFO read */

	struct tsm__session *next;
};

/* tsm__session_new wraps a connected (or connecting) fd. */
tsm_err tsm__session_new(tsm_ctx *ctx, int fd, bool initiator,
                         tsm__session **out);
/* tsm__session_start sends the preface and arms the first receive. */
void tsm__session_start(tsm__session *s);
/* tsm__session_close begins closing with reason (idempotent). */
void tsm__session_close(tsm__session *s, tsm_err reason);
void tsm__session_free(tsm__session *s);
/* tsm__session_step applies an event of the state table; false (and the
 * session closed) if the table refuses it. */
bool tsm__session_step(tsm__session *s, tsm__sevent ev);
/* tsm__session_reject sends REJECT(reason) and closes once it is sent. */
void tsm__session_reject(tsm__session *s, tsm_err reason, const char *why);
/* tsm__session_retire: another session to the same peer replaces this
 * one: no new data goes to it, what is queued is sent, then CLOSE. */
void tsm__session_retire(tsm__session *s);
/* tsm__session_replace: heir takes over old's subscriptions now, and
 * reads only once old has drained and closed; old is retired. */
void tsm__session_replace(tsm__session *heir, tsm__session *old);
void tsm__session_inherit(tsm__session *heir, const tsm__session *old);
/* tsm__session_maybe_established: both ACCEPTs seen -> ESTABLISHED. */
void tsm__session_maybe_established(tsm__session *s);
/* tsm__session_tick runs timers; returns the next time it needs a tick. */
tsm_time tsm__session_tick(tsm__session *s, tsm_time now);

/* rx.c */
void tsm__session_on_recv(tsm__session *s, long n, tsm_err err);
void tsm__session_rx_arm(tsm__session *s);
/* tsm__session_rx_resume retries stalled deliveries; true if unstalled. */
bool tsm__session_rx_resume(tsm__session *s);
void tsm__session_rx_data(tsm__session *s, const tsm__fhdr *h,
                          const uint8_t *body);
bool tsm__session_on_frame(tsm__session *s, const tsm__fhdr *h,
                           const uint8_t *body);
void tsm__session_rx_free(tsm__session *s);
tsm_time tsm__session_rx_expire(tsm__session *s, tsm_time now);
tsm_time tsm__session_rx_unpark(tsm__session *s, tsm_time now);

/* tx.c */
tsm_time tsm__session_tx_expire(tsm__session *s, tsm_time now);
/* tsm__lane_insert_edf queues q in deadline order (see tx.c). */
void tsm__lane_insert_edf(tsm__lane *l, tsm__txq *q);
/* tsm__session_enqueue queues m on its lane (takes a reference). */
void tsm__session_enqueue(tsm__session *s, tsm__omsg *m);
tsm_err tsm__session_send_ctrl(tsm__session *s, const tsm__ctrl *c);
tsm_err tsm__session_send_frame(tsm__session *s, uint8_t type,
                                const uint8_t *body, size_t len);
void tsm__session_pump(tsm__session *s);
void tsm__session_on_send(tsm__session *s, long n, tsm_err err);
bool tsm__session_tx_idle(const tsm__session *s);
void tsm__session_tx_purge(tsm__session *s);
/* tsm__session_tx_release drops what the last send referenced. */
void tsm__session_tx_release(tsm__session *s);
bool tsm__session_wants(const tsm__session *s, const tsm__topic *t);

/*
 * tsm__lane_limit: the share of a byte budget (publish rings, a session's
 * queue) that messages of lane prio may fill. Each less urgent lane gets
 * 1/64 of the budget less, so bulk can never fill the room an urgent
 * message needs: an urgent message waits only on bytes at least about as
 * urgent as itself, and the total stays within the budget (memory M1).
 */
static inline uint64_t tsm__lane_limit(uint64_t budget, unsigned prio)
{
	return budget - (uint64_t)prio * (budget / 64);
}

static inline bool tsm__session_up(const tsm__session *s)
{
	return s->state == SS_ESTABLISHED || s->state == SS_REKEYING;
}

#endif
