/*
 * transport/uring/uring.c - the io_uring I/O engine (liburing).
 *
 * Every accept, connect, receive and send goes through the ring. SQEs
 * prepared while completions are handled are submitted together by the
 * next wait(), so one io_uring_enter covers a whole batch of sessions
 * (design.md §7: batching is the point). Accepts are multishot.
 *
 * Receives are single-shot into the session's frame block rather than
 * multishot with provided buffers: with provided buffers every byte is
 * copied once more out of the ring's buffers, and a session that is
 * paused by back-pressure would pin buffers shared with the others. One
 * armed receive per connection gives the same one-SQE-per-wake batching
 * with zero extra copies (docs/design/io.md).
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/common.h"
#include "platform/clock.h"
#include "transport/io.h"

#define RING_ENTRIES 256

struct tsm__io {
	struct io_uring ring;
	int evfd;
	uint64_t evval;
	bool busy;
	const tsm__io_cbs *cbs;
	struct tsm__op wake_op;
	unsigned unsubmitted;
};

static struct io_uring_sqe *ur_sqe(tsm__io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
	if (!sqe) {
		io_uring_submit(&io->ring);
		io->unsubmitted = 0;
		sqe = io_uring_get_sqe(&io->ring);
	}
	io->unsubmitted++;
	return sqe;
}

static void ur_arm_wake(tsm__io *io)
{
	struct io_uring_sqe *sqe = ur_sqe(io);
	io_uring_prep_read(sqe, io->evfd, &io->evval, sizeof(io->evval), 0);
	io_uring_sqe_set_data(sqe, &io->wake_op);
}

static int ur_setup(struct io_uring *ring, bool busy)
{
	struct io_uring_params p;
	/* COOP_TASKRUN saves IPIs (5.19+; older kernels: EINVAL, retry
	 * without): a completion then waits until the thread that submitted
	 * the request enters the kernel; TASKRUN_FLAG says so in the ring,
	 * and liburing's submit then enters. Not in busy-poll mode: there an
	 * application thread runs the loop (loop.c tsm__ctx_drive) and may
	 * submit a request and then nap or spin elsewhere, so completions
	 * must be delivered at once (docs/design/progress.md). Not
	 * SINGLE_ISSUER: the ring is created by the opening thread and driven
	 * by the progress thread (and, in busy-poll mode, by application
	 * threads, one at a time). */
	const unsigned tries[] = {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
	                          IORING_SETUP_COOP_TASKRUN, 0};
	int r = -EINVAL;
	for (size_t i = busy ? 2 : 0; i < TSM_ARRAY_LEN(tries); i++) {
		memset(&p, 0, sizeof(p));
		p.flags = tries[i];
		r = io_uring_queue_init_params(RING_ENTRIES, ring, &p);
		if (r != -EINVAL)
			break;
	}
	return r;
}

static tsm_err ur_init(tsm__io **out, const tsm__io_cbs *cbs, bool busy)
{
	tsm__io *io = calloc(1, sizeof(*io));
	if (!io)
		return tsm__err_set(TSM_ENOMEM, "io_uring engine");
	int r = ur_setup(&io->ring, busy);
	if (r < 0) {
		free(io);
		return tsm__err_set(TSM_ERR_URING_UNAVAILABLE,
		                    "io_uring_queue_init: %s", strerror(-r));
	}
	io->evfd = eventfd(0, EFD_CLOEXEC);
	if (io->evfd < 0) {
		io_uring_queue_exit(&io->ring);
		free(io);
		return tsm__err_set(TSM_ETRANSPORT, "eventfd: %s", strerror(errno));
	}
	io->cbs = cbs;
	io->busy = busy;
	io->wake_op.kind = TSM_OP_WAKE;
	ur_arm_wake(io);
	*out = io;
	return TSM_OK;
}

static void ur_fini(tsm__io *io)
{
	io_uring_queue_exit(&io->ring);
	close(io->evfd);
	free(io);
}

static void ur_conn_ops(tsm__conn *c)
{
	c->rx = (struct tsm__op){TSM_OP_RECV, false, c};
	c->tx = (struct tsm__op){TSM_OP_SEND, false, c};
	c->cx = (struct tsm__op){TSM_OP_CONNECT, false, c};
}

