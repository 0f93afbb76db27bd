/*
 * core/loop.c - the progress thread: commands, publish ring, routes,
 * listeners, dialers, session timers and I/O completions (design.md §8).
 *
 * One iteration: run commands, free closed sessions, move published
 * messages onto the lanes of the sessions that want them, resume paused
 * receivers, pump sends, run timers, then wait in the engine. Before
 * sleeping the thread publishes `sleeping` and checks its inputs again,
 * so a publisher only pays for a wake-up syscall when the thread is
 * really asleep.
 */
#include <arpa/inet.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "brokerless/disc.h"
#include "core/audit.h"
#include "core/cred.h"
#include "core/tstats.h"
#include "pubsub/topic.h"
#include "security/policy.h"
#include "session/secure.h"
#include "session/resume.h"
#include "session/session.h"
#include "transport/ofi/ofi.h"
#include "transport/tcp/tcp.h"

#define PUBQ_BATCH 4096
#define DIAL_BACKOFF_MIN (50 * TSM_MSEC)

/* --- sessions ------------------------------------------------------------ */

static tsm__session *conn_sess(tsm__conn *c)
{
	return c->user;
}

static void loop_peer_addr(tsm__session *s)
{
	if (s->ctx->family == 2) { /* a fabric address, not a socket */
		char name[96];
		if (tsm__ofi_peer_name(s->ctx->io, s->conn.fd, name, sizeof(name)))
			strcpy(name, "?");
		snprintf(s->peer_addr, sizeof(s->peer_addr), "ofi:%s", name);
		return;
	}
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	tsm__url u = {.scheme = TSM_URL_TCP};
	if (getpeername(s->conn.fd, (struct sockaddr *)&ss, &len) == 0 &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
		u.sa = ss;
		tsm__url_format(&u, s->peer_addr, sizeof(s->peer_addr));
	} else {
		strcpy(s->peer_addr, "inproc");
	}
}

static void loop_add_session(tsm_ctx *ctx, tsm__session *s)
{
	s->next = ctx->sessions;
	ctx->sessions = s;
}

/* The IP part of a peer address, for the per-source budget. */
static void loop_source(int fd, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	out[0] = '\0';
	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)cap);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out,
		          (socklen_t)cap);
}

/* security.md "Budgets before authentication": pending handshakes are
 * capped globally and per source address. */
static bool loop_preauth_ok(tsm_ctx *ctx, const char *src)
{
	unsigned all = 0, mine = 0;
	for (tsm__session *s = ctx->sessions; s; s = s->next) {
		if (s->initiator || s->state == SS_CLOSED || tsm__session_up(s))
			continue;
		all++;
		mine += *src && strcmp(s->peer_src, src) == 0;
	}
	return all < ctx->p.preauth_max && mine < ctx->p.preauth_per_source;
}

/* Accept failures repeat as fast as the back-off lets them (out of
 * descriptors: every accept_backoff): one line a second, with the count
 * of those not logged. */
static void loop_accept_failed(tsm_ctx *ctx)
{
	tsm_time now = tsm__now();
	if (now - ctx->accept_log_at < TSM_SEC) {
		ctx->accept_log_quiet++;
		return;
	}
	if (ctx->accept_log_quiet)
		tsm__log(ctx, TSM_LOG_WARN, "accept: %s (and %u more failures not "
		         "logged in the second before)", tsm_err_detail(),
		         ctx->accept_log_quiet);
	else
		tsm__log(ctx, TSM_LOG_WARN, "accept: %s", tsm_err_detail());
	ctx->accept_log_at = now;
	ctx->accept_log_quiet = 0;
}

static void loop_on_accept(tsm__lst *l, int fd, tsm_err err)
{
	tsm_ctx *ctx = l->user;
	tsm__session *s;
	char src[64];
	if (err) {
		tsm__stat_add(&ctx->stats, ST_ACCEPT_FAILED, 1);
		loop_accept_failed(ctx);
		if (l->paused)
			l->resume_at = tsm__now() + ctx->p.accept_backoff;
		return;
	}
	tsm__stat_add(&ctx->stats, ST_ACCEPTS, 1);
	if (ctx->family == 2) {
		if (tsm__ofi_peer_name(ctx->io, fd, src, sizeof(src)))
			src[0] = '\0';
	} else {
		loop_source(fd, src, sizeof(src));
	}
	if (!loop_preauth_ok(ctx, src)) {
		tsm__audit(ctx, TSM_ERR_PREAUTH_LIMIT, src, NULL,
		           "too many pending handshakes; connection refused");
		close(fd);
		return;
	}
	tsm__tcp_tune(fd);
	if (tsm__session_new(ctx, fd, false, &s) != TSM_OK) {
		close(fd);
		return;
	}
	snprintf(s->peer_src, sizeof(s->peer_src), "%s", src);
	loop_peer_addr(s);
	loop_add_session(ctx, s);
	ctx->io_ops->adopt(ctx->io, &s->conn);
	tsm__session_start(s);
}

