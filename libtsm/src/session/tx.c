/*
 * session/tx.c - lanes to sends (design.md §5, docs/wire.md §6-§7).
 *
 * One send is in flight per connection. Each send is built from: queued
 * control frames first, then frames picked by strict priority between
 * lanes. Small messages of a lane are batched into one DATA frame (their
 * bytes copied next to the record headers, so one iovec covers many);
 * large ones go out one fragment per frame, payload by iovec straight
 * from the publisher's copy. After every frame the most urgent lane is
 * chosen again, so an urgent message waits behind at most one fragment
 * that is already being framed.
 */
#include <linux/sockios.h> /* SIOCOUTQNSD */
#include <linux/tcp.h>     /* struct tcp_info with the delivery rate */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "core/tstats.h"
#include "pubsub/topic.h"
#include "session/secure.h"
#include "session/resume.h"
#include "session/session.h"

struct txb {            /* one send being built */
	tsm__session *s;
	size_t sc;          /* scratch bytes used */
	size_t total;       /* bytes in the iovecs */
	size_t cap;         /* bytes this send may carry (kernel budget) */
	bool kq;            /* cap is the kernel budget's room */
	bool capped;        /* the cap left lane data behind */
	size_t seal_off;    /* sealbuf bytes used (secure sessions) */
	/* the frame being built: its plaintext body pieces, and where its
	 * iovecs began, so that sealing can replace them by the ciphertext */
	struct iovec body[TSM_IO_MAX_IOV];
	int nbody;
	int min_lane;       /* most urgent lane in this send (DSCP) */
	int mark_cnt;
	size_t mark_len, mark_total;
};

static bool tx_iov(struct txb *b, const void *p, size_t len)
{
	tsm__conn *c = &b->s->conn;
	if (len == 0)
		return true;
	if (c->iovcnt > 0) {
		struct iovec *last = &c->iov[c->iovcnt - 1];
		if ((const uint8_t *)last->iov_base + last->iov_len == p) {
			last->iov_len += len;
			b->total += len;
			return true;
		}
	}
	if (c->iovcnt == TSM_IO_MAX_IOV)
		return false;
	c->iov[c->iovcnt++] = (struct iovec){(void *)p, len};
	b->total += len;
	return true;
}

static bool tx_hold(tsm__session *s, tsm__omsg *m)
{
	if (s->ninflight == s->capinflight) {
		uint32_t n = s->capinflight ? s->capinflight * 2 : 256;
		tsm__omsg **v = realloc(s->inflight, n * sizeof(*v));
		if (!v)
			return false;
		s->inflight = v;
		s->capinflight = n;
	}
	s->inflight[s->ninflight++] = m;
	return true;
}

static bool tx_declared(tsm__session *s, uint32_t id)
{
	return id < s->declared_cap && (s->declared[id / 8] & (1u << (id % 8)));
}

static tsm_err tx_declare(tsm__session *s, const tsm__topic *t)
{
	if (t->id >= s->declared_cap) {
		uint32_t bits = TSM_MAX(t->id + 1, s->declared_cap * 2);
		bits = (bits + 63) & ~63u;
		uint8_t *v = realloc(s->declared, bits / 8);
		if (!v)
			return TSM_ENOMEM;
		memset(v + s->declared_cap / 8, 0, (bits - s->declared_cap) / 8);
		s->declared = v;
		s->declared_cap = bits;
	}
	tsm__ctrl c = {.type = TSM_C_TOPIC, .id = t->id,
	               .str = (const uint8_t *)t->name, .str_len = t->len};
	tsm_err e = tsm__session_send_ctrl(s, &c);
	if (!e)
		s->declared[t->id / 8] |= (uint8_t)(1u << (t->id % 8));
	return e;
}

/*
 * design.md §5: earliest deadline first inside a lane; equal deadlines
 * (and no deadline, TSM_NEVER, last) keep publish order. A message whose
 * fragments have started stays first: fragments of a lane never
 * interleave (§7). The common case, a deadline no earlier than the tail's,
 * appends in O(1).
 */
/* The node whose next field is pp (pp is not the lane's head). */
static tsm__txq *lane_node_of(tsm__txq **pp)
{
	return (tsm__txq *)((char *)pp - offsetof(tsm__txq, next));
}

void tsm__lane_insert_edf(tsm__lane *l, tsm__txq *q)
{
	tsm_time dl = q->m->deadline;
	if (!l->tail || l->tail->m->deadline <= dl) {
		if (l->tail)
			l->tail->next = q;
		else
			l->head = q;
		l->tail = q;
		return;
	}
	tsm__txq **pp = &l->head;
	if ((*pp)->off > 0)
		pp = &(*pp)->next; /* in progress: keep it at the head */
	while (*pp && (*pp)->m->deadline <= dl)
		pp = &(*pp)->next;
	q->next = *pp;
	*pp = q;
	if (!q->next) /* behind an in-progress head that was the tail */
		l->tail = q;
}

