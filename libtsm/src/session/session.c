/*
 * session/session.c - session life cycle and frame dispatch (design.md
 * §3, docs/wire.md §3-§5, §8).
 *
 * Every frame goes through tsm__fsm_next first: a frame the table does
 * not allow in the current state is a protocol error that closes the
 * session, counted, before any of its body is looked at.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/audit.h"
#include "pubsub/topic.h"
#include "session/secure.h"
#include "session/session.h"
#include "session/resume.h"
#include "brokerless/disc.h"
#include "wire/cursor.h"

#define TSM_KEEPALIVE_DIV 3

static void sess_random(void *p, size_t n)
{
	if (getrandom(p, n, 0) != (ssize_t)n)
		memset(p, 0x5a, n); /* only ids and nonces for now; TLS brings
		                       its own randomness */
}

tsm_err tsm__session_new(tsm_ctx *ctx, int fd, bool initiator,
                         tsm__session **out)
{
	tsm__session *s = calloc(1, sizeof(*s));
	if (!s)
		return tsm__err_set(TSM_ENOMEM, "session");
	s->scratch = malloc(TSM_TX_SCRATCH);
	if (!s->scratch) {
		free(s);
		return tsm__err_set(TSM_ENOMEM, "session scratch");
	}
	if (!ctx->insecure && !(s->sec = calloc(1, sizeof(*s->sec)))) {
		free(s->scratch);
		free(s);
		return tsm__err_set(TSM_ENOMEM, "session security state");
	}
	s->ctx = ctx;
	s->conn.fd = fd;
	s->conn.user = s;
	s->initiator = initiator;
	s->ctrl_tail = &s->ctrl_head;
	s->state = SS_IDLE;
	s->cur_dscp = -1;
	s->last_rx = tsm__now();
	if (initiator) {
		sess_random(&s->session_id, sizeof(s->session_id));
		s->gen = ++ctx->dial_gen;
	}
	tsm__stat_add(&ctx->stats, ST_SESS_OPENED, 1);
	*out = s;
	return TSM_OK;
}

bool tsm__session_step(tsm__session *s, tsm__sevent ev)
{
	tsm__sstate next;
	if (tsm__fsm_next(s->state, ev, &next) != TSM_OK) {
		tsm__log(s->ctx, TSM_LOG_WARN, "session %s: %s", s->peer_addr,
		         tsm_err_detail());
		tsm__stat_add(&s->ctx->stats, ST_ERR_OUT_OF_STATE, 1);
		tsm__session_close(s, TSM_ERR_OUT_OF_STATE);
		return false;
	}
	if (next == SS_CLOSED)
		return true; /* the handler closes it with its reason, so the
		               connection is closed and the session counted */
	if (next != s->state && tsm__fsm_waits(next))
		s->state_deadline = tsm__deadline_after(tsm__now(),
		                                        s->ctx->p.handshake_timeout);
	s->state = next;
	return true;
}

static void sess_send_preface(tsm__session *s)
{
	uint8_t body[128];
	tsm__wbuf w;
	tsm__preface p = {.min_version = TSM_WIRE_VERSION,
	                  .max_version = TSM_WIRE_VERSION,
	                  .node_id = s->ctx->node_id,
	                  .name = (const uint8_t *)s->ctx->name,
	                  .name_len = (uint16_t)strlen(s->ctx->name)};
	if (s->ctx->insecure)
		p.flags |= TSM_PREFACE_INSECURE;
	if (s->ctx->aead_alg == 1)
		p.flags |= TSM_PREFACE_CHACHA;
	sess_random(p.nonce, sizeof(p.nonce));
	/* The initiator's nonce carries its session id and dial generation,
	 * so both ends agree which of two sessions is newer (loop.c). */
	if (s->initiator) {
		memcpy(p.nonce, &s->session_id, sizeof(s->session_id));
		tsm__st64(p.nonce + 8, s->gen);
	}
	tsm__wbuf_init(&w, body, sizeof(body));
	tsm__preface_encode(&p, &w);
	tsm__sec_record_preface(s, true, body, w.len);
	tsm__session_send_frame(s, TSM_F_PREFACE, body, w.len);
}

void tsm__session_start(tsm__session *s)
{
	if (!tsm__session_step(s, SE_START))
		return;
	sess_send_preface(s);
	tsm__session_rx_arm(s);
	tsm__session_pump(s);
}

/* Before ESTABLISHED the refusal is a cleartext REJECT; after it, a
 * sealed CLOSE carrying the same reason (docs/wire.md §5). */
