/*
 * transport/io.h - the I/O engine behind TCP-like byte-stream transports.
 *
 * Two engines implement this small ops table: io_uring (transport/uring)
 * and epoll (transport/sock), in the spirit of libfabric's ofi_sockapi.
 * The context picks io_uring and falls back to epoll, loudly, when the
 * ring cannot be set up or TSM_NO_URING=1 is set.
 *
 * Threading: every function except wake() runs on the context's progress
 * thread, which owns the engine. Completion callbacks (tsm__io_cbs) are
 * called from inside wait(), on the progress thread. A connection has at
 * most one receive, one send and one connect in flight at a time; after
 * close() the engine calls on_closed exactly once, when no operation of
 * the connection is still pending, and only then may its memory go.
 */
#ifndef TSM_TRANSPORT_IO_H
#define TSM_TRANSPORT_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "tsm/err.h"
#include "tsm/time.h"

#define TSM_IO_MAX_IOV 64

typedef struct tsm__io tsm__io;
typedef struct tsm__conn tsm__conn;
typedef struct tsm__lst tsm__lst;

/* Operation tags, so one completion path can route by type. */
enum tsm__op_kind { TSM_OP_RECV = 1, TSM_OP_SEND, TSM_OP_CONNECT,
                    TSM_OP_ACCEPT, TSM_OP_WAKE, TSM_OP_CANCEL };

struct tsm__op {
	uint8_t kind;   /* enum tsm__op_kind */
	bool pending;
	void *owner;    /* tsm__conn or tsm__lst */
};

/* One stream connection. The session owns it; the engine borrows it. */
struct tsm__conn {
	int fd;
	bool closing;
	bool connected;
	void *user;                /* the session */
	struct tsm__op rx, tx, cx;
	struct iovec iov[TSM_IO_MAX_IOV];
	int iovcnt;
	struct msghdr msg;
	struct sockaddr_storage peer;
	socklen_t peer_len;
	int sock_epoll_mask;       /* epoll engine: registered events */
	void *rx_buf;              /* epoll engine: armed receive */
	size_t rx_len;
	size_t rx_hint;            /* set by the engine: the most one read may
	                            * deliver at once (ofi: one fabric message),
	                            * 0 for a byte stream; the session keeps that
	                            * much room armed where it can (rx.c) */
};

/* A listening socket. */
struct tsm__lst {
	int fd;
	bool closing;
	bool paused;               /* out of fds: the context re-arms later */
	tsm_time resume_at;
	void *user;                /* the context's listener record */
	struct tsm__op acc;
};

/* Callbacks into the context, all on the progress thread. */
typedef struct tsm__io_cbs {
	void (*on_accept)(tsm__lst *l, int fd, tsm_err err);
	void (*on_connect)(tsm__conn *c, tsm_err err);
	/* n > 0 bytes received; 0 = peer closed; < 0: error (TSM_ERR code). */
	void (*on_recv)(tsm__conn *c, long n, tsm_err err);
	/* n bytes of the submitted iovecs were sent (may be partial). */
	void (*on_send)(tsm__conn *c, long n, tsm_err err);
	void (*on_closed)(tsm__conn *c);
	void (*on_lst_closed)(tsm__lst *l);
} tsm__io_cbs;

typedef struct tsm__io_ops {
	uint32_t size;             /* sizeof(struct tsm__io_ops): grows safely */
	const char *name;          /* "io_uring" or "epoll" */
	tsm_err (*init)(tsm__io **out, const tsm__io_cbs *cbs, bool busy);
	void (*fini)(tsm__io *io);
	tsm_err (*listen)(tsm__io *io, tsm__lst *l);   /* arm accepts on l->fd */
	void (*lst_close)(tsm__io *io, tsm__lst *l);
	/* connect c->fd (non-blocking) to sa; completes with on_connect. */
	tsm_err (*connect)(tsm__io *io, tsm__conn *c, const struct sockaddr *sa,
	                   socklen_t len);
	tsm_err (*adopt)(tsm__io *io, tsm__conn *c);    /* already connected */
	tsm_err (*recv)(tsm__io *io, tsm__conn *c, void *buf, size_t len);
	/* send c->iov[0..c->iovcnt); completes with on_send. With iovcnt 0
	 * (TCP engines only): completes with on_send(c, 0) once the socket
	 * is writable (TCP_NOTSENT_LOWAT applies), sending nothing. */
	tsm_err (*send)(tsm__io *io, tsm__conn *c);
	void (*close)(tsm__io *io, tsm__conn *c);
	/* run completions until deadline (TSM_NEVER: until woken); returns
	 * the number of completions handled. Busy engines never sleep. */
	int (*wait)(tsm__io *io, tsm_time deadline);
	void (*wake)(tsm__io *io);  /* any thread */
	void (*flush)(tsm__io *io); /* submit batched operations now */
} tsm__io_ops;

extern const tsm__io_ops tsm__io_uring_ops; /* stub fails init w/o liburing */
extern const tsm__io_ops tsm__io_epoll_ops;

#endif
