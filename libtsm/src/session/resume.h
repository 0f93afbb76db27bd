/*
 * session/resume.h - reliable delivery across a lost session
 * (docs/design/discovery.md "Partitions", docs/wire.md §8 ACK, RESUME).
 *
 * A session that ends by loss (the peer fell silent, the connection
 * broke) does not take its reliable messages with it:
 *
 *  - the sender keeps every reliable message it framed, with the lane and
 *    sequence number of its last frame, until the receiver's ACK (CTRL 7,
 *    sent every 64 frames of a lane and at least every 50 ms) covers it;
 *  - when the session is lost, those unacknowledged messages, the ones
 *    still queued, and from then on every reliable message the peer's
 *    subscriptions match, wait in an "orphan" for that peer node (bounded
 *    by session_queue_bytes, for at most peer_timeout);
 *  - the receiver remembers how far it had read each lane of its last
 *    three sessions with the node, however they ended; when a new one
 *    comes up it sends RESUME (CTRL 8: per session, its id and those
 *    eight sequence numbers)
 *    and the sender drops from the orphan what was read, then queues the
 *    rest on the new session, in order: every unexpired reliable message
 *    is delivered once.
 *
 * Sessions may come and go faster than RESUMEs cross, so the sender
 * errs towards sending again (it also keeps what a replaced session did
 * not see ACKed), and the receiver drops a copy it already delivered, by
 * the sender's message id (idwin.h): delivered once, at worst sent twice.
 *
 * Whatever cannot be kept is dropped with its outcome (PEER_LOST when the
 * node does not come back in time, QUEUE_FULL beyond the byte budget,
 * DEADLINE_EXPIRED when it expired meanwhile), never silently.
 * Progress thread only.
 */
#ifndef TSM_SESSION_RESUME_H
#define TSM_SESSION_RESUME_H

#include "session/session.h"

#define TSM_RSM_ACK_FRAMES 64
#define TSM_RSM_ACK_EVERY (50 * TSM_MSEC)

/* Sender: m's last frame on lane has sequence number seq. */
void tsm__rsm_sent(tsm__session *s, unsigned lane, uint64_t seq,
                   tsm__omsg *m);
/* Receiver: a DATA frame of lane was read; may queue an ACK. */
void tsm__rsm_rx_frame(tsm__session *s, unsigned lane);
/* Receiver: was message msg_id of s's peer node already delivered (a
 * copy sent again after a loss; counted, to be dropped)? */
bool tsm__rsm_rx_dup(tsm__session *s, uint64_t msg_id);
/* Receiver: msg_id was delivered (or dropped with its outcome) here. */
void tsm__rsm_rx_done(tsm__session *s, uint64_t msg_id);
/* Receiver: ACK every lane read beyond the last ACK, before our CLOSE,
 * so that the peer keeps nothing we have read. */
void tsm__rsm_ack_all(tsm__session *s);
/* Session timer: ACK what was read; returns when it needs a tick. */
tsm_time tsm__rsm_tick(tsm__session *s, tsm_time now);
/* CTRL ACK and RESUME from the peer. */
tsm_err tsm__rsm_on_ack(tsm__session *s, uint64_t value);
tsm_err tsm__rsm_on_resume(tsm__session *s, uint64_t count,
                           const uint8_t *recs, size_t len);
/*
 * tsm__rsm_peer_closing: the peer ended s in order (CLOSE) while another
 * session with its node is open here, a replacement it made that is not
 * up on this side yet. s no longer routes, so what is published for the
 * node meanwhile waits in an orphan with s's subscriptions (as for a held
 * session) until the replacement replays it after the peer's RESUME.
 */
void tsm__rsm_peer_closing(tsm__session *s);
/* s is closing with reason: keep what a loss must not lose. Call before
 * the queues are purged; then tsm__rsm_keep takes queued messages. */
void tsm__rsm_closing(tsm__session *s, tsm_err reason);
bool tsm__rsm_keep(tsm__session *s, tsm__omsg *m);
/* After the close of s: what it kept goes in front of what waits for the
 * node, or straight to the node's resumed session if there is one. */
void tsm__rsm_closed(tsm__session *s);
/*
 * tsm__rsm_defer_partial: m was being reassembled when s was lost. If its
 * sender comes back within peer_timeout, it sends m again (or reports it
 * itself), so nothing is said here; if not, m is reported PEER_LOST then
 * (or at close). Returns false when s was not lost (the caller reports).
 */
bool tsm__rsm_defer_partial(tsm__session *s, const tsm_msg *m);
/* Frees the session's resume state (unacknowledged references). */
void tsm__rsm_session_free(tsm__session *s);
/* A session came up: send RESUME; replay waits for the peer's RESUME. */
void tsm__rsm_session_up(tsm__session *s);

/* s waits for the peer's RESUME: m waits in the node's orphan, in order
 * (false: it could not, queue it normally). */
bool tsm__rsm_hold_msg(tsm__session *s, tsm__omsg *m);
/* Context: route m to orphans of absent subscribers (returns how many
 * took it); timers; teardown. */
unsigned tsm__rsm_route(tsm_ctx *ctx, tsm__omsg *m);
tsm_time tsm__rsm_ctx_tick(tsm_ctx *ctx, tsm_time now);
void tsm__rsm_ctx_free(tsm_ctx *ctx);

#endif
