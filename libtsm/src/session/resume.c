/*
 * session/resume.c - reliable delivery across a lost session (resume.h).
 */
#include "session/resume.h"

#include <stdlib.h>
#include <string.h>

#include "core/tstats.h"
#include "pubsub/topic.h"
#include "security/policy.h"
#include "session/idwin.h"
#include "session/secure.h"
#include "wire/cursor.h"

/* ---- state -------------------------------------------------------------- */

struct rsm_ent {
	uint64_t session_id;  /* session whose sequence numbers seq counts */
	uint64_t seq;         /* its last frame; UINT64_MAX: never framed */
	uint8_t lane;
	tsm__omsg *m;         /* reference */
};

struct rsm_fifo {
	struct rsm_ent *e;
	uint32_t head, n, cap;
};

/* Per session: sent, not yet acknowledged; what to acknowledge. */
struct tsm__rsm_sess {
	struct rsm_fifo unacked[TSM_WIRE_LANES];
	uint64_t unacked_bytes;
	uint64_t acked[TSM_WIRE_LANES];     /* receiver: last rx_seq ACKed */
	uint32_t since_ack[TSM_WIRE_LANES];
	tsm_time first_unacked;             /* receiver: oldest unACKed read */
	bool resume_seen;                   /* the peer's RESUME arrived */
	uint8_t recs[3 * (8 + 8 * TSM_WIRE_LANES)]; /* ... its records */
	unsigned nrecs;
	bool resume_sent;                   /* ours went out on this session */
	struct rsm_seen *seen;              /* receiver: the node's window */
};

/* Per absent peer node: what waits for it to come back. */
struct rsm_orphan {
	uint64_t node_id;
	char *peer_id;                      /* identity, for grant checks */
	char **patterns;                    /* its subscriptions */
	uint32_t npatterns;
	struct rsm_fifo q;                  /* in send order */
	uint64_t bytes;
	tsm_time expires;
	struct rsm_orphan *next;
};

/* Per peer node, its last sessions that ended: how far we read them.
 * Several, because a session can end before the peer has used our
 * RESUME for the one before (sessions come and go fast on a bad link). */
#define RSM_RX_KEEP 3
#define RSM_RX_REC (8 + 8 * TSM_WIRE_LANES) /* on the wire, per session */
struct rsm_rx {
	uint64_t node_id, session_id;
	uint64_t rx_seq[TSM_WIRE_LANES];
	tsm_time expires;
	struct rsm_rx *next;
};

/* A message a lost session was reassembling (tsm__rsm_defer_partial). */
struct rsm_partial {
	uint64_t node_id, msg_id;
	tsm__topic *topic;                  /* reference */
	uint8_t prio;
	tsm_time expires;
	struct rsm_partial *next;
};

/*
 * Receiver, per peer node: which of its message ids were delivered, over
 * the last TSM_IDWIN_IDS ids it numbered (idwin.h). A message sent again
 * after a loss is dropped here when it was already delivered: the
 * RESUME records decide what is sent again, this decides what is
 * delivered, so the races of sessions coming and going while RESUMEs
 * cross (a second loss before the first RESUME, two dials of one node)
 * may cost a message sent twice on the wire, never a message delivered
 * twice. Kept while a session with the node exists, then peer_timeout.
 */
struct rsm_seen {
	uint64_t node_id;
	unsigned refs;                      /* sessions that point here */
	tsm_time expires;                   /* once refs is 0 */
	struct rsm_seen *next;
	tsm__idwin win;
};

struct tsm__rsm_ctx {
	struct rsm_orphan *orphans;
	struct rsm_rx *rx;
	struct rsm_partial *partials;
	struct rsm_seen *seen;
};

/* Reports (or, when the sender is back, forgets) deferred partials. */
static void rsm_partials_end(tsm_ctx *ctx, uint64_t node_id, bool back,
                             tsm_time now)
{
	struct tsm__rsm_ctx *c = ctx->rsm;
	for (struct rsm_partial **pp = c ? &c->partials : NULL; pp && *pp;) {
		struct rsm_partial *p = *pp;
		bool mine = node_id ? p->node_id == node_id : now >= p->expires;
		if (!mine) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		if (!back) {
			struct tsm_msg m = {.topic = p->topic, .prio = p->prio,
			                    .id = p->msg_id};
			tsm__drop_msg(ctx, &m, TSM_ERR_PEER_LOST, TSM_AT_REASSEMBLY);
		}
		tsm__topic_unref(p->topic);
		free(p);
	}
}

