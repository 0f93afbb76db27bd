/*
 * core/ctx.c - opening and closing a context, the command channel from
 * application threads to the progress thread, and the thread itself.
 *
 * Commands that must report a result (listen, dial) wait for the progress
 * thread to run them; the wait is bounded by the thread's liveness, since
 * it runs commands at the top of every iteration.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "brokerless/disc.h"
#include "core/cred.h"
#include "transport/ofi/ofi.h"
#include "core/tstats.h"
tsm_err tsm__ts_init(tsm_ctx *ctx);
#include "session/resume.h"
#include "session/session.h"
#include "transport/tcp/tcp.h"
#include "transport/fault/fault.h"

extern const tsm__io_cbs tsm__loop_cbs;
void tsm__loop_iterate(tsm_ctx *ctx, tsm_time max_wait);
void tsm__sub_dlv_stop(tsm_ctx *ctx);

TSM_API tsm_err tsm_ctx_params_init(tsm_ctx_params *p)
{
	if (!p)
		return tsm__err_set(TSM_EINVAL, "tsm_ctx_params_init: NULL");
	memset(p, 0, sizeof(*p));
	p->size = sizeof(*p);
	p->progress = TSM_PROGRESS_BLOCKING;
	p->log_level = TSM_LOG_WARN;
	memset(p->lane_dscp, -1, sizeof(p->lane_dscp));
	p->discovery = 1;
	return TSM_OK;
}

/*
 * The size field lets the struct grow: a caller built against an older,
 * smaller header gets defaults for the fields it does not know; a size
 * larger than this library's, or too small to hold anything, is refused.
 */
tsm_err tsm__struct_upgrade(void *full, size_t full_size, const void *in,
                            const char *what);
tsm_err tsm__struct_upgrade(void *full, size_t full_size, const void *in,
                            const char *what)
{
	uint32_t n;
	memcpy(&n, in, sizeof(n));
	if (n < 2 * sizeof(uint32_t) || n > full_size)
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "%s: size %u is not that of a "
		                    "%s initialised by this library's _init (%zu)",
		                    what, n, what, full_size);
	memcpy(full, in, n);
	memcpy(full, &full_size, sizeof(n)); /* now the full size */
	return TSM_OK;
}

static tsm_err ctx_check_params(const tsm_ctx_params *p)
{
	if (!p)
		return tsm__err_set(TSM_EINVAL, "tsm_ctx_open: params is NULL");
	char missing[96] = "";
	const struct { const char *v, *name; } need[] = {
		{p->cert_file, "cert_file"}, {p->key_file, "key_file"},
		{p->trust_file, "trust_file"}, {p->policy_file, "policy_file"}};
	for (size_t i = 0; !p->insecure && i < TSM_ARRAY_LEN(need); i++)
		if (!need[i].v || !*need[i].v)
			snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing),
			         "%s%s", *missing ? ", " : "", need[i].name);
	/* No credentials or no policy is a refusal, never "allow all". */
	if (*missing)
		return tsm__err_set(TSM_ERR_NO_CREDENTIALS, "tsm_ctx_open: missing %s; "
		                    "give them, or set insecure=1 to run without "
		                    "authentication", missing);
	for (int i = 0; i < 8; i++)
		if (p->lane_dscp[i] < -1 || p->lane_dscp[i] > 63)
			return tsm__err_set(TSM_ERR_BAD_PARAMS, "lane_dscp[%d] = %d: "
			                    "must be -1 or 0..63", i, p->lane_dscp[i]);
	if (p->cipher != 0 && p->cipher != 1)
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "cipher must be 0 or 1");
	if (p->fragment_size && p->fragment_size < 1024)
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "fragment_size below 1024");
	return TSM_OK;
}

