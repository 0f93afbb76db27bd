/*
 * transport/ofi/ofi_auto.c - the auto transport (auto://HOST:PORT, issue 6
 * item 5, docs/transports.md "auto"): one engine for the context, made of
 * one engine per tier, the tier chosen per connection:
 *
 *   verbs  verbs;ofi_rxm at HOST:PORT, when a verbs device exists here;
 *   efa    an EFA endpoint has no IP address, so an auto URL cannot name
 *          one: a listener with an EFA device listens there too and tells
 *          its dialers its EFA name in a sealed CTRL TIERS frame on the
 *          first session (over shm or TCP); the dialer then dials again
 *          over EFA and the new session replaces the first one
 *          (make-before-break, nothing lost; tsm__ofi_auto_learn);
 *   shm    libfabric shm, for a peer on this host whose auto listener has
 *          the region /dev/shm/tsm:auto-PORT-ADDR (see auto_shm_name);
 *   tcp    io_uring TCP (epoll when io_uring is unavailable) at HOST:PORT,
 *          the same wire as tcp://, so auto and tcp:// peers talk.
 *
 * A dial goes down that list: a tier that is absent or cannot serve the
 * peer is skipped, a tier whose dial fails (no ACCEPT within 2 s) hands
 * the same connection on to the next one, without the session noticing.
 * Every such fallback is logged (INFO when expected, e.g. no device; WARN
 * when a tier that should have worked failed) and counted
 * (transport.fallbacks, transport.fallback_<tier>); every connection
 * counts its tier (transport.chosen_<tier>, and the gauge
 * transport.chosen = 1 verbs, 2 efa, 3 shm, 4 tcp for the latest one),
 * and its peer name, hence the session's address in logs and events,
 * starts with the tier ("shm:fi_ns://...", "tcp:10.0.0.2").
 *
 * A listener listens on every tier it can: TCP at HOST:PORT (required),
 * verbs at HOST:PORT (when a device exists) and shm under a name made
 * from HOST and PORT; a tier that cannot listen is a counted fallback.
 *
 * Connections are routed by handle: the ofi tiers' handles start at
 * TSM_OFI_HANDLE_BASE + tier * OFI_MAX_CONNS, TCP connections are file
 * descriptors. ofi tiers open on first use (a shm endpoint is a 16 MiB
 * region), the TCP tier at once. Blocking waits sleep in the TCP engine,
 * at most 50 us .. 1 ms at a time while an ofi tier is open (shm has no
 * fd to sleep on), which is what a plain shm engine does too.
 *
 * Threading: as io.h; everything on the progress thread except wake().
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"
#include "platform/clock.h"
#include "transport/ofi/ofi_int.h"
#include "transport/tcp/tcp.h"

enum auto_tier { AT_VERBS, AT_EFA, AT_SHM, AT_TCP, AT__N };

static const struct {
	const char *name;     /* logs, peer names, tsm_ctx_transport */
	const char *provider; /* libfabric provider; NULL: TCP */
	enum tsm__stat chosen, fallback;
} tiers[AT__N] = {
	[AT_VERBS] = {"verbs", "verbs;ofi_rxm", ST_CHOSEN_VERBS, ST_FALLBACK_VERBS},
	[AT_EFA] = {"efa", "efa", ST_CHOSEN_EFA, ST_FALLBACK_EFA},
	[AT_SHM] = {"shm", "shm", ST_CHOSEN_SHM, ST_FALLBACK_SHM},
	[AT_TCP] = {"tcp", NULL, ST_CHOSEN_TCP, ST__COUNT},
};

#define AUTO_MEMO 32                  /* peers whose tiers failed lately */
#define AUTO_MEMO_TIME (30 * TSM_SEC) /* how long a failed tier is skipped */
#define AUTO_SHM_NAME 49

struct auto_tier_state {
	const tsm__io_ops *ops;
	tsm__io *io;        /* open engine, or NULL */
	bool here;          /* provider (and device) present */
	bool bound;         /* listen_addr succeeded on this tier */
	bool listening;
	char why[256];      /* why not here */
	tsm__lst lst;       /* ofi tiers: this tier's listener */
};

/* A peer address, as each tier wants it. */
struct auto_peer {
	char addr[64];      /* "HOST:PORT" from the URL */
	tsm__url tcp;       /* tcp://HOST:PORT */
	bool local;         /* HOST is this host */
	char shm[2][AUTO_SHM_NAME]; /* shm names: exact, wildcard listener */
};

/* A dial that may still move on to a later tier. */
struct auto_dial {
	tsm__conn *c;
	struct auto_peer peer;
	int tier;
	char fell[160];     /* "verbs: no device; efa: no device" */
};

struct auto_memo {
	char addr[64];
	uint8_t failed;     /* bit per tier */
	tsm_time until;
};

/* An EFA name a peer told us (CTRL TIERS) for the address we dial it at. */
#define AUTO_LEARNED 32
#define AUTO_AD_MAX 136
struct auto_learned {
	char addr[64];      /* "HOST:PORT" as dialed */
	char efa[AUTO_AD_MAX]; /* what the efa tier's connect takes */
	tsm_time at;        /* 0: free */
};

struct ofi_auto {
	uint32_t kind;      /* OFI_KIND_AUTO; first, as in struct tsm__io */
	const tsm__io_cbs *cbs;
	bool busy;
	tsm_ctx *ctx;
	tsm__stats *stats;
	struct auto_tier_state t[AT__N];
	/* the listener: bound by listen_addr, armed by listen */
	tsm__lst *outer;
	int tcp_lfd;
	tsm__url lurl;      /* tcp:// form, port as bound */
	bool bound;
	/* dials, closes of connections that no tier holds, memo */
	struct auto_dial *dials;
	size_t ndials, capdials;
	tsm__conn **closed;
	size_t nclosed, capclosed;
	struct auto_memo memo[AUTO_MEMO];
	struct auto_learned learned[AUTO_LEARNED];
	char efa_ad[AUTO_AD_MAX]; /* our EFA listener's address, or "" */
	struct sockaddr_storage local[32];
	unsigned nlocal;
	tsm_duration backoff;
};

