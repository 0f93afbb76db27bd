/*
 * transport/ofi/ofi_int.h - what ofi_ep.c (fabric set-up, buffers,
 * addresses) and ofi.c (connections, progress) share. Internal to the
 * engine; everything runs on the progress thread that owns it.
 */
#ifndef TSM_TRANSPORT_OFI_INT_H
#define TSM_TRANSPORT_OFI_INT_H

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>

#include <string.h>

#include "core/common.h"
#include "transport/ofi/ofi.h"

/* Engine message header (docs/transports.md "Engine protocol"): 16 bytes,
 * little-endian: type u8, version u8, seq u16, dst id u32, dst key u32,
 * credit u32. seq numbers a connection's messages after the hello: RDM
 * matches messages in order (FI_ORDER_SAS) but may complete them out of
 * order (tcp;ofi_rxm reports a small eager message before a larger
 * rendezvous one sent first), so the receiver restores the order. */
#define OFI_HDR_LEN 16
#define OFI_PROTO_VERSION 1

#define OFI_MAX_CONNS 1024        /* connection table (handles) */
#define OFI_MAX_PEERS OFI_MAX_CONNS
#define OFI_MAX_EMBRYOS 256       /* ACCEPT sent, CONFIRM not yet back */
#define OFI_EMBRYOS_PER_PEER 4    /* security.md: 4 pending per source */
#define OFI_NAME_MAX 64           /* endpoint names we carry in CONNECT */
#define OFI_CONNECT_TIMEOUT (2 * TSM_SEC)
#define OFI_PEER_LINGER (5 * TSM_SEC)
#define OFI_CLOSE_LINGER (2 * TSM_SEC) /* fini: sends still in flight */
#define OFI_WINDOW (2u << 20)     /* bytes a peer may send unread */
#define OFI_MSG_MAX (264u << 10)  /* payload per fabric message: four
                                   * 64 KiB fragment frames (session/tx.c
                                   * tx_fits_message) */
#define OFI_MSG_MIN 1024u         /* smallest peer receive size we accept */
#define OFI_RX_POSTED 32          /* receive buffers kept posted */
#define OFI_TX_SMALL 4096u        /* small send buffer, header included */
#define OFI_TX_SMALL_MAX 256
#define OFI_TX_LARGE_MAX 64
#define OFI_SEG_SMALL 16384u      /* receive queue segment for small data */
#define OFI_SEG_CACHE 8           /* large segments kept for reuse */
#define OFI_STASH_MAX 256         /* out-of-order messages per connection */
#define OFI_SLEEP_MIN (50 * TSM_USEC) /* fallback sleeps without a wait fd */
#define OFI_SLEEP_MAX TSM_MSEC

enum ofi_type {
	OFI_T_CONNECT = 1, /* body: src id, src key, rx max, name len u16, name */
	OFI_T_ACCEPT,      /* body: src id, src key, rx max */
	OFI_T_CONFIRM,     /* the initiator received ACCEPT at its address */
	OFI_T_DATA,        /* body: stream bytes */
	OFI_T_CREDIT,      /* header only: credit returned */
	OFI_T_CLOSE,       /* header only: end of stream */
};

enum ofi_buf_kind { OFI_BUF_RX = 1, OFI_BUF_TX };

/* A message buffer: a posted receive or a send. The fi_context2 comes
 * first so the op_context libfabric hands back is the buffer itself
 * (FI_CONTEXT/FI_CONTEXT2 modes let the provider use it meanwhile). */
struct ofi_buf {
	struct fi_context2 fctx;
	uint8_t kind;
	uint8_t type;      /* tx: enum ofi_type */
	bool large;
	struct ofi_buf *next;
	struct fid_mr *mr;
	void *desc;
	uint16_t peer;     /* tx: destination peer index and generation */
	uint32_t peer_gen;
	uint16_t conn;     /* tx: sending connection and its key */
	uint32_t conn_key;
	size_t len, cap;
	uint8_t data[];
};

/* One remote endpoint in the address vector, shared by its connections. */
struct ofi_peer {
	fi_addr_t fa;
	uint32_t gen;
	bool used;
	bool blocked;      /* on io->blocked: sends wait for FI_EAGAIN to end */
	bool same_proc;    /* shm: an endpoint of this process (ofi_ep.c) */
	uint16_t nlen;
	unsigned refs, embryos, inflight;
	tsm_time idle_since;
	struct ofi_buf *q_head, *q_tail; /* not yet posted, in order */
	uint8_t name[OFI_NAME_MAX + 1];
};

enum ofi_state { OC_FREE, OC_DIALING, OC_EMBRYO, OC_OPEN, OC_FAILED };

/* A message that completed before an earlier one of its connection. */
struct ofi_early {
	struct ofi_early *next;
	uint16_t seq;
	uint8_t type;
	uint32_t credit;
	size_t len;
	uint8_t data[];
};

/* Received bytes the session has not read yet. */
struct ofi_seg {
	struct ofi_seg *next;
	size_t off, len, cap;
	uint8_t data[];
};

struct ofi_conn {
	uint8_t state;       /* enum ofi_state */
	bool peer_closed;    /* CLOSE received: recv gives 0 once drained */
	bool waiting;        /* on io->waiters: a send waits for credit/buffers */
	uint16_t peer;
	uint32_t key;        /* ours, random: a message must carry it */
	uint32_t peer_id, peer_key, peer_rx_max;
	tsm__conn *c;        /* NULL while accepted but not adopted */
	tsm_time deadline;   /* DIALING / EMBRYO */
	struct ofi_seg *q_head, *q_tail;
	size_t q_bytes;
	void *rx_buf;        /* armed receive */
	size_t rx_len;
	uint32_t owed;       /* bytes read since credit was last returned */
	uint16_t tx_seq, rx_seq;
	struct ofi_early *early; /* by seq; bytes count against the window */
	size_t early_bytes;
	unsigned nearly;
	uint64_t tx_credit;  /* bytes the peer still lets us send */
	tsm_err err;         /* sticky failure; next recv/send reports it */
	char why[96];
};

