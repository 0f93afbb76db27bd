/*
 * brokerless/disc.c - discovery by gossip over authenticated sessions
 * (design.md §9, docs/design/discovery.md, docs/wire.md §12).
 *
 * What it does, all on the progress thread:
 *  - keeps this node's record (identity, URLs to dial it on, the topics
 *    it publishes and the patterns it subscribes) in a gossip table and
 *    bumps its version on every change and every heartbeat;
 *  - every gossip interval, sends each established session the records
 *    that changed since the last round, filtered by the local policy so a
 *    peer only learns of nodes and topics it may exchange data with;
 *  - takes records from peers: the sender's own record must carry the
 *    identity its certificate proved and the node id its preface gave;
 *    others are claims, kept only for identities the policy admits, and
 *    dialed with that identity expected, so a lying peer cannot steer us
 *    to an impostor (TLS checks who answers);
 *  - dials nodes whose adverts match its own topics (all their URLs at
 *    once; the lower node id first, the other after a grace, so that
 *    usually one session is made), with the context's back-off, and stops
 *    when the node is forgotten (silent for peer_timeout, or LEAVING).
 */
#include "brokerless/disc.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerless/beacon.h"
#include "brokerless/gossip.h"
#include "pubsub/topic.h"
#include "security/policy.h"
#include "session/secure.h"
#include "session/session.h"
#include "transport/ofi/ofi.h"

#define DISC_RX_FRAMES_PER_SEC 64 /* ADVERT frames taken per session */
#define DISC_FRAMES_PER_ROUND 4   /* ADVERT frames sent per session/round */
#define DISC_CTRL_HDR 16          /* docs/wire.md §8 before the records */
#define DISC_BEACON_EVERY (2 * TSM_SEC)
#define DISC_BEACON_CANDS 16      /* nodes heard by beacon, being dialed */
#define DISC_BEACON_RX 32         /* datagrams read per tick */

struct disc_peer {
	tsm__dialer *dialers[TSM_ADV_MAX_URLS];
	unsigned ndialers;
	tsm_time dial_after;          /* 0: not scheduled */
};

struct tsm__disc {
	tsm_ctx *ctx;
	bool enabled;
	tsm__gossip g;
	char *advertise[TSM_MAX_URLS];
	unsigned nadvertise;
	bool self_dirty;
	tsm_time next_round, next_beat;
	uint8_t frame[DISC_CTRL_HDR + TSM_WIRE_ADVERT_MAX];
	char self_urls[TSM_ADV_MAX_URLS][TSM_ADV_URL_MAX + 1];
	char self_topics[TSM_ADV_MAX_TOPICS][TSM_TOPIC_MAX + 1];
	bool warned_topics;
	/* Multicast beacons (beacon.h), off unless the params name a group. */
	bool beacon_on;
	tsm__beacon beacon;
	tsm_time next_beacon;
	struct disc_cand {
		uint64_t node_id;
		tsm__dialer *dialer;
		tsm_time since;
	} cand[DISC_BEACON_CANDS];
	unsigned ncand;
};

/* ---- this node's record ------------------------------------------------- */

static unsigned disc_self_urls(tsm__disc *d)
{
	tsm_ctx *ctx = d->ctx;
	unsigned n = 0;
	for (unsigned i = 0; i < d->nadvertise && n < TSM_ADV_MAX_URLS; i++)
		snprintf(d->self_urls[n++], TSM_ADV_URL_MAX + 1, "%s", d->advertise[i]);
	if (d->nadvertise)
		return n;
	for (tsm__listener *l = ctx->listeners; l && n < TSM_ADV_MAX_URLS;
	     l = l->next) {
		char buf[256];
		if (l->url.scheme == TSM_URL_OFI)
			tsm__ofi_bound_url(ctx->io, buf, sizeof(buf));
		else
			tsm__url_format(&l->url, buf, sizeof(buf));
		if (strlen(buf) <= TSM_ADV_URL_MAX)
			snprintf(d->self_urls[n++], TSM_ADV_URL_MAX + 1, "%s", buf);
	}
	return n;
}

