/*
 * session/rx.c - from received bytes to delivered messages (docs/wire.md
 * §2, §6, §7).
 *
 * Bytes land in a refcounted 256 KiB block; complete frames are parsed in
 * place. Small payloads are copied into their own allocation; larger ones
 * are handed to subscribers as views into the block (the block lives
 * while any message uses it, and a new block is started). Fragments are
 * copied into one buffer per message and delivered only when the last
 * one has arrived and checked: never a partial message.
 */
#include <stdlib.h>
#include <string.h>

#include "pubsub/topic.h"
#include "core/audit.h"
#include "core/tstats.h"
#include "session/secure.h"
#include "session/resume.h"
#include "session/session.h"
#include "wire/meta.h"

static uint32_t rx_max_body(const tsm__session *s)
{
	/* Before authentication a peer gets only a small budget (§10).
	 * DRAINING comes only after ESTABLISHED and still reads what the
	 * peer sent before our CLOSE (§3): full-size fragments of a retired
	 * session included (issue 9: they were refused, FRAME_TOO_LARGE, and
	 * the message in flight was lost). */
	return tsm__session_up(s) || s->state == SS_DRAINING ? TSM_WIRE_MAX_BODY
	                                                     : TSM_WIRE_PREAUTH_MAX_BODY;
}

static void rx_fail(tsm__session *s, tsm_err e)
{
	/* rate-limited: unauthenticated peers can make as many as they like */
	tsm_time now = tsm__now();
	if (now - s->ctx->badframe_log_at >= TSM_SEC) {
		s->ctx->badframe_log_at = now;
		tsm__log(s->ctx, TSM_LOG_WARN, "session %s: bad frame: %s (%s)",
		         s->peer_addr, tsm_err_name(e), tsm_err_detail());
	}
	tsm__stat_add(&s->ctx->stats, ST_SESS_PROTO_ERR, 1);
	tsm__session_close(s, e);
}

/*
 * Makes room for `need` more bytes after the unparsed tail. An engine
 * whose reads deliver up to conn.rx_hint bytes at once (ofi: a 256 KiB
 * fabric message) splits a read that does not fit the room and queues
 * the rest, which costs one more copy of it: so the room aims at the hint
 * too, by compacting the block when nothing else holds it (moving at most
 * a partial frame) or taking a larger one; a block small messages still
 * point into is kept as long as the frame in progress fits.
 */
static bool rx_make_room(tsm__session *s, size_t need)
{
	size_t tail = s->rx_len - s->rx_off, want = TSM_MAX(need, s->conn.rx_hint);
	size_t room = s->rxb ? s->rxb->cap - s->rx_len : 0;
	bool alone = s->rxb && atomic_load(&s->rxb->refs) == 1;
	if (s->rxb && room >= want && room >= 4096)
		return true;
	if (alone && s->rxb->cap >= tail + want) {
		memmove(s->rxb->data, s->rxb->data + s->rx_off, tail);
	} else if (s->rxb && !alone && room >= need && room >= 4096) {
		return true;
	} else {
		size_t cap = TSM_MAX(TSM_RX_BLOCK, tail + want);
		tsm__buf *b = tsm__buf_new(cap);
		if (!b)
			return false;
		if (tail)
			memcpy(b->data, s->rxb->data + s->rx_off, tail);
		tsm__buf_unref(s->rxb);
		s->rxb = b;
	}
	s->rx_off = 0;
	s->rx_len = tail;
	return true;
}

/* Bytes still missing for the frame at rx_off (at least a header). */
static size_t rx_need(const tsm__session *s)
{
	size_t have = s->rx_len - s->rx_off;
	if (have < TSM_WIRE_HDR_LEN)
		return TSM_WIRE_HDR_LEN - have;
	uint32_t body = tsm__le32(s->rxb->data + s->rx_off + 36);
	size_t want = TSM_WIRE_HDR_LEN + (size_t)TSM_MIN(body, TSM_WIRE_MAX_BODY);
	return want > have ? want - have : 1;
}

