/*
 * transport/ofi/ofi.h - the libfabric I/O engine: io.h's byte-stream
 * connection model emulated over one FI_EP_RDM endpoint (design.md §7).
 *
 * Threading: as io.h. Every function here except tsm__ofi_url and
 * tsm__ofi_lane_tclass (pure, thread-safe) runs on the context's progress
 * thread, which owns the engine; only the ops table's wake() may be called
 * from any thread. Callbacks may call the ops (recv, send, close, connect,
 * adopt) but not tsm__ofi_listen_addr or fini.
 *
 * What differs from the socket engines, for the context:
 *  - The ops table's init and connect fail with TSM_ENOTSUP: a fabric
 *    engine needs a provider (tsm__ofi_init) and a fabric address
 *    (tsm__ofi_connect), which io.h's signatures cannot carry.
 *  - Connection "fds" are engine handles >= TSM_OFI_HANDLE_BASE, never
 *    OS descriptors: getpeername/setsockopt/close on them fail with EBADF
 *    and do nothing. tsm__ofi_peer_name gives the peer's address instead.
 *  - adopt() must be called from inside on_accept (as loop_on_accept
 *    does); a handle not adopted when on_accept returns counts as refused
 *    and the peer is told CLOSE.
 *  - A listener's l->fd is not used; one listener per engine (one
 *    endpoint, one address).
 * docs/transports.md describes providers, URLs and limits.
 */
#ifndef TSM_TRANSPORT_OFI_H
#define TSM_TRANSPORT_OFI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport/io.h"

/* Connection handles given to on_accept and stored in c->fd. */
#define TSM_OFI_HANDLE_BASE (1 << 30)

extern const tsm__io_ops tsm__io_ofi_ops;

/*
 * tsm__ofi_url splits an ofi URL into a libfabric provider string and an
 * address: ofi+tcp://A.B.C.D:PORT ("tcp;ofi_rxm"), ofi+udp://A.B.C.D:PORT
 * ("udp;ofi_rxd"), ofi+shm://NAME ("shm"), ofi+verbs://DEV:PORT or
 * ofi+verbs://A.B.C.D:PORT ("verbs;ofi_rxm"), ofi+efa://[DEV or hex
 * name] ("efa"), ofi://PROVIDER/ADDRESS (any other). A trailing
 * "#identity" is not part of the address. Returns TSM_ERR_BAD_URL with a
 * detail, or TSM_EINVAL when a buffer is too small. Pure, thread-safe.
 */
tsm_err tsm__ofi_url(const char *url, char *provider, size_t pcap, char *addr,
                     size_t acap);

/*
 * tsm__ofi_init opens provider's fabric, domain, completion queue, address
 * vector and one RDM endpoint at an address the provider picks, and posts
 * the receive pool. busy: wait() never sleeps. On success *out owns it all
 * (free with ops->fini). Fails with TSM_ERR_NO_DEVICE when the provider or
 * its device is absent here ("no verbs device found (libfabric: ...)"),
 * TSM_EINVAL for a malformed provider string, TSM_ETRANSPORT otherwise.
 */
tsm_err tsm__ofi_init(tsm__io **out, const tsm__io_cbs *cbs, bool busy,
                      const char *provider);

/*
 * tsm__ofi_init_tc is tsm__ofi_init asking for a libfabric traffic class
 * (an FI_TC_* value, 0 = unspecified) on the endpoint's sends. A provider
 * that refuses the class still opens, without it; tsm__ofi_query reports
 * what was asked and what was granted.
 */
tsm_err tsm__ofi_init_tc(tsm__io **out, const tsm__io_cbs *cbs, bool busy,
                         const char *provider, uint32_t tclass);

/* tsm__ofi_lane_tclass maps a wire lane (0 = most urgent .. 7) to the
 * FI_TC_* value to ask for: low latency for 0-1, bulk data for 6-7,
 * unspecified (0) between. Pure. */
uint32_t tsm__ofi_lane_tclass(unsigned lane);

/*
 * tsm__ofi_listen_addr re-opens the endpoint bound to addr (the address
 * part of the URL: "127.0.0.1:0", shm "NAME", verbs "DEV:PORT"); port 0
 * lets the provider choose (see tsm__ofi_bound_url). Allowed only while no
 * connection exists (TSM_ESTATE otherwise). TSM_ERR_ADDR_IN_USE when the
 * address is taken, TSM_ERR_BAD_URL when it does not parse for this
 * provider, TSM_ETRANSPORT otherwise; on failure the engine has no
 * endpoint until a later tsm__ofi_listen_addr succeeds.
 */