static bool disc_add_topic(tsm__disc *d, tsm__adv_rec *r, uint8_t kind,
                           const char *name)
{
	for (unsigned i = 0; i < r->ntopics; i++)
		if (r->topics[i].kind == kind && strcmp(d->self_topics[i], name) == 0)
			return true;
	if (r->ntopics == TSM_ADV_MAX_TOPICS)
		return false;
	snprintf(d->self_topics[r->ntopics], TSM_TOPIC_MAX + 1, "%s", name);
	r->topics[r->ntopics].kind = kind;
	r->topics[r->ntopics].name = (tsm__adv_str){d->self_topics[r->ntopics],
	                                            (uint16_t)strlen(name)};
	r->ntopics++;
	return true;
}

static void disc_self_topics(tsm__disc *d, tsm__adv_rec *r)
{
	tsm_ctx *ctx = d->ctx;
	bool all = true;
	pthread_mutex_lock(&ctx->mu);
	for (struct tsm_pub *p = ctx->pubs; p; p = p->next)
		all = disc_add_topic(d, r, TSM_ADV_PUB, p->topic->name) && all;
	for (struct tsm_sub *u = ctx->subs; u; u = u->next)
		if (!u->closing)
			all = disc_add_topic(d, r, TSM_ADV_SUB, u->pattern) && all;
	pthread_mutex_unlock(&ctx->mu);
	if (!all && !d->warned_topics) {
		d->warned_topics = true;
		tsm__log(ctx, TSM_LOG_WARN, "discovery: more than %d topics and "
		         "patterns: only the first %d are advertised (peers "
		         "connected for them still get everything they subscribe "
		         "to)", TSM_ADV_MAX_TOPICS, TSM_ADV_MAX_TOPICS);
	}
}

static bool disc_same_self(const tsm__gnode *n, const tsm__adv_rec *r)
{
	if (!n || n->nurls != r->nurls || n->ntopics != r->ntopics)
		return false;
	for (unsigned i = 0; i < r->nurls; i++)
		if (strcmp(n->urls[i], r->urls[i].s) != 0)
			return false;
	for (unsigned i = 0; i < r->ntopics; i++)
		if (n->topics[i].kind != r->topics[i].kind ||
		    strcmp(n->topics[i].name, r->topics[i].name.s) != 0)
			return false;
	return true;
}

static void disc_refresh_self(tsm__disc *d, tsm_time now)
{
	tsm__adv_rec r;
	memset(&r, 0, offsetof(tsm__adv_rec, topics));
	const char *id = d->ctx->insecure ? "" : d->ctx->own_id;
	r.id = (tsm__adv_str){id, (uint16_t)strlen(id)};
	r.nurls = (uint8_t)disc_self_urls(d);
	for (unsigned i = 0; i < r.nurls; i++)
		r.urls[i] = (tsm__adv_str){d->self_urls[i],
		                           (uint16_t)strlen(d->self_urls[i])};
	disc_self_topics(d, &r);
	d->self_dirty = false;
	if (disc_same_self(d->g.self, &r) &&
	    strcmp(d->g.self->id, id) == 0)
		return;
	if (tsm__gossip_set_self(&d->g, &r, now) != TSM_OK)
		d->self_dirty = true; /* out of memory: try again next tick */
}

/* ---- dialing ------------------------------------------------------------ */

static bool disc_wants(const tsm__disc *d, const tsm__gnode *n)
{
	const tsm__gnode *me = d->g.self;
	for (unsigned i = 0; me && i < n->ntopics; i++) {
		const tsm__gtopic *t = &n->topics[i];
		for (unsigned j = 0; j < me->ntopics; j++) {
			const tsm__gtopic *m = &me->topics[j];
			if (t->kind == m->kind)
				continue;
			const tsm__gtopic *pat = t->kind == TSM_ADV_SUB ? t : m;
			const tsm__gtopic *top = t->kind == TSM_ADV_SUB ? m : t;
			if (tsm__topic_match(pat->name, pat->len, top->name, top->len))
				return true;
		}
	}
	return false;
}

