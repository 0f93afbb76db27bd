/*
 * transport/fault/fault.c - a seeded fault-injection decorator of the I/O
 * engine (transport/io.h): loss, delay with jitter, duplication,
 * reordering, corruption and partitions, for tests (issue 9).
 *
 * Enabling. Only TSM_FAULT in the environment, read once at tsm_ctx_open
 * (tsm__fault_install), turns it on: then the context logs a WARN line
 * with the canonical spec and seed, the stat fault.enabled is 1, the
 * engine's name becomes "<engine>+fault", and every injected fault is
 * counted (fault.*). Without TSM_FAULT nothing here runs: the context
 * calls its engine directly. libfabric contexts are not decorated (a WARN
 * says TSM_FAULT is ignored there).
 *
 *   TSM_FAULT="seed=1,loss=0.01,corrupt=0.001,dup=0.001,reorder=0.01,
 *              delay_us=200,jitter_us=100,partition=300ms@2000ms,
 *              partition_every=5s,from=500ms,until=3s,hold_kb=1024,ctx=pub"
 *
 * Unit. The engine's unit is one send: the bytes of one sendmsg that the
 * session builds (one or many whole frames, or part of one). The
 * decorator copies them into a segment, completes the session's send at
 * once (so the session goes on as if the kernel had taken them) and
 * writes segments to the real socket in order, each no earlier than its
 * release time. Faults are decided per segment, on this node's sending
 * side only (decorate both peers for both directions):
 *
 *   loss=P      the segment is never written.
 *   corrupt=P   one bit of the segment, chosen at random, is flipped.
 *   dup=P       the segment is written twice.
 *   reorder=P   the segment is held back and written after the next one
 *               (if none comes within 10 ms, reorder_wait_ms=, it goes out
 *               unswapped).
 *   delay_us=D, jitter_us=J
 *               released D + uniform(-J, +J) after the send (at least 0),
 *               but never before the segment sent before it: a byte
 *               stream is delayed, not reordered, by its path.
 *   from=, until=
 *               the per-segment faults above apply only in this window
 *               (time since the context opened; until=0: no end).
 *
 * On a byte stream (TCP, inproc) a lost, corrupted, duplicated or
 * reordered segment desynchronises the frame stream: the receiver finds a
 * bad frame header, a sequence gap or repeat, or an AEAD tag that does not
 * verify (secure sessions; an insecure session has no integrity check of
 * payloads, so corruption tests must run secure), and closes the session
 * with that reason; the dialer then re-establishes it. What a test may
 * expect from the library is therefore: nothing corrupted, duplicated,
 * partial or late is ever delivered; the session loss is counted
 * (session.*, reason.*, err.*); every reliable message is delivered once
 * or dropped with an outcome (drop.*, tsm_outcome_fn) - messages already
 * written when the session died are the library's to keep and replay
 * (session/resume.c), exactly as when a real TCP connection breaks with
 * data in flight; nothing hangs; the session comes back.
 *
 *   partition=DUR@AT[/EVERY] (and partition_every=EVERY)
 *               from AT after open, for DUR (again every EVERY if given),
 *               nothing passes in either direction: segments are held,
 *               receive and connect completions are held. When it ends
 *               everything held goes on, as TCP's retransmissions would
 *               deliver it. A partition shorter than session_timeout
 *               therefore loses nothing; a longer one ends the session by
 *               keepalive (PEER_LOST), and the dialer re-establishes it
 *               after the partition.
 *
 * Back-pressure: a connection holds at most hold_kb KiB (default 1 MiB);
 * beyond that the session's send completes only when the segments drain,
 * like a full socket buffer; a send of no iovecs (io.h: "wait until
 * writable") completes, with 0, once the hold is at or below that. Close: a closed connection still writes what
 * it holds for up to 500 ms (like a TCP close with unsent data), then its
 * real close happens and on_closed follows; what is left is discarded and
 * counted (fault.discarded_bytes).
 *
 * Reproducibility: decisions come from splitmix64 streams seeded by seed
 * and the connection's index in this context (1, 2, ... in creation
 * order); each segment draws the same five numbers whatever is enabled.
 * The same seed and the same sequence of sends give the same faults; in a
 * live system the batching of frames into sends depends on timing, so a
 * seed reproduces a run's fault pattern, not its exact bytes. Without
 * seed= a random seed is drawn and logged.
 *
 * Threading: like every engine, everything runs on the progress thread
 * except wake(). Completions the decorator makes itself are queued and run
 * from wait(), never from inside the call that started the operation.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/internal.h"
#include "transport/fault/fault.h"

extern const tsm__io_cbs tsm__loop_cbs;

/* One send's bytes, written to the socket at or after `release`. */
struct seg {
	struct seg *next;
	tsm_time release;
	size_t len;
	uint8_t data[];
};

/* The decorator's side of one connection. The inner engine works on sh,
 * the session on up; up->rx_buf (an engine-private field of the
 * connection, unused by sessions) points back here. */
