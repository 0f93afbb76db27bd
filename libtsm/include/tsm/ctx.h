/*
 * tsm/ctx.h - a libtsm node: identity, transports and the progress thread.
 *
 * Threading: a tsm_ctx is thread-safe; any thread may open publishers and
 * subscribers on it. tsm_ctx_close must be called once, after every handle
 * opened on the context is closed (it closes any that are left, and those
 * handles must then not be used). tsm_ctx_close must not be called from a
 * subscriber callback.
 */
#ifndef TSM_CTX_H
#define TSM_CTX_H

#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "time.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsm_ctx tsm_ctx;

/* Log levels for tsm_log_fn. */
typedef enum tsm_log_level {
	TSM_LOG_ERROR = 0,
	TSM_LOG_WARN = 1,
	TSM_LOG_INFO = 2,
	TSM_LOG_DEBUG = 3,
} tsm_log_level;

/*
 * tsm_log_fn receives one log line (no trailing newline). Called from any
 * libtsm thread; it must not call back into libtsm. line is valid only
 * during the call.
 */
typedef void (*tsm_log_fn)(void *arg, tsm_log_level level, const char *line);

/* Progress modes. */
typedef enum tsm_progress_mode {
	TSM_PROGRESS_BLOCKING = 0, /* threads sleep in the kernel: low CPU */
	TSM_PROGRESS_BUSY_POLL = 1, /* threads spin: lowest latency; an
	                               application thread inside tsm_publish or
	                               tsm_sub_recv then runs the context's
	                               progress itself, and the progress thread
	                               naps while it does (so callbacks below
	                               may run on that application thread) */
} tsm_progress_mode;

#define TSM_MAX_URLS 16

/*
 * tsm_event: an audit event: a refusal, a security failure, a lost peer.
 * Every field is valid only during the callback.
 */
typedef struct tsm_event {
	uint32_t size;        /* sizeof(tsm_event) */
	tsm_err reason;       /* the reason code (TSM_ERR_AUTHZ_DENIED, ...) */
	const char *peer;     /* peer identity, or its address; "" if unknown */
	const char *topic;    /* topic concerned, or NULL */
	const char *detail;   /* one human-readable sentence */
} tsm_event;

/*
 * tsm_event_fn is called once per event, from a libtsm thread (often the
 * progress thread): it must be quick and must not call back into libtsm.
 */
typedef void (*tsm_event_fn)(void *arg, const tsm_event *ev);

/* Where a message was dropped (tsm_outcome.where). */
typedef enum tsm_where {
	TSM_AT_PUBLISH = 1,    /* tsm_publish or the publisher's queue */
	TSM_AT_ROUTE = 2,      /* routing: no subscriber, not granted, caps */
	TSM_AT_SEND_QUEUE = 3, /* a session's lane queue (unsent fragments too) */
	TSM_AT_REASSEMBLY = 4, /* the receiver, on arrival or in reassembly */
	TSM_AT_SUB_QUEUE = 5,  /* a subscriber's delivery queue */
	TSM_AT_HANDOVER = 6,   /* just before tsm_sub_recv or a callback */
} tsm_where;

/*
 * tsm_outcome: a message that did not reach a subscriber, and why. Fields
 * are valid only during the callback.
 */
typedef struct tsm_outcome {
	uint32_t size;        /* sizeof(tsm_outcome) */
	uint64_t msg_id;      /* the id tsm_publish gave it (publisher's) */
	const char *topic;
	uint8_t priority;     /* its lane */
	tsm_err reason;       /* DEADLINE_EXPIRED, QUEUE_FULL, PEER_LOST, ... */
	tsm_where where;
} tsm_outcome;

/*
 * tsm_outcome_fn is called once per dropped message on the thread that
 * dropped it (often the progress thread): it must be quick and must not
 * call back into libtsm. Drops are counted whether or not it is set.
 */
typedef void (*tsm_outcome_fn)(void *arg, const tsm_outcome *o);