static void ctx_defaults(tsm_ctx *ctx, const tsm_ctx_params *p)
{
	ctx->p = *p;
	memset(ctx->p.listen, 0, sizeof(ctx->p.listen));
	memset(ctx->p.connect, 0, sizeof(ctx->p.connect));
	memset(ctx->p.advertise, 0, sizeof(ctx->p.advertise)); /* disc.c copies */
	ctx->p.beacon = NULL;                                  /* disc.c opens */
	ctx->p.name = ctx->p.cert_file = ctx->p.key_file = NULL;
	ctx->p.trust_file = ctx->p.policy_file = ctx->p.crl_file = NULL;
	tsm_ctx_params *q = &ctx->p;
	if (!q->publish_queue)
		q->publish_queue = 8192;
	if (!q->publish_queue_bytes)
		q->publish_queue_bytes = 64ull << 20;
	if (!q->session_queue_bytes)
		q->session_queue_bytes = 64ull << 20;
	if (!q->reassembly_bytes)
		q->reassembly_bytes = 256ull << 20;
	if (!q->fragment_size)
		q->fragment_size = 65536;
	if (q->fragment_size > 1024 * 1024)
		q->fragment_size = 1024 * 1024;
	if (!q->handshake_timeout)
		q->handshake_timeout = 5 * TSM_SEC;
	if (!q->session_timeout)
		q->session_timeout = 10 * TSM_SEC;
	if (!q->reconnect_max)
		q->reconnect_max = 5 * TSM_SEC;
	if (!q->preauth_max)
		q->preauth_max = 256;
	if (!q->preauth_per_source)
		q->preauth_per_source = 4;
	if (!q->accept_backoff)
		q->accept_backoff = 100 * TSM_MSEC;
	if (!q->linger)
		q->linger = TSM_SEC;
	if (!q->reauth_before)
		q->reauth_before = 60 * TSM_SEC;
	if (!q->reload_interval)
		q->reload_interval = TSM_SEC;
	if (!q->gossip_interval)
		q->gossip_interval = 500 * TSM_MSEC;
	if (!q->peer_timeout)
		q->peer_timeout = 30 * TSM_SEC;
	if (!q->max_peers)
		q->max_peers = 1024;
	ctx->aead_alg = p->cipher;
	snprintf(ctx->name, sizeof(ctx->name), "%s", p->name ? p->name : "tsm");
	ctx->insecure = p->insecure;
	ctx->busy = p->progress == TSM_PROGRESS_BUSY_POLL;
	(void)getrandom(&ctx->node_id, sizeof(ctx->node_id), 0);
	ctx->node_id |= 1; /* 0 means "unknown" to dialers */
}

/*
 * A context has one I/O engine: a libfabric endpoint when its URLs are
 * ofi+... (all of one provider), else io_uring/epoll for tcp:// and
 * inproc:// (docs/transports.md). Mixing families in one context is
 * refused with a clear error rather than half working.
 */
static tsm_err ctx_family(tsm_ctx *ctx, const tsm_ctx_params *p)
{
	const char *const *lists[2] = {p->listen, p->connect};
	for (int l = 0; l < 2; l++) {
		for (int i = 0; i < TSM_MAX_URLS && lists[l][i]; i++) {
			tsm__url u;
			tsm_err e = tsm__url_parse(lists[l][i], &u);
			if (e)
				return e;
			bool ofi = u.scheme == TSM_URL_OFI;
			if (ctx->family && (ofi != (ctx->family == 2) ||
			                    (ofi && strcmp(u.ofi_provider, ctx->ofi_provider))))
				return tsm__err_set(TSM_ERR_BAD_URL, "%s: one context uses one "
				                    "transport (one libfabric provider, or "
				                    "tcp/inproc); open another context for it",
				                    lists[l][i]);
			ctx->family = ofi ? 2 : 1;
			if (ofi)
				snprintf(ctx->ofi_provider, sizeof(ctx->ofi_provider), "%s",
				         u.ofi_provider);
			if (ofi && l == 0)
				ctx->ofi_listens = true;
			if (ofi && l == 1 && strncmp(u.ofi_addr, "127.", 4) == 0)
				ctx->ofi_loopback_peer = true;
		}
	}
	return TSM_OK;
}