void tsm__session_enqueue(tsm__session *s, tsm__omsg *m)
{
	if (s->rsm_hold && m->reliability == TSM_RELIABLE &&
	    tsm__rsm_hold_msg(s, m))
		return; /* resume.c holds it until the peer's RESUME */
	if (!tx_declared(s, m->topic->id) && tx_declare(s, m->topic) != TSM_OK) {
		tsm__stat_add(&s->ctx->stats, ST_DROP_QUEUE_FULL, 1);
		return;
	}
	tsm__txq *q = malloc(sizeof(*q));
	if (!q) {
		tsm__stat_add(&s->ctx->stats, ST_DROP_QUEUE_FULL, 1);
		return;
	}
	*q = (tsm__txq){tsm__omsg_ref(m), 0, 0, NULL};
	tsm__lane_insert_edf(&s->lanes[m->prio], q);
	s->queued_bytes += m->len;
}

tsm_err tsm__session_send_frame(tsm__session *s, uint8_t type,
                                const uint8_t *body, size_t len)
{
	tsm__ctrlq *q = malloc(sizeof(*q) + len);
	if (!q)
		return tsm__err_set(TSM_ENOMEM, "control frame");
	q->type = type;
	q->len = len;
	if (len)
		memcpy(q->body, body, len);
	q->next = NULL;
	*s->ctrl_tail = q;
	s->ctrl_tail = &q->next;
	return TSM_OK;
}

tsm_err tsm__session_send_ctrl(tsm__session *s, const tsm__ctrl *c)
{
	uint8_t body[32 + TSM_TOPIC_MAX];
	tsm__wbuf w;
	tsm__wbuf_init(&w, body, sizeof(body));
	tsm__ctrl_encode(c, &w);
	if (w.overflow)
		return tsm__err_set(TSM_EINTERNAL, "CTRL frame overflow");
	return tsm__session_send_frame(s, TSM_F_CTRL, body, w.len);
}

/*
 * Kernel send-queue budget (docs/design/qos.md "Below the lanes"). Bytes
 * handed to TCP are out of the lanes' reach: an urgent message queues
 * behind all of them. TCP_NOTSENT_LOWAT alone bounds them only roughly
 * (a send in progress, and a socket's tail segment, go past it), and a
 * fixed value is either too large on a slow path (128 KiB is 1 ms at
 * 1 Gbit/s) or too small on a fast one. So a session sizes the budget to
 * send_backlog_us at the delivery rate TCP measures (TCP_INFO), sets it
 * as the socket's NOTSENT_LOWAT, and never sends more than the room left
 * under it (SIOCOUTQNSD): fragments are cut to fit, and with no room the
 * session waits for the socket to become writable (NOTSENT_LOWAT: half
 * the budget drained) with nothing committed, so the most urgent lane is
 * picked again when room comes. Below TCP, the qdisc and device queue
 * that TCP small queues keep (~1 ms at the pacing rate) hold the link
 * busy while the session refills, so a small budget costs no throughput.
 */
#define KQ_MIN (8u * 1024u)      /* smallest budget: a few segments */
#define KQ_MAX (128u * 1024u)    /* largest: transport/tcp's fixed LOWAT */
#define KQ_FRAG_MIN 2048u        /* no shorter cut fragment (but the last) */
#define KQ_DEFAULT_US 200u
#define KQ_SAMPLE TSM_MSEC       /* TCP_INFO at most this often */
#define KQ_REC_OVERHEAD (TSM_WIRE_HDR_LEN + TSM_REC_HDR_LEN + TSM_REC_FRAG_LEN + \
                         TSM_REC_TS_LEN + TSM_META_MAX + TSM_WIRE_TAG_LEN)

static void kq_set(tsm__session *s, uint32_t budget)
{
	int v = (int)budget;
	if (setsockopt(s->conn.fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, sizeof(v)) != 0) {
		s->kq_mode = 2;
		return;
	}
	s->kq_budget = budget;
	tsm__stat_set(&s->ctx->stats, ST_TX_BACKLOG_BUDGET, budget);
}

static bool kq_info(const tsm__session *s, struct tcp_info *ti)
{
	socklen_t len = sizeof(*ti);
	return getsockopt(s->conn.fd, IPPROTO_TCP, TCP_INFO, ti, &len) == 0 &&
	       len >= offsetof(struct tcp_info, tcpi_delivery_rate) +
	                      sizeof(ti->tcpi_delivery_rate);
}