void tsm__session_rx_arm(tsm__session *s)
{
	if (s->rx_armed || s->npend || s->predecessor || s->state == SS_CLOSED ||
	    s->conn.closing)
		return;
	if (!rx_make_room(s, s->rxb ? rx_need(s) : TSM_RX_BLOCK))
		return rx_fail(s, tsm__err_set(TSM_ENOMEM, "receive block"));
	s->rx_armed = true;
	s->ctx->io_ops->recv(s->ctx->io, &s->conn, s->rxb->data + s->rx_len,
	                     s->rxb->cap - s->rx_len);
}

/* Frames of a lane arrive in order on a stream: any gap or repeat is an
 * attack or a bug (docs/wire.md §2). Non-DATA frames use lane 0. */
static bool rx_seq_ok(tsm__session *s, const tsm__fhdr *h)
{
	tsm__lane *l = &s->lanes[h->type == TSM_F_DATA ? h->lane : 0];
	if (h->seq == l->rx_seq) {
		l->rx_seq++;
		return true;
	}
	/* An old seq on a stream is a replay; a jump is a gap (injection or
	 * loss the transport should have prevented). */
	tsm_err e = h->seq < l->rx_seq ? TSM_ERR_REPLAY : TSM_ERR_BAD_FIELD;
	tsm__err_set(e, "lane %u: seq %llu, expected %llu", h->lane,
	             (unsigned long long)h->seq, (unsigned long long)l->rx_seq);
	if (e == TSM_ERR_REPLAY)
		tsm__audit(s->ctx, e, tsm__sec_peer_id(s), NULL, "%s", tsm_err_detail());
	rx_fail(s, e);
	return false;
}

/*
 * Sealed fragments after a message's first are decrypted straight into
 * the message being reassembled: the open writes each payload byte where
 * it belongs, instead of in place and then copied (one pass over the
 * payload less). The record header ahead of the payload is decrypted
 * first, in place, and only chooses the destination: the payload must
 * continue the lane's reassembly exactly (same message and topic, the
 * next index, within its length), else it is opened in place as any
 * frame. Nothing there is trusted before the tag is checked, and a bad
 * tag closes the session, which frees the half-built message unseen;
 * tsm__sec_open_split wipes what it wrote either way.
 */
#define RX_PLACE_HEAD (TSM_REC_HDR_LEN + TSM_REC_FRAG_LEN)
#define RX_PLACE_MIN 4096u /* below: the copy costs less than the set-up */

struct rx_place_arg {
	tsm__session *s;
	const tsm__fhdr *h;
};

static uint8_t *rx_place(void *arg, const uint8_t *body, size_t rest)
{
	const struct rx_place_arg *pa = arg;
	tsm__lane *l = &pa->s->lanes[pa->h->lane];
	tsm__rcur c;
	tsm__rec r;
	tsm__rcur_init(&c, body, RX_PLACE_HEAD + rest);
	if (tsm__rec_next(&c, pa->h->flags, TSM_QOS_MAX_MSG, &r) != TSM_OK ||
	    (r.flags & ~TSM_REC_LAST) != TSM_REC_FRAG || r.frag_index == 0 ||
	    r.payload != body + RX_PLACE_HEAD || r.payload_len != rest ||
	    r.msg_id != l->rs_id || r.topic_id != l->rs_topic_id ||
	    r.frag_index != l->rs_next || r.total_len != l->rs_total ||
	    l->rs_got + rest > l->rs_total || !l->rs_msg)
		return NULL;
	return (uint8_t *)l->rs_msg->data + l->rs_got;
}

static bool rx_may_place(const tsm__session *s, const tsm__fhdr *h)
{
	return h->type == TSM_F_DATA && (h->flags & TSM_FF_FRAGMENT) &&
	       (h->flags & TSM_FF_SEALED) && h->lane < TSM_WIRE_LANES &&
	       s->lanes[h->lane].rs_msg &&
	       h->body_len >= RX_PLACE_HEAD + RX_PLACE_MIN + TSM_WIRE_TAG_LEN;
}

