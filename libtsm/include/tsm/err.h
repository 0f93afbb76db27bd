/*
 * tsm/err.h - error codes, names and the thread-local error detail.
 *
 * Threading: every function here is thread-safe. The detail string is
 * thread-local: it describes the last failure of a libtsm call made on the
 * calling thread and is overwritten by the next failing call on that thread.
 *
 * Layout of a tsm_err: the low byte is a coarse class (TSM_E*), the bits
 * above it a detailed reason. tsm_err_class() keeps only the class, so a
 * caller can branch on "timed out" or "security refusal" without knowing
 * every reason. 0 (TSM_OK) is success.
 */
#ifndef TSM_ERR_H
#define TSM_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

#define TSM__R(reason, cls) (((reason) << 8) | (cls))

typedef enum tsm_err {
	TSM_OK = 0,

	/* Classes (low byte). A class on its own is also a valid code. */
	TSM_EINVAL = 1,      /* bad argument from the caller */
	TSM_ENOMEM = 2,      /* allocation failed or a memory budget is spent */
	TSM_ETIMEDOUT = 3,   /* the call's timeout passed */
	TSM_ECLOSED = 4,     /* the handle, session or peer is closed */
	TSM_EAGAIN = 5,      /* back-pressure: try again later */
	TSM_EPROTO = 6,      /* malformed or out-of-state input from a peer */
	TSM_ESECURITY = 7,   /* authentication / authorisation refusal */
	TSM_EQOS = 8,        /* a QoS promise could not be kept */
	TSM_ETRANSPORT = 9,  /* the OS or the fabric failed */
	TSM_ENOTSUP = 10,    /* not supported here / not built in */
	TSM_ESTATE = 11,     /* call not allowed in the handle's state */
	TSM_EINTERNAL = 12,  /* a libtsm bug: please report */

	/* Wire and protocol reasons (docs/wire.md §11). */
	TSM_ERR_TRUNCATED = TSM__R(1, TSM_EPROTO),
	TSM_ERR_BAD_MAGIC = TSM__R(2, TSM_EPROTO),
	TSM_ERR_BAD_VERSION = TSM__R(3, TSM_EPROTO),
	TSM_ERR_BAD_TYPE = TSM__R(4, TSM_EPROTO),
	TSM_ERR_BAD_LENGTH = TSM__R(5, TSM_EPROTO),
	TSM_ERR_BAD_FIELD = TSM__R(6, TSM_EPROTO),
	TSM_ERR_OUT_OF_STATE = TSM__R(7, TSM_EPROTO),
	TSM_ERR_BAD_METADATA = TSM__R(8, TSM_EPROTO),
	TSM_ERR_FRAME_TOO_LARGE = TSM__R(9, TSM_EPROTO),
	TSM_ERR_BAD_FRAGMENT = TSM__R(10, TSM_EPROTO),
	TSM_ERR_UNKNOWN_TOPIC = TSM__R(11, TSM_EPROTO),

	/* Caller-side reasons. */
	TSM_ERR_BAD_TOPIC = TSM__R(1, TSM_EINVAL),
	TSM_ERR_BAD_PATTERN = TSM__R(2, TSM_EINVAL),
	TSM_ERR_BAD_URL = TSM__R(3, TSM_EINVAL),
	TSM_ERR_BAD_PRIORITY = TSM__R(4, TSM_EINVAL),
	TSM_ERR_MSG_TOO_LARGE = TSM__R(5, TSM_EINVAL),
	TSM_ERR_BAD_DEADLINE = TSM__R(6, TSM_EINVAL),
	TSM_ERR_NO_CREDENTIALS = TSM__R(7, TSM_EINVAL),
	TSM_ERR_BAD_PARAMS = TSM__R(8, TSM_EINVAL),

	/* Security reasons (security.md). */
	TSM_ERR_NO_PEER_CERT = TSM__R(1, TSM_ESECURITY),
	TSM_ERR_UNKNOWN_CA = TSM__R(2, TSM_ESECURITY),
	TSM_ERR_CERT_EXPIRED = TSM__R(3, TSM_ESECURITY),
	TSM_ERR_CERT_NOT_YET_VALID = TSM__R(4, TSM_ESECURITY),
	TSM_ERR_CERT_REVOKED = TSM__R(5, TSM_ESECURITY),
	TSM_ERR_CRL_UNAVAILABLE = TSM__R(6, TSM_ESECURITY),
	TSM_ERR_SPIFFE_MALFORMED = TSM__R(7, TSM_ESECURITY),
	TSM_ERR_PEER_ID_MISMATCH = TSM__R(8, TSM_ESECURITY),
	TSM_ERR_TLS_VERSION = TSM__R(9, TSM_ESECURITY),
	TSM_ERR_ALPN_MISMATCH = TSM__R(10, TSM_ESECURITY),
	TSM_ERR_AUTHZ_DENIED = TSM__R(11, TSM_ESECURITY),
	TSM_ERR_PREAUTH_LIMIT = TSM__R(12, TSM_ESECURITY),
	TSM_ERR_HANDSHAKE_TIMEOUT = TSM__R(13, TSM_ESECURITY),
	TSM_ERR_AEAD_FAIL = TSM__R(14, TSM_ESECURITY),
	TSM_ERR_REPLAY = TSM__R(15, TSM_ESECURITY),
	TSM_ERR_INSECURE_MISMATCH = TSM__R(16, TSM_ESECURITY),

	/* QoS reasons. */
	TSM_ERR_DEADLINE_EXPIRED = TSM__R(1, TSM_EQOS),
	TSM_ERR_PRIORITY_CAP = TSM__R(2, TSM_EQOS),
	TSM_ERR_QUEUE_FULL = TSM__R(1, TSM_EAGAIN),
	TSM_ERR_NO_SUBSCRIBER = TSM__R(2, TSM_EAGAIN),

	/* Session and transport reasons. */
	TSM_ERR_PEER_LOST = TSM__R(1, TSM_ECLOSED),
	TSM_ERR_CONN_REFUSED = TSM__R(1, TSM_ETRANSPORT),
	TSM_ERR_ADDR_IN_USE = TSM__R(2, TSM_ETRANSPORT),
	TSM_ERR_NO_DEVICE = TSM__R(3, TSM_ETRANSPORT),
	TSM_ERR_URING_UNAVAILABLE = TSM__R(4, TSM_ETRANSPORT),
} tsm_err;

/* tsm_err_class returns the coarse class (low byte) of err; TSM_OK for 0. */
int tsm_err_class(tsm_err err);

/*
 * tsm_strerror returns a static, human-readable sentence for err. Never
 * NULL; unknown codes give "unknown error". The caller must not free it.
 */
const char *tsm_strerror(tsm_err err);

/*
 * tsm_err_name returns the symbolic name of err without the TSM_ / TSM_ERR_
 * prefix ("DEADLINE_EXPIRED", "EINVAL"), static, never NULL ("UNKNOWN").
 */
const char *tsm_err_name(tsm_err err);

/*
 * tsm_err_detail returns the calling thread's detail string for the last
 * failing libtsm call on this thread (where and why, e.g. "tsm_pub_open:
 * topic 'a//b' has an empty segment at byte 2"). Empty string if none.
 * Valid until the next libtsm call on this thread; the caller must not
 * free it.
 */
const char *tsm_err_detail(void);

#ifdef __cplusplus
}
#endif
#endif