/* On for TCP sessions of the io_uring and epoll engines, unless off. */
static bool kq_on(tsm__session *s)
{
	if (s->kq_mode == 0) {
		struct tcp_info ti;
		s->kq_mode = 2;
		if (s->ctx->p.send_backlog_us != TSM_SEND_BACKLOG_OFF && s->conn.fd >= 0 &&
		    (s->ctx->io_ops == &tsm__io_uring_ops ||
		     s->ctx->io_ops == &tsm__io_epoll_ops) &&
		    kq_info(s, &ti)) { /* not inproc's AF_UNIX, kernel >= 4.9 */
			s->kq_mode = 1;
			kq_set(s, KQ_MAX);
		}
	}
	return s->kq_mode == 1;
}

/* Follows the delivery rate: an EWMA of TCP's samples, where a sample
 * taken while the sender had too little to send (app-limited) may only
 * raise it (as BBR does), so holding bulk back never shrinks the budget. */
static void kq_sample(tsm__session *s, tsm_time now)
{
	struct tcp_info ti;
	if ((s->kq_rate && now - s->kq_sampled < KQ_SAMPLE) || !kq_info(s, &ti))
		return;
	s->kq_sampled = now;
	uint64_t r = ti.tcpi_delivery_rate;
	if (r == 0)
		return;
	if (!s->kq_rate)
		s->kq_rate = r;
	else if (r > s->kq_rate || !ti.tcpi_delivery_rate_app_limited)
		s->kq_rate = s->kq_rate - s->kq_rate / 4 + r / 4;
	uint64_t us = s->ctx->p.send_backlog_us ? s->ctx->p.send_backlog_us
	                                        : KQ_DEFAULT_US;
	uint64_t b = s->kq_rate / 1000 * us / 1000;
	b = TSM_MIN(TSM_MAX(b, KQ_MIN), KQ_MAX);
	if (b * 8 < (uint64_t)s->kq_budget * 7 || b * 8 > (uint64_t)s->kq_budget * 9)
		kq_set(s, (uint32_t)b);
}

/* Bytes TCP may still take under the budget. */
static size_t kq_room(tsm__session *s)
{
	int q = 0;
	if (ioctl(s->conn.fd, SIOCOUTQNSD, &q) != 0 || q < 0)
		return s->kq_budget;
	return (size_t)q < s->kq_budget ? s->kq_budget - (size_t)q : 0;
}

/* Payload bytes a frame may carry within the send's cap: all of want, a
 * cut of it (not below KQ_FRAG_MIN), or 0: wait for room. */
static size_t tx_fit(struct txb *b, size_t want)
{
	size_t left = b->cap > b->total + KQ_REC_OVERHEAD
	                      ? b->cap - b->total - KQ_REC_OVERHEAD : 0;
	if (want <= left)
		return want;
	b->capped = true;
	return left >= KQ_FRAG_MIN ? left : 0;
}

static int tx_pick_lane(const tsm__session *s)
{
	for (int i = 0; i < (int)TSM_WIRE_LANES; i++)
		if (s->lanes[i].head)
			return i;
	return -1;
}

static uint32_t tx_budget(tsm_time deadline, tsm_time now)
{
	if (deadline == TSM_NEVER)
		return 0;
	tsm_time us = (deadline - now) / TSM_USEC;
	return us < 1 ? 1 : (us > UINT32_MAX ? UINT32_MAX : (uint32_t)us);
}

/* Drops expired messages at the head of lane l (counted); true if any
 * message is left. */
static bool tx_expire_head(tsm__session *s, tsm__lane *l, tsm_time now)
{
	while (l->head && l->head->off == 0 && l->head->m->deadline <= now) {
		tsm__txq *q = l->head;
		l->head = q->next;
		if (!l->head)
			l->tail = NULL;
		s->queued_bytes -= q->m->len;
		tsm__drop_omsg(s->ctx, q->m, TSM_ERR_DEADLINE_EXPIRED, TSM_AT_SEND_QUEUE);
		tsm__omsg_unref(q->m);
		free(q);
	}
	return l->head != NULL;
}

/* seq: the sequence number of the message's last frame (resume.c keeps
 * reliable messages until the peer has read it); UINT64_MAX: none. */
static void tx_pop(tsm__session *s, tsm__lane *l, uint64_t seq)
{
	tsm__txq *q = l->head;
	if (seq != UINT64_MAX)
		tsm__rsm_sent(s, (unsigned)(l - s->lanes), seq, q->m);
	l->head = q->next;
	if (!l->head)
		l->tail = NULL;
	s->queued_bytes -= q->m->len;
	if (!tx_hold(s, q->m))
		tsm__omsg_unref(q->m); /* cannot happen before OOM; keeps refs sane */
	free(q);
}

static bool tx_sealing(const struct txb *b)
{
	return tsm__sec_sealing(b->s, TSM_F_DATA);
}