static void disc_undial(tsm__disc *d, tsm__gnode *n)
{
	struct disc_peer *p = n->user;
	if (!p)
		return;
	for (unsigned i = 0; i < p->ndialers; i++)
		tsm__ctx_dialer_remove(d->ctx, p->dialers[i]);
	p->ndialers = 0;
	p->dial_after = 0;
}

/* u uses this context's transport (one per context, ctx.c). */
static bool disc_same_transport(const tsm_ctx *ctx, const tsm__url *u)
{
	bool ofi = u->scheme == TSM_URL_OFI;
	return ofi == (ctx->family == 2) &&
	       (!ofi || strcmp(u->ofi_provider, ctx->ofi_provider) == 0);
}

/* The URL as this context can dial it, expecting the node's identity. */
static bool disc_url(const tsm__disc *d, const tsm__gnode *n, const char *s,
                     tsm__url *u)
{
	tsm_ctx *ctx = d->ctx;
	char text[TSM_ADV_URL_MAX + 1];
	snprintf(text, sizeof(text), "%s", s);
	char *hash = strchr(text, '#');
	if (hash)
		*hash = '\0'; /* the identity comes from the record, not the URL */
	if (tsm__url_parse(text, u) != TSM_OK)
		return false;
	if (!disc_same_transport(ctx, u))
		return false; /* another transport: not for this context */
	snprintf(u->expect, sizeof(u->expect), "%s", ctx->insecure ? "" : n->id);
	return true;
}

static void disc_dial(tsm__disc *d, tsm__gnode *n, struct disc_peer *p)
{
	for (unsigned i = 0; i < n->nurls && p->ndialers < TSM_ADV_MAX_URLS; i++) {
		tsm__url u;
		if (!disc_url(d, n, n->urls[i], &u))
			continue;
		tsm__dialer *dl = tsm__ctx_dialer_add(d->ctx, &u, n->node_id);
		if (dl) {
			p->dialers[p->ndialers++] = dl;
			tsm__stat_add(&d->ctx->stats, ST_DISC_DIALS, 1);
		}
	}
	if (p->ndialers)
		tsm__log(d->ctx, TSM_LOG_INFO, "discovery: dialing %s (node %016llx) "
		         "on %u URL(s)", *n->id ? n->id : "(insecure)",
		         (unsigned long long)n->node_id, p->ndialers);
}

static bool disc_admitted(const tsm__disc *d, const char *id)
{
	tsm_ctx *ctx = d->ctx;
	return ctx->insecure ? *id == '\0'
	                     : *id && tsm__policy_admits(ctx->policy, id);
}

static void disc_consider(tsm__disc *d, tsm__gnode *n, tsm_time now)
{
	if (n == d->g.self || !d->enabled)
		return;
	struct disc_peer *p = n->user;
	bool want = !(n->flags & TSM_ADV_F_LEAVING) && disc_admitted(d, n->id) &&
	            disc_wants(d, n);
	if (!want) {
		if (p && p->ndialers && !tsm__ctx_peer_up(d->ctx, n->node_id))
			disc_undial(d, n);
		return;
	}
	if (!p && !(p = n->user = calloc(1, sizeof(*p))))
		return;
	if (p->ndialers || tsm__ctx_peer_up(d->ctx, n->node_id))
		return;
	if (!p->dial_after) {
		/* The lower node id dials; the other waits a little, and then
		 * dials too if nothing came (a peer it cannot reach, say). A
		 * node nobody can dial (no URLs) does not wait. */
		bool reachable = d->g.self && d->g.self->nurls > 0;
		tsm_duration grace = n->node_id < d->ctx->node_id && reachable
		                     ? 3 * d->ctx->p.gossip_interval : 0;
		p->dial_after = now + grace;
	}
	if (now >= p->dial_after)
		disc_dial(d, n, p);
}