tsm_err tsm__ofi_listen_addr(tsm__io *io, const char *addr);

/* tsm__ofi_bound_url writes the URL peers dial to reach this engine
 * ("ofi+tcp://127.0.0.1:40123", "ofi+shm://NAME", "ofi://shm/fi_shm://..."
 * for an unnamed shm endpoint). TSM_EINVAL if cap is too small. */
tsm_err tsm__ofi_bound_url(tsm__io *io, char *buf, size_t cap);

/*
 * tsm__ofi_connect starts connecting c to the engine at addr (the address
 * part of a URL) and sets c->fd to the connection's handle. Completes with
 * on_connect: TSM_OK, or TSM_ERR_CONN_REFUSED when the peer cannot be
 * reached or does not accept within 2 s, or when the connection table is
 * full. Returns an error (and no callback follows) only when addr does not
 * parse for this provider (TSM_ERR_BAD_URL) or there is no endpoint.
 */
tsm_err tsm__ofi_connect(tsm__io *io, tsm__conn *c, const char *addr);

/* tsm__ofi_peer_name writes the peer address of handle fd ("127.0.0.1:
 * 5000", "fi_ns://tsm:NAME"): for logs and the per-source pre-auth budget.
 * TSM_EINVAL for an unknown handle. */
tsm_err tsm__ofi_peer_name(tsm__io *io, int fd, char *buf, size_t cap);

/* tsm__ofi_built: whether libtsm has the libfabric engine (false in the
 * stub build, where auto:// is plain TCP). Pure. */
bool tsm__ofi_built(void);

/*
 * The auto transport (auto://HOST:PORT, ofi_auto.c, docs/transports.md
 * "auto"): an engine over one engine per tier (verbs, shm, io_uring
 * TCP), the tier chosen per connection with logged, counted fallbacks.
 * tsm__ofi_auto_open opens it for ctx (whose URLs are auto://) and sets
 * ctx->io, ctx->io_ops (tsm__io_ofi_auto_ops) and ctx->transport_name.
 * tsm__ofi_listen_addr, tsm__ofi_bound_url, tsm__ofi_connect (address
 * "HOST:PORT") and tsm__ofi_peer_name ("shm:fi_ns://...", "tcp:IP") take
 * the auto engine as well. TSM_ENOTSUP without libfabric.
 */
struct tsm_ctx;
extern const tsm__io_ops tsm__io_ofi_auto_ops;
tsm_err tsm__ofi_auto_open(struct tsm_ctx *ctx, const tsm__io_cbs *cbs);

/*
 * EFA under auto (docs/transports.md "auto"): an auto:// address cannot
 * name an EFA endpoint, so a listener with an EFA device tells each
 * session it accepts its EFA name in a CTRL TIERS frame (sealed, after
 * the handshake). tsm__ofi_auto_advert writes that frame's text
 * ("efa=NAME") into buf; false when this engine has no EFA listener.
 * tsm__ofi_auto_learn takes a peer's text on a session we dialed at
 * `dialed` ("HOST:PORT") over handle fd: it remembers the name for later
 * dials of that address and sets *move when the session runs on a tier
 * below EFA, EFA is here and has not failed for that peer lately: the
 * caller then dials again (make-before-break). TSM_ERR_BAD_FIELD for a
 * malformed text. Both take only the auto engine; stubs without
 * libfabric.
 */
bool tsm__ofi_auto_advert(tsm__io *io, char *buf, size_t cap);
tsm_err tsm__ofi_auto_learn(tsm__io *io, int fd, const char *dialed,
                            const uint8_t *ad, size_t n, bool *move);

/* What the engine runs on and what it has refused or dropped. */
typedef struct tsm__ofi_info {
	char provider[48];      /* as granted: "tcp;ofi_rxm" */
	char fabric[64];
	char domain[64];
	uint32_t tclass_asked;  /* FI_TC_* or 0 */
	uint32_t tclass_granted;
	bool wait_fd;           /* blocking waits sleep on the CQ's fd; else
	                           short sleeps (50 us .. 1 ms) */
	size_t msg_max;         /* payload bytes per fabric message */
	uint64_t refused;       /* CONNECTs over the table or embryo budgets */
	uint64_t dropped;       /* messages for no connection, bad headers */
	uint64_t window_exceeded; /* peers that sent past their credit */
	uint64_t rx_split;      /* DATA messages larger than the session's
	                           armed room: the rest queued, copied twice
	                           (0 while sessions keep rx_hint of room) */
} tsm__ofi_info;

/* tsm__ofi_query fills out with the engine's state. */
void tsm__ofi_query(const tsm__io *io, tsm__ofi_info *out);

#endif