static struct tsm__rsm_ctx *rsm_ctx(tsm_ctx *ctx)
{
	if (!ctx->rsm)
		ctx->rsm = calloc(1, sizeof(*ctx->rsm));
	return ctx->rsm;
}

static struct tsm__rsm_sess *rsm_sess(tsm__session *s)
{
	if (!s->rsm)
		s->rsm = calloc(1, sizeof(*s->rsm));
	return s->rsm;
}

static bool fifo_push(struct rsm_fifo *f, struct rsm_ent e)
{
	if (f->n == f->cap) {
		uint32_t cap = f->cap ? f->cap * 2 : 64;
		struct rsm_ent *v = malloc(cap * sizeof(*v));
		if (!v)
			return false;
		for (uint32_t i = 0; i < f->n; i++)
			v[i] = f->e[(f->head + i) % f->cap];
		free(f->e);
		f->e = v;
		f->head = 0;
		f->cap = cap;
	}
	f->e[(f->head + f->n++) % f->cap] = e;
	return true;
}

static struct rsm_ent *fifo_front(struct rsm_fifo *f)
{
	return f->n ? &f->e[f->head] : NULL;
}

static void fifo_pop(struct rsm_fifo *f)
{
	f->head = (f->head + 1) % f->cap;
	f->n--;
}

static void rsm_send_resume(tsm__session *s);

/* ---- sender: unacknowledged messages ------------------------------------ */

void tsm__rsm_sent(tsm__session *s, unsigned lane, uint64_t seq, tsm__omsg *m)
{
	struct tsm__rsm_sess *r;
	if (m->reliability != TSM_RELIABLE || !(r = rsm_sess(s)))
		return;
	struct rsm_fifo *f = &r->unacked[lane];
	/* A peer that never acknowledges cannot make us hold more than the
	 * session's queue budget: the oldest lose their protection (counted:
	 * if this session is then lost, they are not replayed). */
	while (r->unacked_bytes + m->len > s->ctx->p.session_queue_bytes && f->n) {
		struct rsm_ent *e = fifo_front(f);
		r->unacked_bytes -= e->m->len;
		tsm__omsg_unref(e->m);
		fifo_pop(f);
		tsm__stat_add(&s->ctx->stats, ST_RSM_UNPROTECTED, 1);
	}
	if (fifo_push(f, (struct rsm_ent){s->session_id, seq, (uint8_t)lane,
	                                  tsm__omsg_ref(m)}))
		r->unacked_bytes += m->len;
	else
		tsm__omsg_unref(m);
}

tsm_err tsm__rsm_on_ack(tsm__session *s, uint64_t value)
{
	unsigned lane = (unsigned)(value >> 56);
	uint64_t next = value & ((1ull << 56) - 1);
	if (lane >= TSM_WIRE_LANES || next > s->lanes[lane].tx_seq)
		return tsm__err_set(TSM_ERR_BAD_FIELD, "ACK lane %u seq %llu beyond "
		                    "what was sent (%llu)", lane,
		                    (unsigned long long)next,
		                    (unsigned long long)s->lanes[lane].tx_seq);
	struct tsm__rsm_sess *r = s->rsm;
	struct rsm_ent *e;
	while (r && (e = fifo_front(&r->unacked[lane])) && e->seq < next) {
		r->unacked_bytes -= e->m->len;
		tsm__omsg_unref(e->m);
		fifo_pop(&r->unacked[lane]);
	}
	return TSM_OK;
}

/* ---- receiver: acknowledgements ----------------------------------------- */

static void rsm_send_ack(tsm__session *s, unsigned lane)
{
	struct tsm__rsm_sess *r = s->rsm;
	uint64_t next = s->lanes[lane].rx_seq;
	tsm__ctrl c = {.type = TSM_C_ACK,
	               .value = ((uint64_t)lane << 56) | (next & ((1ull << 56) - 1))};
	if (tsm__session_send_ctrl(s, &c) == TSM_OK) {
		r->acked[lane] = next;
		r->since_ack[lane] = 0;
	}
}

void tsm__rsm_rx_frame(tsm__session *s, unsigned lane)
{
	struct tsm__rsm_sess *r = rsm_sess(s);
	if (!r || lane >= TSM_WIRE_LANES)
		return;
	if (!r->first_unacked)
		r->first_unacked = tsm__now();
	if (++r->since_ack[lane] >= TSM_RSM_ACK_FRAMES)
		rsm_send_ack(s, lane);
}

/* ACKs may go out until our CLOSE: a draining session is still read. */
static bool rsm_may_ack(const tsm__session *s)
{
	return (tsm__session_up(s) || s->state == SS_DRAINING) && !s->close_sent;
}