void tsm__session_reject(tsm__session *s, tsm_err reason, const char *why)
{
	uint8_t body[16 + TSM_REASON_TEXT_MAX];
	tsm__wbuf w;
	/* The peer is not trusted: it learns the reason code and its
	 * generic sentence, never our detail (identities, policy). */
	const char *text = tsm_strerror(reason);
	tsm__reason r = {.code = (uint32_t)reason, .text = (const uint8_t *)text,
	                 .text_len = (uint16_t)strnlen(text, TSM_REASON_TEXT_MAX)};
	if (s->close_after_tx || s->state == SS_CLOSED)
		return; /* one refusal is enough */
	bool up = tsm__session_up(s);
	tsm__wbuf_init(&w, body, sizeof(body));
	tsm__reason_encode(&r, &w);
	tsm__session_send_frame(s, up ? TSM_F_CLOSE : TSM_F_REJECT, body, w.len);
	tsm__stat_add(&s->ctx->stats, ST_SESS_REJECTED, 1);
	tsm__log(s->ctx, TSM_LOG_WARN, "session %s: refusing peer: %s (%s)",
	         s->peer_addr, tsm_err_name(reason), why);
	if (up) /* no more data for it from now on */
		tsm__ctx_session_down(s->ctx, s);
	/* The refusal must reach the peer: close once it is sent, or at the
	 * deadline (tsm__session_tick) if the peer does not read. */
	s->close_reason = reason;
	s->close_after_tx = true;
	s->state_deadline = tsm__deadline_after(tsm__now(), TSM_SEC);
	tsm__session_pump(s);
}

void tsm__session_maybe_established(tsm__session *s)
{
	if (!s->accept_sent || !s->accept_rcvd || !tsm__session_step(s, SE_VERIFY_OK))
		return;
	s->last_rx = tsm__now();
	tsm__ctx_session_up(s->ctx, s);
}

static void sess_on_preface(tsm__session *s, const uint8_t *b, size_t n)
{
	tsm__preface p;
	tsm_err e = tsm__preface_decode(b, n, &p);
	if (e) {
		tsm__stat_add(&s->ctx->stats, ST_SESS_PROTO_ERR, 1);
		return tsm__session_reject(s, e, "malformed PREFACE");
	}
	if (p.min_version > TSM_WIRE_VERSION || p.max_version < TSM_WIRE_VERSION)
		return tsm__session_reject(s, TSM_ERR_BAD_VERSION, "no common wire version");
	bool peer_insecure = p.flags & TSM_PREFACE_INSECURE;
	if (peer_insecure != s->ctx->insecure) {
		tsm__audit(s->ctx, TSM_ERR_INSECURE_MISMATCH, s->peer_addr, NULL,
		           "peer is %s", peer_insecure ? "insecure" : "secure");
		return tsm__session_reject(s, TSM_ERR_INSECURE_MISMATCH,
		                   peer_insecure ? "peer is insecure, we are not"
		                                 : "we are insecure, peer is not");
	}
	/* The initiator's cipher is the session's (docs/wire.md §4); the
	 * prefaces are bound into the keys, so a changed flag breaks them. */
	s->aead_alg = s->initiator ? s->ctx->aead_alg
	                           : ((p.flags & TSM_PREFACE_CHACHA) ? 1 : 0);
	s->peer_node_id = p.node_id;
	if (p.name_len) /* a nameless peer sends no name bytes at all */
		memcpy(s->peer_name, p.name, p.name_len);
	s->peer_name[p.name_len] = '\0';
	if (!s->initiator) {
		memcpy(&s->session_id, p.nonce, sizeof(s->session_id));
		s->gen = tsm__le64(p.nonce + 8);
	}
	if (s->dialer)
		s->dialer->peer_node_id = p.node_id;
	if (p.node_id == s->ctx->node_id)
		return tsm__session_close(s, TSM_ERR_BAD_FIELD); /* dialed ourselves */
	tsm__sec_record_preface(s, false, b, n);
	if (s->sec)
		return tsm__sec_start(s); /* TLS 1.3 in HS frames (secure.c) */
	/* Explicit insecure mode: a null handshake that is done at once. */
	if (!tsm__session_step(s, SE_HS_DONE))
		return;
	tsm__session_send_frame(s, TSM_F_ACCEPT, NULL, 0);
	s->accept_sent = true;
	tsm__session_maybe_established(s);
}