/* Checks and opens the frame (secure.c); see rx_place. */
static tsm_err rx_open(tsm__session *s, const uint8_t *raw, tsm__fhdr *h,
                       uint8_t *body)
{
	s->rx_placed = NULL;
	if (!rx_may_place(s, h))
		return tsm__sec_open(s, raw, h, body);
	struct rx_place_arg pa = {.s = s, .h = h};
	tsm_err e = tsm__sec_open_split(s, raw, h, body, RX_PLACE_HEAD, rx_place,
	                                &pa, &s->rx_placed);
	if (!e && s->rx_placed)
		tsm__stat_add(&s->ctx->stats, ST_RX_FRAGS_PLACED, 1);
	return e;
}

static void rx_parse(tsm__session *s)
{
	while (s->rxb && s->state != SS_CLOSED && s->npend == 0 &&
	       !s->close_after_tx && !s->predecessor) {
		size_t have = s->rx_len - s->rx_off;
		if (have < TSM_WIRE_HDR_LEN)
			return; /* the usual end of a read: no error detail to format */
		tsm__fhdr h;
		tsm_err e = tsm__fhdr_decode(s->rxb->data + s->rx_off, have,
		                             rx_max_body(s), &h);
		if (e == TSM_ERR_TRUNCATED)
			return;
		if (e)
			return rx_fail(s, e);
		if (have < TSM_WIRE_HDR_LEN + (size_t)h.body_len)
			return;
		uint8_t *raw = s->rxb->data + s->rx_off;
		uint8_t *body = raw + TSM_WIRE_HDR_LEN;
		s->rx_off += TSM_WIRE_HDR_LEN + h.body_len;
		tsm__stat_add(&s->ctx->stats, ST_RX_FRAMES, 1);
		if ((e = rx_open(s, raw, &h, body)) != TSM_OK) {
			tsm__audit(s->ctx, e, tsm__sec_peer_id(s), NULL, "%s",
			           tsm_err_detail());
			return tsm__session_close(s, e);
		}
		if (tsm__frame_sequenced(h.type) && !rx_seq_ok(s, &h))
			return;
		if (h.type == TSM_F_DATA)
			tsm__rsm_rx_frame(s, h.lane); /* ACKs (resume.c) */
		bool go_on = tsm__session_on_frame(s, &h, body);
		s->rx_placed = NULL;
		if (!go_on)
			return;
	}
}

void tsm__session_on_recv(tsm__session *s, long n, tsm_err err)
{
	s->rx_armed = false;
	if (s->state == SS_CLOSED)
		return;
	if (n <= 0) {
		tsm__log(s->ctx, n == 0 ? TSM_LOG_INFO : TSM_LOG_WARN,
		         "session %s (%s): connection %s", s->peer_addr, s->peer_name,
		         n == 0 ? "closed by peer" : tsm_err_detail());
		return tsm__session_close(s, TSM_ERR_PEER_LOST);
	}
	s->last_rx = tsm__now();
	s->rx_len += (size_t)n;
	tsm__stat_add(&s->ctx->stats, ST_RX_BYTES, (uint64_t)n);
	rx_parse(s);
	tsm__session_rx_arm(s);
}

/* --- delivery ----------------------------------------------------------- */

static void rx_refresh_subs(tsm__session *s, tsm__rtopic *rt)
{
	uint64_t ep = atomic_load(&s->ctx->sub_epoch);
	if (rt->sub_epoch == ep)
		return;
	for (uint32_t i = 0; i < rt->nsubs; i++)
		tsm__sub_unref(rt->subs[i]);
	rt->nsubs = 0;
	pthread_mutex_lock(&s->ctx->mu);
	for (struct tsm_sub *u = s->ctx->subs; u; u = u->next) {
		if (u->closing || !tsm__sub_matches(u, rt->topic))
			continue;
		struct tsm_sub **v = realloc(rt->subs, (rt->nsubs + 1) * sizeof(*v));
		if (!v)
			break;
		rt->subs = v;
		atomic_fetch_add(&u->refs, 1);
		rt->subs[rt->nsubs++] = u;
	}
	pthread_mutex_unlock(&s->ctx->mu);
	rt->sub_epoch = ep;
}