void tsm__rsm_ack_all(tsm__session *s)
{
	struct tsm__rsm_sess *r = s->rsm;
	if (!r || !r->first_unacked || !rsm_may_ack(s))
		return;
	for (unsigned i = 0; i < TSM_WIRE_LANES; i++)
		if (s->lanes[i].rx_seq != r->acked[i])
			rsm_send_ack(s, i);
	r->first_unacked = 0;
}

tsm_time tsm__rsm_tick(tsm__session *s, tsm_time now)
{
	struct tsm__rsm_sess *r = s->rsm;
	if (!r || !r->first_unacked || !rsm_may_ack(s))
		return TSM_NEVER;
	if (now - r->first_unacked < TSM_RSM_ACK_EVERY)
		return r->first_unacked + TSM_RSM_ACK_EVERY;
	tsm__rsm_ack_all(s);
	tsm__session_pump(s);
	return TSM_NEVER;
}

/* ---- receiver: duplicates ----------------------------------------------- */

static struct rsm_seen *rsm_seen_of(tsm__session *s)
{
	struct tsm__rsm_sess *r = rsm_sess(s);
	struct tsm__rsm_ctx *c;
	if (!r || !s->peer_node_id || !(c = rsm_ctx(s->ctx)))
		return NULL;
	if (r->seen)
		return r->seen;
	struct rsm_seen *w = c->seen;
	while (w && w->node_id != s->peer_node_id)
		w = w->next;
	if (!w && (w = calloc(1, sizeof(*w)))) {
		w->node_id = s->peer_node_id;
		w->next = c->seen;
		c->seen = w;
	}
	if (w)
		w->refs++;
	return r->seen = w;
}

bool tsm__rsm_rx_dup(tsm__session *s, uint64_t msg_id)
{
	struct rsm_seen *w = msg_id ? rsm_seen_of(s) : NULL;
	switch (w ? tsm__idwin_check(&w->win, msg_id) : TSM_IDWIN_NEW) {
	case TSM_IDWIN_NEW:
		return false;
	case TSM_IDWIN_OLD: /* older than the window: cannot tell */
		tsm__stat_add(&s->ctx->stats, ST_RSM_UNCHECKED, 1);
		return false;
	case TSM_IDWIN_SEEN:
		break;
	}
	tsm__stat_add(&s->ctx->stats, ST_RSM_DUPLICATES, 1);
	tsm__log(s->ctx, TSM_LOG_DEBUG, "resume: message %llu from %s already "
	         "delivered: dropped", (unsigned long long)msg_id, s->peer_name);
	return true;
}

void tsm__rsm_rx_done(tsm__session *s, uint64_t msg_id)
{
	struct rsm_seen *w = msg_id ? rsm_seen_of(s) : NULL;
	if (w)
		tsm__idwin_mark(&w->win, msg_id);
}

static void rsm_seen_release(tsm__session *s)
{
	struct rsm_seen *w = s->rsm ? s->rsm->seen : NULL;
	if (!w)
		return;
	s->rsm->seen = NULL;
	if (--w->refs == 0)
		w->expires = tsm__now() + s->ctx->p.peer_timeout;
}

/* ---- loss: orphans and read positions ----------------------------------- */

static struct rsm_orphan *rsm_orphan_find(tsm_ctx *ctx, uint64_t node_id)
{
	for (struct rsm_orphan *o = ctx->rsm ? ctx->rsm->orphans : NULL; o;
	     o = o->next)
		if (o->node_id == node_id)
			return o;
	return NULL;
}

static void rsm_orphan_drop_front(tsm_ctx *ctx, struct rsm_orphan *o,
                                  tsm_err why)
{
	struct rsm_ent *e = fifo_front(&o->q);
	o->bytes -= e->m->len;
	tsm__drop_omsg(ctx, e->m, why, TSM_AT_SEND_QUEUE);
	tsm__omsg_unref(e->m);
	fifo_pop(&o->q);
}

/* Appends (ownership of one reference passes); QUEUE_FULL beyond budget. */
static void rsm_orphan_add(tsm_ctx *ctx, struct rsm_orphan *o,
                           struct rsm_ent e)
{
	while (o->bytes + e.m->len > ctx->p.session_queue_bytes && o->q.n)
		rsm_orphan_drop_front(ctx, o, TSM_ERR_QUEUE_FULL);
	if (!fifo_push(&o->q, e)) {
		tsm__drop_omsg(ctx, e.m, TSM_ERR_PEER_LOST, TSM_AT_SEND_QUEUE);
		tsm__omsg_unref(e.m);
		return;
	}
	o->bytes += e.m->len;
	tsm__stat_add(&ctx->stats, ST_RSM_KEPT, 1);
}

