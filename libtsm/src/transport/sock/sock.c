/*
 * transport/sock/sock.c - the epoll I/O engine: used only where io_uring
 * cannot be set up (seccomp, sysctl, TSM_NO_URING=1); the context logs and
 * counts the fallback.
 *
 * Sends go out at once with sendmsg(); receives and accepts wait for
 * readiness. Completions are queued and run from wait(), never from inside
 * the call that started the operation, so session code sees the same
 * completion discipline as with io_uring (no re-entrancy).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/common.h"
#include "platform/clock.h"
#include "transport/io.h"

struct done {
	struct tsm__op *op;
	long res;
	int err;
	bool closed;
};

struct tsm__io {
	int ep, evfd;
	bool busy;
	const tsm__io_cbs *cbs;
	struct tsm__op wake_op;
	struct done *done;
	size_t ndone, capdone;
};

static tsm_err ep_init(tsm__io **out, const tsm__io_cbs *cbs, bool busy)
{
	tsm__io *io = calloc(1, sizeof(*io));
	if (!io)
		return tsm__err_set(TSM_ENOMEM, "epoll engine");
	io->cbs = cbs;
	io->busy = busy;
	io->ep = epoll_create1(EPOLL_CLOEXEC);
	io->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	io->wake_op.kind = TSM_OP_WAKE;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &io->wake_op};
	if (io->ep < 0 || io->evfd < 0 ||
	    epoll_ctl(io->ep, EPOLL_CTL_ADD, io->evfd, &ev) < 0) {
		int e = errno;
		if (io->ep >= 0)
			close(io->ep);
		if (io->evfd >= 0)
			close(io->evfd);
		free(io);
		return tsm__err_set(TSM_ETRANSPORT, "epoll set-up: %s", strerror(e));
	}
	*out = io;
	return TSM_OK;
}

static void ep_fini(tsm__io *io)
{
	close(io->ep);
	close(io->evfd);
	free(io->done);
	free(io);
}

static void ep_post(tsm__io *io, struct tsm__op *op, long res, int err, bool closed)
{
	if (io->ndone == io->capdone) {
		size_t n = io->capdone ? io->capdone * 2 : 64;
		struct done *d = realloc(io->done, n * sizeof(*d));
		if (!d)
			abort(); /* bounded by live connections x 3 ops */
		io->done = d;
		io->capdone = n;
	}
	io->done[io->ndone++] = (struct done){op, res, err, closed};
}

static void ep_mask(tsm__io *io, tsm__conn *c)
{
	int want = 0;
	if (c->rx.pending)
		want |= EPOLLIN;
	if (c->tx.pending || c->cx.pending)
		want |= EPOLLOUT;
	if (want == c->sock_epoll_mask)
		return;
	struct epoll_event ev = {.events = (uint32_t)want, .data.ptr = &c->rx};
	epoll_ctl(io->ep, EPOLL_CTL_MOD, c->fd, &ev);
	c->sock_epoll_mask = want;
}