static uint8_t *tx_frame_begin(struct txb *b, size_t need)
{
	tsm__conn *c = &b->s->conn;
	if (b->sc + TSM_WIRE_HDR_LEN + need > TSM_TX_SCRATCH ||
	    c->iovcnt > TSM_IO_MAX_IOV - 4)
		return NULL;
	if (tx_sealing(b) && b->seal_off + b->s->ctx->p.fragment_size +
	                         TSM_REC_HDR_LEN + TSM_REC_FRAG_LEN + 2 * TSM_META_MAX +
	                         TSM_WIRE_TAG_LEN > b->s->sec->sealcap)
		return NULL;
	b->mark_cnt = c->iovcnt;
	b->mark_len = c->iovcnt ? c->iov[c->iovcnt - 1].iov_len : 0;
	b->mark_total = b->total;
	b->nbody = 0;
	uint8_t *hdr = b->s->scratch + b->sc;
	b->sc += TSM_WIRE_HDR_LEN;
	tx_iov(b, hdr, TSM_WIRE_HDR_LEN);
	return hdr;
}

/* Forgets the iovecs of the frame being built (back to its marks). */
static void tx_frame_rollback(struct txb *b)
{
	tsm__conn *c = &b->s->conn;
	c->iovcnt = b->mark_cnt;
	if (c->iovcnt)
		c->iov[c->iovcnt - 1].iov_len = b->mark_len;
	b->total = b->mark_total;
}

/* Records the frame's body pieces; contiguous ones (batched records in
 * scratch) merge, so a batch of small messages is one piece. */
static void tx_body(struct txb *b, const void *p, size_t n)
{
	if (!n)
		return;
	if (b->nbody) {
		struct iovec *last = &b->body[b->nbody - 1];
		if ((const uint8_t *)last->iov_base + last->iov_len == p) {
			last->iov_len += n;
			return;
		}
	}
	b->body[b->nbody++] = (struct iovec){(void *)p, n};
}

/* Seals the frame's body into sealbuf and swaps its iovecs for header +
 * ciphertext + tag (security.md "Data protection": one seal per frame,
 * however many messages it batches). */
static tsm_err tx_seal(struct txb *b, tsm__fhdr *h, uint8_t *hdr)
{
	uint8_t *out = b->s->sec->sealbuf + b->seal_off;
	tsm_err e = tsm__sec_seal(b->s, h, hdr, b->body, b->nbody, out);
	if (e)
		return e;
	tx_frame_rollback(b);
	tx_iov(b, hdr, TSM_WIRE_HDR_LEN);
	tx_iov(b, out, h->body_len);
	b->seal_off += h->body_len;
	return TSM_OK;
}

static void tx_frame_end(struct txb *b, uint8_t *hdr, uint8_t lane,
                         uint8_t flags, uint32_t topic, uint32_t budget,
                         size_t body)
{
	tsm__session *s = b->s;
	if (lane < b->min_lane)
		b->min_lane = lane;
	tsm__fhdr h = {.version = TSM_WIRE_VERSION, .type = TSM_F_DATA,
	               .flags = flags, .lane = lane, .session_id = s->session_id,
	               .seq = s->lanes[lane].tx_seq++, .topic_id = topic,
	               .priority = lane, .budget_us = budget,
	               .body_len = (uint32_t)body};
	tsm__stat_add(&s->ctx->stats, ST_TX_FRAMES, 1);
	if (!tx_sealing(b))
		return tsm__fhdr_encode(&h, hdr);
	tsm_err e = tx_seal(b, &h, hdr);
	if (e) {
		tsm__log(s->ctx, TSM_LOG_ERROR, "seal: %s", tsm_err_detail());
		tsm__session_close(s, e);
	}
}

/* Appends one record header (+ meta, + payload when small) to scratch. */
static size_t tx_record(struct txb *b, const tsm__rec *r, const uint8_t *meta,
                        const uint8_t *payload, bool inline_payload)
{
	tsm__wbuf w;
	size_t start = b->sc;
	tsm__wbuf_init(&w, b->s->scratch + b->sc, TSM_TX_SCRATCH - b->sc);
	tsm__rec_encode_hdr(r, &w);
	tsm__wbuf_bytes(&w, meta, r->meta_len);
	if (inline_payload)
		tsm__wbuf_bytes(&w, payload, r->payload_len);
	b->sc += w.len;
	tx_iov(b, b->s->scratch + start, w.len);
	tx_body(b, b->s->scratch + start, w.len);
	if (!inline_payload) {
		tx_iov(b, payload, r->payload_len);
		tx_body(b, payload, r->payload_len);
	}
	return w.len + (inline_payload ? 0 : r->payload_len);
}

static bool tx_small(const tsm__session *s, const tsm__txq *q)
{
	return q->off == 0 && q->m->len <= s->ctx->p.fragment_size;
}