static bool rx_pend(tsm__session *s, struct tsm_sub *sub, tsm_msg *m)
{
	if (s->npend == s->cappend) {
		uint32_t n = s->cappend ? s->cappend * 2 : 64;
		struct tsm__pend *v = realloc(s->pend, n * sizeof(*v));
		if (!v)
			return false;
		s->pend = v;
		s->cappend = n;
	}
	atomic_fetch_add(&sub->refs, 1);
	s->pend[s->npend++] = (struct tsm__pend){sub, m};
	return true;
}

/* Offers m to sub; a full reliable queue parks it (order is kept: once
 * anything is parked, everything after it in this frame is parked too). */
static void rx_offer(tsm__session *s, struct tsm_sub *sub, tsm_msg *m)
{
	if (s->npend == 0 && tsm__sub_push(sub, m, false, 0) != TSM_PUSH_FULL)
		return;
	if (s->npend == 0) {
		tsm__stat_add(&s->ctx->stats, ST_RX_PAUSED, 1);
		atomic_store(&sub->want_space, true);
		s->pend_since = tsm__now();
	}
	if (!rx_pend(s, sub, m)) {
		tsm__drop_msg(s->ctx, m, TSM_ERR_QUEUE_FULL, TSM_AT_SUB_QUEUE);
		tsm_msg_free(m);
	}
}

static tsm_msg *rx_clone(const tsm_msg *m)
{
	tsm_msg *c = malloc(sizeof(*c));
	if (!c)
		return NULL;
	*c = *m;
	if (c->buf)
		tsm__buf_ref(c->buf);
	tsm__topic_ref(c->topic);
	return c;
}

static void rx_deliver(tsm__session *s, tsm__rtopic *rt, tsm_msg *m)
{
	tsm__rsm_rx_done(s, m->id); /* a copy sent again is not delivered */
	tsm__stat_add(&s->ctx->stats, ST_RX_MSGS, 1);
	rx_refresh_subs(s, rt);
	if (m->deadline != TSM_NEVER && tsm__now() >= m->deadline) {
		tsm__drop_msg(s->ctx, m, TSM_ERR_DEADLINE_EXPIRED, TSM_AT_REASSEMBLY);
		tsm_msg_free(m);
		return;
	}
	for (uint32_t i = 0; i < rt->nsubs; i++) {
		tsm_msg *c = i + 1 == rt->nsubs ? m : rx_clone(m);
		if (c)
			rx_offer(s, rt->subs[i], c);
		else
			tsm__drop_msg(s->ctx, m, TSM_ERR_QUEUE_FULL, TSM_AT_SUB_QUEUE);
	}
	if (rt->nsubs == 0)
		tsm_msg_free(m); /* unsubscribed meanwhile: nothing to count */
}

/*
 * A subscriber that keeps its queue full for longer than its block_timeout
 * would hold the whole session (every subscriber of this node behind it):
 * it is marked lagging and its parked messages are dropped and counted;
 * the others go on (design.md §5). Returns the next check time.
 */
tsm_time tsm__session_rx_unpark(tsm__session *s, tsm_time now)
{
	if (s->pend_head >= s->npend)
		return TSM_NEVER;
	struct tsm_sub *u = s->pend[s->pend_head].sub;
	tsm_time until = s->pend_since + u->qos.block_timeout;
	if (now < until)
		return until;
	pthread_mutex_lock(&u->mu);
	u->lagging = true;
	pthread_mutex_unlock(&u->mu);
	tsm__log(s->ctx, TSM_LOG_WARN, "subscriber '%s' full for %lld ms: it lags, "
	         "its overflow is dropped", u->pattern,
	         (long long)(u->qos.block_timeout / TSM_MSEC));
	tsm__session_rx_resume(s);
	return TSM_NEVER;
}