static void ur_arm_accept(tsm__io *io, tsm__lst *l)
{
	struct io_uring_sqe *sqe = ur_sqe(io);
	io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL,
	                               SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, &l->acc);
	l->acc.pending = true;
}

static tsm_err ur_listen(tsm__io *io, tsm__lst *l)
{
	l->acc = (struct tsm__op){TSM_OP_ACCEPT, false, l};
	l->paused = false;
	ur_arm_accept(io, l);
	return TSM_OK;
}

static void ur_cancel(tsm__io *io, struct tsm__op *op)
{
	struct io_uring_sqe *sqe = ur_sqe(io);
	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
	io_uring_sqe_set_data(sqe, NULL);
}

/* Closed only once no operation can still complete on it. */
static void ur_lst_maybe_closed(tsm__io *io, tsm__lst *l)
{
	if (l->closing && !l->acc.pending) {
		close(l->fd);
		l->fd = -1;
		io->cbs->on_lst_closed(l);
	}
}

static void ur_lst_close(tsm__io *io, tsm__lst *l)
{
	l->closing = true;
	if (l->acc.pending) {
		shutdown(l->fd, SHUT_RDWR);
		ur_cancel(io, &l->acc);
	} else {
		ur_lst_maybe_closed(io, l);
	}
}

static tsm_err ur_connect(tsm__io *io, tsm__conn *c, const struct sockaddr *sa,
                          socklen_t len)
{
	ur_conn_ops(c);
	memcpy(&c->peer, sa, len);
	c->peer_len = len;
	struct io_uring_sqe *sqe = ur_sqe(io);
	io_uring_prep_connect(sqe, c->fd, (struct sockaddr *)&c->peer, len);
	io_uring_sqe_set_data(sqe, &c->cx);
	c->cx.pending = true;
	return TSM_OK;
}

static tsm_err ur_adopt(tsm__io *io, tsm__conn *c)
{
	ur_conn_ops(c);
	c->connected = true;
	return TSM_OK;
}

static tsm_err ur_recv(tsm__io *io, tsm__conn *c, void *buf, size_t len)
{
	struct io_uring_sqe *sqe = ur_sqe(io);
	io_uring_prep_recv(sqe, c->fd, buf, len, 0);
	io_uring_sqe_set_data(sqe, &c->rx);
	c->rx.pending = true;
	return TSM_OK;
}

static tsm_err ur_send(tsm__io *io, tsm__conn *c)
{
	if (c->iovcnt == 0) { /* wait until writable (io.h), then 0 bytes */
		struct io_uring_sqe *sqe = ur_sqe(io);
		io_uring_prep_poll_add(sqe, c->fd, POLLOUT);
		io_uring_sqe_set_data(sqe, &c->tx);
		c->tx.pending = true;
		return TSM_OK;
	}
	memset(&c->msg, 0, sizeof(c->msg));
	c->msg.msg_iov = c->iov;
	c->msg.msg_iovlen = (size_t)c->iovcnt;
	struct io_uring_sqe *sqe = ur_sqe(io);
	io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
	io_uring_sqe_set_data(sqe, &c->tx);
	c->tx.pending = true;
	return TSM_OK;
}

static bool ur_conn_idle(const tsm__conn *c)
{
	return !c->rx.pending && !c->tx.pending && !c->cx.pending;
}

static void ur_conn_maybe_closed(tsm__io *io, tsm__conn *c)
{
	if (c->closing && ur_conn_idle(c) && c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
		io->cbs->on_closed(c);
	}
}

static void ur_close(tsm__io *io, tsm__conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	/* shutdown completes a pending recv/send at once; cancel covers
	 * a connect still in progress. */
	shutdown(c->fd, SHUT_RDWR);
	if (c->cx.pending)
		ur_cancel(io, &c->cx);
	if (ur_conn_idle(c))
		ur_conn_maybe_closed(io, c);
}

static tsm_err ur_errno(int e)
{
	if (e == ECONNREFUSED)
		return TSM_ERR_CONN_REFUSED;
	if (e == EPIPE || e == ECONNRESET)
		return TSM_ERR_PEER_LOST;
	return tsm__err_set(TSM_ETRANSPORT, "io_uring op: %s", strerror(e));
}