static void disc_forget(void *arg, tsm__gnode *n)
{
	tsm__disc *d = arg;
	disc_undial(d, n);
	free(n->user);
	n->user = NULL;
	tsm__log(d->ctx, TSM_LOG_INFO, "discovery: forgot %s (node %016llx)",
	         *n->id ? n->id : "(insecure)", (unsigned long long)n->node_id);
}

/* ---- sending ------------------------------------------------------------ */

struct disc_view {
	tsm__disc *d;
	const char *peer;       /* identity of the session's peer */
};

/* security.md: a peer learns of a topic advert only if the policy gives
 * it some right on that topic (publish or subscribe): a node with no
 * right on it/... learns nothing of who publishes or subscribes there.
 * A seed that relays adverts for it/... therefore needs a right on it/...
 * too (docs/design/discovery.md "Who sees what"). */
static bool disc_visible(void *arg, const tsm__gnode *n, unsigned i)
{
	const struct disc_view *v = arg;
	const tsm__gtopic *t = &n->topics[i];
	const tsm__policy *pol = v->d->ctx->policy;
	if (t->kind == TSM_ADV_PUB)
		return tsm__policy_check(pol, v->peer, TSM_ACT_SUBSCRIBE,
		                         t->name).allowed ||
		       tsm__policy_check(pol, v->peer, TSM_ACT_PUBLISH,
		                         t->name).allowed;
	return tsm__policy_may_pattern(pol, v->peer, TSM_ACT_PUBLISH, t->name) ||
	       tsm__policy_may_pattern(pol, v->peer, TSM_ACT_SUBSCRIBE, t->name);
}

/* Sends s what changed since its cursor; force: even with frames queued
 * (the LEAVING record at close). Otherwise a session whose control queue
 * is not empty gets nothing this round, so a stalled peer costs at most
 * one round of frames. */
static void disc_send(tsm__disc *d, tsm__session *s, bool force)
{
	if (!tsm__session_up(s) || s->retiring || (s->ctrl_head && !force))
		return;
	tsm_ctx *ctx = d->ctx;
	struct disc_view v = {d, tsm__sec_peer_id(s)};
	for (int f = 0; f < DISC_FRAMES_PER_ROUND; f++) {
		tsm__wbuf w;
		memset(d->frame, 0, DISC_CTRL_HDR);
		d->frame[0] = TSM_C_ADVERT; /* reserved, id, value, str_len: 0 */
		tsm__wbuf_init(&w, d->frame + DISC_CTRL_HDR, TSM_WIRE_ADVERT_MAX);
		tsm__adv_begin(&w);
		unsigned put = tsm__gossip_collect(&d->g, &s->adv_cursor,
		                                   s->peer_node_id,
		                                   ctx->insecure ? NULL : disc_visible,
		                                   &v, &w);
		if (put == 0)
			break;
		if (tsm__session_send_frame(s, TSM_F_CTRL, d->frame,
		                            DISC_CTRL_HDR + w.len) != TSM_OK)
			break;
		tsm__stat_add(&ctx->stats, ST_DISC_ADV_TX, 1);
	}
	tsm__session_pump(s);
}

/* ---- receiving ---------------------------------------------------------- */

struct disc_rx {
	tsm__disc *d;
	tsm__session *s;
	tsm_time now;
	tsm_err err;
};

/* A wildcard host in the sender's own URL becomes the address we see it
 * from: a node listening on 0.0.0.0 does not know which of its addresses
 * its peers can reach. */