bool tsm__session_rx_resume(tsm__session *s)
{
	while (s->pend_head < s->npend) {
		struct tsm__pend *p = &s->pend[s->pend_head];
		if (tsm__sub_push(p->sub, p->msg, false, 0) == TSM_PUSH_FULL) {
			atomic_store(&p->sub->want_space, true);
			/* Re-check: the reader may have freed a slot meanwhile. */
			if (tsm__sub_push(p->sub, p->msg, false, 0) == TSM_PUSH_FULL)
				return false;
		}
		tsm__sub_unref(p->sub);
		s->pend_head++;
		s->pend_since = tsm__now(); /* progress: the reader is not stalled */
	}
	s->npend = s->pend_head = 0;
	rx_parse(s);
	tsm__session_rx_arm(s);
	return true;
}

/* --- records ------------------------------------------------------------ */

static tsm_time rx_deadline(tsm_time now, uint32_t budget_us)
{
	/* §6: the budget is relative; it becomes our own monotonic time. */
	return budget_us ? now + (tsm_time)budget_us * TSM_USEC : TSM_NEVER;
}

/* §9: only the user map ("u") is shown to the application; the map is
 * checked before msgpack-c sees it. */
static tsm_err rx_meta(tsm_msg *m, const uint8_t *raw, size_t len)
{
	tsm__meta md;
	m->meta = NULL;
	m->meta_len = 0;
	if (!len)
		return TSM_OK;
	tsm_err e = tsm__meta_decode(raw, len, &md);
	if (e)
		return e;
	m->meta = md.user;
	m->meta_len = md.user_len;
	m->sent_at = md.has_ts ? md.ts : 0;
	return TSM_OK;
}

static void rx_stamp(tsm_msg *m, const tsm__rec *r, tsm_time now)
{
	m->arrived = now;
	if (r->flags & TSM_REC_TS)
		m->sent_at = (tsm_time)r->ts;
}

static tsm_msg *rx_whole(tsm__session *s, tsm__rtopic *rt, const tsm__rec *r,
                         tsm_time now)
{
	tsm__buf *b;
	const uint8_t *data;
	size_t extra = r->meta_len;
	if (r->payload_len <= TSM_INLINE_MAX) {
		if (!(b = tsm__buf_new(r->payload_len + extra + 1)))
			return NULL;
		memcpy(b->data, r->payload, r->payload_len);
		memcpy(b->data + r->payload_len, r->meta, extra);
		data = b->data;
	} else {
		b = tsm__buf_ref(s->rxb);
		data = r->payload;
	}
	tsm_msg *m = tsm__msg_new(b, rt->topic, data, r->payload_len);
	if (!m) {
		tsm__buf_unref(b);
		return NULL;
	}
	m->id = r->msg_id;
	m->prio = 0; /* set by the caller */
	if (rx_meta(m, data == r->payload ? r->meta : b->data + r->payload_len,
	            r->meta_len) != TSM_OK) {
		tsm__drop_msg(s->ctx, m, TSM_ERR_BAD_METADATA, TSM_AT_REASSEMBLY);
		tsm_msg_free(m);
		return NULL;
	}
	rx_stamp(m, r, now);
	m->deadline = rx_deadline(now, r->budget_us);
	return m;
}

/* Gives back the reassembly budget a message charged (see rx_frag_start). */
static void rx_rs_uncharge(tsm__session *s, tsm__lane *l)
{
	atomic_fetch_sub(&s->ctx->reasm_used, l->rs_charged);
	l->rs_charged = 0;
}

static void rx_rs_reset(tsm__session *s, tsm__lane *l)
{
	rx_rs_uncharge(s, l);
	tsm_msg_free(l->rs_msg);
	l->rs_msg = NULL;
	l->rs_got = l->rs_total = 0;
	l->rs_next = 0;
	l->rs_discard = false;
}