static struct ofi_auto *A(tsm__io *io)
{
	return (struct ofi_auto *)(void *)io;
}

/* The provider of tier t. TSM_AUTO_EFA_PROVIDER runs the efa tier over
 * another provider ("udp;ofi_rxd"): a test hook, so that the way auto
 * learns and dials an EFA name is exercised on machines without an EFA
 * device (tests/unit/test_auto_efa.c). It is logged as a warning. */
static const char *auto_provider(int t)
{
	const char *p = t == AT_EFA ? getenv("TSM_AUTO_EFA_PROVIDER") : NULL;
	return p && *p ? p : tiers[t].provider;
}

/* --- logging and counting ------------------------------------------------ */

static void auto_count(struct ofi_auto *a, enum tsm__stat s, uint64_t n)
{
	if (s != ST__COUNT)
		tsm__stat_add(a->stats, s, n);
}

/* One tier skipped or failed for one connection (or listener). */
static void auto_fallback(struct ofi_auto *a, const char *what, int t,
                          tsm_log_level lvl, const char *why, char *fell,
                          size_t cap)
{
	auto_count(a, ST_FALLBACKS, 1);
	auto_count(a, tiers[t].fallback, 1);
	tsm__log(a->ctx, lvl, "auto: %s: not over %s: %s", what, tiers[t].name, why);
	if (fell && strlen(fell) + 4 < cap)
		snprintf(fell + strlen(fell), cap - strlen(fell), "%s%s", *fell ? ", " : "",
		         tiers[t].name);
}

static void auto_chosen(struct ofi_auto *a, int t, const char *what,
                        const char *fell)
{
	auto_count(a, tiers[t].chosen, 1);
	tsm__stat_set(a->stats, ST_CHOSEN, (uint64_t)t + 1);
	tsm__log(a->ctx, TSM_LOG_INFO, "auto: %s over %s (%s)%s%s%s", what,
	         tiers[t].name, t == AT_TCP ? a->t[AT_TCP].ops->name : "libfabric",
	         fell && *fell ? "; fell back from " : "", fell ? fell : "",
	         fell && *fell ? " (counted in transport.fallback_*)" : "");
}

/* --- the TCP tier's callbacks ------------------------------------------- */

/* The auto engine whose TCP engine is inside wait() on this thread: its
 * callbacks come only from there (io.h), and a dial's outcome must be
 * seen before the context's on_connect. */
static __thread struct ofi_auto *auto_cur;

static struct auto_dial *auto_dial_find(struct ofi_auto *a, const tsm__conn *c);
static void auto_dial_drop(struct ofi_auto *a, const tsm__conn *c);
static void auto_chosen(struct ofi_auto *a, int t, const char *what,
                        const char *fell);

static void tcp_on_accept(tsm__lst *l, int fd, tsm_err err)
{
	auto_cur->cbs->on_accept(l, fd, err);
}

static void tcp_on_connect(tsm__conn *c, tsm_err err)
{
	struct ofi_auto *a = auto_cur;
	struct auto_dial *d = auto_dial_find(a, c);
	if (d && !err)
		auto_chosen(a, AT_TCP, d->peer.addr, d->fell);
	if (d)
		auto_dial_drop(a, c);
	a->cbs->on_connect(c, err);
}

static void tcp_on_recv(tsm__conn *c, long n, tsm_err err)
{
	auto_cur->cbs->on_recv(c, n, err);
}

static void tcp_on_send(tsm__conn *c, long n, tsm_err err)
{
	auto_cur->cbs->on_send(c, n, err);
}

static void tcp_on_closed(tsm__conn *c)
{
	auto_cur->cbs->on_closed(c);
}

static void tcp_on_lst_closed(tsm__lst *l)
{
	auto_cur->cbs->on_lst_closed(l);
}

static const tsm__io_cbs tcp_cbs = {tcp_on_accept, tcp_on_connect, tcp_on_recv,
                                    tcp_on_send, tcp_on_closed, tcp_on_lst_closed};

/* Runs op on the TCP engine with its callbacks routed through a. The io.h
 * engines call back from wait() only, but close() and lst_close() of the
 * socket engines may complete at once: those go through here too. */
#define AUTO_TCP(a, call)                                                    \
	do {                                                                     \
		struct ofi_auto *prev_ = auto_cur;                                   \
		auto_cur = (a);                                                      \
		call;                                                                \
		auto_cur = prev_;                                                    \
	} while (0)

/* --- tiers --------------------------------------------------------------- */

/* The TCP tier: io_uring, else epoll, loudly (as the context does). */
static tsm_err auto_tcp_open(struct ofi_auto *a)
{
	struct auto_tier_state *s = &a->t[AT_TCP];
	const char *no = getenv("TSM_NO_URING");
	s->here = true;
	if (!(no && *no && strcmp(no, "0") != 0)) {
		if (tsm__io_uring_ops.init(&s->io, &tcp_cbs, a->busy) == TSM_OK) {
			s->ops = &tsm__io_uring_ops;
			tsm__stat_set(a->stats, ST_URING, 1);
			return TSM_OK;
		}
		tsm__log(a->ctx, TSM_LOG_WARN, "auto: io_uring unavailable (%s): TCP "
		         "falls back to epoll", tsm_err_detail());
	} else {
		tsm__log(a->ctx, TSM_LOG_WARN, "auto: TSM_NO_URING set: TCP on epoll");
	}
	tsm__stat_add(a->stats, ST_EPOLL_FALLBACK, 1);
	s->ops = &tsm__io_epoll_ops;
	return tsm__io_epoll_ops.init(&s->io, &tcp_cbs, a->busy);
}