static void sess_on_reason(tsm__session *s, const uint8_t *b, size_t n,
                           bool reject)
{
	tsm__reason r;
	if (tsm__reason_decode(b, n, &r) != TSM_OK) {
		r.code = TSM_EPROTO;
		r.text_len = 0;
	}
	tsm__log(s->ctx, reject ? TSM_LOG_WARN : TSM_LOG_INFO,
	         "session %s (%s): peer %s: %s '%.*s'", s->peer_addr, s->peer_name,
	         reject ? "rejected us" : "closed", tsm_err_name((tsm_err)r.code),
	         (int)r.text_len, r.text ? (const char *)r.text : "");
	if (reject)
		tsm__stat_add(&s->ctx->stats, ST_SESS_REJECTED, 1);
	tsm__session_close(s, r.code ? (tsm_err)r.code : TSM_ECLOSED);
}

/* CLOSE from an established peer: send what is still queued for it (it
 * keeps reading until our CLOSE), then close (design.md §3 DRAINING). */
static void sess_on_close(tsm__session *s, const uint8_t *b, size_t n)
{
	tsm__reason r;
	/* A CLOSE for an error (a broken frame, a failed tag) is not an
	 * orderly end: the peer has stopped reading, so close now, with its
	 * reason (resume.c keeps what it may not have read). */
	bool orderly = tsm__reason_decode(b, n, &r) == TSM_OK &&
	               (r.code == 0 || r.code == (uint32_t)TSM_ECLOSED);
	if (s->state != SS_DRAINING || !orderly)
		return sess_on_reason(s, b, n, false);
	tsm__log(s->ctx, TSM_LOG_INFO, "session %s (%s): peer closes; draining",
	         s->peer_addr, s->peer_name);
	tsm__rsm_peer_closing(s); /* a replacement may be on its way here */
	tsm__ctx_session_down(s->ctx, s);
	if (!s->retiring)
		tsm__session_retire(s);
	s->close_reason = TSM_ECLOSED;
	s->close_after_tx = true;
	s->state_deadline = tsm__deadline_after(tsm__now(), s->ctx->p.linger);
	tsm__session_pump(s);
}

void tsm__session_replace(tsm__session *heir, tsm__session *old)
{
	tsm__session_inherit(heir, old);
	heir->predecessor = old;
	old->successor = heir;
	tsm__session_retire(old);
}

/* The replaced session is gone: its heir may read now. */
static void sess_unlink_succession(tsm__session *s)
{
	if (s->successor) {
		tsm__session *h = s->successor;
		h->predecessor = NULL;
		s->successor = NULL;
		tsm__session_rx_resume(h);
	}
	if (s->predecessor) {
		s->predecessor->successor = NULL;
		s->predecessor = NULL;
	}
}

void tsm__session_retire(tsm__session *s)
{
	if (s->retiring || s->state == SS_CLOSED)
		return;
	s->retiring = true;
	tsm__ctx_session_down(s->ctx, s);
	tsm__session_pump(s); /* sends CLOSE once the lanes are empty (tx.c) */
}

/* Peer subscriptions are kept as "r<pattern>" (received on this session)
 * or "i<pattern>" (inherited from the session this one replaced, until the
 * peer's own SUBSCRIBE for it arrives here), so that a replacement session
 * routes exactly what the old one did from its first moment. */
static bool sess_push_pattern(tsm__session *s, char kind, const char *p, size_t n)
{
	if (s->npatterns >= TSM_SESS_MAX_PATTERNS)
		return false;
	char **v = realloc(s->patterns, (s->npatterns + 1) * sizeof(*v));
	char *e = v ? malloc(n + 2) : NULL;
	if (v)
		s->patterns = v;
	if (!e)
		return false;
	e[0] = kind;
	memcpy(e + 1, p, n);
	e[n + 1] = '\0';
	v[s->npatterns++] = e;
	return true;
}

static int sess_find_pattern(const tsm__session *s, char kind, const uint8_t *p,
                             size_t n)
{
	for (uint32_t i = 0; i < s->npatterns; i++)
		if (s->patterns[i][0] == kind && strlen(s->patterns[i] + 1) == n &&
		    memcmp(s->patterns[i] + 1, p, n) == 0)
			return (int)i;
	return -1;
}

static bool sess_add_pattern(tsm__session *s, const uint8_t *p, size_t n)
{
	int i = sess_find_pattern(s, 'i', p, n);
	if (i >= 0) {
		s->patterns[i][0] = 'r';
		return true;
	}
	return sess_push_pattern(s, 'r', (const char *)p, n);
}