/* tsm_ctx_params.send_backlog_us: no rate-based budget (fixed 128 KiB) */
#define TSM_SEND_BACKLOG_OFF UINT32_MAX

/*
 * tsm_ctx_params: how to open a context. Initialise with
 * tsm_ctx_params_init() and then set fields; the size field lets later
 * versions of libtsm add fields without breaking callers built against an
 * older header. Strings are borrowed: they need to live only for the
 * duration of tsm_ctx_open.
 */
typedef struct tsm_ctx_params {
	uint32_t size;              /* sizeof(tsm_ctx_params), set by _init */
	const char *name;           /* node name for logs; NULL = "tsm" */
	const char *listen[TSM_MAX_URLS];  /* URLs to listen on, NULL-ended */
	const char *connect[TSM_MAX_URLS]; /* peer URLs to dial, NULL-ended */

	/* Credentials. Without them tsm_ctx_open refuses, unless insecure. */
	const char *cert_file;      /* PEM leaf certificate (+ chain) */
	const char *key_file;       /* PEM private key */
	const char *trust_file;     /* PEM trust bundle */
	const char *policy_file;    /* ACL policy (docs/security.md) */
	const char *crl_file;       /* optional CRL (PEM); when given,
	                               revocation is checked, fail-closed */
	int crl_soft_fail;          /* 1: a missing/stale CRL does not refuse */
	int cipher;                 /* 0: AES-256-GCM (default),
	                               1: ChaCha20-Poly1305 */
	tsm_duration reload_interval; /* how often credential and policy files
	                                 are checked for changes; default 1 s */

	/*
	 * insecure: 1 runs without authentication or encryption. It must be
	 * asked for explicitly; it is logged once at open, shown by the stat
	 * "ctx.insecure" = 1, and a peer that is not also insecure refuses the
	 * session (TSM_ERR_INSECURE_MISMATCH).
	 */
	int insecure;

	tsm_progress_mode progress; /* default TSM_PROGRESS_BLOCKING */
	tsm_log_fn log;             /* NULL = stderr for WARN and ERROR */
	void *log_arg;
	tsm_log_level log_level;    /* default TSM_LOG_WARN */
	tsm_event_fn on_event;      /* audit events; NULL = none */
	void *event_arg;
	tsm_outcome_fn on_outcome;  /* dropped messages; NULL = none */
	void *outcome_arg;

	/* Limits (0 = default). */
	uint32_t publish_queue;     /* messages between publishers and the
	                               progress thread, per priority; default
	                               8192 */
	uint64_t publish_queue_bytes; /* payload bytes there, all priorities;
	                                 default 64 MiB: beyond it tsm_publish
	                                 applies its back-pressure policy */
	uint64_t session_queue_bytes; /* unsent bytes queued per session
	                                 before back-pressure; default 64 MiB */
	uint32_t fragment_size;     /* bytes per fragment of a large message;
	                               default 65536, min 1024 */
	uint64_t reassembly_bytes;  /* all partial messages of all peers
	                               together; beyond it a new one is
	                               dropped (QUEUE_FULL); default 256 MiB */
	tsm_duration handshake_timeout; /* per waiting state; default 5 s */
	tsm_duration session_timeout; /* silence from an established peer
	                                 before PEER_LOST; default 10 s
	                                 (keepalive pings at a third) */
	tsm_duration reconnect_max; /* cap of the dial back-off; default 5 s */
	tsm_duration reauth_before; /* a dialer re-authenticates (a new session
	                               replaces the old, make-before-break)
	                               this long before the peer certificate's
	                               notAfter; default 60 s */
	uint32_t preauth_max;       /* handshakes pending at once; default 256 */
	uint32_t preauth_per_source; /* ... from one source address; default 4 */
	tsm_duration accept_backoff; /* pause after EMFILE; default 100 ms */
	/*
	 * lane_dscp: per priority lane, the DSCP (0..63) to mark TCP packets
	 * with, or -1 to leave the socket alone (the default, set by _init).
	 * All lanes of a session share one connection, so each send is
	 * marked for the most urgent lane it carries (with SO_PRIORITY =
	 * DSCP >> 3 for the local qdisc).
	 */
	int8_t lane_dscp[8];
	tsm_duration linger;        /* how long tsm_ctx_close keeps sending
	                               what is queued; default 1 s */

	/*
	 * Discovery (docs/design/discovery.md). Seeds are URLs in connect
	 * (tsm_ctx_params_set "seed" appends there), best with an expected
	 * identity ("tcp://10.0.0.1:7000#spiffe://td/seed"). Over every
	 * authenticated session the nodes gossip who publishes and subscribes
	 * what and where to dial them, filtered by the policy, and a node
	 * dials the publishers and subscribers that match its own topics.
	 */
	int discovery;              /* 1 (set by _init): gossip and dial what
	                               is learnt; 0: only the connect list */
	const char *advertise[TSM_MAX_URLS]; /* URLs others should dial us on,
	                               NULL-ended; default: the listen URLs as
	                               bound (a wildcard host is replaced by
	                               the address each peer sees us from) */
	tsm_duration gossip_interval; /* default 500 ms */
	tsm_duration peer_timeout;  /* a node not heard of for this long is
	                               forgotten; default 30 s (heartbeats
	                               every third of it) */
	uint32_t max_peers;         /* nodes remembered; default 1024 */
	const char *beacon;         /* "GROUP:PORT" (IPv4 multicast): announce
	                               this node there every 2 s and dial the
	                               nodes heard (URL only, no topics, TLS
	                               and policy decide); NULL = off */

	/*
	 * send_backlog_us: on TCP, how much a session lets the kernel hold
	 * that TCP has not sent yet, in µs at the connection's measured
	 * delivery rate (8..128 KiB; the socket's TCP_NOTSENT_LOWAT follows
	 * it). The rest waits in the lanes, where a more urgent message still
	 * overtakes it: an urgent message queues behind at most this much
	 * (docs/design/qos.md). 0 = default (200 µs);
	 * TSM_SEND_BACKLOG_OFF: a fixed 128 KiB, as before.
	 */
	uint32_t send_backlog_us;
} tsm_ctx_params;