/* One DATA frame of consecutive small messages of lane li (§6). */
static bool tx_batch(struct txb *b, int li, tsm_time now)
{
	tsm__session *s = b->s;
	tsm__lane *l = &s->lanes[li];
	size_t body = 0, limit = s->ctx->p.fragment_size + TSM_REC_HDR_LEN + TSM_META_MAX;
	if (b->kq) /* the room's share for this body; the first one fits */
		limit = TSM_MIN(limit, b->cap - b->total - TSM_WIRE_HDR_LEN -
		                               TSM_WIRE_TAG_LEN);
	uint8_t *hdr = tx_frame_begin(b, TSM_REC_HDR_LEN + TSM_REC_TS_LEN +
	                                     TSM_INLINE_MAX + TSM_META_MAX);
	if (!hdr)
		return false;
	uint32_t topic = l->head->m->topic->id, budget = 0;
	while (tx_expire_head(s, l, now) && tx_small(s, l->head)) {
		tsm__omsg *m = l->head->m;
		bool inl = m->len <= TSM_INLINE_MAX;
		size_t need = TSM_REC_HDR_LEN + TSM_REC_TS_LEN + m->meta_len +
		              (inl ? m->len : 0);
		size_t rec = TSM_REC_HDR_LEN + m->meta_len + m->len +
		             (b->kq ? TSM_REC_TS_LEN : 0);
		if (body && (body + rec > limit ||
		             b->sc + need > TSM_TX_SCRATCH ||
		             s->conn.iovcnt > TSM_IO_MAX_IOV - 3 ||
		             b->nbody > TSM_IO_MAX_IOV - 3))
			break;
		tsm__rec r = {.topic_id = m->topic->id, .meta_len = m->meta_len,
		              .flags = (uint16_t)((m->meta_len ? TSM_REC_META : 0) |
		                                  (m->timestamps ? TSM_REC_TS : 0)),
		              .ts = (uint64_t)m->created,
		              .payload_len = (uint32_t)m->len, .msg_id = m->id,
		              .budget_us = tx_budget(m->deadline, now)};
		if (r.budget_us && (!budget || r.budget_us < budget))
			budget = r.budget_us;
		body += tx_record(b, &r, m->meta, m->payload, inl);
		tsm__stat_add(&s->ctx->stats, ST_TX_MSGS, 1);
		tx_pop(s, l, l->tx_seq); /* the frame being built gets tx_seq */
	}
	if (body == 0) { /* everything expired: take the header back */
		tx_frame_rollback(b);
		b->sc -= TSM_WIRE_HDR_LEN;
		return true;
	}
	tx_frame_end(b, hdr, (uint8_t)li, 0, topic, budget, body);
	return true;
}

/* A started message expired in the send queue: its remaining fragments
 * are dropped and the receiver told so with an ABORT record (§7.1). */
static bool tx_abort(struct txb *b, int li, tsm_time now)
{
	tsm__session *s = b->s;
	tsm__txq *q = s->lanes[li].head;
	uint8_t *hdr = tx_frame_begin(b, TSM_REC_HDR_LEN + TSM_REC_FRAG_LEN);
	if (!hdr)
		return false;
	tsm__rec r = {.topic_id = q->m->topic->id, .msg_id = q->m->id,
	              .flags = TSM_REC_FRAG | TSM_REC_LAST | TSM_REC_ABORT,
	              .total_len = q->m->len, .frag_index = q->frag_index};
	size_t body = tx_record(b, &r, NULL, NULL, true);
	tx_frame_end(b, hdr, (uint8_t)li, TSM_FF_FRAGMENT, r.topic_id, 0, body);
	tsm__drop_omsg(s->ctx, q->m, TSM_ERR_DEADLINE_EXPIRED, TSM_AT_SEND_QUEUE);
	(void)now;
	tx_pop(s, &s->lanes[li], UINT64_MAX); /* expired: nothing to keep */
	return true;
}

/* One fragment of the large message at the head of lane li (§7). */
static bool tx_fragment(struct txb *b, int li, tsm_time now)
{
	tsm__session *s = b->s;
	tsm__lane *l = &s->lanes[li];
	tsm__txq *q = l->head;
	tsm__omsg *m = q->m;
	if (q->off > 0 && m->deadline <= now)
		return tx_abort(b, li, now);
	size_t n = TSM_MIN(m->len - q->off, (size_t)s->ctx->p.fragment_size);
	if (b->kq && (n = tx_fit(b, n)) == 0)
		return false; /* no room under the kernel budget: wait */
	uint8_t *hdr = tx_frame_begin(b, TSM_REC_HDR_LEN + TSM_REC_FRAG_LEN +
	                                     TSM_REC_TS_LEN + TSM_META_MAX);
	if (!hdr)
		return false;
	bool first = q->off == 0, last = q->off + n == m->len;
	tsm__rec r = {.topic_id = m->topic->id, .msg_id = m->id,
	              .flags = (uint16_t)(TSM_REC_FRAG | (last ? TSM_REC_LAST : 0) |
	                                  (first && m->meta_len ? TSM_REC_META : 0) |
	                                  (first && m->timestamps ? TSM_REC_TS : 0)),
	              .ts = (uint64_t)m->created,
	              .meta_len = first ? m->meta_len : 0,
	              .payload_len = (uint32_t)n,
	              .budget_us = tx_budget(m->deadline, now),
	              .total_len = m->len, .frag_index = q->frag_index};
	size_t body = tx_record(b, &r, m->meta, m->payload + q->off, false);
	tx_frame_end(b, hdr, (uint8_t)li, TSM_FF_FRAGMENT, r.topic_id, r.budget_us, body);
	q->off += n;
	q->frag_index++;
	if (last) {
		tsm__stat_add(&s->ctx->stats, ST_TX_MSGS, 1);
		tx_pop(s, l, l->tx_seq - 1); /* tx_frame_end took it */
	}
	return true;
}