static tsm_err rx_frag_start(tsm__session *s, tsm__lane *l, tsm__rtopic *rt,
                             const tsm__rec *r, tsm_time now)
{
	if (l->rs_msg || l->rs_discard)
		return tsm__err_set(TSM_ERR_BAD_FRAGMENT, "new message %llu before the "
		                    "last fragment of %llu", (unsigned long long)r->msg_id,
		                    (unsigned long long)l->rs_id);
	l->rs_id = r->msg_id;
	l->rs_topic_id = r->topic_id;
	l->rs_total = r->total_len;
	l->rs_got = 0;
	l->rs_next = 0;
	tsm_time dl = rx_deadline(now, r->budget_us);
	if (tsm__rsm_rx_dup(s, r->msg_id)) {
		l->rs_discard = true; /* sent again after a loss, delivered before */
		return TSM_OK;
	}
	if (dl != TSM_NEVER && now >= dl) {
		tsm__rsm_rx_done(s, r->msg_id); /* its outcome is told once */
		l->rs_discard = true; /* expired in flight: skip the rest */
		tsm__stat_add(&s->ctx->stats, ST_DROP_DEADLINE, 1);
		tsm__outcome(s->ctx, rt->topic, (uint8_t)(l - s->lanes), r->msg_id,
		             TSM_ERR_DEADLINE_EXPIRED, TSM_AT_REASSEMBLY);
		return TSM_OK;
	}
	/* M1: what partial messages may hold is bounded per context. */
	uint64_t used = atomic_fetch_add(&s->ctx->reasm_used, r->total_len);
	l->rs_charged = r->total_len;
	if (used + r->total_len > s->ctx->p.reassembly_bytes) {
		tsm__rsm_rx_done(s, r->msg_id);
		rx_rs_uncharge(s, l);
		l->rs_discard = true;
		tsm__stat_add(&s->ctx->stats, ST_DROP_QUEUE_FULL, 1);
		tsm__outcome(s->ctx, rt->topic, (uint8_t)(l - s->lanes), r->msg_id,
		             TSM_ERR_QUEUE_FULL, TSM_AT_REASSEMBLY);
		return TSM_OK;
	}
	tsm__buf *b = tsm__buf_new(r->total_len + r->meta_len + 1);
	if (!b || !(l->rs_msg = tsm__msg_new(b, rt->topic, b->data, r->total_len))) {
		tsm__buf_unref(b);
		return tsm__err_set(TSM_ENOMEM, "reassembly of %llu bytes",
		                    (unsigned long long)r->total_len);
	}
	memcpy(b->data + r->total_len, r->meta, r->meta_len);
	l->rs_msg->id = r->msg_id;
	l->rs_msg->prio = (uint8_t)(l - s->lanes);
	if (rx_meta(l->rs_msg, b->data + r->total_len, r->meta_len) != TSM_OK) {
		tsm__drop_msg(s->ctx, l->rs_msg, TSM_ERR_BAD_METADATA, TSM_AT_REASSEMBLY);
		tsm_msg_free(l->rs_msg);
		l->rs_msg = NULL;
		rx_rs_uncharge(s, l);
		l->rs_discard = true;
		return TSM_OK;
	}
	l->rs_msg->deadline = dl;
	rx_stamp(l->rs_msg, r, now);
	return TSM_OK;
}

/* Starts discarding a fragmented message that will not be delivered. */
static tsm_err rx_frag_skip(tsm__session *s, tsm__lane *l, const tsm__rec *r)
{
	if (l->rs_msg || l->rs_discard)
		return tsm__err_set(TSM_ERR_BAD_FRAGMENT, "new message before the last "
		                    "fragment of the previous one");
	(void)s;
	l->rs_id = r->msg_id;
	l->rs_topic_id = r->topic_id;
	l->rs_total = r->total_len;
	l->rs_got = r->payload_len;
	l->rs_next = 1;
	l->rs_discard = !(r->flags & TSM_REC_LAST);
	return TSM_OK;
}

