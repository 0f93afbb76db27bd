/*
 * transport/tcp/tcp.h - socket set-up for tcp:// and inproc:// (the I/O
 * itself is the engine's). Called on the progress thread.
 */
#ifndef TSM_TRANSPORT_TCP_H
#define TSM_TRANSPORT_TCP_H

#include "transport/url.h"

/* tsm__tcp_listen binds and listens; on port 0, u is updated to the port
 * the kernel chose. *fd is non-blocking. */
tsm_err tsm__tcp_listen(tsm__url *u, int *fd);
/* tsm__tcp_socket makes a non-blocking stream socket for u's family. */
tsm_err tsm__tcp_socket(const tsm__url *u, int *fd);
/* tsm__tcp_tune sets TCP_NODELAY and TCP_NOTSENT_LOWAT on a TCP socket;
 * harmless on AF_UNIX. */
void tsm__tcp_tune(int fd);

/* inproc: a process-wide registry of names -> listening contexts. */
struct tsm_ctx;
tsm_err tsm__inproc_listen(const char *name, struct tsm_ctx *ctx);
void tsm__inproc_unlisten(const char *name, struct tsm_ctx *ctx);
/* tsm__inproc_dial makes a socketpair, hands one end to the listener's
 * context (its accept path) and returns the other in *fd. */
tsm_err tsm__inproc_dial(const char *name, int *fd);
/* Called by tsm__inproc_dial to give the listener its end (any thread). */
tsm_err tsm__ctx_adopt_fd(struct tsm_ctx *ctx, int fd);

#endif