static void loop_on_connect(tsm__conn *c, tsm_err err)
{
	tsm__session *s = conn_sess(c);
	if (err) {
		tsm__stat_add(&s->ctx->stats, ST_CONNECT_FAIL, 1);
		tsm__log(s->ctx, TSM_LOG_DEBUG, "dial %s: %s", s->peer_addr,
		         tsm_err_name(err));
		return tsm__session_close(s, err);
	}
	c->connected = true;
	tsm__tcp_tune(c->fd);
	tsm__session_start(s);
}

static void loop_on_recv(tsm__conn *c, long n, tsm_err err)
{
	tsm__session_on_recv(conn_sess(c), n, err);
}

static void loop_on_send(tsm__conn *c, long n, tsm_err err)
{
	tsm__session_on_send(conn_sess(c), n, err);
}

/* Never free from inside a callback: park it for the loop (NNG's reap). */
static void loop_on_closed(tsm__conn *c)
{
	tsm__session *s = conn_sess(c);
	tsm_ctx *ctx = s->ctx;
	for (tsm__session **pp = &ctx->sessions; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	s->next = ctx->reap;
	ctx->reap = s;
}

static void loop_on_lst_closed(tsm__lst *l)
{
	(void)l; /* the listener record is freed with the context */
}

const tsm__io_cbs tsm__loop_cbs = {
	.on_accept = loop_on_accept,
	.on_connect = loop_on_connect,
	.on_recv = loop_on_recv,
	.on_send = loop_on_send,
	.on_closed = loop_on_closed,
	.on_lst_closed = loop_on_lst_closed,
};

/* --- dialers ------------------------------------------------------------- */

static tsm_duration loop_jitter(tsm_duration d)
{
	uint32_t r = 0;
	(void)getrandom(&r, sizeof(r), GRND_NONBLOCK);
	return d / 2 + (tsm_duration)(r % (uint32_t)(d / 2 + 1));
}

static bool loop_peer_up(tsm_ctx *ctx, uint64_t node_id)
{
	for (tsm__session *s = ctx->sessions; s; s = s->next)
		if (tsm__session_up(s) && s->peer_node_id == node_id)
			return true;
	return false;
}

bool tsm__ctx_peer_up(tsm_ctx *ctx, uint64_t node_id)
{
	return loop_peer_up(ctx, node_id);
}

static void loop_dial(tsm_ctx *ctx, tsm__dialer *d);

/* Discovery's dialers: like configured ones, but the peer's node id is
 * known in advance (no dial while a session with it is up) and they go
 * away when the node is forgotten. */
tsm__dialer *tsm__ctx_dialer_add(tsm_ctx *ctx, const tsm__url *u,
                                 uint64_t node_id)
{
	tsm__dialer *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->url = *u;
	tsm__url_format(&d->url, d->text, sizeof(d->text));
	d->backoff = DIAL_BACKOFF_MIN;
	d->peer_node_id = node_id;
	d->discovered = true;
	d->next = ctx->dialers;
	ctx->dialers = d;
	loop_dial(ctx, d);
	return d;
}

void tsm__ctx_dialer_remove(tsm_ctx *ctx, tsm__dialer *d)
{
	for (tsm__dialer **pp = &ctx->dialers; *pp; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	}
	/* Its session, if any, lives on without a dialer (not redialed). */
	for (tsm__session *s = ctx->sessions; s; s = s->next)
		if (s->dialer == d)
			s->dialer = NULL;
	for (tsm__session *s = ctx->reap; s; s = s->next)
		if (s->dialer == d)
			s->dialer = NULL;
	free(d);
}

static void loop_dial(tsm_ctx *ctx, tsm__dialer *d)
{
	int fd = -1;
	tsm__session *s;
	tsm_err e = d->url.scheme == TSM_URL_INPROC ? tsm__inproc_dial(d->url.name, &fd)
	            : d->url.scheme == TSM_URL_OFI   ? TSM_OK /* fd comes from the engine */
	                                             : tsm__tcp_socket(&d->url, &fd);
	if (e == TSM_OK && (e = tsm__session_new(ctx, fd, true, &s)) != TSM_OK &&
	    fd >= 0)
		close(fd);
	if (e) {
		tsm__stat_add(&ctx->stats, ST_CONNECT_FAIL, 1);
		d->next_try = tsm__now() + loop_jitter(d->backoff);
		d->backoff = TSM_MIN(d->backoff * 2, ctx->p.reconnect_max);
		return;
	}
	snprintf(s->peer_addr, sizeof(s->peer_addr), "%s", d->text);
	s->dialer = d;
	d->sess = s;
	loop_add_session(ctx, s);
	if (d->url.scheme == TSM_URL_INPROC) {
		ctx->io_ops->adopt(ctx->io, &s->conn);
		tsm__session_start(s);
	} else if (d->url.scheme == TSM_URL_OFI) {
		if (tsm__ofi_connect(ctx->io, &s->conn, d->url.ofi_addr) != TSM_OK)
			tsm__session_close(s, TSM_ERR_CONN_REFUSED);
	} else {
		ctx->io_ops->connect(ctx->io, &s->conn, (struct sockaddr *)&d->url.sa,
		                     d->url.sa_len);
	}
}

static void loop_dialers(tsm_ctx *ctx, tsm_time now)
{
	for (tsm__dialer *d = ctx->dialers; d; d = d->next) {
		if (d->sess || now < d->next_try || atomic_load(&ctx->stopping))
			continue;
		if (d->peer_node_id && loop_peer_up(ctx, d->peer_node_id)) {
			d->next_try = now + ctx->p.reconnect_max; /* already linked */
			continue;
		}
		loop_dial(ctx, d);
	}
}

static void loop_free_session(tsm_ctx *ctx, tsm__session *s)
{
	tsm__dialer *d = s->dialer;
	if (d && d->sess == s) {
		d->sess = NULL;
		if (s->counted_up)
			d->backoff = DIAL_BACKOFF_MIN;
		d->next_try = tsm__now() + loop_jitter(d->backoff);
		d->backoff = TSM_MIN(d->backoff * 2, ctx->p.reconnect_max);
	}
	tsm__session_free(s);
}

static void loop_reap(tsm_ctx *ctx)
{
	while (ctx->reap) {
		tsm__session *s = ctx->reap;
		ctx->reap = s->next;
		loop_free_session(ctx, s);
	}
}

/* --- routes -------------------------------------------------------------- */

/* security.md "Authorisation": a publisher sends a topic only to peers
 * that may subscribe to it; the peer is not told (denied and "no such
 * topic" look the same). Insecure contexts grant everything. */
static bool route_grant(tsm_ctx *ctx, tsm__session *s, const tsm__topic *t,
                        tsm__grant *g)
{
	*g = (tsm__grant){true, 0, UINT64_MAX, TSM_PROT_NONE};
	if (ctx->insecure)
		return true;
	*g = tsm__policy_check(ctx->policy, tsm__sec_peer_id(s), TSM_ACT_SUBSCRIBE,
	                       t->name);
	if (!g->allowed)
		tsm__audit(ctx, TSM_ERR_AUTHZ_DENIED, tsm__sec_peer_id(s), t->name,
		           "peer may not subscribe: not sent to it");
	return g->allowed;
}

static bool route_grow(tsm__route *r)
{
	uint32_t n = r->capsess ? r->capsess * 2 : 8;
	tsm__session **v = realloc(r->sess, n * sizeof(*v));
	if (v)
		r->sess = v;
	tsm__grant *g = v ? realloc(r->grants, n * sizeof(*g)) : NULL;
	if (g)
		r->grants = g;
	if (v && g)
		r->capsess = n;
	return v && g;
}

static void route_compute(tsm_ctx *ctx, tsm__route *r)
{
	r->nsess = 0;
	for (tsm__session *s = ctx->sessions; s; s = s->next) {
		tsm__grant g;
		/* A retiring session (replaced by a newer one with the same peer)
		 * only drains what it has: new messages go to its heir, or the
		 * peer would get them twice. */
		if (!tsm__session_up(s) || s->close_after_tx || s->retiring ||
		    !tsm__session_wants(s, r->topic) || !route_grant(ctx, s, r->topic, &g))
			continue;
		if (r->nsess == r->capsess && !route_grow(r))
			break;
		r->grants[r->nsess] = g;
		r->sess[r->nsess++] = s;
	}
}

/* The grant's caps (security.md): priority and size are part of it. */
static bool route_caps_ok(tsm_ctx *ctx, const tsm__route *r, uint32_t i,
                          const tsm__omsg *m)
{
	const tsm__grant *g = &r->grants[i];
	tsm_err e = m->prio < g->max_priority ? TSM_ERR_PRIORITY_CAP
	            : m->len > g->max_bytes   ? TSM_ERR_MSG_TOO_LARGE
	                                      : TSM_OK;
	if (e) {
		tsm__audit(ctx, e, tsm__sec_peer_id(r->sess[i]), r->topic->name,
		           "message %llu (priority %u, %zu bytes) over the grant",
		           (unsigned long long)m->id, m->prio, m->len);
		tsm__drop_omsg(ctx, m, e, TSM_AT_ROUTE);
	}
	return e == TSM_OK;
}

static void loop_routes(tsm_ctx *ctx)
{
	if (!atomic_exchange(&ctx->routes_dirty, false))
		return;
	for (uint32_t i = 0; i < ctx->nroutes; i++)
		if (ctx->route_by_id[i])
			route_compute(ctx, ctx->route_by_id[i]);
	pthread_mutex_lock(&ctx->mu);
	for (struct tsm_pub *p = ctx->pubs; p; p = p->next) {
		tsm__route *r = p->topic->id < ctx->nroutes ? ctx->route_by_id[p->topic->id]
		                                            : NULL;
		atomic_store(&p->nremote, r ? r->nsess : 0);
	}
	pthread_cond_broadcast(&ctx->cv);
	pthread_mutex_unlock(&ctx->mu);
}

/* Credentials or policy were reloaded: re-judge every live session now
 * (security.md: a policy change takes effect within one second). */
void tsm__ctx_security_changed(tsm_ctx *ctx);
void tsm__ctx_security_changed(tsm_ctx *ctx)
{
	ctx->sec_epoch++;
	tsm__ctx_routes_dirty(ctx);
	for (tsm__session *s = ctx->sessions; s; s = s->next) {
		if (!tsm__session_up(s))
			continue;
		tsm_err e = tsm__sec_recheck(s); /* revoked, distrusted, expired */
		if (!e && !tsm__policy_admits(ctx->policy, tsm__sec_peer_id(s)))
			e = tsm__err_set(TSM_ERR_AUTHZ_DENIED, "no longer admitted by the "
			                 "reloaded policy");
		if (!e)
			continue;
		tsm__audit(ctx, e, tsm__sec_peer_id(s), NULL, "%s", tsm_err_detail());
		tsm__session_reject(s, e, "credentials or policy changed");
	}
}

void tsm__ctx_routes_dirty(tsm_ctx *ctx)
{
	atomic_store(&ctx->routes_dirty, true);
}

static tsm__route *route_get(tsm_ctx *ctx, tsm__topic *t)
{
	if (t->id >= ctx->nroutes) {
		uint32_t n = TSM_MAX(t->id + 1, ctx->nroutes * 2);
		tsm__route **v = realloc(ctx->route_by_id, n * sizeof(*v));
		if (!v)
			return NULL;
		memset(v + ctx->nroutes, 0, (n - ctx->nroutes) * sizeof(*v));
		ctx->route_by_id = v;
		ctx->nroutes = n;
	}
	tsm__route *r = ctx->route_by_id[t->id];
	if (!r && (r = calloc(1, sizeof(*r)))) {
		r->topic = tsm__topic_ref(t);
		ctx->route_by_id[t->id] = r;
		route_compute(ctx, r);
	}
	return r;
}

/*
 * Slow-subscriber isolation (design.md §5). A session whose unsent bytes
 * exceed session_queue_bytes is congested. For a reliable message whose
 * publisher blocks, a congested session holds the message (and so the
 * publisher) for at most block_timeout; after that the session is
 * lagging: it loses its own copies (QUEUE_FULL, counted) and the others
 * go on. Congestion ends below half the limit.
 */
static bool sess_congested(tsm_ctx *ctx, tsm__session *x, tsm_time now,
                           unsigned prio)
{
	uint64_t lim = ctx->p.session_queue_bytes;
	if (x->queued_bytes <= lim / 2) {
		x->congested_since = 0;
		x->lagging = false;
	}
	/* congested for this lane: bulk stops short of the limit, so it
	 * never holds an urgent message back (tsm__lane_limit) */
	if (x->queued_bytes <= tsm__lane_limit(lim, prio))
		return false;
	if (!x->congested_since)
		x->congested_since = now;
	return true;
}

/* True if m must wait (reliable, blocking, a congested peer that still
 * makes progress: a stalled peer is one that has sent nothing for
 * block_timeout while congested, not one that merely keeps up at the
 * limit, which is ordinary back-pressure). */
static bool route_must_hold(tsm_ctx *ctx, tsm__route *r, const tsm__omsg *m,
                            tsm_time now)
{
	bool hold = false;
	for (uint32_t i = 0; i < r->nsess; i++) {
		tsm__session *x = r->sess[i];
		if (!sess_congested(ctx, x, now, m->prio) || x->lagging)
			continue;
		bool blocks = m->reliability == TSM_RELIABLE && m->bp == TSM_BP_BLOCK;
		tsm_time since = TSM_MAX(x->congested_since, x->last_tx_progress);
		if (blocks && now - since < m->block_timeout) {
			ctx->held_until[m->prio] = since + m->block_timeout;
			hold = true;
		} else {
			x->lagging = true;
			tsm__log(ctx, TSM_LOG_WARN, "session %s (%s) lags: its messages "
			         "over the queue limit are dropped", x->peer_addr,
			         x->peer_name);
		}
	}
	return hold;
}

/* Moves one published message to its sessions; false if back-pressured. */
static bool loop_route_msg(tsm_ctx *ctx, tsm__omsg *m)
{
	tsm__route *r = route_get(ctx, m->topic);
	tsm_time now = tsm__now();
	if (r && r->nsess && route_must_hold(ctx, r, m, now))
		return false; /* the publisher's ring fills: tsm_publish blocks */
	if (r && r->nsess) {
		for (uint32_t i = 0; i < r->nsess; i++) {
			if (!route_caps_ok(ctx, r, i, m))
				continue;
			if (r->sess[i]->lagging &&
			    r->sess[i]->queued_bytes >
			            tsm__lane_limit(ctx->p.session_queue_bytes, m->prio))
				tsm__drop_omsg(ctx, m, TSM_ERR_QUEUE_FULL, TSM_AT_SEND_QUEUE);
			else
				tsm__session_enqueue(r->sess[i], m);
		}
		tsm__rsm_route(ctx, m); /* and to subscribers away for now */
	} else if (tsm__rsm_route(ctx, m) == 0) {
		tsm__stat_add(&ctx->stats, ST_PUB_NO_SUB, 1);
		if (m->nlocal == 0) /* reached nobody at all */
			tsm__outcome(ctx, m->topic, m->prio, m->id, TSM_ERR_NO_SUBSCRIBER,
			             TSM_AT_ROUTE);
	}
	tsm__omsg_unref(m);
	return true;
}

/* Moves what one lane's ring holds to the sessions; a held message stops
 * only its own lane (order inside a lane is kept). */
static void loop_drain_lane(tsm_ctx *ctx, int lane)
{
	void *v;
	if (ctx->held[lane]) {
		if (!loop_route_msg(ctx, ctx->held[lane]))
			return;
		ctx->held[lane] = NULL;
	}
	for (int i = 0; i < PUBQ_BATCH && tsm__mpmc_pop(&ctx->pubq[lane], &v); i++) {
		atomic_fetch_sub(&ctx->pubq_bytes, ((tsm__omsg *)v)->len);
		if (!loop_route_msg(ctx, v)) {
			ctx->held[lane] = v;
			break;
		}
	}
}

bool tsm__ctx_rings_empty(tsm_ctx *ctx)
{
	for (int i = 0; i < 8; i++)
		if (ctx->held[i] || tsm__mpmc_size(&ctx->pubq[i]))
			return false;
	return true;
}

/* True if a lane that is not held has messages waiting. */
static bool loop_rings_ready(tsm_ctx *ctx)
{
	for (int i = 0; i < 8; i++)
		if (!ctx->held[i] && tsm__mpmc_size(&ctx->pubq[i]))
			return true;
	return false;
}

static void loop_drain_pubq(tsm_ctx *ctx)
{
	for (int lane = 0; lane < 8; lane++) /* the most urgent first */
		loop_drain_lane(ctx, lane);
	if (ctx->p.publish_queue && atomic_load(&ctx->pubq_waiters_a)) {
		pthread_mutex_lock(&ctx->mu);
		pthread_cond_broadcast(&ctx->pubq_cv);
		pthread_mutex_unlock(&ctx->mu);
	}
}

/* --- session up/down ----------------------------------------------------- */

static uint64_t loop_initiator_id(const tsm_ctx *ctx, const tsm__session *s)
{
	return s->initiator ? ctx->node_id : s->peer_node_id;
}

/* Which of two sessions with one peer stays (both ends decide alike):
 * between different initiators, the smaller node id's; from the same
 * initiator, the newer dial (a reconnect or a re-authentication). */
static bool loop_keeps_first(const tsm_ctx *ctx, const tsm__session *a,
                             const tsm__session *b)
{
	uint64_t ia = loop_initiator_id(ctx, a), ib = loop_initiator_id(ctx, b);
	return ia != ib ? ia < ib : a->gen > b->gen;
}

/* One session per pair of nodes (design.md §3): the other one is retired,
 * so what is queued on it still arrives (make-before-break). */
static bool loop_dedupe(tsm_ctx *ctx, tsm__session *s)
{
	for (tsm__session *t = ctx->sessions; t; t = t->next) {
		if (t == s || !tsm__session_up(t) || t->retiring ||
		    t->peer_node_id != s->peer_node_id)
			continue;
		bool keep_s = loop_keeps_first(ctx, s, t);
		tsm__session *loser = keep_s ? t : s;
		tsm__stat_add(&ctx->stats, ST_SESS_DUPLICATE, 1);
		tsm__log(ctx, TSM_LOG_INFO, "session %s (%s): replaced, draining",
		         loser->peer_addr, loser->peer_name);
		if (keep_s)
			tsm__session_replace(s, t);
		else
			tsm__session_retire(s);
		return !keep_s;
	}
	return false;
}

void tsm__ctx_redial(tsm_ctx *ctx, tsm__session *s)
{
	tsm__dialer *d = s->dialer;
	if (!d || atomic_load(&ctx->stopping))
		return;
	s->dialer = NULL; /* the old session lives on until replaced */
	d->sess = NULL;
	loop_dial(ctx, d);
}

static bool loop_is_auto(const tsm_ctx *ctx)
{
	return ctx->io_ops && strcmp(ctx->io_ops->name, "auto") == 0;
}

void tsm__ctx_tiers_offer(tsm_ctx *ctx, tsm__session *s)
{
	char ad[160];
	if (s->dialer || !loop_is_auto(ctx) ||
	    !tsm__ofi_auto_advert(ctx->io, ad, sizeof(ad)))
		return;
	tsm__ctrl c = {.type = TSM_C_TIERS, .str = (const uint8_t *)ad,
	               .str_len = (uint16_t)strlen(ad)};
	tsm__session_send_ctrl(s, &c);
}

tsm_err tsm__ctx_tiers_learn(tsm_ctx *ctx, tsm__session *s, const uint8_t *ad,
                             size_t n)
{
	bool move = false;
	if (!s->dialer || !loop_is_auto(ctx) || s->reauth_started || s->retiring)
		return TSM_OK; /* only the dialer of a session can move it */
	tsm_err e = tsm__ofi_auto_learn(ctx->io, s->conn.fd, s->dialer->url.ofi_addr,
	                                ad, n, &move);
	if (e == TSM_OK && move) {
		s->reauth_started = true; /* one replacement at a time */
		tsm__ctx_redial(ctx, s);
	}
	return e;
}

static void loop_send_subs(tsm_ctx *ctx, tsm__session *s)
{
	pthread_mutex_lock(&ctx->mu);
	for (struct tsm_sub *u = ctx->subs; u; u = u->next) {
		if (u->closing)
			continue;
		tsm__ctrl c = {.type = TSM_C_SUBSCRIBE, .str = (const uint8_t *)u->pattern,
		               .str_len = (uint16_t)u->plen};
		tsm__session_send_ctrl(s, &c);
	}
	pthread_mutex_unlock(&ctx->mu);
}

void tsm__ctx_session_up(tsm_ctx *ctx, tsm__session *s)
{
	if (loop_dedupe(ctx, s))
		return;
	s->counted_up = true;
	if (s->dialer)
		s->dialer->sess = s;
	if (s->dialer)
		s->dialer->backoff = DIAL_BACKOFF_MIN;
	tsm__stat_add(&ctx->stats, ST_SESS_ESTABLISHED, 1);
	tsm__log(ctx, TSM_LOG_INFO, "session %s (%s) established", s->peer_addr,
	         s->peer_name);
	loop_send_subs(ctx, s);
	tsm__ctx_tiers_offer(ctx, s);
	tsm__rsm_session_up(s);
	if (ctx->disc)
		ctx->disc_ops->session_up(ctx->disc, s);
	tsm__ctx_routes_dirty(ctx);
	pthread_mutex_lock(&ctx->mu);
	ctx->nestablished++;
	tsm__stat_set(&ctx->stats, ST_SESSIONS, ctx->nestablished);
	pthread_cond_broadcast(&ctx->cv);
	pthread_mutex_unlock(&ctx->mu);
	tsm__session_pump(s);
}

void tsm__ctx_session_down(tsm_ctx *ctx, tsm__session *s)
{
	for (uint32_t i = 0; i < ctx->nroutes; i++) {
		tsm__route *r = ctx->route_by_id[i];
		for (uint32_t j = 0; r && j < r->nsess; j++) {
			if (r->sess[j] == s) {
				r->nsess--;
				r->sess[j] = r->sess[r->nsess];
				r->grants[j] = r->grants[r->nsess];
				break;
			}
		}
	}
	tsm__ctx_routes_dirty(ctx);
	if (!s->counted_up)
		return;
	s->counted_up = false;
	pthread_mutex_lock(&ctx->mu);
	ctx->nestablished--;
	tsm__stat_set(&ctx->stats, ST_SESSIONS, ctx->nestablished);
	pthread_cond_broadcast(&ctx->cv);
	pthread_mutex_unlock(&ctx->mu);
}

/* --- commands ------------------------------------------------------------ */

/* One listener per fabric endpoint: bind it, then accept on it. */
static tsm_err loop_listen_ofi(tsm_ctx *ctx, tsm__listener *l)
{
	tsm_err e = tsm__ofi_listen_addr(ctx->io, l->url.ofi_addr);
	l->lst.fd = -1;
	l->lst.user = ctx;
	return e ? e : ctx->io_ops->listen(ctx->io, &l->lst);
}

static tsm_err loop_listen(tsm_ctx *ctx, tsm__cmd *c)
{
	tsm__listener *l = calloc(1, sizeof(*l));
	if (!l)
		return tsm__err_set(TSM_ENOMEM, "listener");
	l->url = c->url;
	tsm_err e = l->url.scheme == TSM_URL_INPROC ? tsm__inproc_listen(l->url.name, ctx)
	            : l->url.scheme == TSM_URL_OFI   ? loop_listen_ofi(ctx, l)
	                                             : tsm__tcp_listen(&l->url, &l->lst.fd);
	if (!e && l->url.scheme == TSM_URL_TCP) {
		l->lst.user = ctx;
		e = ctx->io_ops->listen(ctx->io, &l->lst);
		if (e)
			close(l->lst.fd);
	}
	if (e) {
		free(l);
		return e;
	}
	if (l->url.scheme == TSM_URL_INPROC)
		l->lst.fd = -1;
	if (l->url.scheme == TSM_URL_OFI)
		tsm__ofi_bound_url(ctx->io, c->bound, sizeof(c->bound));
	else
		tsm__url_format(&l->url, c->bound, sizeof(c->bound));
	l->next = ctx->listeners;
	ctx->listeners = l;
	return TSM_OK;
}

static tsm_err loop_add_dialer(tsm_ctx *ctx, tsm__cmd *c)
{
	tsm__dialer *d = calloc(1, sizeof(*d));
	if (!d)
		return tsm__err_set(TSM_ENOMEM, "dialer");
	d->url = c->url;
	tsm__url_format(&d->url, d->text, sizeof(d->text));
	d->backoff = DIAL_BACKOFF_MIN;
	d->next = ctx->dialers;
	ctx->dialers = d;
	loop_dial(ctx, d);
	return TSM_OK;
}

static void loop_sub_ctrl(tsm_ctx *ctx, struct tsm_sub *u, uint8_t type)
{
	tsm__ctrl c = {.type = type, .str = (const uint8_t *)u->pattern,
	               .str_len = (uint16_t)u->plen};
	for (tsm__session *s = ctx->sessions; s; s = s->next)
		if (tsm__session_up(s))
			tsm__session_send_ctrl(s, &c);
}

static void loop_adopt(tsm_ctx *ctx, int fd)
{
	tsm__session *s;
	if (atomic_load(&ctx->stopping) ||
	    tsm__session_new(ctx, fd, false, &s) != TSM_OK) {
		close(fd);
		return;
	}
	strcpy(s->peer_addr, "inproc");
	loop_add_session(ctx, s);
	ctx->io_ops->adopt(ctx->io, &s->conn);
	tsm__session_start(s);
}

static void loop_cmd(tsm_ctx *ctx, tsm__cmd *c)
{
	if (ctx->disc && c->kind != CMD_ADOPT_FD && c->kind != CMD_PEERS &&
	    c->kind != CMD_DIAL)
		ctx->disc_ops->local_changed(ctx->disc); /* its adverts may change */
	switch (c->kind) {
	case CMD_PEERS: {
		struct tsm__peers_req *q = c->obj;
		q->n = ctx->disc_ops->peers(ctx->disc, q->out, q->max);
		break;
	}
	case CMD_LISTEN:
		c->result = loop_listen(ctx, c);
		if (c->result)
			snprintf(c->bound, sizeof(c->bound), "%s", tsm_err_detail());
		break;
	case CMD_DIAL:
		c->result = loop_add_dialer(ctx, c);
		break;
	case CMD_SUB_ADD:
		loop_sub_ctrl(ctx, c->obj, TSM_C_SUBSCRIBE);
		break;
	case CMD_SUB_DEL:
		loop_sub_ctrl(ctx, c->obj, TSM_C_UNSUBSCRIBE);
		tsm__sub_unref(c->obj); /* the command's reference */
		break;
	case CMD_PUB_ADD:
		if (!route_get(ctx, c->obj))
			c->result = tsm__err_set(TSM_ENOMEM, "route");
		tsm__ctx_routes_dirty(ctx);
		break;
	case CMD_ADOPT_FD:
		loop_adopt(ctx, c->fd);
		free(c); /* fire and forget: the dialer does not wait */
		return;
	default:
		break;
	}
	pthread_mutex_lock(&ctx->mu);
	c->done = true;
	pthread_cond_broadcast(&ctx->cv);
	pthread_mutex_unlock(&ctx->mu);
}

static void loop_cmds(tsm_ctx *ctx)
{
	if (!atomic_exchange(&ctx->cmd_pending, false))
		return;
	pthread_mutex_lock(&ctx->mu);
	tsm__cmd *list = ctx->cmds;
	ctx->cmds = NULL;
	ctx->cmds_tail = &ctx->cmds;
	pthread_mutex_unlock(&ctx->mu);
	while (list) {
		tsm__cmd *c = list;
		list = c->next;
		loop_cmd(ctx, c);
	}
}

/* --- the loop ------------------------------------------------------------ */

static bool loop_tx_idle(tsm_ctx *ctx)
{
	if (!tsm__ctx_rings_empty(ctx))
		return false;
	for (tsm__session *s = ctx->sessions; s; s = s->next)
		if (tsm__session_up(s) && !tsm__session_tx_idle(s))
			return false;
	return true;
}

/* Runs on every loop run: without a flush asked for it reads one atomic
 * flag (it took ctx->mu every run before, 2-5 % of a busy profile and a
 * lock the application threads contend for). */
static void loop_flush(tsm_ctx *ctx)
{
	if (!atomic_load_explicit(&ctx->flush_wanted, memory_order_acquire) ||
	    !loop_tx_idle(ctx))
		return;
	pthread_mutex_lock(&ctx->mu);
	ctx->flush_done = ctx->flush_req;
	atomic_store(&ctx->flush_wanted, false);
	pthread_cond_broadcast(&ctx->cv);
	pthread_mutex_unlock(&ctx->mu);
}

static void loop_sessions(tsm_ctx *ctx)
{
	bool resume = atomic_exchange(&ctx->resume, false);
	for (tsm__session *s = ctx->sessions; s; s = s->next) {
		if (resume && s->npend)
			tsm__session_rx_resume(s);
		tsm__session_pump(s);
	}
}

static tsm_time loop_timers(tsm_ctx *ctx, tsm_time now)
{
	if (now < ctx->next_tick)
		return ctx->next_tick;
	tsm_time next = now + 100 * TSM_MSEC;
	for (tsm__session *s = ctx->sessions; s; s = s->next)
		next = TSM_MIN(next, tsm__session_tick(s, now));
	next = TSM_MIN(next, tsm__cred_tick(ctx, now));
	if (ctx->disc)
		next = TSM_MIN(next, ctx->disc_ops->tick(ctx->disc, now));
	next = TSM_MIN(next, tsm__rsm_ctx_tick(ctx, now));
	loop_dialers(ctx, now);
	for (tsm__listener *l = ctx->listeners; l; l = l->next) {
		if (l->lst.paused && now >= l->lst.resume_at)
			ctx->io_ops->listen(ctx->io, &l->lst);
		else if (l->lst.paused)
			next = TSM_MIN(next, l->lst.resume_at);
	}
	for (tsm__dialer *d = ctx->dialers; d; d = d->next)
		if (!d->sess)
			next = TSM_MIN(next, d->next_try);
	for (int i = 0; i < 8; i++)
		if (ctx->held[i])
			next = TSM_MIN(next, ctx->held_until[i]);
	ctx->next_tick = TSM_MAX(next, now + TSM_MSEC);
	return ctx->next_tick;
}

static bool loop_has_input(tsm_ctx *ctx)
{
	return atomic_load(&ctx->cmd_pending) || atomic_load(&ctx->resume) ||
	       atomic_load(&ctx->routes_dirty) ||
	       loop_rings_ready(ctx);
}

static void loop_wait(tsm_ctx *ctx, tsm_time deadline)
{
	if (ctx->busy) {
		/* Busy-poll: never sleep, but give the core away when idle, so a
		 * receiver spinning on the same core runs at once (not when an
		 * application thread runs the loop: it spins on its own). */
		if (ctx->io_ops->wait(ctx->io, 0) == 0 && !loop_has_input(ctx) &&
		    deadline != 0)
			sched_yield();
		return;
	}
	atomic_store(&ctx->sleeping, true);
	if (loop_has_input(ctx)) {
		atomic_store(&ctx->sleeping, false);
		ctx->io_ops->wait(ctx->io, 0);
		return;
	}
	ctx->io_ops->wait(ctx->io, deadline);
	atomic_store(&ctx->sleeping, false);
}

/* One run of the loop; now: the time the timers are checked against. */
static void loop_iterate_at(tsm_ctx *ctx, tsm_time now, tsm_time max_wait)
{
	loop_cmds(ctx);
	loop_reap(ctx);
	loop_routes(ctx);
	loop_drain_pubq(ctx);
	loop_routes(ctx);
	loop_sessions(ctx);
	loop_flush(ctx);
	tsm_time next = loop_timers(ctx, now);
	loop_wait(ctx, TSM_MIN(next, max_wait));
}

void tsm__loop_iterate(tsm_ctx *ctx, tsm_time max_wait);
void tsm__loop_iterate(tsm_ctx *ctx, tsm_time max_wait)
{
	loop_iterate_at(ctx, tsm__now(), max_wait);
}

/*
 * Busy-poll progress (docs/design/progress.md). A message handed from an
 * application thread to the progress thread and back costs two hand-offs
 * between spinning threads; with two processes on two cores that is four
 * spinners on two cores. So in busy-poll mode an application thread that
 * publishes or waits in tsm_sub_recv runs the loop itself, and the
 * progress thread steps aside (naps of DRIVE_NAP: shorter ones woke it so
 * often that it preempted the spinning application threads) while such a
 * thread was running it within the last DRIVE_HOLD; it takes over again
 * when the application is away (timers, keepalive, sends that did not
 * fit). "Away" also needs the lock to be free: an application thread
 * inside one long run (sealing a 1 MiB message takes 0.5 ms) has a stale
 * stamp but is not away, and a progress thread that queued for the lock
 * then took over, competing for the core with the application thread
 * spinning next to it (both pinned to one CPU in tsm_bench): the secure
 * 1 MiB round trip's progress thread made 2/3 of all loop runs.
 */
#define DRIVE_HOLD (200 * TSM_USEC)
#define DRIVE_NAP (1000 * TSM_USEC)

static bool loop_app_drives(tsm_ctx *ctx)
{
	return ctx->busy &&
	       tsm__now() - atomic_load_explicit(&ctx->app_drive_at,
	                                         memory_order_relaxed) < DRIVE_HOLD;
}

/* Naps without prog_mu until the application is away and the lock is
 * free (or the context stops); returns holding prog_mu. */
static void loop_step_aside(tsm_ctx *ctx)
{
	struct timespec nap = {0, DRIVE_NAP};
	bool held = false;
	pthread_mutex_unlock(&ctx->prog_mu);
	do
		nanosleep(&nap, NULL);
	while (!atomic_load(&ctx->stopping) &&
	       (loop_app_drives(ctx) ||
	        !(held = pthread_mutex_trylock(&ctx->prog_mu) == 0)));
	if (!held)
		pthread_mutex_lock(&ctx->prog_mu); /* stopping: for the teardown */
}

void tsm__loop_run(tsm_ctx *ctx)
{
	while (!atomic_load(&ctx->stopping)) {
		if (loop_app_drives(ctx)) {
			/* Nap without the lock, and take it back only once the
			 * application has stopped driving: waiting in
			 * pthread_mutex_lock instead made every unlock of a
			 * spinning application thread a FUTEX_WAKE system call
			 * (19 futex calls per 64 B round trip). */
			loop_step_aside(ctx);
			continue;
		}
		tsm__loop_iterate(ctx, TSM_NEVER);
	}
}

bool tsm__ctx_drive(tsm_ctx *ctx, tsm_time now)
{
	if (!ctx->busy)
		return true;
	atomic_store_explicit(&ctx->app_drive_at, now, memory_order_relaxed);
	if (pthread_mutex_trylock(&ctx->prog_mu) != 0)
		return false; /* another thread runs it now */
	if (!atomic_load(&ctx->stopping)) {
		/* The loop's errors are not this call's: keep the caller's
		 * detail string as it was. */
		tsm__err_divert(true);
		tsm__stat_add(&ctx->stats, ST_LOOP_INLINE, 1);
		loop_iterate_at(ctx, now, 0);
		tsm__err_divert(false);
	}
	pthread_mutex_unlock(&ctx->prog_mu);
	return true;
}

void tsm__ctx_wake(tsm_ctx *ctx)
{
	if (atomic_load(&ctx->sleeping) && atomic_exchange(&ctx->sleeping, false))
		ctx->io_ops->wake(ctx->io);
}