static void disc_fix_host(const tsm__session *s, const tsm__adv_str *in,
                          char *out, size_t cap, tsm__adv_str *res)
{
	static const char *const wild[] = {"0.0.0.0:", "[::]:"};
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char ip[INET6_ADDRSTRLEN + 2] = "";
	snprintf(out, cap, "%.*s", (int)in->n, in->s);
	*res = (tsm__adv_str){out, (uint16_t)strlen(out)};
	char *host = strstr(out, "://");
	if (!host || s->conn.fd < 0 ||
	    getpeername(s->conn.fd, (struct sockaddr *)&ss, &len) != 0)
		return;
	host += 3;
	for (int i = 0; i < 2; i++) {
		size_t wl = strlen(wild[i]);
		if (strncmp(host, wild[i], wl) != 0)
			continue;
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip,
			          sizeof(ip));
		else if (ss.ss_family == AF_INET6) {
			ip[0] = '[';
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
			          ip + 1, sizeof(ip) - 2);
			strcat(ip, "]");
		}
		if (!*ip)
			return;
		char rest[TSM_ADV_URL_MAX + 1];
		snprintf(rest, sizeof(rest), "%s", host + wl - 1); /* ":port..." */
		size_t pre = (size_t)(host - out);
		if (pre + strlen(ip) + strlen(rest) < cap && pre + strlen(ip) +
		    strlen(rest) <= TSM_ADV_URL_MAX) {
			snprintf(host, cap - pre, "%s%s", ip, rest);
			*res = (tsm__adv_str){out, (uint16_t)strlen(out)};
		}
		return;
	}
}

static bool disc_on_rec(void *arg, const tsm__adv_rec *rec)
{
	struct disc_rx *x = arg;
	tsm__disc *d = x->d;
	tsm_ctx *ctx = d->ctx;
	tsm__adv_rec r = *rec;
	char fixed[TSM_ADV_MAX_URLS][TSM_ADV_URL_MAX + 1];
	if (r.flags & TSM_ADV_F_SELF) {
		const char *pid = ctx->insecure ? "" : tsm__sec_peer_id(x->s);
		if (r.node_id != x->s->peer_node_id || strlen(pid) != r.id.n ||
		    memcmp(pid, r.id.s, r.id.n) != 0) {
			x->err = tsm__err_set(TSM_ERR_BAD_FIELD, "ADVERT: the sender's "
			                      "own record names another node or "
			                      "identity than its session proved");
			return false;
		}
		for (unsigned i = 0; i < r.nurls; i++)
			disc_fix_host(x->s, &rec->urls[i], fixed[i], sizeof(fixed[i]),
			              &r.urls[i]);
	} else {
		char id[TSM_ADV_ID_MAX + 1];
		snprintf(id, sizeof(id), "%.*s", (int)r.id.n, r.id.s ? r.id.s : "");
		if (!disc_admitted(d, id)) {
			tsm__stat_add(&ctx->stats, ST_DISC_REFUSED, 1);
			return true; /* a claim about a node we may not talk to */
		}
	}
	tsm__gnode *n;
	enum tsm__gmerge m = tsm__gossip_merge(&d->g, &r, x->s->peer_node_id,
	                                       x->now, &n);
	if (m == TSM_G_FULL)
		tsm__stat_add(&ctx->stats, ST_DISC_FULL, 1);
	if (m == TSM_G_NEW)
		tsm__log(ctx, TSM_LOG_INFO, "discovery: learnt of %s (node %016llx) "
		         "from %s", *n->id ? n->id : "(insecure)",
		         (unsigned long long)n->node_id, x->s->peer_addr);
	if (m == TSM_G_LEFT)
		tsm__stat_add(&ctx->stats, ST_DISC_LEFT, 1);
	if (n)
		disc_consider(d, n, x->now);
	return true;
}

static tsm_err disc_on_advert(tsm__disc *d, tsm__session *s, const uint8_t *b,
                              size_t len)
{
	tsm_ctx *ctx = d->ctx;
	tsm_time now = tsm__now();
	if (now - s->adv_window >= TSM_SEC) {
		s->adv_window = now;
		s->adv_frames = 0;
	}
	if (++s->adv_frames > DISC_RX_FRAMES_PER_SEC) {
		tsm__stat_add(&ctx->stats, ST_DISC_RATE_LIMITED, 1);
		return TSM_OK; /* over the rate: ignored, counted */
	}
	tsm__stat_add(&ctx->stats, ST_DISC_ADV_RX, 1);
	struct disc_rx x = {d, s, now, TSM_OK};
	tsm_err e = tsm__adv_decode(b, len, disc_on_rec, &x);
	tsm__stat_set(&ctx->stats, ST_DISC_NODES, d->g.n);
	return e ? e : x.err;
}