static void auto_probe(struct ofi_auto *a)
{
	for (int t = 0; t < AT_TCP; t++) {
		struct auto_tier_state *s = &a->t[t];
		s->here = tsm__ofi_probe(auto_provider(t)) == TSM_OK;
		if (!s->here)
			snprintf(s->why, sizeof(s->why), "%s", tsm_err_detail());
	}
}

/* An ofi tier's engine, opened on first use; NULL (why set) if it cannot. */
static tsm__io *auto_tier_io(struct ofi_auto *a, int t)
{
	struct auto_tier_state *s = &a->t[t];
	if (s->io || !s->here)
		return s->io;
	if (tsm__ofi_init(&s->io, a->cbs, a->busy, auto_provider(t)) != TSM_OK) {
		s->here = false;
		s->io = NULL;
		snprintf(s->why, sizeof(s->why), "%s", tsm_err_detail());
		tsm__log(a->ctx, TSM_LOG_WARN, "auto: %s does not open: %s",
		         tiers[t].name, s->why);
		return NULL;
	}
	s->ops = &tsm__io_ofi_ops;
	tsm__ofi_adopt_parent(s->io, a, TSM_OFI_HANDLE_BASE + t * OFI_MAX_CONNS);
	return s->io;
}

static int auto_tier_of(int fd)
{
	if (fd < TSM_OFI_HANDLE_BASE)
		return fd >= 0 ? AT_TCP : -1;
	int t = (fd - TSM_OFI_HANDLE_BASE) / OFI_MAX_CONNS;
	return t < AT_TCP ? t : -1;
}

static struct auto_tier_state *auto_conn_tier(struct ofi_auto *a, int fd)
{
	int t = auto_tier_of(fd);
	return t >= 0 && a->t[t].io ? &a->t[t] : NULL;
}

/* --- addresses ----------------------------------------------------------- */

static void auto_locals(struct ofi_auto *a)
{
	struct ifaddrs *ifa = NULL;
	if (getifaddrs(&ifa) != 0)
		return;
	for (struct ifaddrs *i = ifa; i && a->nlocal < TSM_ARRAY_LEN(a->local);
	     i = i->ifa_next) {
		if (!i->ifa_addr)
			continue;
		sa_family_t f = i->ifa_addr->sa_family;
		if (f == AF_INET || f == AF_INET6)
			memcpy(&a->local[a->nlocal++], i->ifa_addr,
			       f == AF_INET ? sizeof(struct sockaddr_in)
			                    : sizeof(struct sockaddr_in6));
	}
	freeifaddrs(ifa);
}

static bool sa_same_host(const struct sockaddr_storage *x,
                         const struct sockaddr_storage *y)
{
	if (x->ss_family != y->ss_family)
		return false;
	if (x->ss_family == AF_INET)
		return ((const struct sockaddr_in *)x)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)y)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)x)->sin6_addr,
	              &((const struct sockaddr_in6 *)y)->sin6_addr, 16) == 0;
}

/* Loopback, the wildcard (which reaches this host), or one of its own. */
static bool auto_is_local(const struct ofi_auto *a,
                          const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET) {
		uint32_t v = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
		if ((v >> 24) == 127 || v == 0)
			return true;
	} else {
		const struct in6_addr *v6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_LOOPBACK(v6) || IN6_IS_ADDR_UNSPECIFIED(v6))
			return true;
	}
	for (unsigned i = 0; i < a->nlocal; i++)
		if (sa_same_host(&a->local[i], sa))
			return true;
	return false;
}

/*
 * The shm name of an auto listener: "auto-PORT-ADDR", ADDR the hex bytes
 * of its IP (zeros for a wildcard listener), so that names stay within
 * the engine's shm alphabet and two listeners on one port of different
 * addresses do not collide. wildcard: the name of 0.0.0.0 (or ::).
 */
static void auto_shm_name(const struct sockaddr_storage *sa, bool wildcard,
                          char *out, size_t cap)
{
	const uint8_t *b;
	size_t n;
	uint16_t port;
	static const uint8_t zero[16];
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;
		b = (const uint8_t *)&s4->sin_addr;
		n = 4;
		port = ntohs(s4->sin_port);
	} else {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		b = (const uint8_t *)&s6->sin6_addr;
		n = 16;
		port = ntohs(s6->sin6_port);
	}
	if (wildcard)
		b = zero;
	int k = snprintf(out, cap, "auto-%u-", port);
	for (size_t i = 0; i < n && k > 0 && (size_t)k + 2 < cap; i++, k += 2)
		snprintf(out + k, cap - (size_t)k, "%02x", b[i]);
}

static bool auto_shm_exists(const char *name)
{
	char path[128];
	struct stat st;
	snprintf(path, sizeof(path), "/dev/shm/tsm:%s", name);
	return stat(path, &st) == 0;
}

static tsm_err auto_peer_parse(const struct ofi_auto *a, const char *addr,
                               struct auto_peer *p)
{
	char url[300];
	memset(p, 0, sizeof(*p));
	if (strlen(addr) >= sizeof(p->addr))
		return tsm__err_set(TSM_ERR_BAD_URL, "auto: address '%s' too long", addr);
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	snprintf(url, sizeof(url), "tcp://%s", addr);
	if (tsm__url_parse(url, &p->tcp) != TSM_OK)
		return tsm__err_set(TSM_ERR_BAD_URL, "auto: '%s' is not HOST:PORT", addr);
	p->local = auto_is_local(a, &p->tcp.sa);
	auto_shm_name(&p->tcp.sa, false, p->shm[0], sizeof(p->shm[0]));
	auto_shm_name(&p->tcp.sa, true, p->shm[1], sizeof(p->shm[1]));
	return TSM_OK;
}