static void sess_del_pattern(tsm__session *s, const uint8_t *p, size_t n)
{
	int i = sess_find_pattern(s, 'r', p, n);
	if (i < 0)
		i = sess_find_pattern(s, 'i', p, n);
	if (i < 0)
		return;
	free(s->patterns[i]);
	s->patterns[i] = s->patterns[--s->npatterns];
}

void tsm__session_inherit(tsm__session *heir, const tsm__session *old)
{
	for (uint32_t i = 0; i < old->npatterns; i++)
		sess_push_pattern(heir, 'i', old->patterns[i] + 1,
		                  strlen(old->patterns[i] + 1));
}

static tsm_err sess_on_topic(tsm__session *s, const tsm__ctrl *c)
{
	if (tsm__topic_check((const char *)c->str, c->str_len) != TSM_OK)
		return TSM_ERR_BAD_TOPIC;
	if (c->id >= TSM_SESS_MAX_TOPICS)
		return tsm__err_set(TSM_ERR_BAD_FIELD, "topic id %u over limit", c->id);
	if (c->id >= s->nrtopics) {
		uint32_t n = c->id + 1;
		tsm__rtopic *v = realloc(s->rtopics, n * sizeof(*v));
		if (!v)
			return TSM_ENOMEM;
		memset(v + s->nrtopics, 0, (n - s->nrtopics) * sizeof(*v));
		s->rtopics = v;
		s->nrtopics = n;
	}
	tsm__rtopic *rt = &s->rtopics[c->id];
	if (rt->topic)
		return tsm__err_set(TSM_ERR_BAD_FIELD, "topic id %u declared twice", c->id);
	rt->topic = tsm__topic_new((const char *)c->str, c->str_len);
	rt->sub_epoch = UINT64_MAX; /* forces a lookup of local subscribers */
	return rt->topic ? TSM_OK : TSM_ENOMEM;
}

/* A subscription no topic could ever be granted for is not recorded. */
static bool sess_may_subscribe(tsm__session *s, const tsm__ctrl *c)
{
	char pat[TSM_TOPIC_MAX + 1];
	if (!s->sec)
		return true;
	snprintf(pat, sizeof(pat), "%.*s", (int)c->str_len, (const char *)c->str);
	if (tsm__policy_may_subscribe_pattern(s->ctx->policy, tsm__sec_peer_id(s), pat))
		return true;
	tsm__audit(s->ctx, TSM_ERR_AUTHZ_DENIED, tsm__sec_peer_id(s), pat,
	           "subscription refused by policy");
	return false;
}

static tsm_err sess_on_ctrl(tsm__session *s, const uint8_t *b, size_t n)
{
	tsm__ctrl c;
	tsm_err e = tsm__ctrl_decode(b, n, &c);
	if (e)
		return e;
	switch (c.type) {
	case TSM_C_SUBSCRIBE:
		if (tsm__pattern_check((const char *)c.str, c.str_len) != TSM_OK)
			return TSM_ERR_BAD_PATTERN;
		if (!sess_may_subscribe(s, &c))
			return TSM_OK; /* ignored, audited: the peer cannot tell */
		if (!sess_add_pattern(s, c.str, c.str_len))
			return tsm__err_set(TSM_ENOMEM, "too many subscriptions from peer");
		tsm__ctx_routes_dirty(s->ctx);
		return TSM_OK;
	case TSM_C_UNSUBSCRIBE:
		/* docs/wire.md §8: the same grammar as SUBSCRIBE */
		if (tsm__pattern_check((const char *)c.str, c.str_len) != TSM_OK)
			return TSM_ERR_BAD_PATTERN;
		sess_del_pattern(s, c.str, c.str_len);
		tsm__ctx_routes_dirty(s->ctx);
		return TSM_OK;
	case TSM_C_TOPIC:
		return sess_on_topic(s, &c);
	case TSM_C_ACK:
		return tsm__rsm_on_ack(s, c.value);
	case TSM_C_RESUME:
		return tsm__rsm_on_resume(s, c.value, c.str, c.str_len);
	case TSM_C_TIERS:
		return tsm__ctx_tiers_learn(s->ctx, s, c.str, c.str_len);
	case TSM_C_ADVERT:
		return s->ctx->disc ? s->ctx->disc_ops->on_advert(s->ctx->disc, s,
		                                                  c.blob, c.blob_len)
		                    : TSM_OK;
	case TSM_C_PING: {
		tsm__ctrl pong = {.type = TSM_C_PONG, .value = c.value};
		return tsm__session_send_ctrl(s, &pong);
	}
	default:
		return TSM_OK; /* PONG: last_rx already updated */
	}
}