/* ---- beacons ------------------------------------------------------------ */

static bool disc_known(tsm__disc *d, uint64_t node_id)
{
	if (node_id == d->ctx->node_id || tsm__gossip_find(&d->g, node_id) ||
	    tsm__ctx_peer_up(d->ctx, node_id))
		return true;
	for (unsigned i = 0; i < d->ncand; i++)
		if (d->cand[i].node_id == node_id)
			return true;
	return false;
}

/* A beacon from an unknown node: dial it (TLS and the policy decide). */
static void disc_beacon_heard(tsm__disc *d, uint64_t node_id, const char *url,
                              tsm_time now)
{
	tsm_ctx *ctx = d->ctx;
	tsm__url u;
	if (disc_known(d, node_id) || d->ncand == DISC_BEACON_CANDS ||
	    tsm__url_parse(url, &u) != TSM_OK || u.expect[0])
		return;
	if (!disc_same_transport(ctx, &u))
		return;
	tsm__dialer *dl = tsm__ctx_dialer_add(ctx, &u, node_id);
	if (!dl)
		return;
	d->cand[d->ncand++] = (struct disc_cand){node_id, dl, now};
	tsm__stat_add(&ctx->stats, ST_DISC_DIALS, 1);
	tsm__log(ctx, TSM_LOG_INFO, "discovery: beacon from node %016llx at %s: "
	         "dialing it", (unsigned long long)node_id, url);
}

/* Candidates end when connected (gossip takes over) or after the timeout. */
static void disc_beacon_reap(tsm__disc *d, tsm_time now)
{
	for (unsigned i = 0; i < d->ncand;) {
		struct disc_cand *c = &d->cand[i];
		if (tsm__ctx_peer_up(d->ctx, c->node_id) ||
		    now - c->since >= d->ctx->p.peer_timeout) {
			tsm__ctx_dialer_remove(d->ctx, c->dialer);
			*c = d->cand[--d->ncand];
			continue;
		}
		i++;
	}
}

static void disc_beacons(tsm__disc *d, tsm_time now)
{
	tsm_ctx *ctx = d->ctx;
	uint64_t node_id, bad = 0;
	char url[TSM_ADV_URL_MAX + 1];
	if (now >= d->next_beacon) {
		d->next_beacon = now + DISC_BEACON_EVERY;
		if (d->g.self && d->g.self->nurls &&
		    tsm__beacon_send(&d->beacon, ctx->node_id, d->g.self->urls[0]))
			tsm__stat_add(&ctx->stats, ST_DISC_BEACON_TX, 1);
	}
	for (int i = 0; i < DISC_BEACON_RX &&
	     tsm__beacon_recv(&d->beacon, &node_id, url, sizeof(url), &bad); i++) {
		tsm__stat_add(&ctx->stats, ST_DISC_BEACON_RX, 1);
		disc_beacon_heard(d, node_id, url, now);
	}
	tsm__stat_add(&ctx->stats, ST_DISC_BEACON_BAD, bad);
	disc_beacon_reap(d, now);
}

/* The interface to beacon on: the first listen URL's IPv4 address. */
static struct in_addr disc_beacon_if(const tsm_ctx_params *p)
{
	struct in_addr any = {htonl(INADDR_ANY)};
	tsm__url u;
	if (!p->listen[0] || tsm__url_parse(p->listen[0], &u) != TSM_OK ||
	    u.scheme != TSM_URL_TCP || u.sa.ss_family != AF_INET)
		return any;
	return ((struct sockaddr_in *)&u.sa)->sin_addr;
}

/* ---- timers, life cycle ------------------------------------------------- */