struct fconn {
	tsm__conn sh;             /* first: the inner engine's connection */
	tsm__conn *up;
	tsm__io *io;
	uint64_t rng;
	struct seg *head, **tail; /* to write, in order */
	struct seg *rhold;        /* held back to go after the next segment */
	tsm_time rhold_until;
	size_t off;               /* bytes of head already written */
	uint64_t held;            /* bytes in the queue and rhold */
	tsm_time last_release;
	long up_tx;               /* its bytes, once up_wait ends */
	bool up_wait;             /* the session's send waits for room */
	tsm_time linger_until;
	bool writing, broken, closed_up, lingering, inner_closing;
	bool rx_held, cx_held;
	long rx_n;
	tsm_err rx_err, cx_err;
	struct fconn *next;
};

struct flst {
	tsm__lst sh;              /* first: the inner engine's listener */
	tsm__lst *up;
	tsm__io *io;
	struct flst *next;
};

struct fdone {
	struct fconn *fc;         /* NULL: cancelled */
	uint8_t kind;             /* TSM_OP_RECV, _SEND or _CONNECT */
	long n;
	tsm_err err;
};

struct tsm__io {
	tsm__io_ops ops;          /* this instance's table ("<inner>+fault") */
	char name[40];
	const tsm__io_ops *in_ops;
	tsm__io *in;
	const tsm__io_cbs *up;
	tsm__fault_spec sp;
	tsm__stats *stats;
	struct tsm_ctx *ctx;      /* logs only; NULL in unit tests */
	tsm_time t0;
	bool in_part;
	uint64_t nconns;
	struct fconn *conns;
	struct flst *lsts;
	struct fdone *done;
	size_t ndone, capdone;
};

/* --- randomness ----------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

/* --- helpers -------------------------------------------------------------- */