/*
 * tsm_ctx_params_init fills p with defaults. Returns TSM_EINVAL if p is
 * NULL.
 */
tsm_err tsm_ctx_params_init(tsm_ctx_params *p);

/*
 * tsm_ctx_params_size returns sizeof(tsm_ctx_params) of the loaded
 * library, so that bindings can allocate params without mirroring the
 * struct (then call tsm_ctx_params_init and tsm_ctx_params_set).
 */
size_t tsm_ctx_params_size(void);

/*
 * tsm_ctx_params_set sets one field by name from a string: "name",
 * "listen" and "connect" (each call appends a URL; at most TSM_MAX_URLS - 1
 * by name, the lists staying NULL-terminated), "cert_file",
 * "key_file", "trust_file", "policy_file", "crl_file", "crl_soft_fail"
 * (0/1), "cipher" (aes-256-gcm|chacha20-poly1305), "insecure" (0/1),
 * "progress" (blocking|busy_poll), "log_level" (error|warn|info|debug),
 * "publish_queue", "publish_queue_bytes", "session_queue_bytes",
 * "reassembly_bytes", "fragment_size", "accept_backoff_ms",
 * "handshake_timeout_ms", "session_timeout_ms", "reconnect_max_ms",
 * "linger_ms", "reload_interval_ms", "reauth_before_ms", "preauth_max",
 * "preauth_per_source", "lane_dscp" (eight comma-separated values, -1 =
 * unmarked: "46,46,34,26,18,10,0,0"), "seed" (appends to connect),
 * "advertise" (appends a URL), "discovery" (0/1), "gossip_interval_ms",
 * "peer_timeout_ms", "max_peers", "beacon" (GROUP:PORT),
 * "send_backlog_us" (µs, or "off").
 * value is borrowed
 * like every string of tsm_ctx_params: it must live until tsm_ctx_open
 * returns. Returns TSM_ERR_BAD_PARAMS for an unknown key or a bad value
 * (the detail says which), TSM_EINVAL for NULL arguments.
 */