/* --- memo: tiers that failed for a peer lately --------------------------- */

static struct auto_memo *auto_memo_find(struct ofi_auto *a, const char *addr)
{
	tsm_time now = tsm__now();
	for (int i = 0; i < AUTO_MEMO; i++)
		if (a->memo[i].until > now && strcmp(a->memo[i].addr, addr) == 0)
			return &a->memo[i];
	return NULL;
}

static void auto_memo_fail(struct ofi_auto *a, const char *addr, int t)
{
	struct auto_memo *m = auto_memo_find(a, addr);
	if (!m) {
		m = &a->memo[0];
		for (int i = 1; i < AUTO_MEMO; i++)
			if (a->memo[i].until < m->until)
				m = &a->memo[i];
		memset(m, 0, sizeof(*m));
		snprintf(m->addr, sizeof(m->addr), "%s", addr);
	}
	m->failed |= (uint8_t)(1u << t);
	m->until = tsm__now() + AUTO_MEMO_TIME;
}

static bool auto_memo_failed(struct ofi_auto *a, const char *addr, int t)
{
	struct auto_memo *m = auto_memo_find(a, addr);
	return m && (m->failed & (1u << t));
}

/* --- learned EFA names --------------------------------------------------- */

static struct auto_learned *auto_learned_find(struct ofi_auto *a,
                                              const char *addr)
{
	for (int i = 0; i < AUTO_LEARNED; i++)
		if (a->learned[i].at && strcmp(a->learned[i].addr, addr) == 0)
			return &a->learned[i];
	return NULL;
}

/* Keeps the newest AUTO_LEARNED: a peer's name replaces its old one,
 * else the oldest entry goes (a free one, at 0, first). */
static void auto_learned_put(struct ofi_auto *a, const char *addr,
                             const char *efa)
{
	struct auto_learned *l = auto_learned_find(a, addr);
	if (!l) {
		l = &a->learned[0];
		for (int i = 1; i < AUTO_LEARNED; i++)
			if (a->learned[i].at < l->at)
				l = &a->learned[i];
	}
	snprintf(l->addr, sizeof(l->addr), "%s", addr);
	snprintf(l->efa, sizeof(l->efa), "%s", efa);
	l->at = tsm__now();
}

/* --- dialing ------------------------------------------------------------- */

static struct auto_dial *auto_dial_find(struct ofi_auto *a, const tsm__conn *c)
{
	for (size_t i = 0; i < a->ndials; i++)
		if (a->dials[i].c == c)
			return &a->dials[i];
	return NULL;
}

static void auto_dial_drop(struct ofi_auto *a, const tsm__conn *c)
{
	struct auto_dial *d = auto_dial_find(a, c);
	if (d)
		*d = a->dials[--a->ndials];
}

static struct auto_dial *auto_dial_new(struct ofi_auto *a, tsm__conn *c)
{
	auto_dial_drop(a, c);
	if (a->ndials == a->capdials) {
		size_t n = a->capdials ? a->capdials * 2 : 8;
		struct auto_dial *v = realloc(a->dials, n * sizeof(*v));
		if (!v)
			return NULL;
		a->dials = v;
		a->capdials = n;
	}
	struct auto_dial *d = &a->dials[a->ndials++];
	memset(d, 0, sizeof(*d));
	d->c = c;
	return d;
}

/*
 * Whether tier t can carry this dial. false with why "" when the tier
 * does not apply (shm for a remote peer: no fallback), else with why and
 * the log level of the fallback.
 */
static bool auto_usable(struct ofi_auto *a, const struct auto_peer *p, int t,
                        char *why, size_t cap, tsm_log_level *lvl)
{
	struct auto_tier_state *s = &a->t[t];
	*lvl = TSM_LOG_INFO;
	why[0] = '\0';
	if (t == AT_TCP)
		return true;
	if (t == AT_SHM && !p->local)
		return false;
	if (!s->here) {
		snprintf(why, cap, "%s", s->why);
		return false;
	}
	if (t == AT_EFA && !auto_learned_find(a, p->addr)) {
		snprintf(why, cap, "no EFA name known for %s yet (an auto:// "
		         "address cannot name an EFA endpoint: the peer tells its "
		         "name on the first session, then auto moves to EFA)",
		         p->addr);
		return false;
	}
	if (t == AT_VERBS && p->tcp.sa.ss_family != AF_INET) {
		snprintf(why, cap, "ofi+verbs takes IPv4 addresses only");
		return false;
	}
	if (t == AT_SHM && !auto_shm_exists(p->shm[0]) && !auto_shm_exists(p->shm[1])) {
		snprintf(why, cap, "no auto listener for %s on this host (no "
		         "/dev/shm/tsm:%s or tsm:%s)", p->addr, p->shm[0], p->shm[1]);
		return false;
	}
	if (t == AT_SHM && (tsm__ofi_shm_held(p->shm[0]) || tsm__ofi_shm_held(p->shm[1]))) {
		snprintf(why, cap, "the auto listener for %s is in this process, "
		         "and libfabric 1.17 shm crashes a sender whose peer "
		         "endpoint of the same process closes (inproc:// is the "
		         "transport within a process)", p->addr);
		return false;
	}
	if (auto_memo_failed(a, p->addr, t)) {
		snprintf(why, cap, "it did not answer over %s within the last %d s",
		         tiers[t].name, (int)(AUTO_MEMO_TIME / TSM_SEC));
		return false;
	}
	if (!auto_tier_io(a, t)) {
		*lvl = TSM_LOG_WARN;
		snprintf(why, cap, "%s", s->why);
		return false;
	}
	return true;
}