static void f_log(tsm__io *io, tsm_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void f_log(tsm__io *io, tsm_log_level lvl, const char *fmt, ...)
{
	char line[400];
	va_list ap;
	if (!io->ctx)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	tsm__log(io->ctx, lvl, "%s", line);
}

static void f_count(tsm__io *io, enum tsm__stat st, uint64_t n)
{
	if (io->stats)
		tsm__stat_add(io->stats, st, n);
}

static struct fconn *fc_of(const tsm__conn *c)
{
	return c->rx_buf;
}

static void f_post(tsm__io *io, struct fconn *fc, uint8_t kind, long n,
                   tsm_err err)
{
	if (io->ndone == io->capdone) {
		size_t cap = io->capdone ? io->capdone * 2 : 64;
		struct fdone *d = realloc(io->done, cap * sizeof(*d));
		if (!d)
			abort(); /* bounded by live connections x 3 operations */
		io->done = d;
		io->capdone = cap;
	}
	io->done[io->ndone++] = (struct fdone){fc, kind, n, err};
}

static void f_purge(tsm__io *io, const struct fconn *fc)
{
	for (size_t i = 0; i < io->ndone; i++)
		if (io->done[i].fc == fc)
			io->done[i].fc = NULL;
}

static void f_deliver(tsm__io *io, const struct fdone *d)
{
	tsm__conn *c = d->fc->up;
	if (c->closing)
		return;
	if (d->kind == TSM_OP_RECV) {
		c->rx.pending = false;
		io->up->on_recv(c, d->n, d->err);
	} else if (d->kind == TSM_OP_SEND) {
		c->tx.pending = false;
		io->up->on_send(c, d->n, d->err);
	} else {
		c->cx.pending = false;
		c->connected = d->err == TSM_OK;
		io->up->on_connect(c, d->err);
	}
}

/* Runs the completions queued before the call; later ones wait for the
 * next wait(), so a busy session cannot keep this loop going forever. */
static int f_run_done(tsm__io *io)
{
	size_t end = io->ndone;
	int n = 0;
	for (size_t i = 0; i < end; i++) {
		struct fdone d = io->done[i];
		if (!d.fc)
			continue;
		io->done[i].fc = NULL;
		f_deliver(io, &d);
		n++;
	}
	if (end) {
		memmove(io->done, io->done + end,
		        (io->ndone - end) * sizeof(*io->done));
		io->ndone -= end;
	}
	return n;
}

static bool f_window(const tsm__io *io, tsm_time now)
{
	tsm_duration t = now - io->t0;
	return t >= io->sp.from && (io->sp.until == 0 || t < io->sp.until);
}

static bool f_partitioned(const tsm__io *io, tsm_time now)
{
	if (!io->sp.part_len)
		return false;
	tsm_duration t = now - io->t0;
	if (t < io->sp.part_at)
		return false;
	tsm_duration k = t - io->sp.part_at;
	if (io->sp.part_every > 0)
		k %= io->sp.part_every;
	return k < io->sp.part_len;
}

/* When the partition state next changes (TSM_NEVER: never again). */
static tsm_time f_part_next(const tsm__io *io, tsm_time now)
{
	const tsm__fault_spec *sp = &io->sp;
	if (!sp->part_len)
		return TSM_NEVER;
	tsm_duration t = now - io->t0;
	if (t < sp->part_at)
		return io->t0 + sp->part_at;
	tsm_duration base = sp->part_at, k = t - sp->part_at;
	if (sp->part_every > 0) {
		base += k / sp->part_every * sp->part_every;
		k %= sp->part_every;
	}
	if (k < sp->part_len)
		return io->t0 + base + sp->part_len;
	return sp->part_every > 0 ? io->t0 + base + sp->part_every : TSM_NEVER;
}

/* --- segments ------------------------------------------------------------- */

static struct seg *seg_new(size_t len)
{
	struct seg *s = malloc(sizeof(*s) + (len ? len : 1));
	if (s) {
		s->next = NULL;
		s->len = len;
		s->release = 0;
	}
	return s;
}

static void fc_enqueue(struct fconn *fc, struct seg *s)
{
	s->next = NULL;
	*fc->tail = s;
	fc->tail = &s->next;
}

static void fc_free_segs(struct fconn *fc)
{
	while (fc->head) {
		struct seg *s = fc->head;
		fc->head = s->next;
		free(s);
	}
	fc->tail = &fc->head;
	fc->off = 0;
	free(fc->rhold);
	fc->rhold = NULL;
}

/* Drops what the connection holds, counted; nothing more goes out on it.
 * Segments an inner send is still reading stay allocated until it
 * completes (f_in_send) or the connection is freed (fc_free). */
static void fc_discard(tsm__io *io, struct fconn *fc)
{
	uint64_t lost = 0;
	if (fc->broken)
		return; /* done already */
	for (struct seg *s = fc->head; s; s = s->next)
		lost += s->len;
	if (fc->rhold)
		lost += fc->rhold->len;
	if (lost > fc->off)
		f_count(io, ST_FAULT_DISCARDED, lost - fc->off);
	fc->broken = true;
	fc->held = 0;
	if (!fc->writing)
		fc_free_segs(fc);
}

static void fc_free(struct fconn *fc)
{
	fc_free_segs(fc);
	free(fc);
}

/* Writes the due segments at the head (up to one iovec each). */
static void fc_kick(tsm__io *io, struct fconn *fc, tsm_time now)
{
	if (fc->writing || fc->broken || fc->inner_closing || io->in_part ||
	    (fc->closed_up && !fc->lingering))
		return;
	int n = 0;
	size_t off = fc->off;
	for (struct seg *s = fc->head; s && n < TSM_IO_MAX_IOV && s->release <= now;
	     s = s->next) {
		fc->sh.iov[n].iov_base = s->data + off;
		fc->sh.iov[n].iov_len = s->len - off;
		off = 0;
		n++;
	}
	if (n == 0)
		return;
	fc->sh.iovcnt = n;
	fc->writing = true;
	io->in_ops->send(io->in, &fc->sh);
}

static void fc_finish_close(tsm__io *io, struct fconn *fc)
{
	fc_discard(io, fc);
	fc->lingering = false;
	if (fc->inner_closing)
		return;
	fc->inner_closing = true;
	io->in_ops->close(io->in, &fc->sh); /* may call f_in_closed at once */
}

/* The session's send that waited for room completes once there is some. */
static void fc_room(tsm__io *io, struct fconn *fc)
{
	if (fc->up_wait && fc->held <= io->sp.hold_max) {
		f_post(io, fc, TSM_OP_SEND, fc->up_tx, TSM_OK);
		fc->up_wait = false;
		fc->up_tx = 0;
	}
}

/* --- the faults ----------------------------------------------------------- */

/* Decides the fate of one send's segment and queues it (or not). */
static void fc_inject(tsm__io *io, struct fconn *fc, struct seg *s, tsm_time now)
{
	const tsm__fault_spec *sp = &io->sp;
	/* Always the same draws per segment, whatever is enabled. */
	double u_loss = rng_unit(&fc->rng), u_corrupt = rng_unit(&fc->rng);
	double u_dup = rng_unit(&fc->rng), u_reorder = rng_unit(&fc->rng);
	uint64_t r = rng_next(&fc->rng);
	bool on = f_window(io, now);
	tsm_duration d = 0;

	if (io->in_part)
		f_count(io, ST_FAULT_HELD, 1);
	if (on && u_loss < sp->loss) {
		f_count(io, ST_FAULT_LOST, 1);
		free(s);
		return;
	}
	if (on && u_corrupt < sp->corrupt && s->len) {
		uint64_t bit = (r >> 16) % ((uint64_t)s->len * 8);
		s->data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		f_count(io, ST_FAULT_CORRUPTED, 1);
	}
	if (on && (sp->delay || sp->jitter)) {
		double j = sp->jitter ? ((double)(r & 0xffff) / 65535.0 * 2.0 - 1.0) : 0.0;
		d = sp->delay + (tsm_duration)(j * (double)sp->jitter);
		if (d < 0)
			d = 0;
		f_count(io, ST_FAULT_DELAYED, 1);
	}
	s->release = TSM_MAX(now + d, fc->last_release);
	fc->last_release = s->release;
	fc->held += s->len;
	struct seg *twin = NULL;
	if (on && u_dup < sp->dup && (twin = seg_new(s->len))) {
		memcpy(twin->data, s->data, s->len);
		twin->release = s->release;
		fc->held += twin->len;
		f_count(io, ST_FAULT_DUPLICATED, 1);
	}
	if (on && !fc->rhold && u_reorder < sp->reorder) {
		fc->rhold = s; /* goes after the next segment */
		fc->rhold_until = s->release + sp->reorder_wait;
		if (twin)
			fc_enqueue(fc, twin);
		return;
	}
	fc_enqueue(fc, s);
	if (twin)
		fc_enqueue(fc, twin);
	if (fc->rhold) {
		struct seg *h = fc->rhold;
		fc->rhold = NULL;
		h->release = fc->last_release;
		fc_enqueue(fc, h);
		f_count(io, ST_FAULT_REORDERED, 1);
	}
}

/* Partition transitions, reorder time-outs, lingering closes, writes. */
static void f_tick(tsm__io *io, tsm_time now)
{
	bool part = f_partitioned(io, now);
	if (part != io->in_part) {
		io->in_part = part;
		if (part) {
			f_count(io, ST_FAULT_PARTITIONS, 1);
			f_log(io, TSM_LOG_WARN, "fault injection: partition begins: "
			      "nothing passes for %lld ms",
			      (long long)(io->sp.part_len / TSM_MSEC));
		} else {
			f_log(io, TSM_LOG_WARN, "fault injection: partition ends: "
			      "what was held goes on");
		}
		for (struct fconn *fc = io->conns; !part && fc; fc = fc->next) {
			if (fc->closed_up)
				continue;
			if (fc->cx_held)
				f_post(io, fc, TSM_OP_CONNECT, 0, fc->cx_err);
			if (fc->rx_held)
				f_post(io, fc, TSM_OP_RECV, fc->rx_n, fc->rx_err);
			fc->cx_held = fc->rx_held = false;
		}
	}
	struct fconn *next;
	for (struct fconn *fc = io->conns; fc; fc = next) {
		next = fc->next;
		if (fc->rhold && now >= fc->rhold_until) {
			struct seg *h = fc->rhold;
			fc->rhold = NULL;
			fc_enqueue(fc, h); /* nothing followed it: not reordered */
		}
		if (fc->lingering && (now >= fc->linger_until || fc->broken ||
		                      (!fc->head && !fc->rhold))) {
			fc_finish_close(io, fc); /* may free fc */
			continue;
		}
		fc_kick(io, fc, now);
	}
}

/* The earliest time f_tick has something to do. */
static tsm_time f_next(const tsm__io *io, tsm_time now)
{
	tsm_time next = f_part_next(io, now);
	for (const struct fconn *fc = io->conns; fc; fc = fc->next) {
		if (fc->rhold)
			next = TSM_MIN(next, fc->rhold_until);
		if (fc->lingering)
			next = TSM_MIN(next, fc->linger_until);
		if (fc->head && !fc->writing && !fc->broken && !io->in_part)
			next = TSM_MIN(next, fc->head->release);
	}
	return next;
}

/* --- callbacks from the inner engine -------------------------------------- */

static void f_in_accept(tsm__lst *l, int fd, tsm_err err)
{
	struct flst *fl = (struct flst *)l;
	fl->up->paused = fl->sh.paused;
	fl->io->up->on_accept(fl->up, fd, err);
}

static void f_in_connect(tsm__conn *c, tsm_err err)
{
	struct fconn *fc = (struct fconn *)c;
	tsm__io *io = fc->io;
	if (fc->closed_up)
		return;
	if (io->in_part) { /* the SYN did not get through yet */
		fc->cx_held = true;
		fc->cx_err = err;
		f_count(io, ST_FAULT_HELD, 1);
		return;
	}
	fc->up->cx.pending = false;
	fc->up->connected = err == TSM_OK;
	io->up->on_connect(fc->up, err);
}

static void f_in_recv(tsm__conn *c, long n, tsm_err err)
{
	struct fconn *fc = (struct fconn *)c;
	tsm__io *io = fc->io;
	if (fc->closed_up)
		return; /* lingering: nobody reads any more */
	if (io->in_part) {
		fc->rx_held = true;
		fc->rx_n = n;
		fc->rx_err = err;
		f_count(io, ST_FAULT_HELD, 1);
		return;
	}
	fc->up->rx.pending = false;
	io->up->on_recv(fc->up, n, err);
}

static void f_in_send(tsm__conn *c, long n, tsm_err err)
{
	struct fconn *fc = (struct fconn *)c;
	tsm__io *io = fc->io;
	fc->writing = false;
	if (fc->broken) { /* discarded while this send was in flight */
		fc_free_segs(fc);
		return;
	}
	if (n < 0) {
		/* The socket is broken: what is held can never go; the
		 * session learns it from its receive side or its next send. */
		fc_discard(io, fc);
		if (fc->up_wait && !fc->closed_up)
			f_post(io, fc, TSM_OP_SEND, -1, err);
		fc->up_wait = false;
		fc->up_tx = 0;
		return;
	}
	size_t left = (size_t)n;
	while (left && fc->head) {
		struct seg *s = fc->head;
		size_t rem = s->len - fc->off;
		if (left < rem) {
			fc->off += left;
			break;
		}
		left -= rem;
		fc->off = 0;
		fc->held -= s->len;
		fc->head = s->next;
		if (!fc->head)
			fc->tail = &fc->head;
		free(s);
	}
	if (!fc->closed_up)
		fc_room(io, fc);
	fc_kick(io, fc, tsm__now());
}

static void f_in_closed(tsm__conn *c)
{
	struct fconn *fc = (struct fconn *)c;
	tsm__io *io = fc->io;
	tsm__conn *up = fc->up;
	for (struct fconn **pp = &io->conns; *pp; pp = &(*pp)->next) {
		if (*pp == fc) {
			*pp = fc->next;
			break;
		}
	}
	f_purge(io, fc);
	up->rx_buf = NULL;
	up->fd = -1;
	up->rx.pending = up->tx.pending = up->cx.pending = false;
	fc_free(fc);
	io->up->on_closed(up);
}

static void f_in_lst_closed(tsm__lst *l)
{
	struct flst *fl = (struct flst *)l;
	tsm__io *io = fl->io;
	tsm__lst *up = fl->up;
	for (struct flst **pp = &io->lsts; *pp; pp = &(*pp)->next) {
		if (*pp == fl) {
			*pp = fl->next;
			break;
		}
	}
	free(fl);
	up->fd = -1;
	io->up->on_lst_closed(up);
}

static const tsm__io_cbs f_in_cbs = {
	.on_accept = f_in_accept,
	.on_connect = f_in_connect,
	.on_recv = f_in_recv,
	.on_send = f_in_send,
	.on_closed = f_in_closed,
	.on_lst_closed = f_in_lst_closed,
};

/* --- the engine operations ------------------------------------------------ */

static tsm_err f_init(tsm__io **out, const tsm__io_cbs *cbs, bool busy)
{
	(void)out;
	(void)cbs;
	(void)busy;
	return tsm__err_set(TSM_ESTATE, "the fault decorator is made by "
	                    "tsm__fault_wrap, not init");
}

static void f_fini(tsm__io *io)
{
	while (io->conns) { /* only if the context gave up waiting */
		struct fconn *fc = io->conns;
		io->conns = fc->next;
		fc->up->rx_buf = NULL;
		fc_free(fc);
	}
	while (io->lsts) {
		struct flst *fl = io->lsts;
		io->lsts = fl->next;
		free(fl);
	}
	io->in_ops->fini(io->in);
	free(io->done);
	free(io);
}

static struct flst *f_find_lst(tsm__io *io, const tsm__lst *l)
{
	for (struct flst *fl = io->lsts; fl; fl = fl->next)
		if (fl->up == l)
			return fl;
	return NULL;
}

static tsm_err f_listen(tsm__io *io, tsm__lst *l)
{
	struct flst *fl = f_find_lst(io, l); /* a re-arm after EMFILE */
	if (!fl) {
		if (!(fl = calloc(1, sizeof(*fl))))
			return tsm__err_set(TSM_ENOMEM, "fault listener");
		fl->up = l;
		fl->io = io;
		fl->sh.user = fl;
		fl->next = io->lsts;
		io->lsts = fl;
	}
	fl->sh.fd = l->fd;
	tsm_err e = io->in_ops->listen(io->in, &fl->sh);
	l->paused = fl->sh.paused;
	return e;
}

static void f_lst_close(tsm__io *io, tsm__lst *l)
{
	struct flst *fl = f_find_lst(io, l);
	l->closing = true;
	if (fl)
		io->in_ops->lst_close(io->in, &fl->sh);
}

static struct fconn *f_conn_new(tsm__io *io, tsm__conn *c)
{
	struct fconn *fc = calloc(1, sizeof(*fc));
	if (!fc)
		return NULL;
	fc->sh.fd = c->fd;
	fc->sh.user = fc;
	fc->up = c;
	fc->io = io;
	fc->tail = &fc->head;
	fc->rng = io->sp.seed ^ (++io->nconns * 0xD1B54A32D192ED03ull);
	c->rx = (struct tsm__op){TSM_OP_RECV, false, c};
	c->tx = (struct tsm__op){TSM_OP_SEND, false, c};
	c->cx = (struct tsm__op){TSM_OP_CONNECT, false, c};
	c->rx_buf = fc;
	fc->next = io->conns;
	io->conns = fc;
	return fc;
}

static tsm_err f_connect(tsm__io *io, tsm__conn *c, const struct sockaddr *sa,
                         socklen_t len)
{
	struct fconn *fc = f_conn_new(io, c);
	if (!fc)
		return tsm__err_set(TSM_ENOMEM, "fault connection");
	c->cx.pending = true;
	return io->in_ops->connect(io->in, &fc->sh, sa, len);
}

static tsm_err f_adopt(tsm__io *io, tsm__conn *c)
{
	struct fconn *fc = f_conn_new(io, c);
	if (!fc)
		return tsm__err_set(TSM_ENOMEM, "fault connection");
	c->connected = true;
	return io->in_ops->adopt(io->in, &fc->sh);
}

static tsm_err f_recv(tsm__io *io, tsm__conn *c, void *buf, size_t len)
{
	c->rx.pending = true;
	return io->in_ops->recv(io->in, &fc_of(c)->sh, buf, len);
}

static tsm_err f_send(tsm__io *io, tsm__conn *c)
{
	struct fconn *fc = fc_of(c);
	size_t total = 0, at = 0;
	tsm_time now = tsm__now();
	c->tx.pending = true;
	for (int i = 0; i < c->iovcnt; i++)
		total += c->iov[i].iov_len;
	if (fc->broken) {
		f_post(io, fc, TSM_OP_SEND, -1, TSM_ERR_PEER_LOST);
		return TSM_OK;
	}
	if (c->iovcnt == 0) { /* io.h: wait for room, send nothing */
		fc->up_tx = 0;
		fc->up_wait = true;
		fc_room(io, fc);
		return TSM_OK;
	}
	struct seg *s = seg_new(total);
	if (!s) {
		f_post(io, fc, TSM_OP_SEND, -1, TSM_ENOMEM);
		return TSM_OK;
	}
	for (int i = 0; i < c->iovcnt; i++) {
		memcpy(s->data + at, c->iov[i].iov_base, c->iov[i].iov_len);
		at += c->iov[i].iov_len;
	}
	f_count(io, ST_FAULT_SEGMENTS, 1);
	fc_inject(io, fc, s, now);
	fc->up_tx = (long)total;
	fc->up_wait = true;
	fc_room(io, fc);
	fc_kick(io, fc, now);
	return TSM_OK;
}

static void f_close(tsm__io *io, tsm__conn *c)
{
	struct fconn *fc = fc_of(c);
	if (c->closing)
		return;
	if (!fc) { /* never connected nor adopted (out of memory) */
		c->closing = true;
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		io->up->on_closed(c);
		return;
	}
	c->closing = true;
	fc->closed_up = true;
	fc->up_wait = false;
	fc->up_tx = 0;
	fc->rx_held = fc->cx_held = false;
	f_purge(io, fc);
	if ((fc->head || fc->rhold) && !fc->broken && c->connected) {
		/* TCP still sends what a closed socket holds: so do we, for a
		 * while (f_tick), before the real close. */
		fc->lingering = true;
		fc->linger_until = tsm__now() + TSM_FAULT_LINGER;
		return;
	}
	fc_finish_close(io, fc);
}

static int f_wait(tsm__io *io, tsm_time deadline)
{
	f_tick(io, tsm__now());
	int n = f_run_done(io);
	tsm_time next = TSM_MIN(deadline, f_next(io, tsm__now()));
	if (n > 0 || io->ndone)
		next = 0;
	int k = io->in_ops->wait(io->in, next);
	f_tick(io, tsm__now());
	n += f_run_done(io);
	return n + k;
}

static void f_wake(tsm__io *io)
{
	io->in_ops->wake(io->in);
}

static void f_flush(tsm__io *io)
{
	io->in_ops->flush(io->in);
}

static const tsm__io_ops f_ops = {
	.size = sizeof(tsm__io_ops),
	.name = "fault",
	.init = f_init,
	.fini = f_fini,
	.listen = f_listen,
	.lst_close = f_lst_close,
	.connect = f_connect,
	.adopt = f_adopt,
	.recv = f_recv,
	.send = f_send,
	.close = f_close,
	.wait = f_wait,
	.wake = f_wake,
	.flush = f_flush,
};

tsm_err tsm__fault_wrap(const tsm__io_ops *inner, const tsm__io_cbs *cbs,
                        bool busy, const tsm__fault_spec *spec,
                        tsm__stats *stats, struct tsm_ctx *ctx,
                        const tsm__io_ops **ops_out, tsm__io **out)
{
	tsm__io *io = calloc(1, sizeof(*io));
	if (!io)
		return tsm__err_set(TSM_ENOMEM, "fault decorator");
	tsm_err e = inner->init(&io->in, &f_in_cbs, busy);
	if (e) {
		free(io);
		return e;
	}
	io->ops = f_ops;
	snprintf(io->name, sizeof(io->name), "%s+fault", inner->name);
	io->ops.name = io->name;
	io->in_ops = inner;
	io->up = cbs;
	io->sp = *spec;
	if (!io->sp.hold_max)
		io->sp.hold_max = TSM_FAULT_HOLD_DEFAULT;
	if (!io->sp.reorder_wait)
		io->sp.reorder_wait = TSM_FAULT_REORDER_WAIT;
	io->stats = stats;
	io->ctx = ctx;
	io->t0 = tsm__now();
	*ops_out = &io->ops;
	*out = io;
	return TSM_OK;
}

/* --- TSM_FAULT ------------------------------------------------------------ */

/* A duration: a number with an optional unit (ns, us, ms, s); `unit` is
 * the one of a bare number. */
static bool f_duration(const char *v, tsm_duration unit, tsm_duration *out)
{
	char *end;
	double x = strtod(v, &end);
	if (end == v || !isfinite(x) || x < 0)
		return false;
	if (*end) {
		static const struct { const char *s; tsm_duration u; } units[] = {
			{"ns", 1}, {"us", TSM_USEC}, {"ms", TSM_MSEC}, {"s", TSM_SEC}};
		size_t i;
		for (i = 0; i < TSM_ARRAY_LEN(units); i++)
			if (strcmp(end, units[i].s) == 0)
				break;
		if (i == TSM_ARRAY_LEN(units))
			return false;
		unit = units[i].u;
	}
	if (x * (double)unit > 1e18)
		return false;
	*out = (tsm_duration)(x * (double)unit + 0.5);
	return true;
}

static bool f_prob(const char *v, double *out)
{
	char *end;
	double x = strtod(v, &end);
	if (end == v || *end || !(x >= 0.0 && x <= 1.0))
		return false;
	*out = x;
	return true;
}

/* partition=DUR@AT[/EVERY] */
static bool f_partition(const char *v, tsm__fault_spec *o)
{
	char buf[128], *at, *every;
	if (strlen(v) >= sizeof(buf))
		return false;
	strcpy(buf, v);
	if (!(at = strchr(buf, '@')))
		return false;
	*at++ = '\0';
	if ((every = strchr(at, '/')))
		*every++ = '\0';
	return f_duration(buf, TSM_MSEC, &o->part_len) && o->part_len > 0 &&
	       f_duration(at, TSM_MSEC, &o->part_at) &&
	       (!every || f_duration(every, TSM_MSEC, &o->part_every));
}

static bool f_item(tsm__fault_spec *o, const char *k, const char *v)
{
	static const struct { const char *k; size_t off; } probs[] = {
		{"loss", offsetof(tsm__fault_spec, loss)},
		{"corrupt", offsetof(tsm__fault_spec, corrupt)},
		{"dup", offsetof(tsm__fault_spec, dup)},
		{"reorder", offsetof(tsm__fault_spec, reorder)}};
	static const struct { const char *k; size_t off; tsm_duration u; } durs[] = {
		{"delay_us", offsetof(tsm__fault_spec, delay), TSM_USEC},
		{"jitter_us", offsetof(tsm__fault_spec, jitter), TSM_USEC},
		{"delay_ms", offsetof(tsm__fault_spec, delay), TSM_MSEC},
		{"jitter_ms", offsetof(tsm__fault_spec, jitter), TSM_MSEC},
		{"delay", offsetof(tsm__fault_spec, delay), TSM_USEC},
		{"jitter", offsetof(tsm__fault_spec, jitter), TSM_USEC},
		{"from", offsetof(tsm__fault_spec, from), TSM_MSEC},
		{"until", offsetof(tsm__fault_spec, until), TSM_MSEC},
		{"partition_every", offsetof(tsm__fault_spec, part_every), TSM_MSEC},
		{"reorder_wait_ms", offsetof(tsm__fault_spec, reorder_wait), TSM_MSEC}};
	char *end;
	for (size_t i = 0; i < TSM_ARRAY_LEN(probs); i++)
		if (strcmp(k, probs[i].k) == 0)
			return f_prob(v, (double *)((char *)o + probs[i].off));
	for (size_t i = 0; i < TSM_ARRAY_LEN(durs); i++)
		if (strcmp(k, durs[i].k) == 0)
			return f_duration(v, durs[i].u,
			                  (tsm_duration *)((char *)o + durs[i].off));
	if (strcmp(k, "seed") == 0) {
		o->seed = strtoull(v, &end, 0);
		o->seed_given = true;
		return end != v && !*end && *v != '-';
	}
	if (strcmp(k, "partition") == 0)
		return f_partition(v, o);
	if (strcmp(k, "hold_kb") == 0) {
		unsigned long long kb = strtoull(v, &end, 10);
		o->hold_max = (uint64_t)kb * 1024u;
		return end != v && !*end && *v != '-' && kb > 0 && kb < (1ull << 30);
	}
	if (strcmp(k, "ctx") == 0) {
		snprintf(o->ctx_name, sizeof(o->ctx_name), "%s", v);
		return *v && strlen(v) < sizeof(o->ctx_name);
	}
	return false;
}

tsm_err tsm__fault_parse(const char *text, tsm__fault_spec *o)
{
	char buf[1024], *save = NULL;
	memset(o, 0, sizeof(*o));
	o->hold_max = TSM_FAULT_HOLD_DEFAULT;
	if (!text || strlen(text) >= sizeof(buf))
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "TSM_FAULT: missing or "
		                    "longer than %zu bytes", sizeof(buf) - 1);
	strcpy(buf, text);
	for (char *it = strtok_r(buf, ", ", &save); it; it = strtok_r(NULL, ", ", &save)) {
		char *eq = strchr(it, '=');
		if (!eq || eq == it || !eq[1])
			return tsm__err_set(TSM_ERR_BAD_PARAMS, "TSM_FAULT: '%s' is not "
			                    "key=value", it);
		*eq = '\0';
		if (!f_item(o, it, eq + 1))
			return tsm__err_set(TSM_ERR_BAD_PARAMS, "TSM_FAULT: bad %s=%s "
			                    "(keys: seed, loss, corrupt, dup, reorder "
			                    "(0..1), delay_us, jitter_us, "
			                    "partition=DURms@ATms[/EVERYms], "
			                    "partition_every, from, until, hold_kb, "
			                    "reorder_wait_ms, ctx)", it, eq + 1);
	}
	if (o->until && o->until <= o->from)
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "TSM_FAULT: until must be "
		                    "after from");
	if (o->part_every && o->part_every <= o->part_len)
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "TSM_FAULT: partition_every "
		                    "must be longer than the partition");
	return TSM_OK;
}

