/*
 * transport/ofi/ofi.c - the libfabric I/O engine: io.h's byte-stream
 * connections over one FI_EP_RDM endpoint (design.md §7).
 *
 * A connection is (peer address in the AV, the peer's connection id and
 * key). Every message starts with a 16-byte engine header naming the
 * receiver's connection and carrying its random key, so messages are
 * demultiplexed without FI_SOURCE and a stranger cannot inject into a
 * connection by guessing its id. Set-up is a three-way exchange:
 * CONNECT (initiator's name, id, key) -> ACCEPT (listener's id, key) ->
 * CONFIRM. The listener reports a connection (on_accept) only on CONFIRM,
 * once the initiator has shown that it receives at the address it claimed
 * (security.md "Budgets before authentication"); until then it holds one
 * "embryo" slot, bounded in number, per peer and in time.
 *
 * Stream bytes travel in DATA messages no larger than the receiver's
 * buffers. Flow control is by credit: a receiver lets a connection have
 * OFI_WINDOW unread bytes and returns credit as its session reads, so a
 * session that stops reading stalls only its own peer, never the shared
 * receive pool; a peer that sends past its credit is cut off.
 *
 * Sends are copied into engine buffers: on_send completes once the bytes
 * are handed to libfabric (like a socket buffer), and close() never waits
 * for the peer, since no operation left in the provider refers to the
 * session's memory. Completions are queued and delivered from wait(),
 * never from inside the call that started the operation (io.h).
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "platform/clock.h"
#include "transport/ofi/ofi_int.h"

_Static_assert(FI_TC_LOW_LATENCY == 0x201 && FI_TC_BULK_DATA == 0x203,
               "ofi_url.c spells out these FI_TC_* values");

#define OFI_CREDIT_CAP ((uint64_t)1 << 40)

static void tx_push(tsm__io *io, struct ofi_conn *oc);
static int done_run(tsm__io *io);

/* --- engine header ------------------------------------------------------- */

struct ofi_hdr {
	uint8_t type;
	uint16_t seq;
	uint32_t dst_id, dst_key, credit;
};