static void rsm_orphan_free(tsm_ctx *ctx, struct rsm_orphan *o, tsm_err why)
{
	while (o->q.n)
		rsm_orphan_drop_front(ctx, o, why);
	for (uint32_t i = 0; i < o->npatterns; i++)
		free(o->patterns[i]);
	free(o->patterns);
	free(o->q.e);
	free(o->peer_id);
	free(o);
}

/* A new orphan for s's peer node with s's subscriptions; linked into
 * the context's list when link is set (else tsm__rsm_closed merges it). */
static struct rsm_orphan *rsm_orphan_new(tsm__session *s, bool link)
{
	tsm_ctx *ctx = s->ctx;
	struct tsm__rsm_ctx *c = rsm_ctx(ctx);
	struct rsm_orphan *o = c ? calloc(1, sizeof(*o)) : NULL;
	if (!o)
		return NULL;
	o->node_id = s->peer_node_id;
	o->peer_id = strdup(ctx->insecure ? "" : tsm__sec_peer_id(s));
	o->patterns = calloc(s->npatterns ? s->npatterns : 1, sizeof(char *));
	for (uint32_t i = 0; o->patterns && i < s->npatterns; i++)
		if ((o->patterns[o->npatterns] = strdup(s->patterns[i] + 1)))
			o->npatterns++;
	o->expires = tsm__now() + ctx->p.peer_timeout;
	if (link) {
		o->next = c->orphans;
		c->orphans = o;
	}
	return o;
}

static void rsm_remember_rx(tsm__session *s)
{
	struct tsm__rsm_ctx *c = rsm_ctx(s->ctx);
	struct rsm_rx *x = c ? calloc(1, sizeof(*x)) : NULL;
	if (!x)
		return;
	unsigned kept = 0;
	for (struct rsm_rx **pp = &c->rx; *pp;) {
		struct rsm_rx *o = *pp;
		/* Newest first: beyond RSM_RX_KEEP - 1 older ones, forget. */
		if (o->node_id == s->peer_node_id &&
		    (o->session_id == s->session_id || ++kept >= RSM_RX_KEEP)) {
			*pp = o->next;
			free(o);
			continue;
		}
		pp = &o->next;
	}
	x->node_id = s->peer_node_id;
	x->session_id = s->session_id;
	for (unsigned i = 0; i < TSM_WIRE_LANES; i++)
		x->rx_seq[i] = s->lanes[i].rx_seq;
	x->expires = tsm__now() + s->ctx->p.peer_timeout;
	x->next = c->rx;
	c->rx = x;
}

/* Anything but a close either side asked for: a loss, a broken stream
 * (AEAD failure, a protocol error after a corrupted byte), a timeout.
 * After a CLOSE the peer has read everything before it (one ordered
 * stream), so nothing needs keeping then. */
static bool rsm_is_loss(tsm_err reason)
{
	return reason != TSM_OK && reason != TSM_ECLOSED;
}

/* Another session with s's peer node is open: s was replaced. */
static bool rsm_node_other(const tsm__session *s)
{
	for (const tsm__session *x = s->ctx->sessions; x; x = x->next)
		if (x != s && x->peer_node_id == s->peer_node_id &&
		    x->state != SS_CLOSED)
			return true;
	return false;
}

/* (resume.h) Without it, a message published between the peer's CLOSE
 * on the replaced session and the replacement coming up here found no
 * session and no orphan: lost (test_auto_efa moves_to_efa, about one run
 * in thirty, when the replacement's handshake is slower than the CLOSE). */
void tsm__rsm_peer_closing(tsm__session *s)
{
	bool coming = false;
	if (!s->peer_node_id || atomic_load(&s->ctx->stopping) ||
	    rsm_orphan_find(s->ctx, s->peer_node_id))
		return;
	for (const tsm__session *x = s->ctx->sessions; x; x = x->next) {
		if (x == s || x->peer_node_id != s->peer_node_id ||
		    x->state == SS_CLOSED)
			continue;
		if (tsm__session_up(x) && !x->retiring)
			return; /* it routes for the node already */
		if (x->state < SS_ESTABLISHED)
			coming = true; /* its preface named the node: on its way */
	}
	if (coming)
		(void)rsm_orphan_new(s, true); /* no memory: not routed, as before */
}