/* io_uring first; epoll only on failure or request, always loudly. */
static tsm_err ctx_engine(tsm_ctx *ctx)
{
	if (ctx->family == 2 && strcmp(ctx->ofi_provider, "auto") == 0)
		return tsm__ofi_auto_open(ctx, &tsm__loop_cbs); /* auto:// */
	if (ctx->family == 2) {
		tsm_err e = tsm__ofi_init(&ctx->io, &tsm__loop_cbs, ctx->busy,
		                          ctx->ofi_provider);
		/* A dial-only context whose peers are on loopback keeps its own
		 * endpoint there too, instead of the provider's default
		 * interface (traffic between local processes stays on lo). */
		if (!e && !ctx->ofi_listens && ctx->ofi_loopback_peer &&
		    strcmp(ctx->ofi_provider, "shm") != 0 &&
		    tsm__ofi_listen_addr(ctx->io, "127.0.0.1:0") != TSM_OK)
			tsm__log(ctx, TSM_LOG_WARN, "ofi: cannot bind to loopback: %s",
			         tsm_err_detail());
		if (!e) {
			tsm__ofi_info oi;
			ctx->io_ops = &tsm__io_ofi_ops;
			tsm__ofi_query(ctx->io, &oi);
			snprintf(ctx->transport_name, sizeof(ctx->transport_name), "ofi:%s",
			         oi.provider);
			tsm__stat_set(&ctx->stats, ST_OFI, 1);
			tsm__stat_set(&ctx->stats, ST_OFI_TC_ASKED, oi.tclass_asked);
			tsm__stat_set(&ctx->stats, ST_OFI_TC_GRANTED, oi.tclass_granted);
			tsm__log(ctx, TSM_LOG_INFO, "libfabric provider %s (fabric %s, "
			         "traffic class asked %#x granted %#x)", oi.provider,
			         oi.fabric, oi.tclass_asked, oi.tclass_granted);
		}
		return e;
	}
	const char *no = getenv("TSM_NO_URING");
	tsm_err e = TSM_ERR_URING_UNAVAILABLE;
	if (!(no && *no && strcmp(no, "0") != 0)) {
		e = tsm__io_uring_ops.init(&ctx->io, &tsm__loop_cbs, ctx->busy);
		if (!e) {
			ctx->io_ops = &tsm__io_uring_ops;
			tsm__stat_set(&ctx->stats, ST_URING, 1);
			return TSM_OK;
		}
		tsm__log(ctx, TSM_LOG_WARN, "io_uring unavailable (%s): falling back "
		         "to epoll", tsm_err_detail());
	} else {
		tsm__log(ctx, TSM_LOG_WARN, "TSM_NO_URING set: using epoll, not io_uring");
	}
	tsm__stat_add(&ctx->stats, ST_EPOLL_FALLBACK, 1);
	ctx->io_ops = &tsm__io_epoll_ops;
	return tsm__io_epoll_ops.init(&ctx->io, &tsm__loop_cbs, ctx->busy);
}

static void ctx_drain(tsm_ctx *ctx);
static void ctx_teardown_io(tsm_ctx *ctx);

/* Drain and teardown run here too, not on the closing thread: io_uring
 * cancels a thread's pending operations when that thread exits. */
static void *ctx_main(void *arg)
{
	tsm_ctx *ctx = arg;
	pthread_mutex_lock(&ctx->prog_mu);
	tsm__loop_run(ctx);
	ctx_drain(ctx);
	ctx_teardown_io(ctx);
	pthread_mutex_unlock(&ctx->prog_mu);
	return NULL;
}

static void ctx_rings_fini(tsm_ctx *ctx)
{
	for (int i = 0; i < 8; i++)
		tsm__mpmc_fini(&ctx->pubq[i]);
}

static tsm_err ctx_init_sync(tsm_ctx *ctx)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&ctx->mu, NULL);
	pthread_mutex_init(&ctx->prog_mu, NULL);
	pthread_cond_init(&ctx->cv, &ca);
	pthread_cond_init(&ctx->pubq_cv, &ca);
	pthread_cond_init(&ctx->dlv_cv, &ca);
	pthread_condattr_destroy(&ca);
	ctx->cmds_tail = &ctx->cmds;
	for (int i = 0; i < 8; i++) {
		tsm_err e = tsm__mpmc_init(&ctx->pubq[i], ctx->p.publish_queue);
		if (e)
			return e;
	}
	return TSM_OK;
}

static tsm_err ctx_urls(tsm_ctx *ctx, const tsm_ctx_params *p)
{
	tsm_err e;
	for (int i = 0; i < TSM_MAX_URLS && p->listen[i]; i++)
		if ((e = tsm_ctx_listen(ctx, p->listen[i], NULL, 0)) != TSM_OK)
			return e;
	for (int i = 0; i < TSM_MAX_URLS && p->connect[i]; i++)
		if ((e = tsm_ctx_dial(ctx, p->connect[i])) != TSM_OK)
			return e;
	return TSM_OK;
}