static void le32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t le32_get(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void hdr_put(uint8_t *p, const struct ofi_hdr *h)
{
	p[0] = h->type;
	p[1] = OFI_PROTO_VERSION;
	p[2] = (uint8_t)h->seq;
	p[3] = (uint8_t)(h->seq >> 8);
	le32_put(p + 4, h->dst_id);
	le32_put(p + 8, h->dst_key);
	le32_put(p + 12, h->credit);
}

static bool hdr_get(const uint8_t *p, size_t n, struct ofi_hdr *h)
{
	if (n < OFI_HDR_LEN || p[1] != OFI_PROTO_VERSION)
		return false;
	h->type = p[0];
	h->seq = (uint16_t)(p[2] | p[3] << 8);
	h->dst_id = le32_get(p + 4);
	h->dst_key = le32_get(p + 8);
	h->credit = le32_get(p + 12);
	return true;
}

/* --- completions for wait() ---------------------------------------------- */

static struct ofi_done *done_add(tsm__io *io, uint8_t what, struct tsm__op *op)
{
	if (io->ndone == io->capdone) {
		size_t n = io->capdone ? io->capdone * 2 : 64;
		struct ofi_done *d = realloc(io->done, n * sizeof(*d));
		if (!d)
			abort(); /* bounded by live connections x 3 ops, as sock.c */
		io->done = d;
		io->capdone = n;
	}
	struct ofi_done *d = &io->done[io->ndone++];
	*d = (struct ofi_done){.what = what, .op = op};
	return d;
}

static void done_op(tsm__io *io, struct tsm__op *op, long res)
{
	op->pending = false;
	done_add(io, DONE_OP, op)->res = res;
}

static void done_fail(tsm__io *io, struct tsm__op *op, tsm_err err,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void done_fail(tsm__io *io, struct tsm__op *op, tsm_err err,
                      const char *fmt, ...)
{
	op->pending = false;
	struct ofi_done *d = done_add(io, DONE_OP, op);
	va_list ap;
	d->res = -1;
	d->err = err;
	va_start(ap, fmt);
	vsnprintf(d->why, sizeof(d->why), fmt, ap);
	va_end(ap);
}

/* --- connection slots ---------------------------------------------------- */

static int oc_handle(const tsm__io *io, const struct ofi_conn *oc)
{
	return io->handle_base + (int)(oc - io->conns);
}

static struct ofi_conn *oc_by_handle(tsm__io *io, int fd)
{
	if (fd < io->handle_base || fd >= io->handle_base + OFI_MAX_CONNS)
		return NULL;
	struct ofi_conn *oc = &io->conns[fd - io->handle_base];
	return oc->state == OC_FREE ? NULL : oc;
}

static struct ofi_conn *oc_of(tsm__io *io, tsm__conn *c)
{
	struct ofi_conn *oc = oc_by_handle(io, c->fd);
	return oc && oc->c == c ? oc : NULL;
}

/* Keys must be unguessable by other peers of the endpoint, so they come
 * from the kernel, not from a PRNG whose outputs a peer could see. */
static uint32_t ofi_random(void)
{
	uint32_t k = 0;
	if (getrandom(&k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k))
		k = (uint32_t)tsm__now() * 2654435761u;
	return k ? k : 1;
}

static struct ofi_conn *oc_alloc(tsm__io *io, uint8_t state, int peer)
{
	if (io->nfree == 0)
		return NULL;
	struct ofi_conn *oc = &io->conns[io->free_conns[--io->nfree]];
	memset(oc, 0, sizeof(*oc));
	oc->state = state;
	oc->key = ofi_random();
	oc->peer = (uint16_t)peer;
	oc->deadline = TSM_NEVER;
	return oc;
}

static void early_clear(struct ofi_conn *oc)
{
	while (oc->early) {
		struct ofi_early *e = oc->early;
		oc->early = e->next;
		free(e);
	}
	oc->early_bytes = 0;
	oc->nearly = 0;
}

/* Queue segments: small ones from malloc, large ones (a whole message)
 * from a small cache, so a stream of large messages that arrive before
 * the session re-arms costs no mmap/munmap and page faults per message. */
static struct ofi_seg *seg_new(tsm__io *io, size_t n)
{
	struct ofi_seg *s = NULL;
	bool large = n > OFI_SEG_SMALL;
	if (large && io->seg_cache) {
		s = io->seg_cache;
		io->seg_cache = s->next;
		io->nseg_cache--;
	} else {
		size_t cap = large ? TSM_MAX(n, io->msg_max) : OFI_SEG_SMALL;
		if (!(s = malloc(sizeof(*s) + cap)))
			return NULL;
		s->cap = cap;
	}
	s->next = NULL;
	s->off = s->len = 0;
	return s;
}

static void seg_free(tsm__io *io, struct ofi_seg *s)
{
	if (s->cap > OFI_SEG_SMALL && io->nseg_cache < OFI_SEG_CACHE) {
		s->next = io->seg_cache;
		io->seg_cache = s;
		io->nseg_cache++;
		return;
	}
	free(s);
}

static void q_clear(tsm__io *io, struct ofi_conn *oc)
{
	early_clear(oc);
	while (oc->q_head) {
		struct ofi_seg *s = oc->q_head;
		oc->q_head = s->next;
		seg_free(io, s);
	}
	oc->q_tail = NULL;
	oc->q_bytes = 0;
}

static void timer_arm(tsm__io *io, tsm_time t)
{
	if (t < io->next_timer)
		io->next_timer = t;
}

/* --- waiters: sends blocked on credit or buffers ------------------------- */

static void waiter_add(tsm__io *io, struct ofi_conn *oc)
{
	if (!oc->waiting) {
		oc->waiting = true;
		io->waiters[io->nwaiters++] = (uint16_t)(oc - io->conns);
	}
}

static void waiter_remove(tsm__io *io, struct ofi_conn *oc)
{
	if (!oc->waiting)
		return;
	oc->waiting = false;
	uint16_t idx = (uint16_t)(oc - io->conns);
	for (unsigned i = 0; i < io->nwaiters; i++) {
		if (io->waiters[i] == idx) {
			io->waiters[i] = io->waiters[--io->nwaiters];
			return;
		}
	}
}

/* Backwards, so that a waiter removed by tx_push (swapped with the last)
 * has already been visited. */
static void waiters_retry(tsm__io *io)
{
	if (!io->tx_freed)
		return;
	io->tx_freed = false;
	for (unsigned i = io->nwaiters; i-- > 0;)
		if (i < io->nwaiters)
			tx_push(io, &io->conns[io->waiters[i]]);
}

/* --- peers: AV entries shared by connections ----------------------------- */

static int peer_find(const tsm__io *io, const uint8_t *name, size_t n)
{
	for (int i = 0; i < OFI_MAX_PEERS; i++) {
		const struct ofi_peer *p = &io->peers[i];
		if (p->used && p->nlen == n && memcmp(p->name, name, n) == 0)
			return i;
	}
	return -1;
}

/* A peer no connection uses may still carry our last messages (CLOSE);
 * it leaves the AV once those are out, or after a linger when the peer
 * does not take them (a dead tcp peer keeps answering FI_EAGAIN). */
static bool peer_evictable(const struct ofi_peer *p, tsm_time now)
{
	return p->refs == 0 &&
	       ((!p->q_head && !p->inflight) || now - p->idle_since > OFI_PEER_LINGER);
}

static void peer_unblock(tsm__io *io, int i)
{
	if (!io->peers[i].blocked)
		return;
	io->peers[i].blocked = false;
	for (unsigned k = 0; k < io->nblocked; k++) {
		if (io->blocked[k] == i) {
			io->blocked[k] = io->blocked[--io->nblocked];
			return;
		}
	}
}

static void peer_drop_queue(tsm__io *io, int i)
{
	struct ofi_peer *p = &io->peers[i];
	while (p->q_head) {
		struct ofi_buf *b = p->q_head;
		p->q_head = b->next;
		tsm__ofi_buf_put(io, b);
	}
	p->q_tail = NULL;
	peer_unblock(io, i);
}

static void peer_evict(tsm__io *io, int i)
{
	struct ofi_peer *p = &io->peers[i];
	peer_drop_queue(io, i);
	fi_av_remove(io->av, &p->fa, 1, 0);
	p->used = false;
}

/* A free peer slot, evicting the longest-idle unused peer if need be. */
static int peer_slot(tsm__io *io)
{
	tsm_time now = tsm__now();
	int idle = -1;
	for (int i = 0; i < OFI_MAX_PEERS; i++) {
		const struct ofi_peer *p = &io->peers[i];
		if (!p->used)
			return i;
		if (peer_evictable(p, now) &&
		    (idle < 0 || p->idle_since < io->peers[idle].idle_since))
			idle = i;
	}
	/* libfabric 1.17 shm crashes sending to a name inserted where a
	 * removed one was, if that name has no region (yet): its peers stay
	 * until the engine closes. Only same-user processes can reach an shm
	 * endpoint (its region is 0600), and its AV is bounded. */
	if (idle < 0 || io->addr_format == FI_ADDR_STR)
		return -1;
	peer_evict(io, idle);
	return idle;
}

/* Takes a reference on the peer with this name, inserting it into the AV
 * if it is new. -1 when the table is full or the provider refuses it. */
static int peer_get(tsm__io *io, const uint8_t *name, size_t n)
{
	int i = peer_find(io, name, n);
	if (i >= 0) {
		io->peers[i].refs++;
		return i;
	}
	if ((i = peer_slot(io)) < 0)
		return -1;
	struct ofi_peer *p = &io->peers[i];
	uint32_t gen = p->gen + 1;
	memset(p, 0, sizeof(*p));
	p->gen = gen; /* completions for the last user of the slot are stale */
	memcpy(p->name, name, n);
	p->nlen = (uint16_t)n;
	tsm__ofi_shm_rdlock(io);
	p->same_proc = io->addr_format == FI_ADDR_STR &&
	               tsm__ofi_shm_live(p->name, n);
	int r = fi_av_insert(io->av, p->name, 1, &p->fa, 0, NULL);
	tsm__ofi_shm_unlock(io);
	if (r != 1)
		return -1;
	p->used = true;
	p->refs = 1;
	return i;
}

static void peer_put(tsm__io *io, int i)
{
	struct ofi_peer *p = &io->peers[i];
	if (p->refs && --p->refs == 0)
		p->idle_since = tsm__now();
}

/* --- sending ------------------------------------------------------------- */

static void conn_fail(tsm__io *io, struct ofi_conn *oc, tsm_err err,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void conn_refused(tsm__io *io, struct ofi_conn *oc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void tx_failed(tsm__io *io, struct ofi_buf *b, int err)
{
	struct ofi_conn *oc = &io->conns[b->conn];
	bool mine = oc->state != OC_FREE && oc->key == b->conn_key;
	uint8_t type = b->type;
	tsm__ofi_buf_put(io, b);
	if (!mine)
		return;
	if (type == OFI_T_CONNECT && oc->state == OC_DIALING)
		conn_refused(io, oc, "ofi: CONNECT failed: %s", fi_strerror(err));
	else if (oc->state == OC_OPEN)
		conn_fail(io, oc, TSM_ERR_PEER_LOST, "ofi: send failed: %s",
		          fi_strerror(err));
}

/* Small messages go by fi_inject (no completion, buffer free at once),
 * except CLOSE: it is a connection's last message, and its completion
 * tells fini that everything sent before it has left (fini_linger). */
static int peer_post(tsm__io *io, struct ofi_peer *p, struct ofi_buf *b)
{
	ssize_t r;
	tsm__ofi_shm_rdlock(io);
	if (p->same_proc && !tsm__ofi_shm_live(p->name, p->nlen))
		r = -FI_ECONNREFUSED; /* its region is gone: ofi_ep.c */
	else if (b->len <= io->inject && b->type != OFI_T_CLOSE)
		r = fi_inject(io->ep, b->data, b->len, p->fa);
	else
		r = fi_send(io->ep, b->data, b->len, b->desc, p->fa, &b->fctx);
	tsm__ofi_shm_unlock(io);
	if (r == 0 && b->len <= io->inject && b->type != OFI_T_CLOSE)
		tsm__ofi_buf_put(io, b);
	else if (r == 0)
		p->inflight++;
	return (int)r;
}

static void peer_enqueue(tsm__io *io, int i, struct ofi_buf *b)
{
	struct ofi_peer *p = &io->peers[i];
	if (p->q_tail)
		p->q_tail->next = b;
	else
		p->q_head = b;
	p->q_tail = b;
	if (!p->blocked) {
		p->blocked = true;
		io->blocked[io->nblocked++] = (uint16_t)i;
	}
}

/* In order per peer (FI_ORDER_SAS holds for what is posted): once one
 * message waits on FI_EAGAIN, later ones queue behind it. */
static void peer_send(tsm__io *io, int i, struct ofi_buf *b)
{
	struct ofi_peer *p = &io->peers[i];
	b->peer = (uint16_t)i;
	b->peer_gen = p->gen;
	b->next = NULL;
	if (!p->q_head) {
		int r = peer_post(io, p, b);
		if (r == 0)
			return;
		if (r != -FI_EAGAIN)
			return tx_failed(io, b, -r);
	}
	peer_enqueue(io, i, b);
}

/* Returns true once the peer's queue is empty. */
static bool peer_flush(tsm__io *io, int i)
{
	struct ofi_peer *p = &io->peers[i];
	while (p->q_head) {
		struct ofi_buf *b = p->q_head;
		p->q_head = b->next;
		if (!p->q_head)
			p->q_tail = NULL;
		int r = peer_post(io, p, b);
		if (r == -FI_EAGAIN) {
			b->next = p->q_head;
			p->q_head = b;
			if (!p->q_tail)
				p->q_tail = b;
			return false;
		}
		if (r)
			tx_failed(io, b, -r);
	}
	return true;
}

/* Retries what FI_EAGAIN held back. What is left for a peer no connection
 * uses any more (a CLOSE to a dead tcp peer) goes after the linger, so a
 * blocking engine does not wake every millisecond for it forever. */
static void peers_flush(tsm__io *io)
{
	tsm_time now = tsm__now();
	for (unsigned k = io->nblocked; k-- > 0;) {
		if (k >= io->nblocked)
			continue;
		int i = io->blocked[k];
		const struct ofi_peer *p = &io->peers[i];
		if (peer_flush(io, i))
			peer_unblock(io, i);
		else if (p->refs == 0 && now - p->idle_since > OFI_PEER_LINGER)
			peer_drop_queue(io, i);
	}
}

/* Drops this connection's messages that never left (a CONNECT that timed
 * out must not reach a listener that comes up later). */
static void peer_unqueue(tsm__io *io, struct ofi_conn *oc)
{
	struct ofi_peer *p = &io->peers[oc->peer];
	uint16_t idx = (uint16_t)(oc - io->conns);
	struct ofi_buf **pp = &p->q_head, *last = NULL;
	while (*pp) {
		struct ofi_buf *b = *pp;
		if (b->conn == idx && b->conn_key == oc->key) {
			*pp = b->next;
			tsm__ofi_buf_put(io, b);
		} else {
			last = b;
			pp = &b->next;
		}
	}
	p->q_tail = last;
}

/* A message to oc's peer with the header filled in; DATA and CREDIT carry
 * the credit owed back (credit is piggybacked on data when there is some). */
static struct ofi_buf *msg_new(tsm__io *io, struct ofi_conn *oc, uint8_t type,
                               size_t body, bool ctrl)
{
	struct ofi_buf *b = tsm__ofi_buf_get(io, OFI_HDR_LEN + body, ctrl);
	if (!b)
		return NULL;
	b->type = type;
	b->conn = (uint16_t)(oc - io->conns);
	b->conn_key = oc->key;
	struct ofi_hdr h = {type, 0, oc->peer_id, oc->peer_key, 0};
	if (type != OFI_T_CONNECT && type != OFI_T_ACCEPT)
		h.seq = oc->tx_seq++;
	if (type == OFI_T_DATA || type == OFI_T_CREDIT) {
		h.credit = oc->owed;
		oc->owed = 0;
	} else if (type == OFI_T_CONNECT || type == OFI_T_ACCEPT) {
		h.credit = OFI_WINDOW; /* the window we grant */
	}
	hdr_put(b->data, &h);
	return b;
}

static void ctrl_send(tsm__io *io, struct ofi_conn *oc, uint8_t type)
{
	struct ofi_buf *b = msg_new(io, oc, type, 0, true);
	if (b)
		peer_send(io, oc->peer, b);
}

/* CONNECT / ACCEPT body: our id, key and receive size; CONNECT adds our
 * endpoint name so the listener can answer (RDM has no FI_SOURCE here). */
static bool send_hello(tsm__io *io, struct ofi_conn *oc, uint8_t type)
{
	size_t body = 12 + (type == OFI_T_CONNECT ? 2 + io->nlen : 0);
	struct ofi_buf *b = msg_new(io, oc, type, body, true);
	if (!b)
		return false;
	uint8_t *p = b->data + OFI_HDR_LEN;
	le32_put(p, (uint32_t)(oc - io->conns));
	le32_put(p + 4, oc->key);
	le32_put(p + 8, (uint32_t)io->msg_max);
	if (type == OFI_T_CONNECT) {
		p[12] = (uint8_t)io->nlen;
		p[13] = (uint8_t)(io->nlen >> 8);
		memcpy(p + 14, io->name, io->nlen);
	}
	peer_send(io, oc->peer, b);
	return true;
}

/* --- ending connections -------------------------------------------------- */

/* Frees the slot. Queued messages stay queued (a CLOSE frame the session
 * sent just before closing must still arrive, as over TCP); tell appends
 * our CLOSE after them. */
static void oc_end(tsm__io *io, struct ofi_conn *oc, bool tell)
{
	if (oc->state == OC_DIALING)
		peer_unqueue(io, oc); /* a CONNECT nobody waits for any more */
	if (tell)
		ctrl_send(io, oc, OFI_T_CLOSE);
	q_clear(io, oc);
	waiter_remove(io, oc);
	if (oc->state == OC_EMBRYO) {
		io->nembryos--;
		io->peers[oc->peer].embryos--;
	}
	peer_put(io, oc->peer);
	oc->state = OC_FREE;
	oc->key = 0;
	oc->c = NULL;
	io->free_conns[io->nfree++] = (uint16_t)(oc - io->conns);
}

static void conn_refused(tsm__io *io, struct ofi_conn *oc, const char *fmt, ...)
{
	va_list ap;
	peer_unqueue(io, oc);
	oc->state = OC_FAILED;
	oc->deadline = TSM_NEVER;
	va_start(ap, fmt);
	vsnprintf(oc->why, sizeof(oc->why), fmt, ap);
	va_end(ap);
	done_fail(io, &oc->c->cx, TSM_ERR_CONN_REFUSED, "%s", oc->why);
}

/* Sticky: the pending and every later recv/send report err. */
static void conn_fail(tsm__io *io, struct ofi_conn *oc, tsm_err err,
                      const char *fmt, ...)
{
	va_list ap;
	if (oc->err)
		return;
	oc->err = err;
	va_start(ap, fmt);
	vsnprintf(oc->why, sizeof(oc->why), fmt, ap);
	va_end(ap);
	q_clear(io, oc);
	tsm__conn *c = oc->c;
	oc->rx_buf = NULL;
	if (c && c->rx.pending)
		done_fail(io, &c->rx, err, "%s", oc->why);
	if (c && c->tx.pending) {
		waiter_remove(io, oc);
		done_fail(io, &c->tx, err, "%s", oc->why);
	}
}

/* --- receiving ----------------------------------------------------------- */

static bool q_append(tsm__io *io, struct ofi_conn *oc, const uint8_t *p,
                     size_t n)
{
	struct ofi_seg *t = oc->q_tail;
	if (!t || t->cap - t->off - t->len < n) {
		if (!(t = seg_new(io, n)))
			return false;
		if (oc->q_tail)
			oc->q_tail->next = t;
		else
			oc->q_head = t;
		oc->q_tail = t;
	}
	memcpy(t->data + t->off + t->len, p, n);
	t->len += n;
	oc->q_bytes += n;
	return true;
}

static size_t q_take(tsm__io *io, struct ofi_conn *oc, uint8_t *dst, size_t len)
{
	size_t got = 0;
	while (got < len && oc->q_head) {
		struct ofi_seg *s = oc->q_head;
		size_t k = TSM_MIN(len - got, s->len);
		memcpy(dst + got, s->data + s->off, k);
		s->off += k;
		s->len -= k;
		got += k;
		if (s->len == 0) {
			oc->q_head = s->next;
			if (!oc->q_head)
				oc->q_tail = NULL;
			seg_free(io, s);
		}
	}
	oc->q_bytes -= got;
	return got;
}

/* The session read k bytes: give the peer its credit back in quarters of
 * the window, so a stream costs one CREDIT per OFI_WINDOW/4 bytes. */
static void rx_consumed(tsm__io *io, struct ofi_conn *oc, size_t k)
{
	oc->owed += (uint32_t)k;
	if (oc->owed >= OFI_WINDOW / 4 && oc->state == OC_OPEN && !oc->peer_closed)
		ctrl_send(io, oc, OFI_T_CREDIT);
}

/* The peer sent past the credit we gave it (security.md: a peer's
 * buffering here is bounded): cut the connection. */
static void rx_overrun(tsm__io *io, struct ofi_conn *oc, size_t n)
{
	size_t held = oc->q_bytes + oc->early_bytes + n;
	io->window_exceeded++;
	conn_fail(io, oc, TSM_EPROTO, "ofi: peer sent %zu bytes into a %u-byte "
	          "window (%u messages held out of order)", held, OFI_WINDOW,
	          oc->nearly);
	if (oc->state == OC_OPEN)
		ctrl_send(io, oc, OFI_T_CLOSE);
}

static void rx_data(tsm__io *io, struct ofi_conn *oc, const uint8_t *p, size_t n)
{
	tsm__conn *c = oc->c;
	if (oc->state != OC_OPEN || oc->err || oc->peer_closed)
		return;
	if (c && c->rx.pending && !oc->q_head && oc->rx_buf) {
		size_t k = TSM_MIN(n, oc->rx_len);
		io->rx_split += k < n;
		memcpy(oc->rx_buf, p, k);
		oc->rx_buf = NULL;
		rx_consumed(io, oc, k);
		done_op(io, &c->rx, (long)k);
		p += k;
		n -= k;
	}
	if (oc->q_bytes + oc->early_bytes + n > OFI_WINDOW)
		return rx_overrun(io, oc, n);
	if (n && !q_append(io, oc, p, n))
		conn_fail(io, oc, TSM_ENOMEM, "ofi: receive queue");
}

static void rx_credit(tsm__io *io, struct ofi_conn *oc, uint32_t credit)
{
	if (oc->state != OC_OPEN || credit == 0)
		return;
	oc->tx_credit = TSM_MIN(oc->tx_credit + credit, OFI_CREDIT_CAP);
	if (oc->waiting)
		tx_push(io, oc);
}

static void rx_close(tsm__io *io, struct ofi_conn *oc)
{
	if (oc->state == OC_EMBRYO)
		return oc_end(io, oc, false);
	if (oc->state != OC_OPEN)
		return;
	oc->peer_closed = true;
	tsm__conn *c = oc->c;
	if (c && c->rx.pending && !oc->q_head && !oc->err) {
		oc->rx_buf = NULL;
		done_op(io, &c->rx, 0);
	}
	if (c && c->tx.pending && !oc->err) {
		waiter_remove(io, oc);
		done_fail(io, &c->tx, TSM_ERR_PEER_LOST, "ofi: peer closed");
	}
}

/* Initiator: the listener answered. */
static void rx_accept(tsm__io *io, struct ofi_conn *oc, const struct ofi_hdr *h,
                      const uint8_t *p, size_t n)
{
	if (n < 12 || (oc->state != OC_DIALING && oc->state != OC_FAILED)) {
		io->dropped++;
		return;
	}
	oc->peer_id = le32_get(p);
	oc->peer_key = le32_get(p + 4);
	if (oc->state == OC_FAILED) /* we gave up: let it free its side */
		return ctrl_send(io, oc, OFI_T_CLOSE);
	oc->peer_rx_max = le32_get(p + 8);
	if (oc->peer_rx_max < OFI_MSG_MIN)
		return conn_refused(io, oc, "ofi: peer receives only %u bytes",
		                    oc->peer_rx_max);
	oc->tx_credit = TSM_MIN((uint64_t)h->credit, OFI_CREDIT_CAP);
	oc->state = OC_OPEN;
	oc->deadline = TSM_NEVER;
	ctrl_send(io, oc, OFI_T_CONFIRM);
	oc->c->connected = true;
	done_op(io, &oc->c->cx, 0);
}

/* Listener: the initiator echoed our key from its claimed address. */
static void rx_confirm(tsm__io *io, struct ofi_conn *oc)
{
	if (oc->state != OC_EMBRYO) {
		io->dropped++;
		return;
	}
	io->nembryos--;
	io->peers[oc->peer].embryos--;
	oc->state = OC_OPEN;
	oc->deadline = TSM_NEVER;
	if (!io->lst || io->lst->closing)
		return oc_end(io, oc, true);
	struct ofi_done *d = done_add(io, DONE_ACCEPT, &io->lst->acc);
	d->res = oc_handle(io, oc);
	d->key = oc->key;
}

static bool connect_parse(tsm__io *io, const uint8_t *p, size_t n)
{
	if (n < 14)
		return false;
	size_t nlen = (size_t)p[12] | (size_t)p[13] << 8;
	return n >= 14 + nlen && le32_get(p + 8) >= OFI_MSG_MIN &&
	       tsm__ofi_name_ok(io, p + 14, nlen);
}

/* Listener: budgets first (security.md "Budgets before authentication"):
 * no listener, a full table, too many embryos overall or from this
 * address: the CONNECT is dropped unanswered (answering would send to an
 * address nobody has validated) and the initiator times out. */
static void rx_connect(tsm__io *io, const struct ofi_hdr *h, const uint8_t *p,
                       size_t n)
{
	if (!io->lst || io->lst->closing || !connect_parse(io, p, n)) {
		io->dropped++;
		return;
	}
	size_t nlen = (size_t)p[12] | (size_t)p[13] << 8;
	int pi = io->nembryos < OFI_MAX_EMBRYOS ? peer_get(io, p + 14, nlen) : -1;
	struct ofi_conn *oc = NULL;
	if (pi >= 0 && io->peers[pi].embryos < OFI_EMBRYOS_PER_PEER)
		oc = oc_alloc(io, OC_EMBRYO, pi);
	if (!oc) {
		if (pi >= 0)
			peer_put(io, pi);
		io->refused++;
		return;
	}
	io->peers[pi].embryos++;
	io->nembryos++;
	oc->peer_id = le32_get(p);
	oc->peer_key = le32_get(p + 4);
	oc->peer_rx_max = le32_get(p + 8);
	oc->tx_credit = TSM_MIN((uint64_t)h->credit, OFI_CREDIT_CAP);
	oc->deadline = tsm__now() + OFI_CONNECT_TIMEOUT;
	timer_arm(io, oc->deadline);
	if (!send_hello(io, oc, OFI_T_ACCEPT))
		oc_end(io, oc, false);
}

/* Keeps a message that overtook an earlier one, sorted by seq. */
static void early_add(tsm__io *io, struct ofi_conn *oc, const struct ofi_hdr *h,
                      const uint8_t *p, size_t n)
{
	if (oc->err)
		return;
	if (oc->nearly >= OFI_STASH_MAX ||
	    oc->q_bytes + oc->early_bytes + n > OFI_WINDOW)
		return rx_overrun(io, oc, n);
	struct ofi_early *e = malloc(sizeof(*e) + n);
	if (!e)
		return conn_fail(io, oc, TSM_ENOMEM, "ofi: reorder buffer");
	*e = (struct ofi_early){.seq = h->seq, .type = h->type, .credit = h->credit,
	                        .len = n};
	memcpy(e->data, p, n);
	struct ofi_early **pp = &oc->early;
	uint16_t ahead = (uint16_t)(h->seq - oc->rx_seq);
	while (*pp && (uint16_t)((*pp)->seq - oc->rx_seq) < ahead)
		pp = &(*pp)->next;
	e->next = *pp;
	*pp = e;
	oc->early_bytes += n;
	oc->nearly++;
}

static void rx_inorder(tsm__io *io, struct ofi_conn *oc, const struct ofi_hdr *h,
                       const uint8_t *p, size_t n);

/* Runs the kept messages that are now next in order. */
static void early_drain(tsm__io *io, struct ofi_conn *oc)
{
	while (oc->state != OC_FREE && oc->early && oc->early->seq == oc->rx_seq) {
		struct ofi_early *e = oc->early;
		oc->early = e->next;
		oc->early_bytes -= e->len;
		oc->nearly--;
		struct ofi_hdr h = {e->type, e->seq, 0, 0, e->credit};
		rx_inorder(io, oc, &h, e->data, e->len);
		free(e);
	}
}

static void rx_msg(tsm__io *io, const uint8_t *p, size_t n)
{
	struct ofi_hdr h;
	if (!hdr_get(p, n, &h)) {
		io->dropped++;
		return;
	}
	p += OFI_HDR_LEN;
	n -= OFI_HDR_LEN;
	if (h.type == OFI_T_CONNECT)
		return rx_connect(io, &h, p, n);
	struct ofi_conn *oc = h.dst_id < OFI_MAX_CONNS ? &io->conns[h.dst_id] : NULL;
	if (!oc || oc->state == OC_FREE || oc->key != h.dst_key) {
		io->dropped++;
		return;
	}
	if (h.type == OFI_T_ACCEPT)
		return rx_accept(io, oc, &h, p, n);
	uint16_t ahead = (uint16_t)(h.seq - oc->rx_seq);
	if (ahead >= 0x8000) { /* a repeat: the provider does not do that */
		io->dropped++;
		return;
	}
	if (ahead)
		return early_add(io, oc, &h, p, n);
	rx_inorder(io, oc, &h, p, n);
	early_drain(io, oc);
}

static void rx_inorder(tsm__io *io, struct ofi_conn *oc, const struct ofi_hdr *h,
                       const uint8_t *p, size_t n)
{
	oc->rx_seq++;
	switch (h->type) {
	case OFI_T_CONFIRM:
		return rx_confirm(io, oc);
	case OFI_T_DATA:
		rx_credit(io, oc, h->credit);
		return rx_data(io, oc, p, n);
	case OFI_T_CREDIT:
		return rx_credit(io, oc, h->credit);
	case OFI_T_CLOSE:
		return rx_close(io, oc);
	default:
		io->dropped++;
	}
}

/* --- send path ----------------------------------------------------------- */

static size_t iov_total(const tsm__conn *c)
{
	size_t n = 0;
	for (int i = 0; i < c->iovcnt; i++)
		n += c->iov[i].iov_len;
	return n;
}

static void iov_copy(uint8_t *dst, const tsm__conn *c, size_t off, size_t len)
{
	for (int i = 0; i < c->iovcnt && len; i++) {
		size_t l = c->iov[i].iov_len;
		if (off >= l) {
			off -= l;
			continue;
		}
		size_t k = TSM_MIN(l - off, len);
		memcpy(dst, (const uint8_t *)c->iov[i].iov_base + off, k);
		dst += k;
		len -= k;
		off = 0;
	}
}

/* Hands as much of c->iov to libfabric as credit and buffers allow, in
 * messages no larger than the peer receives; completes the send with
 * what went (io.h allows partial sends), or waits if nothing could. */
static void tx_push(tsm__io *io, struct ofi_conn *oc)
{
	tsm__conn *c = oc->c;
	size_t total = iov_total(c), sent = 0;
	size_t want = (size_t)TSM_MIN((uint64_t)total, oc->tx_credit);
	size_t chunk = TSM_MIN((size_t)oc->peer_rx_max, io->msg_max);
	while (sent < want && c->tx.pending) {
		size_t m = TSM_MIN(want - sent, chunk);
		struct ofi_buf *b = msg_new(io, oc, OFI_T_DATA, m, false);
		if (!b)
			break;
		iov_copy(b->data + OFI_HDR_LEN, c, sent, m);
		sent += m;
		oc->tx_credit -= m;
		peer_send(io, oc->peer, b);
	}
	if (!c->tx.pending) /* a send failed at once: conn_fail reported it */
		return;
	if (sent == 0 && total > 0)
		return waiter_add(io, oc);
	waiter_remove(io, oc);
	done_op(io, &c->tx, (long)sent);
}

/* --- io.h operations ----------------------------------------------------- */

static void conn_ops_init(tsm__io *io, tsm__conn *c)
{
	c->rx_hint = io->msg_max; /* a read is one fabric message at most */
	c->rx = (struct tsm__op){TSM_OP_RECV, false, c};
	c->tx = (struct tsm__op){TSM_OP_SEND, false, c};
	c->cx = (struct tsm__op){TSM_OP_CONNECT, false, c};
}

static tsm_err ofi_listen(tsm__io *io, tsm__lst *l)
{
	if (!io->ep)
		return tsm__err_set(TSM_ESTATE, "ofi: no endpoint to listen on");
	if (io->lst && io->lst != l)
		return tsm__err_set(TSM_ESTATE, "ofi: one listener per engine (one "
		                    "endpoint, one address)");
	io->lst = l;
	l->paused = false;
	l->acc = (struct tsm__op){TSM_OP_ACCEPT, true, l};
	return TSM_OK;
}

static void ofi_lst_close(tsm__io *io, tsm__lst *l)
{
	if (l->closing)
		return;
	l->closing = true;
	if (io->lst == l)
		io->lst = NULL;
	l->acc.pending = false;
	done_add(io, DONE_LST_CLOSED, &l->acc);
}

static tsm_err ofi_connect_sa(tsm__io *io, tsm__conn *c, const struct sockaddr *sa,
                              socklen_t len)
{
	return tsm__err_set(TSM_ENOTSUP, "ofi engine: connect with "
	                    "tsm__ofi_connect(io, c, address)");
}

tsm_err tsm__ofi_connect(tsm__io *io, tsm__conn *c, const char *addr)
{
	if (ofi_kind(io) == OFI_KIND_AUTO)
		return tsm__ofi_auto_connect(io, c, addr);
	uint8_t name[OFI_NAME_MAX + 1];
	size_t n = sizeof(name) - 1;
	if (!io->ep)
		return tsm__err_set(TSM_ESTATE, "ofi: no endpoint");
	tsm_err e = tsm__ofi_addr_name(io, addr, name, &n);
	if (e)
		return e;
	conn_ops_init(io, c);
	c->fd = -1;
	c->cx.pending = true;
	int pi = peer_get(io, name, n);
	struct ofi_conn *oc = pi >= 0 ? oc_alloc(io, OC_DIALING, pi) : NULL;
	if (!oc) {
		if (pi >= 0)
			peer_put(io, pi);
		done_fail(io, &c->cx, TSM_ERR_CONN_REFUSED, "ofi: %s",
		          pi < 0 ? "the address vector refused the peer or is full"
		                 : "connection table full");
		return TSM_OK;
	}
	oc->c = c;
	c->fd = oc_handle(io, oc);
	oc->deadline = tsm__now() + OFI_CONNECT_TIMEOUT;
	timer_arm(io, oc->deadline);
	if (!send_hello(io, oc, OFI_T_CONNECT))
		conn_refused(io, oc, "ofi: out of memory for CONNECT");
	return TSM_OK;
}

static tsm_err ofi_adopt(tsm__io *io, tsm__conn *c)
{
	struct ofi_conn *oc = oc_by_handle(io, c->fd);
	if (!oc || oc->state != OC_OPEN || oc->c)
		return tsm__err_set(TSM_EINVAL, "ofi: %d is not an accepted "
		                    "connection handle", c->fd);
	conn_ops_init(io, c);
	oc->c = c;
	c->connected = true;
	return TSM_OK;
}

static tsm_err ofi_recv(tsm__io *io, tsm__conn *c, void *buf, size_t len)
{
	struct ofi_conn *oc = oc_of(io, c);
	c->rx.pending = true;
	if (!oc || oc->state != OC_OPEN) {
		done_fail(io, &c->rx, TSM_ERR_PEER_LOST, "ofi: not connected");
	} else if (oc->q_bytes) {
		size_t k = q_take(io, oc, buf, len);
		rx_consumed(io, oc, k);
		done_op(io, &c->rx, (long)k);
	} else if (oc->err) {
		done_fail(io, &c->rx, oc->err, "%s", oc->why);
	} else if (oc->peer_closed) {
		done_op(io, &c->rx, 0);
	} else {
		oc->rx_buf = buf;
		oc->rx_len = len;
	}
	return TSM_OK;
}

static tsm_err ofi_send(tsm__io *io, tsm__conn *c)
{
	struct ofi_conn *oc = oc_of(io, c);
	c->tx.pending = true;
	if (!oc || oc->state != OC_OPEN)
		done_fail(io, &c->tx, TSM_ERR_PEER_LOST, "ofi: not connected");
	else if (oc->err)
		done_fail(io, &c->tx, oc->err, "%s", oc->why);
	else if (oc->peer_closed)
		done_fail(io, &c->tx, TSM_ERR_PEER_LOST, "ofi: peer closed");
	else
		tx_push(io, oc);
	return TSM_OK;
}

static void ofi_close(tsm__io *io, tsm__conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	c->rx.owner = c; /* also for a conn the engine never saw */
	struct ofi_conn *oc = oc_of(io, c);
	if (oc)
		oc_end(io, oc, oc->state == OC_OPEN && !oc->peer_closed);
	c->fd = -1;
	c->rx.pending = c->tx.pending = c->cx.pending = false;
	done_add(io, DONE_CLOSED, &c->rx);
}

/* --- progress ------------------------------------------------------------ */

static void rx_repost(tsm__io *io, struct ofi_buf *b)
{
	if (tsm__ofi_rx_post(io, b) != 0) {
		b->next = io->rx_unposted;
		io->rx_unposted = b;
	}
}

static void rx_repost_pending(tsm__io *io)
{
	while (io->rx_unposted) {
		struct ofi_buf *b = io->rx_unposted;
		if (tsm__ofi_rx_post(io, b) != 0)
			return;
		io->rx_unposted = b->next;
	}
}

static void tx_done(tsm__io *io, struct ofi_buf *b)
{
	struct ofi_peer *p = &io->peers[b->peer];
	if (p->used && p->gen == b->peer_gen && p->inflight)
		p->inflight--;
}

static void cq_entry(tsm__io *io, const struct fi_cq_msg_entry *e)
{
	struct ofi_buf *b = e->op_context;
	if (b->kind == OFI_BUF_RX) {
		rx_msg(io, b->data, e->len);
		return rx_repost(io, b);
	}
	tx_done(io, b);
	tsm__ofi_buf_put(io, b);
}

static bool cq_error(tsm__io *io)
{
	struct fi_cq_err_entry e;
	memset(&e, 0, sizeof(e));
	tsm__ofi_shm_rdlock(io);
	ssize_t r = fi_cq_readerr(io->cq, &e, 0);
	tsm__ofi_shm_unlock(io);
	if (r != 1)
		return false;
	struct ofi_buf *b = e.op_context;
	if (!b)
		return true;
	if (b->kind == OFI_BUF_RX) {
		io->dropped++; /* e.g. FI_ETRUNC: larger than we said we take */
		if (e.err != FI_ECANCELED)
			rx_repost(io, b);
		return true;
	}
	tx_done(io, b);
	tx_failed(io, b, e.err);
	return true;
}

static int cq_drain(tsm__io *io)
{
	struct fi_cq_msg_entry ent[16];
	int total = 0;
	for (;;) {
		tsm__ofi_shm_rdlock(io);
		ssize_t n = fi_cq_read(io->cq, ent, TSM_ARRAY_LEN(ent));
		tsm__ofi_shm_unlock(io);
		if (n == -FI_EAVAIL && cq_error(io)) {
			total++;
			continue;
		}
		if (n <= 0)
			return total;
		/* Completions go to the session at once, so it re-arms its
		 * receive before the next message of this batch is placed
		 * (else that one takes the queue: one more copy). */
		for (ssize_t i = 0; i < n; i++) {
			cq_entry(io, &ent[i]);
			total += done_run(io);
		}
		total += (int)n;
		if ((size_t)n < TSM_ARRAY_LEN(ent))
			return total;
	}
}

static void oc_expire(tsm__io *io, struct ofi_conn *oc)
{
	if (oc->state == OC_EMBRYO)
		return oc_end(io, oc, false);
	char peer[2 * OFI_NAME_MAX + 1];
	const struct ofi_peer *p = &io->peers[oc->peer];
	tsm__ofi_name_str(io, p->name, p->nlen, peer, sizeof(peer));
	conn_refused(io, oc, "ofi: no ACCEPT from %s within %lld ms", peer,
	             (long long)(OFI_CONNECT_TIMEOUT / TSM_MSEC));
}

static void timers_run(tsm__io *io)
{
	tsm_time now, next = TSM_NEVER;
	if (io->next_timer == TSM_NEVER || (now = tsm__now()) < io->next_timer)
		return;
	for (int i = 0; i < OFI_MAX_CONNS; i++) {
		struct ofi_conn *oc = &io->conns[i];
		if (oc->state != OC_DIALING && oc->state != OC_EMBRYO)
			continue;
		if (oc->deadline <= now)
			oc_expire(io, oc);
		else
			next = TSM_MIN(next, oc->deadline);
	}
	io->next_timer = next;
}

/* The listener learns of a connection here; adopt() must happen inside
 * on_accept, so a handle still unadopted afterwards was refused. */
static void done_accept(tsm__io *io, const struct ofi_done *d)
{
	tsm__lst *l = d->op->owner;
	struct ofi_conn *oc = oc_by_handle(io, (int)d->res);
	if (!oc || oc->key != d->key || oc->state != OC_OPEN || oc->c)
		return;
	if (l->closing || io->lst != l)
		return oc_end(io, oc, true);
	io->cbs->on_accept(l, (int)d->res, TSM_OK);
	if (oc->state == OC_OPEN && oc->key == d->key && !oc->c)
		oc_end(io, oc, true);
}

static void done_dispatch(tsm__io *io, const struct ofi_done *d)
{
	if (d->what == DONE_LST_CLOSED)
		return io->cbs->on_lst_closed(d->op->owner);
	if (d->what == DONE_ACCEPT)
		return done_accept(io, d);
	tsm__conn *c = d->op->owner;
	if (d->what == DONE_CLOSED)
		return io->cbs->on_closed(c);
	if (c->closing)
		return;
	if (d->err)
		tsm__err_set(d->err, "%s", d->why);
	if (d->op->kind == TSM_OP_CONNECT) {
		/* An auto engine may take a failed dial on to its next tier. */
		if (io->parent && tsm__ofi_auto_dialed(io->parent, io, c, d->err))
			return;
		io->cbs->on_connect(c, d->err);
	}
	else if (d->op->kind == TSM_OP_RECV)
		io->cbs->on_recv(c, d->res, d->err);
	else
		io->cbs->on_send(c, d->res, d->err);
}

/* Runs queued completions; those that callbacks queue run too. */
static int done_run(tsm__io *io)
{
	int n = 0;
	for (size_t i = 0; i < io->ndone; i++, n++) {
		struct ofi_done d = io->done[i];
		done_dispatch(io, &d);
	}
	io->ndone = 0;
	return n;
}

static int ofi_progress(tsm__io *io)
{
	int n = 0;
	if (io->cq) {
		n = cq_drain(io);
		rx_repost_pending(io);
	}
	if (io->nblocked)
		peers_flush(io);
	waiters_retry(io);
	timers_run(io);
	n += done_run(io);
	if (n)
		io->backoff = OFI_SLEEP_MIN;
	return n;
}

/* Sleeps until `until`, an event on the CQ's fd, or wake(). Without a wait
 * fd (shm, udp;ofi_rxd here) it sleeps in growing steps of 50 us .. 1 ms
 * and lets the caller poll the CQ between them. Returns true on wake(). */
static bool ofi_sleep(tsm__io *io, tsm_time now, tsm_time until)
{
	struct pollfd pf[2] = {{.fd = io->evfd, .events = POLLIN},
	                       {.fd = io->wait_fd, .events = POLLIN}};
	nfds_t nfds = 1;
	tsm_duration d = until == TSM_NEVER ? TSM_NEVER : TSM_MAX(until - now, 0);
	if (io->wait_fd >= 0) {
		struct fid *f = &io->cq->fid;
		if (fi_trywait(io->fabric, &f, 1) != FI_SUCCESS)
			return false; /* completions or progress pending */
		nfds = 2;
	} else {
		d = TSM_MIN(d, io->backoff);
		io->backoff = TSM_MIN(io->backoff * 2, OFI_SLEEP_MAX);
	}
	struct timespec ts = {.tv_sec = (time_t)(d / TSM_SEC),
	                      .tv_nsec = (long)(d % TSM_SEC)};
	int r = ppoll(pf, nfds, d == TSM_NEVER ? NULL : &ts, NULL);
	if (r > 0 && (pf[0].revents & POLLIN)) {
		uint64_t v;
		(void)!read(io->evfd, &v, sizeof(v));
		return true;
	}
	return false;
}

static int ofi_wait(tsm__io *io, tsm_time deadline)
{
	int n = ofi_progress(io);
	while (n == 0 && !io->busy) {
		tsm_time now = tsm__now();
		if (now >= deadline)
			break;
		tsm_time until = TSM_MIN(deadline, io->next_timer);
		if (io->nblocked) /* FI_EAGAIN'd sends: retry soon */
			until = TSM_MIN(until, now + TSM_MSEC);
		bool woke = ofi_sleep(io, now, until);
		n = ofi_progress(io);
		if (woke)
			break;
	}
	return n;
}

static void ofi_wake(tsm__io *io)
{
	uint64_t one = 1;
	(void)!write(io->evfd, &one, sizeof(one));
}

static void ofi_flush(tsm__io *io)
{
	(void)io; /* sends are posted as they come */
}

/* --- set-up -------------------------------------------------------------- */

static tsm_err ofi_init_unsupported(tsm__io **out, const tsm__io_cbs *cbs,
                                    bool busy)
{
	return tsm__err_set(TSM_ENOTSUP, "ofi engine: open it with "
	                    "tsm__ofi_init(out, cbs, busy, provider)");
}

static bool provider_ok(const char *p)
{
	size_t n = p ? strlen(p) : 0;
	if (n == 0 || n >= sizeof(((tsm__io *)0)->provider))
		return false;
	return strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_;") == n;
}

tsm_err tsm__ofi_init_tc(tsm__io **out, const tsm__io_cbs *cbs, bool busy,
                         const char *provider, uint32_t tclass)
{
	if (!provider_ok(provider))
		return tsm__err_set(TSM_EINVAL, "ofi: provider '%s': want [a-z0-9_;]"
		                    "{1,47}", provider ? provider : "(null)");
	tsm__io *io = calloc(1, sizeof(*io));
	if (!io)
		return tsm__err_set(TSM_ENOMEM, "ofi engine");
	io->kind = OFI_KIND_ENGINE;
	io->handle_base = TSM_OFI_HANDLE_BASE;
	io->cbs = cbs;
	io->busy = busy;
	snprintf(io->provider, sizeof(io->provider), "%s", provider);
	io->tc_asked = tclass;
	io->wait_fd = -1;
	io->next_timer = TSM_NEVER;
	io->backoff = OFI_SLEEP_MIN;
	for (int i = 0; i < OFI_MAX_CONNS; i++)
		io->free_conns[i] = (uint16_t)(OFI_MAX_CONNS - 1 - i);
	io->nfree = OFI_MAX_CONNS;
	io->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	tsm_err e = io->evfd < 0 ? tsm__err_set(TSM_ETRANSPORT, "eventfd: %s",
	                                        strerror(errno))
	                         : tsm__ofi_ep_open(io, NULL);
	if (e) {
		if (io->evfd >= 0)
			close(io->evfd);
		free(io);
		return e;
	}
	*out = io;
	return TSM_OK;
}

tsm_err tsm__ofi_init(tsm__io **out, const tsm__io_cbs *cbs, bool busy,
                      const char *provider)
{
	return tsm__ofi_init_tc(out, cbs, busy, provider, FI_TC_UNSPEC);
}

/* What libfabric still carries for us: posted sends not yet complete,
 * and messages waiting on FI_EAGAIN. */
static bool fini_outstanding(const tsm__io *io)
{
	for (int i = 0; i < OFI_MAX_PEERS; i++) {
		const struct ofi_peer *p = &io->peers[i];
		if (p->used && (p->q_head || p->inflight))
			return true;
	}
	return false;
}

/* Completions after the context is gone: sends are accounted, received
 * messages dropped (every connection has ended), no callback runs. */
static void fini_cq_drain(tsm__io *io)
{
	struct fi_cq_msg_entry ent[16];
	struct fi_cq_err_entry err;
	tsm__ofi_shm_rdlock(io);
	ssize_t n = fi_cq_read(io->cq, ent, TSM_ARRAY_LEN(ent));
	ssize_t e = 0;
	if (n == -FI_EAVAIL) {
		memset(&err, 0, sizeof(err));
		e = fi_cq_readerr(io->cq, &err, 0);
	}
	tsm__ofi_shm_unlock(io);
	if (n == -FI_EAVAIL) {
		if (e != 1 || !err.op_context)
			return;
		ent[0].op_context = err.op_context;
		n = 1;
	}
	for (ssize_t i = 0; i < n; i++) {
		struct ofi_buf *b = ent[i].op_context;
		if (b->kind == OFI_BUF_TX) {
			tx_done(io, b);
			tsm__ofi_buf_put(io, b);
		}
	}
}

/*
 * A closed endpoint keeps nothing, unlike a socket whose buffered bytes
 * the kernel still sends after close(): a message libfabric has taken but
 * not delivered (tcp;ofi_rxm rendezvous, shm CMA, udp;ofi_rxd before its
 * ack) dies with the endpoint. So fini first lets what was sent finish,
 * up to OFI_CLOSE_LINGER for peers that do not take it (a dead tcp peer
 * answers FI_EAGAIN for ever). Without this, the last 1 MiB message of a
 * context that closed right after sending it never arrived (issue 6).
 */
static void fini_linger(tsm__io *io)
{
	tsm_time end = tsm__now() + OFI_CLOSE_LINGER;
	while (io->cq && fini_outstanding(io) && tsm__now() < end) {
		fini_cq_drain(io);
		if (io->nblocked)
			peers_flush(io);
		if (!io->busy)
			sched_yield();
	}
}

static void ofi_fini(tsm__io *io)
{
	if (!io)
		return;
	fini_linger(io);
	for (int i = 0; i < OFI_MAX_CONNS; i++)
		q_clear(io, &io->conns[i]);
	while (io->seg_cache) {
		struct ofi_seg *sg = io->seg_cache;
		io->seg_cache = sg->next;
		free(sg);
	}
	tsm__ofi_ep_close(io);
	close(io->evfd);
	free(io->done);
	free(io);
}

tsm_err tsm__ofi_listen_addr(tsm__io *io, const char *addr)
{
	if (ofi_kind(io) == OFI_KIND_AUTO)
		return tsm__ofi_auto_listen_addr(io, addr);
	if (io->nfree != OFI_MAX_CONNS)
		return tsm__err_set(TSM_ESTATE, "ofi: the endpoint is bound before "
		                    "any connection exists");
	tsm__ofi_ep_close(io);
	tsm_err e = tsm__ofi_ep_open(io, addr);
	if (e) { /* keep an endpoint to dial from; report the bind failure */
		char why[256];
		snprintf(why, sizeof(why), "%s", tsm_err_detail());
		tsm__ofi_ep_open(io, NULL);
		tsm__err_set(e, "%s", why);
	}
	return e;
}

static const struct {
	const char *provider, *scheme;
} url_out[] = {
	{"tcp;ofi_rxm", "ofi+tcp://"},
	{"udp;ofi_rxd", "ofi+udp://"},
	{"verbs;ofi_rxm", "ofi+verbs://"},
	{"efa", "ofi+efa://"},
};

tsm_err tsm__ofi_bound_url(tsm__io *io, char *buf, size_t cap)
{
	if (ofi_kind(io) == OFI_KIND_AUTO)
		return tsm__ofi_auto_bound_url(io, buf, cap);
	char a[2 * OFI_NAME_MAX + 1];
	int n = -1;
	if (!io->ep)
		return tsm__err_set(TSM_ESTATE, "ofi: no endpoint");
	tsm__ofi_name_str(io, io->name, io->nlen, a, sizeof(a));
	for (size_t i = 0; i < TSM_ARRAY_LEN(url_out) && n < 0; i++)
		if (strcmp(io->provider, url_out[i].provider) == 0)
			n = snprintf(buf, cap, "%s%s", url_out[i].scheme, a);
	if (n < 0 && strcmp(io->provider, "shm") == 0 &&
	    strncmp(a, "fi_ns://tsm:", 12) == 0)
		n = snprintf(buf, cap, "ofi+shm://%s", a + 12);
	if (n < 0)
		n = snprintf(buf, cap, "ofi://%s/%s", io->provider, a);
	if (n < 0 || (size_t)n >= cap)
		return tsm__err_set(TSM_EINVAL, "ofi: URL buffer of %zu bytes too small",
		                    cap);
	return TSM_OK;
}

/* An auto engine's tier: its handles start at base (so the auto engine
 * can tell its tiers' handles apart) and failed dials go to parent. */
void tsm__ofi_adopt_parent(tsm__io *io, struct ofi_auto *parent, int base)
{
	io->parent = parent;
	io->handle_base = base;
}

/* Lets go of a dial whose failure the auto engine takes on to another
 * tier: the slot is freed and no callback about c follows from here. */
void tsm__ofi_forget(tsm__io *io, tsm__conn *c)
{
	struct ofi_conn *oc = oc_of(io, c);
	if (oc)
		oc_end(io, oc, false);
	c->fd = -1;
}

tsm_err tsm__ofi_peer_name(tsm__io *io, int fd, char *buf, size_t cap)
{
	if (ofi_kind(io) == OFI_KIND_AUTO)
		return tsm__ofi_auto_peer_name(io, fd, buf, cap);
	struct ofi_conn *oc = oc_by_handle(io, fd);
	if (!oc)
		return tsm__err_set(TSM_EINVAL, "ofi: no connection %d", fd);
	const struct ofi_peer *p = &io->peers[oc->peer];
	tsm__ofi_name_str(io, p->name, p->nlen, buf, cap);
	return TSM_OK;
}

void tsm__ofi_query(const tsm__io *io, tsm__ofi_info *out)
{
	if (ofi_kind(io) == OFI_KIND_AUTO) {
		tsm__ofi_auto_query(io, out);
		return;
	}
	memset(out, 0, sizeof(*out));
	const struct fi_info *i = io->info;
	snprintf(out->provider, sizeof(out->provider), "%s",
	         i ? i->fabric_attr->prov_name : io->provider);
	if (i) {
		snprintf(out->fabric, sizeof(out->fabric), "%s", i->fabric_attr->name);
		snprintf(out->domain, sizeof(out->domain), "%s", i->domain_attr->name);
	}
	out->tclass_asked = io->tc_asked;
	out->tclass_granted = io->tc_granted;
	out->wait_fd = io->wait_fd >= 0;
	out->msg_max = io->msg_max;
	out->refused = io->refused;
	out->dropped = io->dropped;
	out->window_exceeded = io->window_exceeded;
	out->rx_split = io->rx_split;
}

const tsm__io_ops tsm__io_ofi_ops = {
	.size = sizeof(tsm__io_ops),
	.name = "ofi",
	.init = ofi_init_unsupported,
	.fini = ofi_fini,
	.listen = ofi_listen,
	.lst_close = ofi_lst_close,
	.connect = ofi_connect_sa,
	.adopt = ofi_adopt,
	.recv = ofi_recv,
	.send = ofi_send,
	.close = ofi_close,
	.wait = ofi_wait,
	.wake = ofi_wake,
	.flush = ofi_flush,
};