void tsm__rsm_closing(tsm__session *s, tsm_err reason)
{
	struct tsm__rsm_sess *r = s->rsm;
	s->rsm_orphan = NULL;
	if (!tsm__session_up(s) && !s->retiring && s->state != SS_DRAINING)
		return; /* never established: nothing was sent or read */
	if (!s->peer_node_id || atomic_load(&s->ctx->stopping))
		return;
	/* How far we read is remembered whatever the reason: the peer may
	 * see this close as a loss even when we do not (it decides alone
	 * whether to keep messages for us, and RESUME must then say exactly
	 * what we have, or it would send them twice). */
	rsm_remember_rx(s);
	for (tsm__session *y = s->ctx->sessions; y; y = y->next)
		if (y != s && y->peer_node_id == s->peer_node_id &&
		    tsm__session_up(y) && y->rsm && y->rsm->resume_sent)
			rsm_send_resume(y); /* the peer learns what we read on s */
	/* An orderly close is not always the end of reading: when two
	 * sessions with one node cross and one retires, the peer may say
	 * CLOSE (after ACKing what it had read) and then find our last
	 * frames broken; it cannot say so on this session any more, only in
	 * its RESUME on the other one. So what is not ACKed is kept while
	 * another session with the node is open; a peer that leaves has read
	 * everything before its CLOSE (one ordered stream). */
	if (!rsm_is_loss(reason) && !rsm_node_other(s))
		return;
	/* This session's messages are older than anything already waiting
	 * for the node: they gather apart and tsm__rsm_closed puts them in
	 * front, once the queues are purged into them too. */
	struct rsm_orphan *o = rsm_orphan_new(s, false);
	if (!o)
		return;
	s->rsm_orphan = o;
	for (unsigned l = 0; r && l < TSM_WIRE_LANES; l++) {
		struct rsm_ent *e;
		while ((e = fifo_front(&r->unacked[l]))) {
			r->unacked_bytes -= e->m->len;
			rsm_orphan_add(s->ctx, o, *e); /* the reference moves */
			fifo_pop(&r->unacked[l]);
		}
	}
	if (rsm_is_loss(reason))
		tsm__stat_add(&s->ctx->stats, ST_RSM_ORPHANED, 1);
}

bool tsm__rsm_keep(tsm__session *s, tsm__omsg *m)
{
	struct rsm_orphan *o = s->rsm_orphan;
	if (!o || m->reliability != TSM_RELIABLE)
		return false;
	rsm_orphan_add(s->ctx, o,
	               (struct rsm_ent){0, UINT64_MAX, m->prio, tsm__omsg_ref(m)});
	return true;
}

bool tsm__rsm_defer_partial(tsm__session *s, const tsm_msg *m)
{
	tsm_ctx *ctx = s->ctx;
	struct tsm__rsm_ctx *c;
	if (!rsm_is_loss(s->close_reason) || !s->peer_node_id ||
	    atomic_load(&ctx->stopping) || !m->topic || !(c = rsm_ctx(ctx)))
		return false;
	struct rsm_partial *p = calloc(1, sizeof(*p));
	if (!p)
		return false;
	*p = (struct rsm_partial){s->peer_node_id, m->id, tsm__topic_ref(m->topic),
	                          m->prio, tsm__now() + ctx->p.peer_timeout,
	                          c->partials};
	c->partials = p;
	return true;
}

void tsm__rsm_session_free(tsm__session *s)
{
	struct tsm__rsm_sess *r = s->rsm;
	if (!r)
		return;
	rsm_seen_release(s);
	for (unsigned l = 0; l < TSM_WIRE_LANES; l++) {
		struct rsm_ent *e;
		while ((e = fifo_front(&r->unacked[l]))) {
			tsm__omsg_unref(e->m);
			fifo_pop(&r->unacked[l]);
		}
		free(r->unacked[l].e);
	}
	free(r);
	s->rsm = NULL;
}

/* ---- return ------------------------------------------------------------- */

/* RESUME: one record (a zero session id when there is none), at most
 * RSM_RX_KEEP: session id, then how far each lane was read. Sent when a
 * session comes up and again whenever another session with the same
 * node ends here, so the peer always knows what we read on it. */
static void rsm_send_resume(tsm__session *s)
{
	uint8_t seqs[RSM_RX_KEEP * RSM_RX_REC] = {0};
	unsigned n = 0;
	struct tsm__rsm_ctx *c = s->ctx->rsm;
	for (struct rsm_rx *x = c ? c->rx : NULL; x && n < RSM_RX_KEEP;
	     x = x->next) {
		if (x->node_id != s->peer_node_id)
			continue;
		uint8_t *p = seqs + RSM_RX_REC * n++;
		tsm__st64(p, x->session_id);
		for (unsigned i = 0; i < TSM_WIRE_LANES; i++)
			tsm__st64(p + 8 + 8 * i, x->rx_seq[i]);
	}
	tsm__ctrl r = {.type = TSM_C_RESUME, .value = n ? n : 1, .str = seqs,
	               .str_len = (uint16_t)(RSM_RX_REC * (n ? n : 1))};
	struct tsm__rsm_sess *st = rsm_sess(s);
	if (tsm__session_send_ctrl(s, &r) == TSM_OK && st)
		st->resume_sent = true;
}