tsm_err tsm_ctx_params_set(tsm_ctx_params *p, const char *key,
                           const char *value);

/*
 * tsm_ctx_params_set_log, _set_event and _set_outcome set the callback
 * fields of p (for bindings that do not mirror the struct). Each returns
 * TSM_EINVAL if p is NULL.
 */
tsm_err tsm_ctx_params_set_log(tsm_ctx_params *p, tsm_log_fn fn, void *arg);
tsm_err tsm_ctx_params_set_event(tsm_ctx_params *p, tsm_event_fn fn, void *arg);
tsm_err tsm_ctx_params_set_outcome(tsm_ctx_params *p, tsm_outcome_fn fn,
                                   void *arg);

/*
 * tsm_ctx_open creates a node, starts its progress thread, opens its
 * listeners and starts dialing its peers (dials retry in the background
 * with back-off; a refused dial is not an error here). On success *out
 * owns a context to be released with tsm_ctx_close. On failure *out is
 * NULL and nothing is left open. Fails with TSM_ERR_NO_CREDENTIALS when
 * neither credentials nor insecure are given, TSM_ERR_BAD_URL for a URL
 * that does not parse, TSM_ERR_ADDR_IN_USE when a listen address is taken,
 * TSM_ENOTSUP for a transport that is not built in.
 */
tsm_err tsm_ctx_open(tsm_ctx **out, const tsm_ctx_params *p);

/*
 * tsm_ctx_close stops the context: sends what is queued (for at most
 * linger), closes every session, joins the threads, frees everything.
 * NULL is a no-op.
 */
void tsm_ctx_close(tsm_ctx *ctx);

/*
 * tsm_ctx_listen adds a listener after open. If bound is not NULL it
 * receives the actual URL (useful with port 0), NUL-terminated, truncated
 * to bound_len. Errors as tsm_ctx_open.
 */
tsm_err tsm_ctx_listen(tsm_ctx *ctx, const char *url, char *bound,
                       size_t bound_len);

/*
 * tsm_ctx_dial adds a peer to dial after open. Returns once the dial is
 * queued; the session comes up in the background (see tsm_ctx_wait_peers).
 */
tsm_err tsm_ctx_dial(tsm_ctx *ctx, const char *url);

/*
 * tsm_ctx_wait_peers blocks until at least n sessions are established or
 * the timeout passes (TSM_ETIMEDOUT).
 */
tsm_err tsm_ctx_wait_peers(tsm_ctx *ctx, unsigned n, tsm_duration timeout);

/*
 * tsm_peer_info: one node this context knows of, from discovery or a
 * session. Plain values, copied out: the caller owns the array.
 */
typedef struct tsm_peer_info {
	uint64_t node_id;           /* random per context open */
	char identity[256];         /* SPIFFE ID (truncated), "" if insecure */
	char state[16];             /* "self", "connected", "dialing",
	                               "known" (learnt, not needed), "left" */
	char transport[32];         /* engine of its session ("io_uring",
	                               "epoll", "ofi:<provider>"), else "" */
	char url[128];              /* first advertised URL, or where the
	                               session goes; "" if none */
	uint32_t npub, nsub;        /* its topic adverts that this node sees */
	int64_t heard_ms;           /* ms since its record last changed */
} tsm_peer_info;

/*
 * tsm_ctx_peers copies up to max entries into out (self first) and sets
 * *n to the number of nodes known, which may exceed max. Returns
 * TSM_EINVAL for NULL ctx or n (out may be NULL when max is 0).
 */
tsm_err tsm_ctx_peers(tsm_ctx *ctx, tsm_peer_info *out, size_t max,
                      size_t *n);

/*
 * tsm_ctx_transport returns the name of the I/O engine actually in use for
 * TCP ("io_uring" or "epoll"), static; never NULL.
 */
const char *tsm_ctx_transport(const tsm_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