/* Frames one queued control frame into scratch; false if it must wait. */
static bool tx_ctrl_one(struct txb *b, const tsm__ctrlq *q)
{
	tsm__session *s = b->s;
	if (b->sc + TSM_WIRE_HDR_LEN + q->len + TSM_WIRE_TAG_LEN > TSM_TX_SCRATCH ||
	    s->conn.iovcnt > TSM_IO_MAX_IOV - 4)
		return false;
	uint8_t *p = s->scratch + b->sc;
	tsm__fhdr h = {.version = TSM_WIRE_VERSION, .type = q->type,
	               .session_id = s->session_id, .body_len = (uint32_t)q->len};
	if (tsm__frame_sequenced(q->type))
		h.seq = s->lanes[0].tx_seq++;
	if (tsm__sec_sealing(s, q->type)) {
		struct iovec in = {(void *)q->body, q->len};
		tsm_err e = tsm__sec_seal(s, &h, p, &in, q->len ? 1 : 0,
		                          p + TSM_WIRE_HDR_LEN);
		if (e)
			return false;
	} else {
		tsm__fhdr_encode(&h, p);
		memcpy(p + TSM_WIRE_HDR_LEN, q->body, q->len);
	}
	b->sc += TSM_WIRE_HDR_LEN + h.body_len;
	return tx_iov(b, p, TSM_WIRE_HDR_LEN + h.body_len);
}

/* Announces a new key for `lane` (sealed under lane 0's current key),
 * then ratchets it, before the lane's key reaches its usage limit. */
static bool tx_rekey(struct txb *b, unsigned lane)
{
	tsm__session *s = b->s;
	if (!tsm__sec_needs_rekey(s, lane))
		return true;
	if (lane != 0 && !tx_rekey(b, 0))
		return false;
	_Alignas(tsm__ctrlq) uint8_t raw[sizeof(tsm__ctrlq) + 1] = {0};
	tsm__ctrlq *q = (tsm__ctrlq *)raw;
	q->type = TSM_F_REKEY;
	q->len = 1;
	q->body[0] = (uint8_t)lane;
	if (!tx_ctrl_one(b, q))
		return false;
	tsm__stat_add(&s->ctx->stats, ST_REKEYS, 1);
	return tsm__aead_ratchet(&s->sec->tx[lane]) == TSM_OK;
}

static void tx_ctrl(struct txb *b)
{
	if (!tx_rekey(b, 0))
		return;
	tsm__session *s = b->s;
	while (s->ctrl_head && tx_ctrl_one(b, s->ctrl_head)) {
		tsm__ctrlq *q = s->ctrl_head;
		s->ctrl_head = q->next;
		if (!s->ctrl_head)
			s->ctrl_tail = &s->ctrl_head;
		free(q);
	}
}

/* A small message goes whole in a batch if it fits the send's cap; one
 * that does not is fragmented to fit (any message may be, docs/wire.md §7). */
static bool tx_whole(struct txb *b, const tsm__txq *q)
{
	if (!tx_small(b->s, q))
		return false;
	if (!b->kq || q->m->len + KQ_REC_OVERHEAD <= b->cap - TSM_MIN(b->cap, b->total))
		return true;
	b->capped = true;
	return false;
}

/* The send's cap: TSM_TX_BUDGET, or the room under the kernel budget. */
static void tx_cap(struct txb *b, tsm_time now)
{
	tsm__session *s = b->s;
	b->cap = TSM_TX_BUDGET;
	if (tx_pick_lane(s) < 0 || !kq_on(s))
		return;
	kq_sample(s, now);
	b->kq = true;
	size_t room = kq_room(s);
	if (s->kq_woke) /* the socket said writable: never wait twice */
		room = TSM_MAX(room, (size_t)KQ_FRAG_MIN + KQ_REC_OVERHEAD);
	s->kq_woke = false;
	b->cap = TSM_MIN(b->cap, b->total + room);
}

/* The most one more DATA frame can add to a send (tx_batch's body limit
 * or a first fragment with metadata, plus header and tag). */