static tsm_err auto_dial_tier(struct ofi_auto *a, struct auto_dial *d, int t)
{
	struct auto_tier_state *s = &a->t[t];
	tsm__conn *c = d->c;
	if (t != AT_TCP) {
		const char *addr = d->peer.addr;
		const struct auto_learned *l;
		if (t == AT_SHM)
			addr = auto_shm_exists(d->peer.shm[0]) ? d->peer.shm[0] : d->peer.shm[1];
		if (t == AT_EFA && (l = auto_learned_find(a, d->peer.addr)) != NULL)
			addr = l->efa;
		return tsm__ofi_connect(s->io, c, addr);
	}
	int fd = -1;
	tsm_err e = tsm__tcp_socket(&d->peer.tcp, &fd);
	if (e)
		return e;
	c->fd = fd;
	AUTO_TCP(a, e = s->ops->connect(s->io, c,
	                                (const struct sockaddr *)&d->peer.tcp.sa,
	                                d->peer.tcp.sa_len));
	if (e) {
		close(fd);
		c->fd = -1;
	}
	return e;
}

/* Starts d on the first usable tier from `first` on. On TSM_OK the dial
 * is under way (its outcome comes to tsm__ofi_auto_dialed, or to
 * tcp_on_connect); an error means no tier could start it (d forgotten). */
static tsm_err auto_dial_from(struct ofi_auto *a, struct auto_dial *d, int first)
{
	char why[320];
	tsm_log_level lvl;
	for (int t = first; t < AT__N; t++) {
		if (!auto_usable(a, &d->peer, t, why, sizeof(why), &lvl)) {
			if (*why)
				auto_fallback(a, d->peer.addr, t, lvl, why, d->fell,
				              sizeof(d->fell));
			continue;
		}
		tsm_err e = auto_dial_tier(a, d, t);
		if (e == TSM_OK) {
			d->tier = t;
			return TSM_OK;
		}
		if (t == AT_TCP)
			break;
		snprintf(why, sizeof(why), "%s", tsm_err_detail());
		auto_fallback(a, d->peer.addr, t, TSM_LOG_WARN, why, d->fell,
		              sizeof(d->fell));
	}
	snprintf(why, sizeof(why), "%s", tsm_err_detail());
	char addr[64];
	snprintf(addr, sizeof(addr), "%s", d->peer.addr);
	auto_dial_drop(a, d->c);
	return tsm__err_set(TSM_ERR_CONN_REFUSED, "auto: %s: no tier could dial "
	                    "it (%s)", addr, why);
}

tsm_err tsm__ofi_auto_connect(tsm__io *io, tsm__conn *c, const char *addr)
{
	struct ofi_auto *a = A(io);
	c->fd = -1;
	struct auto_dial *d = auto_dial_new(a, c);
	if (!d)
		return tsm__err_set(TSM_ENOMEM, "auto: dial");
	tsm_err e = auto_peer_parse(a, addr, &d->peer);
	if (e) {
		auto_dial_drop(a, c);
		return e;
	}
	return auto_dial_from(a, d, 0);
}

/* From an ofi tier's completion of a dial (ofi.c done_dispatch): true if
 * the failure was taken on to the next tier, so the context must not
 * hear of it. */
bool tsm__ofi_auto_dialed(struct ofi_auto *a, tsm__io *sub, tsm__conn *c,
                          tsm_err err)
{
	struct auto_dial *d = auto_dial_find(a, c);
	if (!d)
		return false;
	int t = d->tier;
	if (!err) {
		auto_chosen(a, t, d->peer.addr, d->fell);
		auto_dial_drop(a, c);
		return false;
	}
	char why[256];
	snprintf(why, sizeof(why), "%s", tsm_err_detail());
	auto_memo_fail(a, d->peer.addr, t);
	auto_fallback(a, d->peer.addr, t, TSM_LOG_WARN, why, d->fell,
	              sizeof(d->fell));
	tsm__ofi_forget(sub, c);
	if (auto_dial_from(a, d, t + 1) == TSM_OK)
		return true;
	tsm__err_set(err, "%s", tsm_err_detail());
	return false;
}

/* --- listening ----------------------------------------------------------- */

/* EFA listens on any device ("": the provider's first); its bound name
 * is what TIERS frames tell our dialers (tsm__ofi_auto_advert). */
static void auto_listen_efa(struct ofi_auto *a, const char *what,
                            const char *hostport)
{
	struct auto_tier_state *s = &a->t[AT_EFA];
	char url[300], why[320];
	bool real = strcmp(auto_provider(AT_EFA), "efa") == 0;
	tsm__io *io = auto_tier_io(a, AT_EFA);
	tsm_err e = io ? tsm__ofi_listen_addr(io, real ? "" : hostport) : TSM_ETRANSPORT;
	if (e == TSM_OK)
		e = tsm__ofi_bound_url(io, url, sizeof(url));
	const char *name = e ? NULL : strstr(url, "://");
	if (!name || strlen(name + 3) >= sizeof(a->efa_ad)) {
		snprintf(why, sizeof(why), "%s", !io ? s->why : e ? tsm_err_detail()
		                                            : "bound name too long");
		auto_fallback(a, what, AT_EFA, TSM_LOG_WARN, why, NULL, 0);
		return;
	}
	snprintf(a->efa_ad, sizeof(a->efa_ad), "%s", name + 3);
	s->bound = true;
}

