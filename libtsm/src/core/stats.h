/*
 * core/stats.h - the context's named counters. Increments are relaxed
 * atomics from any thread; reads are lock-free (tsm/stats.h).
 */
#ifndef TSM_CORE_STATS_H
#define TSM_CORE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* X(enum, "name"): one line per counter; docs/stats.md mirrors this list. */
#define TSM_STATS_LIST(X)                                                   \
	X(ST_INSECURE, "ctx.insecure")                                      \
	X(ST_SESSIONS, "ctx.sessions")                                      \
	X(ST_URING, "transport.io_uring")                                   \
	X(ST_EPOLL_FALLBACK, "transport.epoll_fallback")                    \
	X(ST_OFI, "transport.ofi")                                          \
	X(ST_OFI_TC_ASKED, "transport.ofi_tclass_asked")                    \
	X(ST_OFI_TC_GRANTED, "transport.ofi_tclass_granted")                \
	X(ST_AUTO, "transport.auto")                                        \
	X(ST_CHOSEN, "transport.chosen")                                    \
	X(ST_CHOSEN_VERBS, "transport.chosen_verbs")                        \
	X(ST_CHOSEN_EFA, "transport.chosen_efa")                            \
	X(ST_CHOSEN_SHM, "transport.chosen_shm")                            \
	X(ST_CHOSEN_TCP, "transport.chosen_tcp")                            \
	X(ST_FALLBACKS, "transport.fallbacks")                              \
	X(ST_FALLBACK_VERBS, "transport.fallback_verbs")                    \
	X(ST_FALLBACK_EFA, "transport.fallback_efa")                        \
	X(ST_FALLBACK_SHM, "transport.fallback_shm")                        \
	X(ST_ACCEPTS, "transport.accepts")                                  \
	X(ST_ACCEPT_FAILED, "transport.accept_failed")                      \
	X(ST_CONNECT_FAIL, "transport.connect_failed")                      \
	X(ST_SESS_OPENED, "session.opened")                                 \
	X(ST_SESS_ESTABLISHED, "session.established")                       \
	X(ST_SESS_CLOSED, "session.closed")                                 \
	X(ST_SESS_REJECTED, "session.rejected")                             \
	X(ST_SESS_DUPLICATE, "session.duplicate")                           \
	X(ST_SESS_TIMEOUT, "session.timeout")                               \
	X(ST_SESS_PROTO_ERR, "session.protocol_error")                      \
	X(ST_PUBLISHED, "pub.published")                                    \
	X(ST_PUB_NO_SUB, "pub.no_subscriber")                               \
	X(ST_PUB_FORWARDED, "pub.forwarded")                                \
	X(ST_TX_MSGS, "tx.msgs")                                            \
	X(ST_TX_FRAMES, "tx.frames")                                        \
	X(ST_TX_BYTES, "tx.bytes")                                          \
	X(ST_TX_SENDS, "tx.sends")                                          \
	X(ST_TX_DSCP, "tx.dscp_changes")                                    \
	X(ST_TX_BACKLOG_WAITS, "tx.backlog_waits")                          \
	X(ST_TX_BACKLOG_CUT, "tx.backlog_cut")                              \
	X(ST_TX_BACKLOG_BUDGET, "tx.backlog_budget")                        \
	X(ST_RX_FRAMES, "rx.frames")                                        \
	X(ST_RX_FRAGS_PLACED, "rx.frags_placed")                            \
	X(ST_RX_BYTES, "rx.bytes")                                          \
	X(ST_RX_MSGS, "rx.msgs")                                            \
	X(ST_DELIVERED, "sub.delivered")                                    \
	X(ST_RX_PAUSED, "rx.paused")                                        \
	X(ST_DROP_DEADLINE, "drop.deadline_expired")                        \
	X(ST_DROP_QUEUE_FULL, "drop.queue_full")                            \
	X(ST_DROP_PEER_LOST, "drop.peer_lost")                              \
	X(ST_DROP_UNKNOWN_TOPIC, "drop.unknown_topic")                      \
	X(ST_DROP_BAD_METADATA, "drop.bad_metadata")                        \
	X(ST_DROP_CLOSED, "drop.closed")                                    \
	X(ST_CRED_RELOADS, "security.reloads")                              \
	X(ST_REKEYS, "security.rekeys")                                     \
	X(ST_ERR_PROTO, "err.protocol")                                     \
	X(ST_ERR_OUT_OF_STATE, "err.out_of_state")                          \
	/* fault injection (TSM_FAULT, transport/fault/fault.c); 0 when off */ \
	X(ST_FAULT_ENABLED, "fault.enabled")                                \
	X(ST_FAULT_SEGMENTS, "fault.segments")                              \
	X(ST_FAULT_LOST, "fault.lost")                                      \
	X(ST_FAULT_CORRUPTED, "fault.corrupted")                            \
	X(ST_FAULT_DUPLICATED, "fault.duplicated")                          \
	X(ST_FAULT_REORDERED, "fault.reordered")                            \
	X(ST_FAULT_DELAYED, "fault.delayed")                                \
	X(ST_FAULT_PARTITIONS, "fault.partitions")                          \
	X(ST_FAULT_HELD, "fault.partition_held")                            \
	X(ST_FAULT_DISCARDED, "fault.discarded_bytes")                      \
	X(ST_R_NO_PEER_CERT, "reason.no_peer_cert")                         \
	X(ST_R_UNKNOWN_CA, "reason.unknown_ca")                             \
	X(ST_R_CERT_EXPIRED, "reason.cert_expired")                         \
	X(ST_R_CERT_NOT_YET_VALID, "reason.cert_not_yet_valid")             \
	X(ST_R_CERT_REVOKED, "reason.cert_revoked")                         \
	X(ST_R_CRL_UNAVAILABLE, "reason.crl_unavailable")                   \
	X(ST_R_SPIFFE_MALFORMED, "reason.spiffe_malformed")                 \
	X(ST_R_PEER_ID_MISMATCH, "reason.peer_id_mismatch")                 \
	X(ST_R_TLS_VERSION, "reason.tls_version")                           \
	X(ST_R_ALPN_MISMATCH, "reason.alpn_mismatch")                       \
	X(ST_R_AUTHZ_DENIED, "reason.authz_denied")                         \
	X(ST_R_PREAUTH_LIMIT, "reason.preauth_limit")                       \
	X(ST_R_HANDSHAKE_TIMEOUT, "reason.handshake_timeout")               \
	X(ST_R_AEAD_FAIL, "reason.aead_fail")                               \
	X(ST_R_REPLAY, "reason.replay")                                     \
	X(ST_R_MSG_TOO_LARGE, "reason.msg_too_large")                       \
	X(ST_R_PRIORITY_CAP, "reason.priority_cap")                         \
	X(ST_R_INSECURE_MISMATCH, "reason.insecure_mismatch")               \
	X(ST_R_PEER_LOST, "reason.peer_lost")                               \
	X(ST_R_OTHER, "reason.other")                                       \
	X(ST_DISC_NODES, "discovery.nodes")                                 \
	X(ST_DISC_ADV_TX, "discovery.adverts_sent")                         \
	X(ST_DISC_ADV_RX, "discovery.adverts_received")                     \
	X(ST_DISC_REFUSED, "discovery.records_refused")                     \
	X(ST_DISC_RATE_LIMITED, "discovery.rate_limited")                   \
	X(ST_DISC_FULL, "discovery.table_full")                             \
	X(ST_DISC_EXPIRED, "discovery.expired")                             \
	X(ST_DISC_LEFT, "discovery.left")                                   \
	X(ST_DISC_DIALS, "discovery.dials")                                 \
	X(ST_DISC_BEACON_TX, "discovery.beacons_sent")                      \
	X(ST_DISC_BEACON_RX, "discovery.beacons_received")                  \
	X(ST_DISC_BEACON_BAD, "discovery.beacons_invalid")                  \
	X(ST_LOOP_INLINE, "progress.inline")                                \
	X(ST_RSM_ORPHANED, "resume.sessions_lost")                          \
	X(ST_RSM_KEPT, "resume.kept")                                       \
	X(ST_RSM_REPLAYED, "resume.replayed")                               \
	X(ST_RSM_UNPROTECTED, "resume.unprotected")                         \
	X(ST_RSM_DUPLICATES, "resume.duplicates")                           \
	X(ST_RSM_UNCHECKED, "resume.unchecked")

enum tsm__stat {
#define X(e, n) e,
	TSM_STATS_LIST(X)
#undef X
	ST__COUNT
};

typedef struct tsm__stats {
	atomic_uint_fast64_t v[ST__COUNT];
} tsm__stats;

static inline void tsm__stat_add(tsm__stats *s, enum tsm__stat i, uint64_t n)
{
	atomic_fetch_add_explicit(&s->v[i], n, memory_order_relaxed);
}
static inline void tsm__stat_set(tsm__stats *s, enum tsm__stat i, uint64_t n)
{
	atomic_store_explicit(&s->v[i], n, memory_order_relaxed);
}

#endif