static tsm_time disc_tick(tsm__disc *d, tsm_time now)
{
	tsm_ctx *ctx = d->ctx;
	if (d->self_dirty)
		disc_refresh_self(d, now);
	if (now >= d->next_beat) {
		tsm__gossip_heartbeat(&d->g, now);
		d->next_beat = now + ctx->p.peer_timeout / 3;
	}
	uint64_t before = d->g.expired;
	tsm__gossip_expire(&d->g, now, disc_forget, d);
	tsm__stat_add(&ctx->stats, ST_DISC_EXPIRED, d->g.expired - before);
	if (now >= d->next_round) {
		d->next_round = now + ctx->p.gossip_interval;
		if (d->enabled)
			for (tsm__session *s = ctx->sessions; s; s = s->next)
				disc_send(d, s, false);
		for (tsm__gnode *n = d->g.head; n; n = n->next)
			disc_consider(d, n, now);
		tsm__stat_set(&ctx->stats, ST_DISC_NODES, d->g.n);
	}
	if (d->beacon_on && d->enabled)
		disc_beacons(d, now);
	tsm_time next = TSM_MIN(d->next_round, d->next_beat);
	if (d->beacon_on && d->enabled)
		next = TSM_MIN(next, now + 100 * TSM_MSEC); /* poll the socket */
	for (tsm__gnode *n = d->g.head; n; n = n->next) {
		struct disc_peer *p = n->user;
		if (p && !p->ndialers && p->dial_after > now)
			next = TSM_MIN(next, p->dial_after);
	}
	return next;
}

static void disc_session_up(tsm__disc *d, tsm__session *s)
{
	s->adv_cursor = 0; /* a new peer gets the whole (filtered) table */
	if (d->enabled)
		disc_send(d, s, false);
}

static void disc_local_changed(tsm__disc *d)
{
	d->self_dirty = true;
	d->next_round = 0; /* tell the peers at the next tick */
	d->ctx->next_tick = 0;
}

static void disc_leave(tsm__disc *d)
{
	if (!d->enabled)
		return;
	tsm__gossip_leave(&d->g, tsm__now());
	for (tsm__session *s = d->ctx->sessions; s; s = s->next)
		disc_send(d, s, true);
}

static void disc_close(tsm__disc *d);

static tsm_err disc_open(tsm_ctx *ctx, const tsm_ctx_params *p, tsm__disc **out)
{
	tsm__disc *d = calloc(1, sizeof(*d));
	if (!d)
		return tsm__err_set(TSM_ENOMEM, "discovery");
	d->ctx = ctx;
	d->enabled = p->discovery != 0;
	for (int i = 0; i < TSM_MAX_URLS && p->advertise[i]; i++) {
		tsm__url u;
		if (strlen(p->advertise[i]) > TSM_ADV_URL_MAX ||
		    tsm__url_parse(p->advertise[i], &u) != TSM_OK || u.expect[0]) {
			for (unsigned j = 0; j < d->nadvertise; j++)
				free(d->advertise[j]);
			free(d);
			return tsm__err_set(TSM_ERR_BAD_URL, "advertise %s: not a URL to "
			                    "dial (at most %d bytes, no '#')",
			                    p->advertise[i], TSM_ADV_URL_MAX);
		}
		if (d->nadvertise < TSM_ADV_MAX_URLS)
			d->advertise[d->nadvertise++] = strdup(p->advertise[i]);
	}
	tsm_err e = tsm__gossip_init(&d->g, ctx->node_id, ctx->p.max_peers + 1,
	                             ctx->p.peer_timeout);
	if (e) {
		for (unsigned j = 0; j < d->nadvertise; j++)
			free(d->advertise[j]);
		free(d);
		return e;
	}
	d->self_dirty = true;
	d->beacon.fd = -1;
	if (p->beacon && *p->beacon && d->enabled) {
		if ((e = tsm__beacon_open(&d->beacon, p->beacon,
		                          disc_beacon_if(p))) != TSM_OK) {
			char why[256];
			snprintf(why, sizeof(why), "%s", tsm_err_detail());
			disc_close(d);
			return tsm__err_set(e, "%s", why);
		}
		d->beacon_on = true;
		tsm__log(ctx, TSM_LOG_INFO, "discovery: multicast beacons on %s",
		         p->beacon);
	}
	*out = d;
	return TSM_OK;
}