static void auto_listen_tier(struct ofi_auto *a, int t, const char *hostport)
{
	struct auto_tier_state *s = &a->t[t];
	char addr[80], why[320], what[88];
	snprintf(what, sizeof(what), "listen %.70s", hostport);
	const struct sockaddr_storage *sa = &a->lurl.sa;
	if (!s->here) {
		auto_fallback(a, what, t, TSM_LOG_INFO, s->why, NULL, 0);
		return;
	}
	if (t == AT_EFA) /* any device; HOST:PORT for a test provider */
		return auto_listen_efa(a, what, hostport);
	if (t == AT_VERBS && sa->ss_family != AF_INET) {
		auto_fallback(a, what, t, TSM_LOG_INFO, "ofi+verbs takes IPv4 "
		              "addresses only", NULL, 0);
		return;
	}
	if (t == AT_SHM)
		auto_shm_name(sa, false, addr, sizeof(addr));
	else
		snprintf(addr, sizeof(addr), "%.70s", hostport);
	tsm__io *io = auto_tier_io(a, t);
	tsm_err e = io ? tsm__ofi_listen_addr(io, addr) : TSM_ETRANSPORT;
	if (e) {
		snprintf(why, sizeof(why), "%s", io ? tsm_err_detail() : s->why);
		auto_fallback(a, what, t, TSM_LOG_WARN, why, NULL, 0);
		return;
	}
	s->bound = true;
}

/* Binds TCP at addr ("HOST:PORT"; port 0: the kernel picks), then the
 * other tiers at the same address, port as bound. */
static void auto_listen_tiers(struct ofi_auto *a)
{
	char url[300];
	tsm__url_format(&a->lurl, url, sizeof(url));
	for (int t = 0; t < AT_TCP; t++)
		auto_listen_tier(a, t, url + 6); /* after "tcp://" */
}

/* A tier bound for a listener whose TCP bind then failed lets its
 * address go (the engine re-opens when next needed). */
static void auto_unbind_tiers(struct ofi_auto *a)
{
	for (int t = 0; t < AT_TCP; t++) {
		struct auto_tier_state *s = &a->t[t];
		if (s->bound && s->io) {
			s->ops->fini(s->io);
			s->io = NULL;
		}
		s->bound = false;
	}
	a->efa_ad[0] = '\0';
}

static uint16_t auto_port(const tsm__url *u)
{
	return ntohs(u->sa.ss_family == AF_INET6
	                 ? ((const struct sockaddr_in6 *)&u->sa)->sin6_port
	                 : ((const struct sockaddr_in *)&u->sa)->sin_port);
}

/* Binds TCP at addr ("HOST:PORT"), and the other tiers at the same
 * address. With a port given they go first: a dialer that finds TCP
 * listening must find shm there too, or it would settle for TCP. Port 0
 * (the kernel picks): TCP first, for the port; nobody can dial it before
 * tsm_ctx_listen has returned the bound URL. */
tsm_err tsm__ofi_auto_listen_addr(tsm__io *io, const char *addr)
{
	struct ofi_auto *a = A(io);
	char url[300];
	if (a->bound)
		return tsm__err_set(TSM_ESTATE, "auto: one listener per context");
	snprintf(url, sizeof(url), "tcp://%s", addr);
	tsm_err e = tsm__url_parse(url, &a->lurl);
	if (e)
		return e;
	bool early = auto_port(&a->lurl) != 0;
	if (early)
		auto_listen_tiers(a);
	if ((e = tsm__tcp_listen(&a->lurl, &a->tcp_lfd)) != TSM_OK) {
		char why[256];
		snprintf(why, sizeof(why), "%s", tsm_err_detail());
		auto_unbind_tiers(a);
		return tsm__err_set(e, "%s", why);
	}
	a->bound = true;
	if (!early)
		auto_listen_tiers(a);
	return TSM_OK;
}

tsm_err tsm__ofi_auto_bound_url(tsm__io *io, char *buf, size_t cap)
{
	struct ofi_auto *a = A(io);
	char url[300];
	if (!a->bound)
		return tsm__err_set(TSM_ESTATE, "auto: not bound");
	tsm__url_format(&a->lurl, url, sizeof(url));
	if ((size_t)snprintf(buf, cap, "auto://%s", url + 6) >= cap)
		return tsm__err_set(TSM_EINVAL, "auto: URL buffer too small");
	return TSM_OK;
}

static tsm_err auto_listen(tsm__io *io, tsm__lst *l)
{
	struct ofi_auto *a = A(io);
	struct auto_tier_state *tcp = &a->t[AT_TCP];
	if (!a->bound)
		return tsm__err_set(TSM_ESTATE, "auto: no address to listen on");
	if (a->outer && a->outer != l)
		return tsm__err_set(TSM_ESTATE, "auto: one listener per context");
	a->outer = l;
	if (a->tcp_lfd >= 0) {
		l->fd = a->tcp_lfd;
		a->tcp_lfd = -1;
	}
	tsm_err e;
	AUTO_TCP(a, e = tcp->ops->listen(tcp->io, l));
	for (int t = 0; !e && t < AT_TCP; t++) {
		struct auto_tier_state *s = &a->t[t];
		if (!s->bound || s->listening)
			continue;
		s->lst = (tsm__lst){.fd = -1, .user = l->user};
		if (s->ops->listen(s->io, &s->lst) == TSM_OK)
			s->listening = true;
	}
	return e;
}

static void auto_lst_close(tsm__io *io, tsm__lst *l)
{
	struct ofi_auto *a = A(io);
	if (a->outer != l)
		return;
	for (int t = 0; t < AT_TCP; t++) {
		struct auto_tier_state *s = &a->t[t];
		if (s->listening)
			s->ops->lst_close(s->io, &s->lst);
		s->listening = false;
	}
	AUTO_TCP(a, a->t[AT_TCP].ops->lst_close(a->t[AT_TCP].io, l));
	a->outer = NULL;
}

/* --- connections --------------------------------------------------------- */

static tsm_err auto_connect_sa(tsm__io *io, tsm__conn *c,
                               const struct sockaddr *sa, socklen_t len)
{
	return tsm__err_set(TSM_ENOTSUP, "auto engine: connect with "
	                    "tsm__ofi_connect(io, c, \"HOST:PORT\")");
}