static void ur_on_accept(tsm__io *io, tsm__lst *l, struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE))
		l->acc.pending = false;
	if (l->closing) {
		if (cqe->res >= 0)
			close(cqe->res);
		ur_lst_maybe_closed(io, l);
		return;
	}
	bool out_of_fds = cqe->res == -EMFILE || cqe->res == -ENFILE;
	if (out_of_fds)
		l->paused = true; /* re-armed by the context after a back-off */
	if (cqe->res >= 0)
		io->cbs->on_accept(l, cqe->res, TSM_OK);
	else if (cqe->res != -ECANCELED)
		io->cbs->on_accept(l, -1, ur_errno(-cqe->res));
	if (!l->acc.pending && !l->paused)
		ur_arm_accept(io, l);
}

static void ur_on_conn(tsm__io *io, struct tsm__op *op, int res)
{
	tsm__conn *c = op->owner;
	op->pending = false;
	if (c->closing) {
		ur_conn_maybe_closed(io, c);
		return;
	}
	tsm_err e = res < 0 ? ur_errno(-res) : TSM_OK;
	if (op->kind == TSM_OP_CONNECT) {
		c->connected = res == 0;
		io->cbs->on_connect(c, e);
	} else if (op->kind == TSM_OP_RECV) {
		io->cbs->on_recv(c, res, e);
	} else {
		/* a wait for room (no iovecs) completes with the poll mask: 0
		 * bytes sent; an error shows on the next real send */
		io->cbs->on_send(c, c->iovcnt == 0 && res > 0 ? 0 : res, e);
	}
}

static void ur_dispatch(tsm__io *io, struct io_uring_cqe *cqe)
{
	struct tsm__op *op = io_uring_cqe_get_data(cqe);
	if (!op)
		return; /* a cancel's own completion */
	if (op->kind == TSM_OP_WAKE)
		ur_arm_wake(io);
	else if (op->kind == TSM_OP_ACCEPT)
		ur_on_accept(io, op->owner, cqe);
	else
		ur_on_conn(io, op, cqe->res);
}

static int ur_reap(tsm__io *io)
{
	struct io_uring_cqe *cqe;
	int n = 0;
	while (io_uring_peek_cqe(&io->ring, &cqe) == 0) {
		struct io_uring_cqe copy = *cqe;
		io_uring_cqe_seen(&io->ring, cqe);
		ur_dispatch(io, &copy);
		n++;
	}
	return n;
}

static int ur_wait(tsm__io *io, tsm_time deadline)
{
	int n = ur_reap(io);
	if (n > 0 || io->busy || deadline <= tsm__now()) {
		io_uring_submit(&io->ring);
		io->unsubmitted = 0;
		return n + ur_reap(io);
	}
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts, *tsp = NULL;
	if (deadline != TSM_NEVER) {
		tsm_time d = deadline - tsm__now();
		if (d < 0)
			d = 0;
		ts.tv_sec = d / 1000000000LL;
		ts.tv_nsec = d % 1000000000LL;
		tsp = &ts;
	}
	io_uring_submit_and_wait_timeout(&io->ring, &cqe, 1, tsp, NULL);
	io->unsubmitted = 0;
	return ur_reap(io);
}

static void ur_wake(tsm__io *io)
{
	uint64_t one = 1;
	(void)!write(io->evfd, &one, sizeof(one));
}

static void ur_flush(tsm__io *io)
{
	if (io->unsubmitted) {
		io_uring_submit(&io->ring);
		io->unsubmitted = 0;
	}
}

const tsm__io_ops tsm__io_uring_ops = {
	.size = sizeof(tsm__io_ops),
	.name = "io_uring",
	.init = ur_init,
	.fini = ur_fini,
	.listen = ur_listen,
	.lst_close = ur_lst_close,
	.connect = ur_connect,
	.adopt = ur_adopt,
	.recv = ur_recv,
	.send = ur_send,
	.close = ur_close,
	.wait = ur_wait,
	.wake = ur_wake,
	.flush = ur_flush,
};