static void disc_close(tsm__disc *d)
{
	if (!d)
		return;
	tsm__beacon_close(&d->beacon);
	for (tsm__gnode *n = d->g.head; n; n = n->next)
		free(n->user); /* dialers are the context's: freed with it */
	tsm__gossip_fini(&d->g);
	for (unsigned j = 0; j < d->nadvertise; j++)
		free(d->advertise[j]);
	free(d);
}

/* ---- listing ------------------------------------------------------------ */

static void disc_info(const tsm__disc *d, const tsm__gnode *n, tsm_time now,
                      tsm_peer_info *o)
{
	tsm_ctx *ctx = d->ctx;
	const struct disc_peer *p = n->user;
	bool up = n != d->g.self && tsm__ctx_peer_up(ctx, n->node_id);
	memset(o, 0, sizeof(*o));
	o->node_id = n->node_id;
	snprintf(o->identity, sizeof(o->identity), "%s", n->id);
	snprintf(o->state, sizeof(o->state), "%s",
	         n == d->g.self ? "self" : (n->flags & TSM_ADV_F_LEAVING) ? "left"
	         : up ? "connected" : p && p->ndialers ? "dialing" : "known");
	snprintf(o->transport, sizeof(o->transport), "%s",
	         up || n == d->g.self ? tsm_ctx_transport(ctx) : "");
	snprintf(o->url, sizeof(o->url), "%s", n->nurls ? n->urls[0] : "");
	for (unsigned i = 0; i < n->ntopics; i++) {
		o->npub += n->topics[i].kind == TSM_ADV_PUB;
		o->nsub += n->topics[i].kind == TSM_ADV_SUB;
	}
	o->heard_ms = (now - n->updated) / TSM_MSEC;
}

static size_t disc_peers(tsm__disc *d, tsm_peer_info *out, size_t max)
{
	tsm_ctx *ctx = d->ctx;
	tsm_time now = tsm__now();
	size_t k = 0;
	if (d->self_dirty)
		disc_refresh_self(d, now);
	if (d->g.self && k++ < max)
		disc_info(d, d->g.self, now, &out[k - 1]);
	for (tsm__gnode *n = d->g.head; n; n = n->next)
		if (n != d->g.self && k++ < max)
			disc_info(d, n, now, &out[k - 1]);
	/* Peers with a session but no record (discovery off, or not yet). */
	for (tsm__session *s = ctx->sessions; s; s = s->next) {
		if (!tsm__session_up(s) || s->retiring ||
		    tsm__gossip_find(&d->g, s->peer_node_id))
			continue;
		if (k++ >= max)
			continue;
		tsm_peer_info *o = &out[k - 1];
		memset(o, 0, sizeof(*o));
		o->node_id = s->peer_node_id;
		snprintf(o->identity, sizeof(o->identity), "%s",
		         ctx->insecure ? "" : tsm__sec_peer_id(s));
		snprintf(o->state, sizeof(o->state), "connected");
		snprintf(o->transport, sizeof(o->transport), "%s",
		         tsm_ctx_transport(ctx));
		snprintf(o->url, sizeof(o->url), "%s", s->peer_addr);
		o->heard_ms = -1;
	}
	return k;
}

const tsm__disc_ops tsm__disc_gossip_ops = {
	.size = sizeof(tsm__disc_ops),
	.name = "gossip",
	.open = disc_open,
	.close = disc_close,
	.leave = disc_leave,
	.session_up = disc_session_up,
	.on_advert = disc_on_advert,
	.local_changed = disc_local_changed,
	.tick = disc_tick,
	.peers = disc_peers,
};