/* A completion to deliver from wait() (io.h: never from inside the op). */
enum ofi_done_what { DONE_OP = 1, DONE_CLOSED, DONE_LST_CLOSED, DONE_ACCEPT };

struct ofi_done {
	uint8_t what;
	struct tsm__op *op;
	long res;
	tsm_err err;
	uint32_t key;        /* DONE_ACCEPT: the slot's key */
	char why[96];
};

/* The first word of an ofi engine and of an auto engine (ofi_auto.c):
 * the tsm__ofi_* entry points take either and tell them apart by it. */
#define OFI_KIND_ENGINE 0x4f464945u /* "OFIE" */
#define OFI_KIND_AUTO 0x4f464941u   /* "OFIA" */

static inline uint32_t ofi_kind(const void *io)
{
	uint32_t k;
	memcpy(&k, io, sizeof(k));
	return k;
}

struct ofi_auto;

struct tsm__io {
	uint32_t kind;       /* OFI_KIND_ENGINE */
	int handle_base;     /* first connection handle (TSM_OFI_HANDLE_BASE) */
	struct ofi_auto *parent; /* the auto engine this one serves, or NULL */
	const tsm__io_cbs *cbs;
	bool busy;
	char provider[48];
	uint32_t tc_asked, tc_granted;
	uint32_t addr_format;
	/* fabric objects, re-opened by tsm__ofi_listen_addr */
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av;
	struct fid_cq *cq;
	struct fid_ep *ep;
	int wait_fd;         /* CQ wait object, or -1: short sleeps */
	int evfd;            /* wake() */
	bool mr_local;
	size_t msg_max, inject;
	uint8_t name[OFI_NAME_MAX + 1];
	size_t nlen;
	uint64_t mr_key;
	/* buffers */
	struct ofi_buf *rx[OFI_RX_POSTED];
	struct ofi_buf *rx_unposted;
	struct ofi_buf *tx_small, *tx_large;   /* free lists */
	struct ofi_buf **tx_all;
	unsigned ntx_all, capt_all, ntx_small, ntx_large;
	bool tx_freed;
	/* connections and peers */
	struct ofi_conn conns[OFI_MAX_CONNS];
	uint16_t free_conns[OFI_MAX_CONNS];
	unsigned nfree, nembryos;
	struct ofi_peer peers[OFI_MAX_PEERS];
	uint16_t blocked[OFI_MAX_PEERS];
	unsigned nblocked;
	uint16_t waiters[OFI_MAX_CONNS];
	unsigned nwaiters;
	tsm__lst *lst;
	tsm_time next_timer;
	tsm_duration backoff;
	struct ofi_seg *seg_cache;
	unsigned nseg_cache;
	/* completions for wait() */
	struct ofi_done *done;
	size_t ndone, capdone;
	uint64_t refused, dropped, window_exceeded, rx_split;
	char shm_name[OFI_NAME_MAX + 1]; /* claimed in the process registry */
	tsm__io *shm_next;
};

/* ofi.c, for ofi_auto.c */
void tsm__ofi_adopt_parent(tsm__io *io, struct ofi_auto *parent, int base);
void tsm__ofi_forget(tsm__io *io, tsm__conn *c);

/* ofi_auto.c: the entry points of ofi.h when io is an auto engine */
bool tsm__ofi_auto_dialed(struct ofi_auto *a, tsm__io *sub, tsm__conn *c,
                          tsm_err err);
tsm_err tsm__ofi_auto_listen_addr(tsm__io *io, const char *addr);
tsm_err tsm__ofi_auto_bound_url(tsm__io *io, char *buf, size_t cap);
tsm_err tsm__ofi_auto_connect(tsm__io *io, tsm__conn *c, const char *addr);
tsm_err tsm__ofi_auto_peer_name(tsm__io *io, int fd, char *buf, size_t cap);
void tsm__ofi_auto_query(const tsm__io *io, tsm__ofi_info *out);

/* ofi_ep.c */
tsm_err tsm__ofi_probe(const char *provider);
/* Whether an shm endpoint of this process listens on NAME: libfabric
 * 1.17 shm maps a peer of the same process straight to that endpoint's
 * region, which is unmapped when it closes, so its senders crash. */
bool tsm__ofi_shm_held(const char *name);
/* shm engines: around calls that may touch a peer's region (ofi_ep.c
 * "shm endpoints of this process"); no-ops for other providers. */
void tsm__ofi_shm_rdlock(const tsm__io *io);
void tsm__ofi_shm_unlock(const tsm__io *io);
bool tsm__ofi_shm_live(const uint8_t *name, size_t n);
tsm_err tsm__ofi_ep_open(tsm__io *io, const char *listen_addr);
void tsm__ofi_ep_close(tsm__io *io);
struct ofi_buf *tsm__ofi_buf_get(tsm__io *io, size_t len, bool ctrl);
void tsm__ofi_buf_put(tsm__io *io, struct ofi_buf *b);
int tsm__ofi_rx_post(tsm__io *io, struct ofi_buf *b);
tsm_err tsm__ofi_addr_name(const tsm__io *io, const char *addr, uint8_t *name,
                           size_t *nlen);
bool tsm__ofi_name_ok(const tsm__io *io, const uint8_t *name, size_t n);
void tsm__ofi_name_str(const tsm__io *io, const uint8_t *name, size_t n,
                       char *buf, size_t cap);

#endif