/* An accepted connection: its tier is known from its handle. */
static tsm_err auto_adopt(tsm__io *io, tsm__conn *c)
{
	struct ofi_auto *a = A(io);
	struct auto_tier_state *s = auto_conn_tier(a, c->fd);
	if (!s)
		return tsm__err_set(TSM_EINVAL, "auto: %d is no connection", c->fd);
	tsm_err e;
	AUTO_TCP(a, e = s->ops->adopt(s->io, c));
	if (!e) {
		char peer[128], what[160];
		if (tsm__ofi_auto_peer_name(io, c->fd, peer, sizeof(peer)))
			snprintf(peer, sizeof(peer), "?");
		snprintf(what, sizeof(what), "accepted %s", peer);
		auto_chosen(a, (int)(s - a->t), what, NULL);
	}
	return e;
}

static tsm_err auto_recv(tsm__io *io, tsm__conn *c, void *buf, size_t len)
{
	struct auto_tier_state *s = auto_conn_tier(A(io), c->fd);
	tsm_err e;
	if (!s)
		return tsm__err_set(TSM_EINVAL, "auto: recv on no connection");
	AUTO_TCP(A(io), e = s->ops->recv(s->io, c, buf, len));
	return e;
}

static tsm_err auto_send(tsm__io *io, tsm__conn *c)
{
	struct auto_tier_state *s = auto_conn_tier(A(io), c->fd);
	tsm_err e;
	if (!s)
		return tsm__err_set(TSM_EINVAL, "auto: send on no connection");
	AUTO_TCP(A(io), e = s->ops->send(s->io, c));
	return e;
}

/* A connection no tier holds (its dial never started) is closed here,
 * with on_closed from the next wait(), as io.h wants. */
static void auto_close(tsm__io *io, tsm__conn *c)
{
	struct ofi_auto *a = A(io);
	auto_dial_drop(a, c);
	struct auto_tier_state *s = auto_conn_tier(a, c->fd);
	if (s == &a->t[AT_TCP]) {
		AUTO_TCP(a, s->ops->close(s->io, c));
		return;
	}
	if (s)
		return s->ops->close(s->io, c);
	if (c->closing)
		return;
	c->closing = true;
	c->rx.pending = c->tx.pending = c->cx.pending = false;
	if (a->nclosed == a->capclosed) {
		size_t n = a->capclosed ? a->capclosed * 2 : 8;
		tsm__conn **v = realloc(a->closed, n * sizeof(*v));
		if (!v)
			abort(); /* bounded by the context's sessions */
		a->closed = v;
		a->capclosed = n;
	}
	a->closed[a->nclosed++] = c;
}

tsm_err tsm__ofi_auto_peer_name(tsm__io *io, int fd, char *buf, size_t cap)
{
	struct ofi_auto *a = A(io);
	struct auto_tier_state *s = auto_conn_tier(a, fd);
	char name[128];
	if (!s)
		return tsm__err_set(TSM_EINVAL, "auto: no connection %d", fd);
	int t = (int)(s - a->t);
	if (t != AT_TCP) {
		tsm_err e = tsm__ofi_peer_name(s->io, fd, name, sizeof(name));
		if (e)
			return e;
	} else {
		/* The IP alone: loop.c keys the per-source budget on it. */
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
			return tsm__err_set(TSM_EINVAL, "auto: getpeername failed");
		const void *ip = ss.ss_family == AF_INET6
		                     ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
		                     : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
		inet_ntop(ss.ss_family, ip, name, sizeof(name));
	}
	snprintf(buf, cap, "%s:%s", tiers[t].name, name);
	return TSM_OK;
}

bool tsm__ofi_auto_advert(tsm__io *io, char *buf, size_t cap)
{
	struct ofi_auto *a = A(io);
	if (!a->t[AT_EFA].listening || !a->efa_ad[0])
		return false;
	return (size_t)snprintf(buf, cap, "efa=%s", a->efa_ad) < cap;
}

tsm_err tsm__ofi_auto_learn(tsm__io *io, int fd, const char *dialed,
                            const uint8_t *ad, size_t n, bool *move)
{
	struct ofi_auto *a = A(io);
	char efa[AUTO_AD_MAX];
	uint8_t raw[OFI_NAME_MAX + 2];
	size_t rn = sizeof(raw);
	*move = false;
	if (n <= 4 || n - 4 >= sizeof(efa) || memcmp(ad, "efa=", 4) != 0)
		return tsm__err_set(TSM_ERR_BAD_FIELD, "CTRL TIERS: want efa=NAME "
		                    "(NAME up to %d characters)", AUTO_AD_MAX - 1);
	memcpy(efa, ad + 4, n - 4);
	efa[n - 4] = '\0';
	if (strspn(efa, "0123456789abcdefABCDEF.:[]_-") != n - 4)
		return tsm__err_set(TSM_ERR_BAD_FIELD, "CTRL TIERS: NAME has a "
		                    "character outside [0-9a-fA-F.:[]_-]");
	tsm__io *e_io = a->t[AT_EFA].here ? auto_tier_io(a, AT_EFA) : NULL;
	if (!e_io)
		return TSM_OK; /* no EFA here: the offer is of no use */
	if (tsm__ofi_addr_name(e_io, efa, raw, &rn) != TSM_OK)
		return tsm__err_set(TSM_ERR_BAD_FIELD, "CTRL TIERS: %s", tsm_err_detail());
	auto_learned_put(a, dialed, efa);
	int t = auto_tier_of(fd);
	*move = t > AT_EFA && !auto_memo_failed(a, dialed, AT_EFA);
	tsm__log(a->ctx, TSM_LOG_INFO, "auto: %s offers EFA (%s)%s", dialed, efa,
	         *move ? ": dialing it again over EFA" : "");
	return TSM_OK;
}