void tsm__rsm_session_up(tsm__session *s)
{
	/* Read positions are kept until they expire: a RESUME can be lost
	 * with its session, and the next one must be able to say it again. */
	rsm_partials_end(s->ctx, s->peer_node_id, true, 0); /* it resends */
	/* New reliable messages for this node wait in its orphan, behind the
	 * ones kept, until the peer's RESUME says what it has read; so they
	 * do too while an older session with the node is still open here
	 * (the peer may have ended it: its RESUME says so). */
	s->rsm_hold = rsm_orphan_find(s->ctx, s->peer_node_id) != NULL ||
	              (rsm_node_other(s) && rsm_orphan_new(s, true) != NULL);
	/* Always sent: the peer may hold an orphan for us and waits for it. */
	rsm_send_resume(s);
}

/* The policy may have changed while the peer was away: ask it again. */
static bool rsm_granted(tsm_ctx *ctx, tsm__session *s, const tsm__omsg *m)
{
	if (ctx->insecure)
		return true;
	tsm__grant g = tsm__policy_check(ctx->policy, tsm__sec_peer_id(s),
	                                 TSM_ACT_SUBSCRIBE, m->topic->name);
	return g.allowed && m->prio >= g.max_priority && m->len <= g.max_bytes;
}

/* Was e read by the peer, by the RESUME's records? */
static bool rsm_was_read(const struct rsm_ent *e, const uint8_t *recs,
                         size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = recs + RSM_RX_REC * i;
		uint64_t id = tsm__le64(p);
		if (id && id == e->session_id && e->lane < TSM_WIRE_LANES)
			return e->seq < tsm__le64(p + 8 + 8 * e->lane);
	}
	return false;
}

/* Sends s what o kept that the peer has not read (by its RESUME
 * records), in order; frees o. */
static void rsm_replay(tsm__session *s, struct rsm_orphan *o,
                       const uint8_t *recs, size_t nrecs)
{
	tsm_ctx *ctx = s->ctx;
	for (struct rsm_orphan **pp = &ctx->rsm->orphans; *pp; pp = &(*pp)->next)
		if (*pp == o) {
			*pp = o->next;
			break;
		}
	uint64_t replayed = 0, skipped = 0;
	tsm_time now = tsm__now();
	struct rsm_ent *e;
	while ((e = fifo_front(&o->q))) {
		o->bytes -= e->m->len;
		if (rsm_was_read(e, recs, nrecs))
			skipped++; /* the peer has it: done */
		else if (!rsm_granted(ctx, s, e->m))
			tsm__drop_omsg(ctx, e->m, TSM_ERR_AUTHZ_DENIED, TSM_AT_ROUTE);
		else if (e->m->deadline <= now)
			tsm__drop_omsg(ctx, e->m, TSM_ERR_DEADLINE_EXPIRED,
			               TSM_AT_SEND_QUEUE);
		else {
			tsm__log(ctx, TSM_LOG_DEBUG, "resume: replay id %llu (from session "
			         "%016llx seq %llu lane %u) on %016llx",
			         (unsigned long long)e->m->id,
			         (unsigned long long)e->session_id,
			         (unsigned long long)e->seq, e->lane,
			         (unsigned long long)s->session_id);
			tsm__session_enqueue(s, e->m);
			replayed++;
		}
		tsm__omsg_unref(e->m);
		fifo_pop(&o->q);
	}
	tsm__stat_add(&ctx->stats, ST_RSM_REPLAYED, replayed);
	tsm__log(ctx, TSM_LOG_INFO, "session %s (%s) resumed: %llu message(s) "
	         "sent again, %llu already read", s->peer_addr, s->peer_name,
	         (unsigned long long)replayed, (unsigned long long)skipped);
	rsm_orphan_free(ctx, o, TSM_ERR_PEER_LOST);
	tsm__session_pump(s);
}

/* Was session id one the peer says it has ended (in its RESUME)? */
static bool rsm_listed(uint64_t id, const uint8_t *recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (id && tsm__le64(recs + RSM_RX_REC * i) == id)
			return true;
	return false;
}