void tsm__fault_describe(const tsm__fault_spec *s, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "seed=%llu loss=%g corrupt=%g dup=%g "
	                 "reorder=%g delay_us=%lld jitter_us=%lld",
	                 (unsigned long long)s->seed, s->loss, s->corrupt, s->dup,
	                 s->reorder, (long long)(s->delay / TSM_USEC),
	                 (long long)(s->jitter / TSM_USEC));
	if (n > 0 && (size_t)n < cap && s->part_len)
		n += snprintf(buf + n, cap - (size_t)n, " partition=%lldms@%lldms",
		              (long long)(s->part_len / TSM_MSEC),
		              (long long)(s->part_at / TSM_MSEC));
	if (n > 0 && (size_t)n < cap && s->part_every)
		n += snprintf(buf + n, cap - (size_t)n, "/%lldms",
		              (long long)(s->part_every / TSM_MSEC));
	if (n > 0 && (size_t)n < cap && (s->from || s->until))
		snprintf(buf + n, cap - (size_t)n, " window=%lldms..%lldms",
		         (long long)(s->from / TSM_MSEC),
		         (long long)(s->until / TSM_MSEC));
}

tsm_err tsm__fault_install(tsm_ctx *ctx)
{
	const char *env = getenv("TSM_FAULT");
	tsm__fault_spec sp;
	char text[400];
	if (!env || !*env)
		return TSM_OK; /* the common case: nothing to do, no cost */
	tsm_err e = tsm__fault_parse(env, &sp);
	if (e) {
		ctx->io_ops->fini(ctx->io);
		ctx->io = NULL;
		return e;
	}
	if (sp.ctx_name[0] && strcmp(sp.ctx_name, ctx->name) != 0) {
		tsm__log(ctx, TSM_LOG_INFO, "TSM_FAULT is for context '%s', not "
		         "this one", sp.ctx_name);
		return TSM_OK;
	}
	if (ctx->family == 2) {
		tsm__log(ctx, TSM_LOG_WARN, "TSM_FAULT is set but IGNORED: the "
		         "libfabric transport has no fault decorator");
		return TSM_OK;
	}
	if (!sp.seed_given && getrandom(&sp.seed, sizeof(sp.seed), 0) !=
	                      (ssize_t)sizeof(sp.seed))
		sp.seed = (uint64_t)tsm__now();
	const tsm__io_ops *inner = ctx->io_ops;
	inner->fini(ctx->io);
	ctx->io = NULL;
	if ((e = tsm__fault_wrap(inner, &tsm__loop_cbs, ctx->busy, &sp,
	                         &ctx->stats, ctx, &ctx->io_ops, &ctx->io)))
		return e;
	tsm__stat_set(&ctx->stats, ST_FAULT_ENABLED, 1);
	tsm__fault_describe(&sp, text, sizeof(text));
	tsm__log(ctx, TSM_LOG_WARN, "FAULT INJECTION ON (TSM_FAULT): %s%s; this "
	         "context damages its own traffic on purpose (tests only)", text,
	         sp.seed_given ? "" : " (random seed: set seed= to reproduce)");
	return TSM_OK;
}