static tsm_err ep_register(tsm__io *io, int fd, struct tsm__op *op, uint32_t evs)
{
	struct epoll_event ev = {.events = evs, .data.ptr = op};
	if (epoll_ctl(io->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		return tsm__err_set(TSM_ETRANSPORT, "epoll_ctl: %s", strerror(errno));
	return TSM_OK;
}

static tsm_err ep_listen(tsm__io *io, tsm__lst *l)
{
	l->paused = false;
	l->acc.kind = TSM_OP_ACCEPT;
	l->acc.owner = l;
	l->acc.pending = true;
	return ep_register(io, l->fd, &l->acc, EPOLLIN);
}

static void ep_lst_close(tsm__io *io, tsm__lst *l)
{
	l->closing = true;
	epoll_ctl(io->ep, EPOLL_CTL_DEL, l->fd, NULL);
	close(l->fd);
	l->fd = -1;
	ep_post(io, &l->acc, 0, 0, true);
}

static void ep_conn_ops(tsm__conn *c)
{
	c->rx = (struct tsm__op){TSM_OP_RECV, false, c};
	c->tx = (struct tsm__op){TSM_OP_SEND, false, c};
	c->cx = (struct tsm__op){TSM_OP_CONNECT, false, c};
	c->sock_epoll_mask = 0;
}

static tsm_err ep_adopt(tsm__io *io, tsm__conn *c)
{
	ep_conn_ops(c);
	c->connected = true;
	return ep_register(io, c->fd, &c->rx, 0);
}

static tsm_err ep_connect(tsm__io *io, tsm__conn *c, const struct sockaddr *sa,
                          socklen_t len)
{
	ep_conn_ops(c);
	tsm_err e = ep_register(io, c->fd, &c->rx, 0);
	if (e)
		return e;
	c->cx.pending = true;
	if (connect(c->fd, sa, len) == 0) {
		ep_post(io, &c->cx, 0, 0, false);
	} else if (errno != EINPROGRESS) {
		ep_post(io, &c->cx, -1, errno, false);
	} else {
		ep_mask(io, c);
	}
	return TSM_OK;
}

static tsm_err ep_recv(tsm__io *io, tsm__conn *c, void *buf, size_t len)
{
	c->rx_buf = buf;
	c->rx_len = len;
	c->rx.pending = true;
	ep_mask(io, c);
	return TSM_OK;
}

static void ep_try_send(tsm__io *io, tsm__conn *c)
{
	c->msg.msg_iov = c->iov;
	c->msg.msg_iovlen = (size_t)c->iovcnt;
	ssize_t n = sendmsg(c->fd, &c->msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n >= 0)
		ep_post(io, &c->tx, (long)n, 0, false);
	else if (errno != EAGAIN && errno != EINTR)
		ep_post(io, &c->tx, -1, errno, false);
	else
		return ep_mask(io, c); /* wait for EPOLLOUT */
	c->tx.pending = false;
	ep_mask(io, c);
}

static tsm_err ep_send(tsm__io *io, tsm__conn *c)
{
	c->tx.pending = true;
	if (c->iovcnt == 0) /* wait until writable (io.h): EPOLLOUT first */
		ep_mask(io, c);
	else
		ep_try_send(io, c);
	return TSM_OK;
}

static void ep_close(tsm__io *io, tsm__conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	epoll_ctl(io->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	ep_post(io, &c->rx, 0, 0, true);
}

static void ep_accept(tsm__io *io, tsm__lst *l)
{
	for (int i = 0; i < 64; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			io->cbs->on_accept(l, fd, TSM_OK);
			continue;
		}
		int e = errno;
		if (e == EMFILE || e == ENFILE) {
			/* Level-triggered readiness would spin: stop watching
			 * until the context re-arms after a back-off. */
			epoll_ctl(io->ep, EPOLL_CTL_DEL, l->fd, NULL);
			l->paused = true;
		}
		if (e != EAGAIN && e != EINTR && e != ECONNABORTED)
			io->cbs->on_accept(l, -1, tsm__err_set(TSM_ETRANSPORT,
			                   "accept: %s", strerror(e)));
		return;
	}
}

static void ep_conn_ready(tsm__io *io, tsm__conn *c, uint32_t evs)
{
	if (c->cx.pending && (evs & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int err = 0;
		socklen_t l = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		c->cx.pending = false;
		ep_mask(io, c);
		ep_post(io, &c->cx, err ? -1 : 0, err, false);
		return;
	}
	if (c->tx.pending && (evs & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
		ep_try_send(io, c);
	if (c->rx.pending && (evs & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
		ssize_t n = recv(c->fd, c->rx_buf, c->rx_len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		c->rx.pending = false;
		ep_mask(io, c);
		ep_post(io, &c->rx, (long)n, n < 0 ? errno : 0, false);
	}
}

static tsm_err ep_errno(int e)
{
	if (e == ECONNREFUSED)
		return TSM_ERR_CONN_REFUSED;
	if (e == EPIPE || e == ECONNRESET)
		return TSM_ERR_PEER_LOST;
	return TSM_ETRANSPORT;
}

static void ep_dispatch(tsm__io *io, struct done *d)
{
	struct tsm__op *op = d->op;
	tsm_err e = d->res < 0 ? ep_errno(d->err) : TSM_OK;
	if (op->kind == TSM_OP_ACCEPT) {
		if (d->closed)
			io->cbs->on_lst_closed(op->owner);
		return;
	}
	tsm__conn *c = op->owner;
	if (d->closed) {
		io->cbs->on_closed(c);
		return;
	}
	if (c->closing)
		return;
	if (op->kind == TSM_OP_CONNECT)
		io->cbs->on_connect(c, e);
	else if (op->kind == TSM_OP_RECV)
		io->cbs->on_recv(c, d->res, e);
	else
		io->cbs->on_send(c, d->res, e);
}

/* Runs queued completions; a callback may queue more, handled too. */
static int ep_run_done(tsm__io *io)
{
	int n = 0;
	for (size_t i = 0; i < io->ndone; i++, n++) {
		struct done d = io->done[i];
		ep_dispatch(io, &d);
	}
	io->ndone = 0;
	return n;
}

static int ep_wait(tsm__io *io, tsm_time deadline)
{
	struct epoll_event evs[64];
	int n = ep_run_done(io), timeout = 0;
	if (!io->busy && n == 0 && deadline > tsm__now()) {
		tsm_time d = deadline - tsm__now();
		timeout = deadline == TSM_NEVER ? -1 : (int)((d + 999999) / 1000000);
	}
	int k = epoll_wait(io->ep, evs, 64, timeout);
	for (int i = 0; i < k; i++) {
		struct tsm__op *op = evs[i].data.ptr;
		if (op->kind == TSM_OP_WAKE) {
			uint64_t v;
			(void)!read(io->evfd, &v, sizeof(v));
		} else if (op->kind == TSM_OP_ACCEPT) {
			ep_accept(io, op->owner);
		} else {
			ep_conn_ready(io, op->owner, evs[i].events);
		}
	}
	return n + ep_run_done(io) + (k > 0 ? k : 0);
}

static void ep_wake(tsm__io *io)
{
	uint64_t one = 1;
	(void)!write(io->evfd, &one, sizeof(one));
}

static void ep_flush(tsm__io *io)
{
	(void)io;
}

const tsm__io_ops tsm__io_epoll_ops = {
	.size = sizeof(tsm__io_ops),
	.name = "epoll",
	.init = ep_init,
	.fini = ep_fini,
	.listen = ep_listen,
	.lst_close = ep_lst_close,
	.connect = ep_connect,
	.adopt = ep_adopt,
	.recv = ep_recv,
	.send = ep_send,
	.close = ep_close,
	.wait = ep_wait,
	.wake = ep_wake,
	.flush = ep_flush,
};