/* The node's session that has the peer's RESUME and may carry more. */
static tsm__session *rsm_resumed(tsm_ctx *ctx, uint64_t node, tsm__session *not)
{
	for (tsm__session *x = ctx->sessions; x; x = x->next)
		if (x != not && x->peer_node_id == node && tsm__session_up(x) &&
		    !x->retiring && x->rsm && x->rsm->resume_seen)
			return x;
	return NULL;
}

void tsm__rsm_closed(tsm__session *s)
{
	tsm_ctx *ctx = s->ctx;
	struct rsm_orphan *o = s->rsm_orphan, *old;
	if (!o)
		return;
	s->rsm_orphan = NULL;
	if (!o->q.n && !rsm_is_loss(s->close_reason)) {
		rsm_orphan_free(ctx, o, TSM_ERR_PEER_LOST); /* all read: empty */
		return;
	}
	if ((old = rsm_orphan_find(ctx, o->node_id))) {
		/* older first: this session's, then what already waited */
		struct rsm_ent *e;
		while ((e = fifo_front(&old->q))) {
			if (!fifo_push(&o->q, *e)) {
				tsm__drop_omsg(ctx, e->m, TSM_ERR_PEER_LOST, TSM_AT_SEND_QUEUE);
				tsm__omsg_unref(e->m);
			} else {
				o->bytes += e->m->len;
			}
			old->bytes -= e->m->len;
			fifo_pop(&old->q);
		}
		struct rsm_fifo t = old->q;
		old->q = o->q;
		o->q = t;
		old->bytes = o->bytes;
		o->bytes = 0;
		old->expires = tsm__now() + ctx->p.peer_timeout;
		rsm_orphan_free(ctx, o, TSM_ERR_PEER_LOST); /* now empty */
		o = old;
	} else {
		o->next = ctx->rsm->orphans;
		ctx->rsm->orphans = o;
	}
	tsm__log(ctx, TSM_LOG_INFO, "session %s (%s) %s: %u reliable "
	         "message(s) kept for its return", s->peer_addr, s->peer_name,
	         rsm_is_loss(s->close_reason) ? "lost" : "replaced", o->q.n);
	/* The node is already back on another session that has resumed:
	 * send them there now (they may follow newer ones; rare). */
	tsm__session *x = rsm_resumed(ctx, o->node_id, s);
	if (x && rsm_listed(s->session_id, x->rsm->recs, x->rsm->nrecs))
		rsm_replay(x, o, x->rsm->recs, x->rsm->nrecs);
	else if (x)
		x->rsm_hold = true; /* until the peer's next RESUME names s */
}

tsm_err tsm__rsm_on_resume(tsm__session *s, uint64_t count,
                           const uint8_t *seqs, size_t len)
{
	tsm_ctx *ctx = s->ctx;
	struct tsm__rsm_sess *r = rsm_sess(s);
	if (count < 1 || count > RSM_RX_KEEP || len != RSM_RX_REC * count)
		return tsm__err_set(TSM_ERR_BAD_LENGTH, "RESUME: %llu record(s) in "
		                    "%zu bytes (1..%d of %d bytes)",
		                    (unsigned long long)count, len, RSM_RX_KEEP,
		                    RSM_RX_REC);
	if (!r)
		return tsm__err_set(TSM_ENOMEM, "RESUME state");
	/* Each RESUME is the peer's whole, newest view: it replaces the last */
	memcpy(r->recs, seqs, len);
	r->nrecs = (unsigned)count;
	/* Sessions the peer lists have ended on its side, whatever ours
	 * think: end them as lost, so what they carried waits, in front. */
	for (tsm__session *x = ctx->sessions; x; x = x->next)
		if (x != s && x->peer_node_id == s->peer_node_id &&
		    x->state != SS_CLOSED && rsm_listed(x->session_id, seqs, count))
			tsm__session_close(x, TSM_ERR_PEER_LOST);
	r->resume_seen = true;
	s->rsm_hold = false;
	struct rsm_orphan *o = rsm_orphan_find(ctx, s->peer_node_id);
	/* A retiring session (another one with the node won) does not take
	 * the kept messages: the winner does, with its own RESUME. */
	if (o && !s->retiring)
		rsm_replay(s, o, seqs, (size_t)count);
	return TSM_OK;
}

/* ---- context ------------------------------------------------------------ */

static bool rsm_wants(const struct rsm_orphan *o, const tsm__topic *t)
{
	for (uint32_t i = 0; i < o->npatterns; i++)
		if (tsm__topic_match(o->patterns[i], strlen(o->patterns[i]), t->name,
		                     t->len))
			return true;
	return false;
}