/* Called by rx.c for each complete frame; returns false if s closed. */
bool tsm__session_on_frame(tsm__session *s, const tsm__fhdr *h,
                           const uint8_t *body)
{
	static const tsm__sevent ev_of[TSM_F__MAX + 1] = {
		[TSM_F_PREFACE] = SE_RX_PREFACE, [TSM_F_RETRY] = SE_RX_RETRY,
		[TSM_F_HS] = SE_RX_HS, [TSM_F_ACCEPT] = SE_RX_ACCEPT,
		[TSM_F_REJECT] = SE_RX_REJECT, [TSM_F_DATA] = SE_RX_DATA,
		[TSM_F_CTRL] = SE_RX_CTRL, [TSM_F_REKEY] = SE_RX_REKEY,
		[TSM_F_CLOSE] = SE_RX_CLOSE};
	tsm_err e = TSM_OK;
	bool secure = s->sec != NULL;
	if (h->type == TSM_F_RETRY || (!secure && (h->type == TSM_F_REKEY ||
	                                           h->type == TSM_F_HS))) {
		/* RETRY belongs to datagram transports; HS and REKEY exist only
		 * with security (docs/wire.md §3). */
		tsm__err_set(TSM_ERR_OUT_OF_STATE, "frame type %u not enabled", h->type);
		tsm__stat_add(&s->ctx->stats, ST_ERR_OUT_OF_STATE, 1);
		tsm__session_close(s, TSM_ERR_OUT_OF_STATE);
		return false;
	}
	if (!tsm__session_step(s, ev_of[h->type]))
		return false;
	switch (h->type) {
	case TSM_F_PREFACE:
		sess_on_preface(s, body, h->body_len);
		break;
	case TSM_F_ACCEPT:
		if (h->body_len) {
			e = tsm__err_set(TSM_ERR_BAD_LENGTH, "ACCEPT with a body");
			break;
		}
		s->accept_rcvd = true;
		tsm__session_maybe_established(s);
		break;
	case TSM_F_REJECT:
		sess_on_reason(s, body, h->body_len, true);
		break;
	case TSM_F_CLOSE:
		sess_on_close(s, body, h->body_len);
		break;
	case TSM_F_CTRL:
		e = sess_on_ctrl(s, body, h->body_len);
		break;
	case TSM_F_DATA:
		tsm__session_rx_data(s, h, body);
		break;
	case TSM_F_HS:
		tsm__sec_on_hs(s, body, h->body_len);
		break;
	case TSM_F_REKEY:
		if (!(e = tsm__sec_on_rekey(s, body, h->body_len)))
			tsm__session_step(s, SE_REKEY_DONE);
		break;
	}
	if (e) {
		tsm__log(s->ctx, TSM_LOG_WARN, "session %s: bad CTRL: %s (%s)",
		         s->peer_addr, tsm_err_name(e), tsm_err_detail());
		tsm__stat_add(&s->ctx->stats, ST_SESS_PROTO_ERR, 1);
		tsm__session_close(s, e);
	}
	return s->state != SS_CLOSED;
}

void tsm__session_close(tsm__session *s, tsm_err reason)
{
	if (s->state == SS_CLOSED)
		return;
	bool was_up = tsm__session_up(s);
	tsm__rsm_closing(s, s->close_reason ? s->close_reason : reason);
	s->state = SS_CLOSED;
	sess_unlink_succession(s);
	if (!s->close_reason)
		s->close_reason = reason;
	if (tsm_err_class(reason) == TSM_EPROTO)
		tsm__stat_add(&s->ctx->stats, ST_ERR_PROTO, 1);
	if (was_up)
		tsm__ctx_session_down(s->ctx, s);
	tsm__stat_add(&s->ctx->stats, ST_SESS_CLOSED, 1);
	tsm__session_tx_purge(s);
	tsm__rsm_closed(s);
	s->ctx->io_ops->close(s->ctx->io, &s->conn);
}

static void sess_keepalive(tsm__session *s, tsm_time now)
{
	tsm_duration to = s->ctx->p.session_timeout;
	if (now - s->last_rx >= to) {
		tsm__audit(s->ctx, TSM_ERR_PEER_LOST, s->peer_addr, NULL,
		           "peer %s silent for %lld ms", s->peer_name,
		           (long long)(to / TSM_MSEC));
		tsm__session_close(s, TSM_ERR_PEER_LOST);
		return;
	}
	if (now - s->last_rx >= to / TSM_KEEPALIVE_DIV &&
	    now - s->last_ping >= to / TSM_KEEPALIVE_DIV) {
		tsm__ctrl ping = {.type = TSM_C_PING, .value = (uint64_t)now};
		tsm__session_send_ctrl(s, &ping);
		s->last_ping = now;
	}
}