static tsm_err rx_frag(tsm__session *s, tsm__lane *l, tsm__rtopic *rt,
                       const tsm__rec *r, tsm_time now)
{
	tsm_err e;
	if (r->frag_index == 0 && (e = rx_frag_start(s, l, rt, r, now)))
		return e;
	bool active = l->rs_msg || l->rs_discard;
	if (!active || r->msg_id != l->rs_id || r->topic_id != l->rs_topic_id ||
	    r->frag_index != l->rs_next || r->total_len != l->rs_total ||
	    l->rs_got + r->payload_len > l->rs_total)
		return tsm__err_set(TSM_ERR_BAD_FRAGMENT, "fragment %u of message %llu "
		                    "out of order or inconsistent", r->frag_index,
		                    (unsigned long long)r->msg_id);
	if (r->flags & TSM_REC_ABORT) { /* §7.1: expired at the sender */
		if (l->rs_msg)
			tsm__drop_msg(s->ctx, l->rs_msg, TSM_ERR_DEADLINE_EXPIRED,
			              TSM_AT_SEND_QUEUE);
		rx_rs_reset(s, l);
		return TSM_OK;
	}
	bool last = r->flags & TSM_REC_LAST;
	if (last != (l->rs_got + r->payload_len == l->rs_total))
		return tsm__err_set(TSM_ERR_BAD_FRAGMENT, "message %llu: LAST flag does "
		                    "not match its length", (unsigned long long)r->msg_id);
	if (l->rs_msg) {
		uint8_t *dst = (uint8_t *)l->rs_msg->data + l->rs_got;
		if (dst != s->rx_placed) /* else rx_open decrypted it there */
			memcpy(dst, r->payload, r->payload_len);
	}
	l->rs_got += r->payload_len;
	l->rs_next++;
	if (!last)
		return TSM_OK;
	tsm_msg *m = l->rs_msg; /* complete: the application's from now on */
	l->rs_msg = NULL;
	rx_rs_reset(s, l);
	if (m) {
		m->prio = (uint8_t)(l - s->lanes);
		rx_deliver(s, rt, m);
	}
	return TSM_OK;
}

/* security.md "Authorisation": data is accepted only from identities that
 * may publish the topic, within the grant's priority and size caps. */
static tsm_err rx_granted(tsm__session *s, tsm__rtopic *rt, const tsm__fhdr *h,
                          const tsm__rec *r)
{
	if (!s->sec)
		return TSM_OK;
	if (rt->grant_epoch != s->ctx->sec_epoch + 1) {
		rt->grant = tsm__policy_check(s->ctx->policy, tsm__sec_peer_id(s),
		                              TSM_ACT_PUBLISH, rt->topic->name);
		rt->grant_epoch = s->ctx->sec_epoch + 1;
	}
	uint64_t size = (r->flags & TSM_REC_FRAG) ? r->total_len : r->payload_len;
	tsm_err e = !rt->grant.allowed                   ? TSM_ERR_AUTHZ_DENIED
	            : h->lane < rt->grant.max_priority   ? TSM_ERR_PRIORITY_CAP
	            : size > rt->grant.max_bytes          ? TSM_ERR_MSG_TOO_LARGE
	                                                  : TSM_OK;
	if (e) {
		tsm__audit(s->ctx, e, tsm__sec_peer_id(s), rt->topic->name,
		           "message %llu dropped", (unsigned long long)r->msg_id);
		tsm__outcome(s->ctx, rt->topic, h->lane, r->msg_id, e, TSM_AT_REASSEMBLY);
	}
	return e;
}