/* m is already the newest entry of o (a held session took it). */
static bool rsm_has_last(const struct rsm_orphan *o, const tsm__omsg *m)
{
	return o->q.n && o->q.e[(o->q.head + o->q.n - 1) % o->q.cap].m == m;
}

bool tsm__rsm_hold_msg(tsm__session *s, tsm__omsg *m)
{
	struct rsm_orphan *o = rsm_orphan_find(s->ctx, s->peer_node_id);
	if (!o && !(o = rsm_orphan_new(s, true)))
		return false;
	if (!rsm_has_last(o, m))
		rsm_orphan_add(s->ctx, o, (struct rsm_ent){0, UINT64_MAX, m->prio,
		                                           tsm__omsg_ref(m)});
	return true;
}

unsigned tsm__rsm_route(tsm_ctx *ctx, tsm__omsg *m)
{
	unsigned n = 0;
	if (!ctx->rsm || m->reliability != TSM_RELIABLE)
		return 0;
	/* An orphan exists while its node is away, or back but not yet
	 * resumed (its new session holds reliable messages: rsm_hold). */
	for (struct rsm_orphan *o = ctx->rsm->orphans; o; o = o->next) {
		if (rsm_has_last(o, m)) {
			n++; /* a held session of the node already put it here */
			continue;
		}
		if (!rsm_wants(o, m->topic))
			continue;
		if (!ctx->insecure) {
			tsm__grant g = tsm__policy_check(ctx->policy, o->peer_id,
			                                 TSM_ACT_SUBSCRIBE, m->topic->name);
			if (!g.allowed || m->prio < g.max_priority || m->len > g.max_bytes)
				continue;
		}
		rsm_orphan_add(ctx, o, (struct rsm_ent){0, UINT64_MAX, m->prio,
		                                        tsm__omsg_ref(m)});
		n++;
	}
	return n;
}

tsm_time tsm__rsm_ctx_tick(tsm_ctx *ctx, tsm_time now)
{
	struct tsm__rsm_ctx *c = ctx->rsm;
	tsm_time next = TSM_NEVER;
	if (!c)
		return next;
	for (struct rsm_orphan **pp = &c->orphans; *pp;) {
		struct rsm_orphan *o = *pp;
		if (now >= o->expires) {
			*pp = o->next;
			for (tsm__session *x = ctx->sessions; x; x = x->next)
				if (x->peer_node_id == o->node_id)
					x->rsm_hold = false; /* no RESUME came: go on */
			tsm__log(ctx, TSM_LOG_INFO, "peer node %016llx did not come back: "
			         "%u kept message(s) lost", (unsigned long long)o->node_id,
			         o->q.n);
			rsm_orphan_free(ctx, o, TSM_ERR_PEER_LOST);
			continue;
		}
		next = TSM_MIN(next, o->expires);
		pp = &o->next;
	}
	rsm_partials_end(ctx, 0, false, now);
	for (struct rsm_partial *p = c->partials; p; p = p->next)
		next = TSM_MIN(next, p->expires);
	for (struct rsm_rx **pp = &c->rx; *pp;) {
		struct rsm_rx *x = *pp;
		if (now >= x->expires) {
			*pp = x->next;
			free(x);
			continue;
		}
		next = TSM_MIN(next, x->expires);
		pp = &x->next;
	}
	for (struct rsm_seen **pp = &c->seen; *pp;) {
		struct rsm_seen *w = *pp;
		if (!w->refs && now >= w->expires) {
			*pp = w->next;
			free(w);
			continue;
		}
		if (!w->refs)
			next = TSM_MIN(next, w->expires);
		pp = &w->next;
	}
	return next;
}

void tsm__rsm_ctx_free(tsm_ctx *ctx)
{
	struct tsm__rsm_ctx *c = ctx->rsm;
	if (!c)
		return;
	while (c->orphans) {
		struct rsm_orphan *o = c->orphans;
		c->orphans = o->next;
		rsm_orphan_free(ctx, o, TSM_ERR_PEER_LOST);
	}
	while (c->rx) {
		struct rsm_rx *x = c->rx;
		c->rx = x->next;
		free(x);
	}
	for (tsm__session *x = ctx->sessions; x; x = x->next)
		if (x->rsm)
			x->rsm->seen = NULL; /* one that outlived teardown */
	while (c->seen) {
		struct rsm_seen *w = c->seen;
		c->seen = w->next;
		free(w);
	}
	rsm_partials_end(ctx, 0, false, TSM_NEVER); /* all of them, lost */
	free(c);
	ctx->rsm = NULL;
}