/* The peer's chain stops being valid at not_after (wall clock): the
 * session ends there (security.md "Identity"). */
static bool sess_cert_expired(tsm__session *s)
{
	if (!s->sec || !s->sec->keys || !s->sec->not_after ||
	    time(NULL) < s->sec->not_after)
		return false;
	tsm__audit(s->ctx, TSM_ERR_CERT_EXPIRED, s->sec->peer_id, NULL,
	           "peer certificate expired during the session");
	tsm__session_close(s, TSM_ERR_CERT_EXPIRED);
	return true;
}

/* security.md "Identity": a dialer opens a replacement session before the
 * peer chain's notAfter; the newer session wins and this one drains
 * (make-before-break). Without a renewed peer certificate the replacement
 * fails and this session still closes at notAfter. */
static void sess_reauth(tsm__session *s)
{
	if (!s->sec || !s->sec->keys || !s->dialer || s->reauth_started ||
	    s->retiring || !s->sec->not_after)
		return;
	if (time(NULL) + s->ctx->p.reauth_before / TSM_SEC < s->sec->not_after ||
	    s->sec->not_after <= s->dialer->reauth_from)
		return;
	s->reauth_started = true;
	s->dialer->reauth_from = s->sec->not_after;
	tsm__log(s->ctx, TSM_LOG_INFO, "session %s (%s): peer certificate ends "
	         "soon: re-authenticating", s->peer_addr, s->peer_name);
	tsm__ctx_redial(s->ctx, s);
}

tsm_time tsm__session_tick(tsm__session *s, tsm_time now)
{
	if (s->state == SS_CLOSED || sess_cert_expired(s))
		return TSM_NEVER;
	if (s->close_after_tx && now >= s->state_deadline) {
		tsm__session_close(s, s->close_reason);
		return TSM_NEVER;
	}
	if (tsm__session_up(s)) {
		sess_reauth(s);
		sess_keepalive(s, now);
		tsm_time next = tsm__session_rx_expire(s, now);
		next = TSM_MIN(next, tsm__session_rx_unpark(s, now));
		next = TSM_MIN(next, tsm__session_tx_expire(s, now));
		next = TSM_MIN(next, tsm__rsm_tick(s, now));
		return TSM_MIN(next, now + s->ctx->p.session_timeout /
		                              (2 * TSM_KEEPALIVE_DIV));
	}
	if (s->state == SS_DRAINING && now >= s->state_deadline) {
		tsm__stat_add(&s->ctx->stats, ST_SESS_TIMEOUT, 1);
		/* The peer stopped reading: not an orderly end, so what it may
		 * not have read is kept for it (session/resume.c). */
		tsm__session_close(s, TSM_ERR_PEER_LOST);
		return TSM_NEVER;
	}
	if (tsm__fsm_waits(s->state) && now >= s->state_deadline) {
		tsm__audit(s->ctx, TSM_ERR_HANDSHAKE_TIMEOUT, s->peer_addr, NULL,
		           "timed out in state %s", tsm__sstate_name(s->state));
		tsm__stat_add(&s->ctx->stats, ST_SESS_TIMEOUT, 1);
		tsm__session_close(s, TSM_ERR_HANDSHAKE_TIMEOUT);
		return TSM_NEVER;
	}
	return s->state_deadline;
}

void tsm__session_free(tsm__session *s)
{
	tsm__rsm_session_free(s);
	tsm__sec_free(s);
	for (uint32_t i = 0; i < s->nrtopics; i++) {
		tsm__topic_unref(s->rtopics[i].topic);
		for (uint32_t j = 0; j < s->rtopics[i].nsubs; j++)
			tsm__sub_unref(s->rtopics[i].subs[j]);
		free(s->rtopics[i].subs);
	}
	free(s->rtopics);
	for (uint32_t i = 0; i < s->npatterns; i++)
		free(s->patterns[i]);
	free(s->patterns);
	tsm__session_tx_purge(s);
	tsm__session_tx_release(s);
	tsm__session_rx_free(s);
	free(s->declared);
	free(s->inflight);
	free(s->scratch);
	free(s);
}