static size_t tx_frame_max(const tsm__session *s)
{
	return TSM_WIRE_HDR_LEN + s->ctx->p.fragment_size + TSM_REC_HDR_LEN +
	       TSM_REC_FRAG_LEN + TSM_REC_TS_LEN + TSM_META_MAX + TSM_WIRE_TAG_LEN;
}

/*
 * A transport whose reads are whole messages of at most conn.rx_hint
 * bytes (ofi) gets sends that fit one: frames never straddle two fabric
 * messages, so the receiver moves no partial frame, and the sender posts
 * no second, tiny message for the remainder, which over shm waited for
 * the receiver's copy of the first one (its region lock) before the
 * sender could go on framing. A send still takes at least one frame.
 */
static bool tx_fits_message(const struct txb *b)
{
	size_t hint = b->s->conn.rx_hint;
	return hint == 0 || b->total == 0 || b->total + tx_frame_max(b->s) <= hint;
}

static void tx_data(struct txb *b)
{
	int li;
	if (tx_pick_lane(b->s) < 0)
		return; /* nothing queued: no clock read (busy loops run this) */
	tsm_time now = tsm__now();
	tx_cap(b, now);
	while (b->total < b->cap && tx_fits_message(b) &&
	       (li = tx_pick_lane(b->s)) >= 0) {
		tsm__lane *l = &b->s->lanes[li];
		if (!tx_expire_head(b->s, l, now))
			continue;
		if (!tx_rekey(b, (unsigned)li))
			break;
		bool ok = tx_whole(b, l->head) ? tx_batch(b, li, now)
		                               : tx_fragment(b, li, now);
		if (!ok)
			break;
	}
	if (b->kq && b->total >= b->cap && tx_pick_lane(b->s) >= 0)
		b->capped = true;
}

static bool tx_lanes_empty(const tsm__session *s)
{
	return tx_pick_lane(s) < 0;
}

/* Nothing left to send: a retiring session says CLOSE now, and one that
 * only waited to flush its refusal or CLOSE closes. */
static void tx_finish(tsm__session *s)
{
	if (s->tx_busy || s->ctrl_head || !tx_lanes_empty(s))
		return;
	if (s->retiring && !s->close_sent) {
		uint8_t body[8] = {0};
		tsm__st32(body, (uint32_t)TSM_ECLOSED);
		tsm__rsm_ack_all(s); /* the peer keeps nothing we have read */
		s->close_sent = true;
		tsm__session_send_frame(s, TSM_F_CLOSE, body, 6);
		if (tsm__session_step(s, SE_CLOSE))
			tsm__session_pump(s);
		return;
	}
	if (s->close_after_tx)
		tsm__session_close(s, s->close_reason);
}

/* Marks the connection for the send's most urgent lane (design.md §5:
 * optional DSCP / SO_PRIORITY per lane); a syscall only on a change. */
static void tx_mark(tsm__session *s, int8_t dscp)
{
	if (dscp < 0 || dscp == s->cur_dscp)
		return;
	int tos = dscp << 2, prio = dscp >> 3;
	if (setsockopt(s->conn.fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos)) != 0)
		(void)setsockopt(s->conn.fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
	(void)setsockopt(s->conn.fd, SOL_SOCKET, SO_PRIORITY, &prio, sizeof(prio));
	s->cur_dscp = dscp;
	tsm__stat_add(&s->ctx->stats, ST_TX_DSCP, 1);
}

void tsm__session_pump(tsm__session *s)
{
	if (s->tx_busy || s->state == SS_CLOSED || s->conn.closing ||
	    !s->conn.connected)
		return;
	/* Nothing queued (the common case in a busy loop, which pumps every
	 * session on every run): no batch to set up, and the batch is large
	 * (its iovecs), so not even zeroed. */
	if (!s->ctrl_head && tx_lanes_empty(s))
		return tx_finish(s);
	struct txb b = {.s = s, .min_lane = TSM_WIRE_LANES};
	s->conn.iovcnt = 0;
	tx_ctrl(&b);
	if (tsm__session_up(s) || s->state == SS_DRAINING)
		tx_data(&b);
	if (b.total == 0 && b.capped) {
		/* The kernel holds its budget: wait for room (a send of no
		 * bytes completes when the socket is writable), with nothing
		 * committed, so the lanes are picked again then. */
		s->tx_busy = true;
		s->tx_total = 0;
		s->kq_waiting = true;
		tsm__stat_add(&s->ctx->stats, ST_TX_BACKLOG_WAITS, 1);
		s->ctx->io_ops->send(s->ctx->io, &s->conn);
		return;
	}
	if (b.total == 0)
		return tx_finish(s);
	if (b.capped)
		tsm__stat_add(&s->ctx->stats, ST_TX_BACKLOG_CUT, 1);
	if (b.min_lane < (int)TSM_WIRE_LANES)
		tx_mark(s, s->ctx->p.lane_dscp[b.min_lane]);
	s->tx_busy = true;
	s->tx_total = b.total;
	tsm__stat_add(&s->ctx->stats, ST_TX_SENDS, 1);
	s->ctx->io_ops->send(s->ctx->io, &s->conn);
}