void tsm__ofi_auto_query(const tsm__io *io, tsm__ofi_info *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->provider, sizeof(out->provider), "auto");
}

/* --- progress ------------------------------------------------------------ */

static int auto_closed_run(struct ofi_auto *a)
{
	int n = 0;
	while (a->nclosed) {
		tsm__conn *c = a->closed[--a->nclosed];
		a->cbs->on_closed(c);
		n++;
	}
	return n;
}

/* Polls the ofi tiers, then waits in the TCP engine: until deadline when
 * it is the only one, else for the shortest of deadline and a sleep that
 * grows 50 us .. 1 ms while nothing happens (shm has no fd to wait on). */
static int auto_wait(tsm__io *io, tsm_time deadline)
{
	struct ofi_auto *a = A(io);
	struct auto_tier_state *tcp = &a->t[AT_TCP];
	bool others = false;
	int n = auto_closed_run(a);
	for (int t = 0; t < AT_TCP; t++) {
		if (!a->t[t].io)
			continue;
		others = true;
		n += a->t[t].ops->wait(a->t[t].io, 0);
	}
	int m;
	if (a->busy || n > 0 || !others) {
		a->backoff = OFI_SLEEP_MIN;
		AUTO_TCP(a, m = tcp->ops->wait(tcp->io, a->busy || n > 0 ? 0 : deadline));
		return n + m;
	}
	tsm_time until = TSM_MIN(deadline, tsm__now() + a->backoff);
	AUTO_TCP(a, m = tcp->ops->wait(tcp->io, until));
	a->backoff = m ? OFI_SLEEP_MIN : TSM_MIN(a->backoff * 2, OFI_SLEEP_MAX);
	return m;
}

static void auto_wake(tsm__io *io)
{
	struct auto_tier_state *tcp = &A(io)->t[AT_TCP];
	tcp->ops->wake(tcp->io);
}

static void auto_flush(tsm__io *io)
{
	struct ofi_auto *a = A(io);
	for (int t = 0; t < AT__N; t++)
		if (a->t[t].io)
			AUTO_TCP(a, a->t[t].ops->flush(a->t[t].io));
}

/* --- set-up -------------------------------------------------------------- */

static tsm_err auto_init_unsupported(tsm__io **out, const tsm__io_cbs *cbs,
                                     bool busy)
{
	return tsm__err_set(TSM_ENOTSUP, "auto engine: open it with "
	                    "tsm__ofi_auto_open(ctx, cbs)");
}

static void auto_fini(tsm__io *io)
{
	struct ofi_auto *a = A(io);
	if (!a)
		return;
	auto_closed_run(a);
	for (int t = 0; t < AT__N; t++)
		if (a->t[t].io)
			AUTO_TCP(a, a->t[t].ops->fini(a->t[t].io));
	if (a->tcp_lfd >= 0)
		close(a->tcp_lfd);
	free(a->dials);
	free(a->closed);
	free(a);
}

const tsm__io_ops tsm__io_ofi_auto_ops = {
	.size = sizeof(tsm__io_ops),
	.name = "auto",
	.init = auto_init_unsupported,
	.fini = auto_fini,
	.listen = auto_listen,
	.lst_close = auto_lst_close,
	.connect = auto_connect_sa,
	.adopt = auto_adopt,
	.recv = auto_recv,
	.send = auto_send,
	.close = auto_close,
	.wait = auto_wait,
	.wake = auto_wake,
	.flush = auto_flush,
};

/* "auto:verbs+shm+io_uring": the tiers this context can use. */
static void auto_name(const struct ofi_auto *a, char *buf, size_t cap)
{
	int k = snprintf(buf, cap, "auto:");
	for (int t = 0; t < AT_TCP && k > 0 && (size_t)k < cap; t++)
		if (a->t[t].here)
			k += snprintf(buf + k, cap - (size_t)k, "%s+", tiers[t].name);
	if (k > 0 && (size_t)k < cap)
		snprintf(buf + k, cap - (size_t)k, "%s", a->t[AT_TCP].ops->name);
}

tsm_err tsm__ofi_auto_open(tsm_ctx *ctx, const tsm__io_cbs *cbs)
{
	struct ofi_auto *a = calloc(1, sizeof(*a));
	if (!a)
		return tsm__err_set(TSM_ENOMEM, "auto engine");
	a->kind = OFI_KIND_AUTO;
	a->cbs = cbs;
	a->busy = ctx->busy;
	a->ctx = ctx;
	a->stats = &ctx->stats;
	a->tcp_lfd = -1;
	a->backoff = OFI_SLEEP_MIN;
	tsm_err e = auto_tcp_open(a);
	if (e) {
		free(a);
		return e;
	}
	auto_probe(a);
	auto_locals(a);
	if (strcmp(auto_provider(AT_EFA), "efa") != 0)
		tsm__log(ctx, TSM_LOG_WARN, "auto: the efa tier runs over %s "
		         "(TSM_AUTO_EFA_PROVIDER: a test hook, not EFA)",
		         auto_provider(AT_EFA));
	ctx->io = (tsm__io *)(void *)a;
	ctx->io_ops = &tsm__io_ofi_auto_ops;
	auto_name(a, ctx->transport_name, sizeof(ctx->transport_name));
	tsm__stat_set(&ctx->stats, ST_AUTO, 1);
	for (int t = 0; t < AT_TCP; t++)
		tsm__log(ctx, TSM_LOG_INFO, "auto: %s %s%s", tiers[t].name,
		         a->t[t].here ? "available" : "unavailable: ", a->t[t].why);
	tsm__log(ctx, TSM_LOG_INFO, "auto: transport %s", ctx->transport_name);
	return TSM_OK;
}