TSM_API tsm_err tsm_ctx_open(tsm_ctx **out, const tsm_ctx_params *p)
{
	if (!out)
		return tsm__err_set(TSM_EINVAL, "tsm_ctx_open: out is NULL");
	*out = NULL;
	tsm_ctx_params full;
	tsm_ctx_params_init(&full);
	tsm_err e = p ? tsm__struct_upgrade(&full, sizeof(full), p, "tsm_ctx_params")
	              : tsm__err_set(TSM_EINVAL, "tsm_ctx_open: params is NULL");
	if (e || (e = ctx_check_params(&full)))
		return e;
	p = &full;
	tsm_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return tsm__err_set(TSM_ENOMEM, "tsm_ctx_open");
	ctx_defaults(ctx, p);
	if ((e = ctx_family(ctx, p)) || (e = ctx_init_sync(ctx)) || (e = tsm__ts_init(ctx)) ||
	    (!ctx->insecure && (e = tsm__cred_open(ctx, p))) || (e = ctx_engine(ctx)) ||
	    (e = tsm__fault_install(ctx))) { /* TSM_FAULT: tests only */
		char why[512];
		snprintf(why, sizeof(why), "%s", tsm_err_detail());
		tsm__cred_close(ctx);
		tsm__ts_free(ctx);
		ctx_rings_fini(ctx);
		free(ctx);
		return tsm__err_set(e, "%s", why);
	}
	ctx->disc_ops = &tsm__disc_gossip_ops;
	if ((e = ctx->disc_ops->open(ctx, p, &ctx->disc)) != TSM_OK) {
		char why[512];
		snprintf(why, sizeof(why), "%s", tsm_err_detail());
		ctx->io_ops->fini(ctx->io);
		ctx_rings_fini(ctx);
		tsm__cred_close(ctx);
		tsm__ts_free(ctx);
		free(ctx);
		return tsm__err_set(e, "%s", why);
	}
	if (ctx->insecure) {
		tsm__stat_set(&ctx->stats, ST_INSECURE, 1);
		tsm__log(ctx, TSM_LOG_WARN, "INSECURE mode: no authentication, no "
		         "encryption (explicitly requested)");
	}
	if (pthread_create(&ctx->thread, NULL, ctx_main, ctx) != 0) {
		ctx->disc_ops->close(ctx->disc);
		ctx->io_ops->fini(ctx->io);
		ctx_rings_fini(ctx);
		tsm__cred_close(ctx);
		tsm__ts_free(ctx);
		free(ctx);
		return tsm__err_set(TSM_ENOMEM, "tsm_ctx_open: cannot start thread");
	}
	if ((e = ctx_urls(ctx, p)) != TSM_OK) {
		char why[512];
		snprintf(why, sizeof(why), "%s", tsm_err_detail());
		tsm_ctx_close(ctx);
		return tsm__err_set(e, "%s", why);
	}
	*out = ctx;
	return TSM_OK;
}

/* Queues c for the progress thread; waits for it unless fire-and-forget. */
static void ctx_cmd(tsm_ctx *ctx, tsm__cmd *c, bool wait)
{
	pthread_mutex_lock(&ctx->mu);
	c->next = NULL;
	*ctx->cmds_tail = c;
	ctx->cmds_tail = &c->next;
	atomic_store(&ctx->cmd_pending, true);
	tsm__ctx_wake(ctx);
	while (wait && !c->done)
		pthread_cond_wait(&ctx->cv, &ctx->mu);
	pthread_mutex_unlock(&ctx->mu);
}

tsm_err tsm__ctx_cmd_wait(tsm_ctx *ctx, tsm__cmd *c);
tsm_err tsm__ctx_cmd_wait(tsm_ctx *ctx, tsm__cmd *c)
{
	ctx_cmd(ctx, c, true);
	return c->result;
}

tsm_err tsm__ctx_adopt_fd(struct tsm_ctx *ctx, int fd)
{
	tsm__cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return tsm__err_set(TSM_ENOMEM, "inproc adopt");
	c->kind = CMD_ADOPT_FD;
	c->fd = fd;
	ctx_cmd(ctx, c, false);
	return TSM_OK;
}

/* A URL given after open must fit the engine the context already has. */
static tsm_err ctx_same_family(const tsm_ctx *ctx, const tsm__url *u,
                               const char *url)
{
	bool ofi = u->scheme == TSM_URL_OFI;
	if (ofi == (ctx->family == 2) &&
	    (!ofi || strcmp(u->ofi_provider, ctx->ofi_provider) == 0))
		return TSM_OK;
	return tsm__err_set(TSM_ERR_BAD_URL, "%s: this context runs %s%s; one "
	                    "context uses one transport", url,
	                    ctx->family == 2 ? "libfabric " : "tcp/inproc",
	                    ctx->family == 2 ? ctx->ofi_provider : "");
}