void tsm__session_tx_release(tsm__session *s)
{
	for (uint32_t i = 0; i < s->ninflight; i++)
		tsm__omsg_unref(s->inflight[i]);
	s->ninflight = 0;
}

/* Drops the first n bytes of the iovecs after a partial send. */
static void tx_advance(tsm__conn *c, size_t n)
{
	int i = 0;
	while (i < c->iovcnt && n >= c->iov[i].iov_len)
		n -= c->iov[i++].iov_len;
	memmove(c->iov, c->iov + i, (size_t)(c->iovcnt - i) * sizeof(c->iov[0]));
	c->iovcnt -= i;
	if (c->iovcnt) {
		c->iov[0].iov_base = (uint8_t *)c->iov[0].iov_base + n;
		c->iov[0].iov_len -= n;
	}
}

void tsm__session_on_send(tsm__session *s, long n, tsm_err err)
{
	if (s->state == SS_CLOSED)
		return;
	if (n < 0) {
		tsm__log(s->ctx, TSM_LOG_INFO, "session %s: send failed: %s",
		         s->peer_addr, tsm_err_name(err));
		return tsm__session_close(s, TSM_ERR_PEER_LOST);
	}
	if (s->kq_waiting) {
		s->kq_waiting = false;
		s->kq_woke = true;
	}
	tsm__stat_add(&s->ctx->stats, ST_TX_BYTES, (uint64_t)n);
	if (n > 0)
		s->last_tx_progress = tsm__now();
	if ((size_t)n < s->tx_total) {
		s->tx_total -= (size_t)n;
		tx_advance(&s->conn, (size_t)n);
		s->ctx->io_ops->send(s->ctx->io, &s->conn);
		return;
	}
	s->tx_busy = false;
	tsm__session_tx_release(s);
	tsm__session_pump(s);
}

/*
 * Drops expired messages from the lanes while the connection is stalled
 * (design.md §5: nothing waits past its deadline in any queue, and each
 * is counted when it expires, not when the queue next moves). A message
 * whose fragments started is ended by tx_abort at the next send. With EDF
 * order the expired ones are at the front. Returns the next deadline.
 */
tsm_time tsm__session_tx_expire(tsm__session *s, tsm_time now)
{
	tsm_time next = TSM_NEVER;
	for (unsigned i = 0; i < TSM_WIRE_LANES; i++) {
		tsm__lane *l = &s->lanes[i];
		tsm__txq **pp = &l->head;
		if (*pp && (*pp)->off > 0)
			pp = &(*pp)->next;
		while (*pp && (*pp)->m->deadline <= now) {
			tsm__txq *q = *pp;
			*pp = q->next;
			if (l->tail == q)
				l->tail = pp == &l->head ? NULL : lane_node_of(pp);
			s->queued_bytes -= q->m->len;
			tsm__drop_omsg(s->ctx, q->m, TSM_ERR_DEADLINE_EXPIRED,
			               TSM_AT_SEND_QUEUE);
			tsm__omsg_unref(q->m);
			free(q);
		}
		if (*pp)
			next = TSM_MIN(next, (*pp)->m->deadline);
	}
	return next;
}

bool tsm__session_tx_idle(const tsm__session *s)
{
	return !s->tx_busy && !s->ctrl_head && tx_pick_lane(s) < 0;
}

/* Everything still queued is lost with the session: count it. */
void tsm__session_tx_purge(tsm__session *s)
{
	for (unsigned i = 0; i < TSM_WIRE_LANES; i++) {
		tsm__lane *l = &s->lanes[i];
		while (l->head) {
			tsm__txq *q = l->head;
			l->head = q->next;
			if (!tsm__rsm_keep(s, q->m)) /* kept for the peer's return */
				tsm__drop_omsg(s->ctx, q->m, TSM_ERR_PEER_LOST,
				               TSM_AT_SEND_QUEUE);
			tsm__omsg_unref(q->m);
			free(q);
		}
		l->tail = NULL;
	}
	s->queued_bytes = 0;
	if (!s->conn.tx.pending)
		tsm__session_tx_release(s);
	while (s->ctrl_head) {
		tsm__ctrlq *q = s->ctrl_head;
		s->ctrl_head = q->next;
		free(q);
	}
	s->ctrl_tail = &s->ctrl_head;
}

bool tsm__session_wants(const tsm__session *s, const tsm__topic *t)
{
	for (uint32_t i = 0; i < s->npatterns; i++)
		if (tsm__topic_match(s->patterns[i] + 1, strlen(s->patterns[i] + 1), t->name,
		                     t->len))
			return true;
	return false;
}