static tsm_err rx_record(tsm__session *s, const tsm__fhdr *h, const tsm__rec *r,
                         tsm_time now)
{
	if (r->topic_id >= s->nrtopics || !s->rtopics[r->topic_id].topic) {
		tsm__stat_add(&s->ctx->stats, ST_DROP_UNKNOWN_TOPIC, 1);
		return tsm__err_set(TSM_ERR_UNKNOWN_TOPIC, "topic id %u never declared",
		                    r->topic_id);
	}
	tsm__rtopic *rt = &s->rtopics[r->topic_id];
	/* A refused fragment of a message is skipped like an expired one. */
	if ((!(r->flags & TSM_REC_FRAG) || r->frag_index == 0) &&
	    rx_granted(s, rt, h, r) != TSM_OK) {
		if (r->flags & TSM_REC_FRAG)
			return rx_frag_skip(s, &s->lanes[h->lane], r);
		return TSM_OK;
	}
	if (r->flags & TSM_REC_FRAG)
		return rx_frag(s, &s->lanes[h->lane], rt, r, now);
	if (tsm__rsm_rx_dup(s, r->msg_id))
		return TSM_OK; /* sent again after a loss, delivered before */
	tsm_msg *m = rx_whole(s, rt, r, now);
	if (!m)
		return TSM_OK; /* counted: bad metadata or out of memory */
	m->prio = h->lane;
	rx_deliver(s, rt, m);
	return TSM_OK;
}

void tsm__session_rx_data(tsm__session *s, const tsm__fhdr *h,
                          const uint8_t *body)
{
	if (h->body_len == 0)
		return rx_fail(s, tsm__err_set(TSM_ERR_BAD_LENGTH, "empty DATA frame"));
	tsm__rcur c;
	tsm__rcur_init(&c, body, h->body_len);
	tsm_time now = tsm__now();
	while (c.left) {
		tsm__rec r;
		tsm_err e = tsm__rec_next(&c, h->flags, TSM_QOS_MAX_MSG, &r);
		if (!e)
			e = rx_record(s, h, &r, now);
		if (e)
			return rx_fail(s, e);
	}
}

/* Reassemblies whose deadline passed are dropped even when no further
 * fragment comes (design.md §5: every queue); returns the next check. */
tsm_time tsm__session_rx_expire(tsm__session *s, tsm_time now)
{
	tsm_time next = TSM_NEVER;
	for (unsigned i = 0; i < TSM_WIRE_LANES; i++) {
		tsm__lane *l = &s->lanes[i];
		if (!l->rs_msg || l->rs_msg->deadline == TSM_NEVER)
			continue;
		if (now < l->rs_msg->deadline) {
			next = TSM_MIN(next, l->rs_msg->deadline);
			continue;
		}
		tsm__drop_msg(s->ctx, l->rs_msg, TSM_ERR_DEADLINE_EXPIRED,
		              TSM_AT_REASSEMBLY);
		tsm_msg_free(l->rs_msg);
		l->rs_msg = NULL;
		rx_rs_uncharge(s, l);
		l->rs_discard = true; /* its remaining fragments are skipped */
	}
	return next;
}

void tsm__session_rx_free(tsm__session *s)
{
	for (uint32_t i = s->pend_head; i < s->npend; i++) {
		tsm__drop_msg(s->ctx, s->pend[i].msg, TSM_ERR_PEER_LOST, TSM_AT_SUB_QUEUE);
		tsm_msg_free(s->pend[i].msg);
		tsm__sub_unref(s->pend[i].sub);
	}
	free(s->pend);
	s->pend = NULL;
	s->npend = s->pend_head = 0;
	for (unsigned i = 0; i < TSM_WIRE_LANES; i++) {
		/* A message whose sender's session ended mid-fragments (a peer
		 * killed, a connection cut) is never delivered; it is a loss
		 * like any other, so it is counted (issue 9). */
		if (s->lanes[i].rs_msg &&
		    !tsm__rsm_defer_partial(s, s->lanes[i].rs_msg))
			tsm__drop_msg(s->ctx, s->lanes[i].rs_msg, TSM_ERR_PEER_LOST,
			              TSM_AT_REASSEMBLY);
		rx_rs_reset(s, &s->lanes[i]);
	}
	tsm__buf_unref(s->rxb);
	s->rxb = NULL;
}