TSM_API tsm_err tsm_ctx_listen(tsm_ctx *ctx, const char *url, char *bound,
                               size_t bound_len)
{
	if (!ctx || !url)
		return tsm__err_set(TSM_EINVAL, "tsm_ctx_listen: NULL argument");
	tsm__cmd c = {.kind = CMD_LISTEN};
	tsm_err e = tsm__url_parse(url, &c.url);
	if (!e)
		e = ctx_same_family(ctx, &c.url, url);
	if (e)
		return e;
	if (c.url.expect[0])
		return tsm__err_set(TSM_ERR_BAD_URL, "listen %s: an expected peer "
		                    "('#...') belongs on a URL to dial", url);
	if ((e = tsm__ctx_cmd_wait(ctx, &c)) != TSM_OK) {
		/* The detail was set on the progress thread: carry it over. */
		return tsm__err_set(e, "listen %s: %s", url, c.bound);
	}
	if (bound && bound_len)
		snprintf(bound, bound_len, "%s", c.bound);
	tsm__log(ctx, TSM_LOG_INFO, "listening on %s", c.bound);
	return TSM_OK;
}

TSM_API tsm_err tsm_ctx_dial(tsm_ctx *ctx, const char *url)
{
	if (!ctx || !url)
		return tsm__err_set(TSM_EINVAL, "tsm_ctx_dial: NULL argument");
	tsm__cmd c = {.kind = CMD_DIAL};
	tsm_err e = tsm__url_parse(url, &c.url);
	if (!e)
		e = ctx_same_family(ctx, &c.url, url);
	if (e)
		return e;
	if (c.url.expect[0] && ctx->insecure) /* nobody could check it */
		return tsm__err_set(TSM_ERR_BAD_URL, "dial %s: an expected peer "
		                    "identity needs security (this context is "
		                    "insecure)", url);
	return tsm__ctx_cmd_wait(ctx, &c);
}

/* Waits on ctx->cv (mu held) until pred or deadline; false on timeout. */
bool tsm__ctx_wait_until(tsm_ctx *ctx, tsm_time deadline);
bool tsm__ctx_wait_until(tsm_ctx *ctx, tsm_time deadline)
{
	if (deadline == TSM_NEVER) {
		pthread_cond_wait(&ctx->cv, &ctx->mu);
		return true;
	}
	struct timespec ts;
	tsm__abstime(deadline, &ts);
	return pthread_cond_timedwait(&ctx->cv, &ctx->mu, &ts) == 0 ||
	       tsm__now() < deadline;
}

TSM_API tsm_err tsm_ctx_wait_peers(tsm_ctx *ctx, unsigned n, tsm_duration timeout)
{
	if (!ctx)
		return tsm__err_set(TSM_EINVAL, "tsm_ctx_wait_peers: NULL ctx");
	tsm_time dl = tsm__deadline_after(tsm__now(), timeout);
	tsm_err e = TSM_OK;
	pthread_mutex_lock(&ctx->mu);
	while (ctx->nestablished < n) {
		if (!tsm__ctx_wait_until(ctx, dl)) {
			e = tsm__err_set(TSM_ETIMEDOUT, "tsm_ctx_wait_peers: %u of %u "
			                 "sessions established", ctx->nestablished, n);
			break;
		}
	}
	pthread_mutex_unlock(&ctx->mu);
	return e;
}

TSM_API tsm_err tsm_ctx_peers(tsm_ctx *ctx, tsm_peer_info *out, size_t max,
                              size_t *n)
{
	if (!ctx || !n || (!out && max))
		return tsm__err_set(TSM_EINVAL, "tsm_ctx_peers: NULL argument");
	struct tsm__peers_req q = {out, max, 0};
	tsm__cmd c = {.kind = CMD_PEERS, .obj = &q};
	tsm_err e = tsm__ctx_cmd_wait(ctx, &c);
	*n = q.n;
	return e;
}

TSM_API const char *tsm_ctx_transport(const tsm_ctx *ctx)
{
	if (ctx && ctx->family == 2)
		return ctx->transport_name; /* "ofi:tcp;ofi_rxm", as granted */
	return ctx && ctx->io_ops ? ctx->io_ops->name : "none";
}

/* Sends what is queued (bounded by linger), then CLOSE on every session. */
static void ctx_drain(tsm_ctx *ctx)
{
	tsm_time end = tsm__deadline_after(tsm__now(), ctx->p.linger);
	bool idle = false;
	while (!idle && tsm__now() < end) {
		tsm__loop_iterate(ctx, tsm__now() + 10 * TSM_MSEC);
		idle = tsm__ctx_rings_empty(ctx);
		for (tsm__session *s = ctx->sessions; s && idle; s = s->next)
			idle = !tsm__session_up(s) || tsm__session_tx_idle(s);
	}
	ctx->disc_ops->leave(ctx->disc); /* before CLOSE: peers forget us */
	for (tsm__session *s = ctx->sessions; s; s = s->next) {
		if (!tsm__session_up(s))
			continue;
		uint8_t body[8] = {0};
		tsm__st32(body, (uint32_t)TSM_ECLOSED);
		tsm__rsm_ack_all(s); /* the peer keeps nothing we have read */
		tsm__session_send_frame(s, TSM_F_CLOSE, body, 6);
		s->close_sent = true;
		tsm__session_pump(s);
	}
	/* Read until each peer has closed its side (it answers CLOSE at once
	 * when its queue is empty), at most linger: closing a socket with
	 * unread bytes (the peer's last ACKs) makes the kernel send a reset,
	 * and a reset makes the peer's kernel drop what it had not yet
	 * handed to the peer: the tail of the stream. */
	bool open = true;
	while (open && tsm__now() < end) {
		tsm__loop_iterate(ctx, tsm__now() + 2 * TSM_MSEC);
		open = false;
		for (tsm__session *s = ctx->sessions; s && !open; s = s->next)
			open = s->close_sent && s->state != SS_CLOSED;
	}
	end = TSM_MAX(end, tsm__now() + 10 * TSM_MSEC);
	for (int i = 0; i < 5; i++)
		tsm__loop_iterate(ctx, tsm__now() + 2 * TSM_MSEC);
}

static void ctx_teardown_io(tsm_ctx *ctx)
{
	for (tsm__session *s = ctx->sessions; s; s = s->next)
		tsm__session_close(s, TSM_ECLOSED);
	for (tsm__listener *l = ctx->listeners; l; l = l->next) {
		if (l->url.scheme == TSM_URL_INPROC)
			tsm__inproc_unlisten(l->url.name, ctx);
		else
			ctx->io_ops->lst_close(ctx->io, &l->lst);
	}
	tsm_time end = tsm__now() + TSM_SEC;
	while (ctx->sessions && tsm__now() < end)
		tsm__loop_iterate(ctx, tsm__now() + 10 * TSM_MSEC);
	ctx->io_ops->wait(ctx->io, 0);
	tsm__loop_iterate(ctx, 0); /* reap */
}

static void ctx_free(tsm_ctx *ctx)
{
	void *v;
	for (int i = 0; i < 8; i++) {
		if (ctx->held[i])
			tsm__omsg_unref(ctx->held[i]);
		while (tsm__mpmc_pop(&ctx->pubq[i], &v))
			tsm__omsg_unref(v);
	}
	while (ctx->listeners) {
		tsm__listener *l = ctx->listeners;
		ctx->listeners = l->next;
		free(l);
	}
	while (ctx->dialers) {
		tsm__dialer *d = ctx->dialers;
		ctx->dialers = d->next;
		free(d);
	}
	for (uint32_t i = 0; i < ctx->nroutes; i++) {
		if (ctx->route_by_id[i]) {
			tsm__topic_unref(ctx->route_by_id[i]->topic);
			free(ctx->route_by_id[i]->sess);
			free(ctx->route_by_id[i]->grants);
			free(ctx->route_by_id[i]);
		}
	}
	free(ctx->route_by_id);
	tsm__rsm_ctx_free(ctx); /* what still waits for a peer: PEER_LOST */
	ctx->disc_ops->close(ctx->disc);
	ctx->io_ops->fini(ctx->io);
	ctx_rings_fini(ctx);
	tsm__cred_close(ctx);
	tsm__ts_free(ctx);
	free(ctx);
}

void tsm__ctx_close_handles(tsm_ctx *ctx);

TSM_API void tsm_ctx_close(tsm_ctx *ctx)
{
	if (!ctx)
		return;
	tsm__ctx_close_handles(ctx);
	/* A thread still spinning in a closed subscriber's tsm_sub_recv may
	 * be about to run the loop (busy-poll): it sees the close at once. */
	while (atomic_load(&ctx->spinners))
		sched_yield();
	atomic_store(&ctx->stopping, true);
	ctx->io_ops->wake(ctx->io);
	pthread_join(ctx->thread, NULL);
	tsm__sub_dlv_stop(ctx);
	ctx_free(ctx);
}
