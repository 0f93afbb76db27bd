/*
 * transport/ofi/ofi_ep.c - fabric set-up for the ofi engine (design.md §7):
 * fi_getinfo hints, opening and closing fabric, domain, completion queue,
 * address vector and the one RDM endpoint, the registered buffers, and
 * endpoint names <-> address strings.
 *
 * Everything is re-opened when the engine is bound to a listen address,
 * because with tcp;ofi_rxm the domain follows the interface ("lo" for
 * 127.0.0.1, "eth0" otherwise).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "platform/clock.h"

#include "transport/ofi/ofi_int.h"

/* --- errors -------------------------------------------------------------- */

static tsm_err ep_fail(int r, const char *what)
{
	tsm_err e = TSM_ETRANSPORT;
	if (r == -FI_EADDRINUSE || r == -FI_EBUSY)
		e = TSM_ERR_ADDR_IN_USE;
	return tsm__err_set(e, "libfabric %s: %s", what, fi_strerror(-r));
}

/* "no verbs device found": the first layer of the provider string names
 * the hardware ("verbs;ofi_rxm" -> verbs). */
static tsm_err ep_no_device(const char *provider, const char *node,
                            const char *service, int r)
{
	uint32_t v = fi_version();
	size_t n = strcspn(provider, ";");
	return tsm__err_set(TSM_ERR_NO_DEVICE, "no %.*s device found%s%s%s%s "
	                    "(libfabric %u.%u: fi_getinfo(%s): %s)", (int)n,
	                    provider, node || service ? " for " : "",
	                    node ? node : "", service ? ":" : "",
	                    service ? service : "", FI_MAJOR(v), FI_MINOR(v),
	                    provider, fi_strerror(-r));
}

/* --- fi_getinfo ---------------------------------------------------------- */

static struct fi_info *ep_hints(const char *provider, uint32_t tclass,
                                const char *domain)
{
	struct fi_info *h = fi_allocinfo();
	if (!h)
		return NULL;
	h->ep_attr->type = FI_EP_RDM;
	h->caps = FI_MSG;
	/* The session checks sequence numbers (docs/wire.md §2): messages
	 * must arrive in the order they were sent to a peer. */
	h->tx_attr->msg_order = FI_ORDER_SAS;
	h->rx_attr->msg_order = FI_ORDER_SAS;
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	/* Registration of local buffers is done when the provider asks
	 * (verbs, efa); the other bits only matter for RMA, which we do not
	 * use, so any value the provider wants is fine. */
	h->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
	                          FI_MR_PROV_KEY;
	/* Only the progress thread touches the domain (wake() writes an
	 * eventfd), so no provider locking is needed. */
	h->domain_attr->threading = FI_THREAD_DOMAIN;
	h->tx_attr->tclass = tclass;
	h->fabric_attr->prov_name = strdup(provider);
	if (domain)
		h->domain_attr->name = strdup(domain);
	if (!h->fabric_attr->prov_name || (domain && !h->domain_attr->name)) {
		fi_freeinfo(h);
		return NULL;
	}
	return h;
}

static tsm_err ep_getinfo(tsm__io *io, const char *node, const char *service,
                          const char *domain)
{
	struct fi_info *h = ep_hints(io->provider, io->tc_asked, domain);
	if (!h)
		return tsm__err_set(TSM_ENOMEM, "ofi: fi_getinfo hints");
	uint64_t flags = node || service || domain ? FI_SOURCE : 0;
	uint32_t ver = FI_VERSION(FI_MAJOR_VERSION, FI_MINOR_VERSION);
	int r = fi_getinfo(ver, node, service, flags, h, &io->info);
	if (r == -FI_ENODATA && io->tc_asked) {
		/* design.md §5: a traffic class is asked for, never required. */
		h->tx_attr->tclass = FI_TC_UNSPEC;
		r = fi_getinfo(ver, node, service, flags, h, &io->info);
	}
	fi_freeinfo(h);
	if (r == -FI_ENODATA)
		return ep_no_device(io->provider, node, service, r);
	if (r)
		return ep_fail(r, "fi_getinfo");
	io->tc_granted = io->info->tx_attr->tclass;
	return TSM_OK;
}

/* Whether provider (and its device) is here, without opening anything:
 * TSM_ERR_NO_DEVICE with the same detail tsm__ofi_init gives, or
 * TSM_ETRANSPORT. */
tsm_err tsm__ofi_probe(const char *provider)
{
	struct fi_info *h = ep_hints(provider, 0, NULL), *info = NULL;
	if (!h)
		return tsm__err_set(TSM_ENOMEM, "ofi: fi_getinfo hints");
	int r = fi_getinfo(FI_VERSION(FI_MAJOR_VERSION, FI_MINOR_VERSION), NULL,
	                   NULL, 0, h, &info);
	fi_freeinfo(h);
	if (info)
		fi_freeinfo(info);
	if (r == -FI_ENODATA)
		return ep_no_device(provider, NULL, NULL, r);
	return r ? ep_fail(r, "fi_getinfo") : TSM_OK;
}

/* --- shm endpoints of this process --------------------------------------- */

/*
 * libfabric 1.17 shm maps a peer endpoint of the same process straight to
 * that endpoint's region (its ep_name_list) and unmaps the region when
 * the endpoint closes: a sender that still points at it crashes
 * (SIGSEGV in pthread_spin_lock). So the process keeps the names of its
 * live shm endpoints; closing one takes shm_rw for writing, and every
 * call of another shm engine that may touch a peer's region (sends, CQ
 * reads, AV inserts) holds it for reading and first checks that a peer
 * of this process is still live (tsm__ofi_shm_live).
 */
static pthread_rwlock_t shm_rw = PTHREAD_RWLOCK_INITIALIZER;
#define SHM_LIVE_MAX 256
static char shm_live[SHM_LIVE_MAX][OFI_NAME_MAX + 1];
static unsigned shm_nlive;

/* fork(): the child must not inherit the lock held by a thread it does
 * not have, and the endpoints it inherits are another process's now (its
 * copy of their regions stays mapped when the parent closes them). */
static void shm_fork_prepare(void)
{
	pthread_rwlock_wrlock(&shm_rw);
}

static void shm_fork_parent(void)
{
	pthread_rwlock_unlock(&shm_rw);
}

/* Not unlock: glibc takes an unlock from a thread id other than the
 * writer's (the child's thread has a new one) for a reader's. */
static void shm_fork_child(void)
{
	shm_nlive = 0;
	pthread_rwlock_init(&shm_rw, NULL);
}

static pthread_once_t shm_once = PTHREAD_ONCE_INIT;

static void shm_atfork(void)
{
	(void)pthread_atfork(shm_fork_prepare, shm_fork_parent, shm_fork_child);
}

void tsm__ofi_shm_rdlock(const tsm__io *io)
{
	if (io->addr_format == FI_ADDR_STR)
		pthread_rwlock_rdlock(&shm_rw);
}

void tsm__ofi_shm_unlock(const tsm__io *io)
{
	if (io->addr_format == FI_ADDR_STR)
		pthread_rwlock_unlock(&shm_rw);
}

/* With shm_rw held (either way). */
bool tsm__ofi_shm_live(const uint8_t *name, size_t n)
{
	for (unsigned i = 0; i < shm_nlive; i++)
		if (strncmp(shm_live[i], (const char *)name, n) == 0)
			return true;
	return false;
}

static void shm_live_add(const tsm__io *io)
{
	if (io->addr_format != FI_ADDR_STR)
		return;
	pthread_once(&shm_once, shm_atfork);
	pthread_rwlock_wrlock(&shm_rw);
	if (shm_nlive < SHM_LIVE_MAX)
		snprintf(shm_live[shm_nlive++], sizeof(shm_live[0]), "%s",
		         (const char *)io->name);
	pthread_rwlock_unlock(&shm_rw);
}

/* With shm_rw held for writing. */
static void shm_live_del(const tsm__io *io)
{
	for (unsigned i = 0; i < shm_nlive; i++) {
		if (strcmp(shm_live[i], (const char *)io->name) == 0) {
			memcpy(shm_live[i], shm_live[--shm_nlive], sizeof(shm_live[0]));
			return;
		}
	}
}

/* --- shm names: one holder per process ---------------------------------- */

/* libfabric 1.17 shm crashes when two endpoints of one process take the
 * same name (another process gets EBUSY), so the engines of a process
 * keep a registry of the names they hold. */
static pthread_mutex_t shm_mu = PTHREAD_MUTEX_INITIALIZER;
static tsm__io *shm_holders;

static tsm_err ep_shm_claim(tsm__io *io, const char *name)
{
	tsm_err e = TSM_OK;
	pthread_mutex_lock(&shm_mu);
	for (tsm__io *x = shm_holders; x; x = x->shm_next)
		if (strcmp(x->shm_name, name) == 0)
			e = tsm__err_set(TSM_ERR_ADDR_IN_USE, "ofi shm: %s is held by "
			                 "another context of this process", name);
	if (!e) {
		snprintf(io->shm_name, sizeof(io->shm_name), "%s", name);
		io->shm_next = shm_holders;
		shm_holders = io;
	}
	pthread_mutex_unlock(&shm_mu);
	return e;
}

bool tsm__ofi_shm_held(const char *name)
{
	char full[OFI_NAME_MAX + 16];
	bool held = false;
	snprintf(full, sizeof(full), "fi_ns://tsm:%s", name);
	pthread_mutex_lock(&shm_mu);
	for (tsm__io *x = shm_holders; x && !held; x = x->shm_next)
		held = strcmp(x->shm_name, full) == 0;
	pthread_mutex_unlock(&shm_mu);
	return held;
}

static void ep_shm_release(tsm__io *io)
{
	if (!io->shm_name[0])
		return;
	pthread_mutex_lock(&shm_mu);
	for (tsm__io **pp = &shm_holders; *pp; pp = &(*pp)->shm_next) {
		if (*pp == io) {
			*pp = io->shm_next;
			break;
		}
	}
	pthread_mutex_unlock(&shm_mu);
	io->shm_name[0] = '\0';
}

/* --- listen addresses ---------------------------------------------------- */

struct ep_bind {
	char node[64], service[OFI_NAME_MAX], domain[64];
	const char *n, *s, *d;
};

static bool ep_ipv4(const char *s)
{
	struct in_addr in;
	return inet_pton(AF_INET, s, &in) == 1;
}

/* "HOST:PORT" -> node/service; "DEV:PORT" (verbs) -> domain/service. */
static tsm_err ep_bind_sockaddr(const char *addr, struct ep_bind *b)
{
	const char *c = strrchr(addr, ':');
	size_t hn = c ? (size_t)(c - addr) : 0;
	if (!c || hn == 0 || hn >= sizeof(b->node) || strlen(c + 1) == 0 ||
	    strlen(c + 1) >= sizeof(b->service))
		return tsm__err_set(TSM_ERR_BAD_URL, "ofi: listen address '%s': want "
		                    "HOST:PORT", addr);
	memcpy(b->node, addr, hn);
	b->node[hn] = '\0';
	snprintf(b->service, sizeof(b->service), "%s", c + 1);
	b->s = b->service;
	if (ep_ipv4(b->node)) {
		b->n = b->node;
	} else {
		snprintf(b->domain, sizeof(b->domain), "%s", b->node);
		b->d = b->domain;
	}
	return TSM_OK;
}

/* shm "NAME" -> "fi_ns://tsm:NAME": a name without the pid and endpoint
 * index that "fi_shm://" names get, so peers can know it in advance. */
static tsm_err ep_bind_shm(tsm__io *io, const char *addr, struct ep_bind *b)
{
	char full[OFI_NAME_MAX + 1];
	uint8_t raw[OFI_NAME_MAX + 1];
	size_t n = sizeof(raw);
	if (strncmp(addr, "fi_", 3) == 0)
		return tsm__err_set(TSM_ERR_BAD_URL, "ofi shm: listen on a NAME, not "
		                    "a raw address ('%s')", addr);
	tsm_err e = tsm__ofi_addr_name(io, addr, raw, &n);
	if (e)
		return e;
	snprintf(full, sizeof(full), "%s", (const char *)raw);
	snprintf(b->node, sizeof(b->node), "tsm");
	snprintf(b->service, sizeof(b->service), "%s", addr);
	b->n = b->node;
	b->s = b->service;
	return ep_shm_claim(io, full);
}

static tsm_err ep_bind_args(tsm__io *io, const char *addr, struct ep_bind *b)
{
	memset(b, 0, sizeof(*b));
	if (!addr)
		return TSM_OK;
	if (io->addr_format == FI_SOCKADDR_IN)
		return ep_bind_sockaddr(addr, b);
	if (io->addr_format == FI_ADDR_STR)
		return ep_bind_shm(io, addr, b);
	if (*addr) { /* efa and others: a device (domain) name */
		snprintf(b->domain, sizeof(b->domain), "%s", addr);
		b->d = b->domain;
	}
	return TSM_OK;
}

/* --- fabric objects ------------------------------------------------------ */

/* A CQ with an fd to sleep on where the provider has one (tcp;ofi_rxm);
 * shm and udp;ofi_rxd have none here: wait() then sleeps in short steps. */
static int ep_open_cq(tsm__io *io)
{
	struct fi_cq_attr a = {.format = FI_CQ_FORMAT_MSG, .size = 1024,
	                       .wait_obj = io->busy ? FI_WAIT_NONE : FI_WAIT_FD};
	io->wait_fd = -1;
	int r = fi_cq_open(io->domain, &a, &io->cq, NULL);
	if (r == 0 && a.wait_obj == FI_WAIT_NONE)
		return 0;
	if (r == 0 && fi_control(&io->cq->fid, FI_GETWAIT, &io->wait_fd) == 0)
		return 0;
	if (r == 0)
		fi_close(&io->cq->fid);
	io->cq = NULL;
	io->wait_fd = -1;
	a.wait_obj = FI_WAIT_NONE;
	return fi_cq_open(io->domain, &a, &io->cq, NULL);
}

static tsm_err ep_open_ep(tsm__io *io)
{
	int r = fi_endpoint(io->domain, io->info, &io->ep, NULL);
	if (r)
		return ep_fail(r, "fi_endpoint");
	if ((r = fi_ep_bind(io->ep, &io->cq->fid, FI_TRANSMIT | FI_RECV)) != 0 ||
	    (r = fi_ep_bind(io->ep, &io->av->fid, 0)) != 0)
		return ep_fail(r, "fi_ep_bind");
	if ((r = fi_enable(io->ep)) != 0)
		return ep_fail(r, "fi_enable");
	io->nlen = sizeof(io->name) - 1;
	if ((r = fi_getname(&io->ep->fid, io->name, &io->nlen)) != 0)
		return ep_fail(r, "fi_getname (names over 64 bytes are not supported)");
	io->name[io->nlen] = 0;
	shm_live_add(io);
	return TSM_OK;
}

static tsm_err ep_open_objects(tsm__io *io)
{
	struct fi_av_attr aa = {.type = FI_AV_TABLE}; /* shm refuses counts over its peer limit */
	int r = fi_fabric(io->info->fabric_attr, &io->fabric, NULL);
	if (r)
		return ep_fail(r, "fi_fabric");
	if ((r = fi_domain(io->fabric, io->info, &io->domain, NULL)) != 0)
		return ep_fail(r, "fi_domain");
	if ((r = ep_open_cq(io)) != 0)
		return ep_fail(r, "fi_cq_open");
	if ((r = fi_av_open(io->domain, &aa, &io->av, NULL)) != 0)
		return ep_fail(r, "fi_av_open");
	return ep_open_ep(io);
}

static void ep_attrs(tsm__io *io)
{
	const struct fi_info *i = io->info;
	size_t max = i->ep_attr->max_msg_size;
	io->addr_format = i->addr_format;
	io->mr_local = (i->domain_attr->mr_mode & FI_MR_LOCAL) ||
	               (i->mode & FI_LOCAL_MR);
	io->msg_max = max > OFI_HDR_LEN + OFI_MSG_MAX ? OFI_MSG_MAX
	                                              : max - OFI_HDR_LEN;
	io->inject = i->tx_attr->inject_size;
}

/* --- buffers ------------------------------------------------------------- */

static struct ofi_buf *buf_new(tsm__io *io, size_t cap, uint8_t kind)
{
	struct ofi_buf *b = calloc(1, sizeof(*b) + cap);
	if (!b)
		return NULL;
	b->cap = cap;
	b->kind = kind;
	if (io->mr_local && fi_mr_reg(io->domain, b->data, cap, FI_SEND | FI_RECV,
	                              0, io->mr_key++, 0, &b->mr, NULL) != 0) {
		free(b);
		return NULL;
	}
	b->desc = b->mr ? fi_mr_desc(b->mr) : NULL;
	return b;
}

static void buf_free(struct ofi_buf *b)
{
	if (b && b->mr)
		fi_close(&b->mr->fid);
	free(b);
}

static bool buf_track(tsm__io *io, struct ofi_buf *b)
{
	if (io->ntx_all == io->capt_all) {
		unsigned n = io->capt_all ? io->capt_all * 2 : 64;
		struct ofi_buf **v = realloc(io->tx_all, n * sizeof(*v));
		if (!v)
			return false;
		io->tx_all = v;
		io->capt_all = n;
	}
	io->tx_all[io->ntx_all++] = b;
	return true;
}

/* Send buffers come from two free lists (small, large); the pools are
 * capped for data so that memory stays bounded, not for control messages,
 * which are bounded by the connections (a few per connection). */
struct ofi_buf *tsm__ofi_buf_get(tsm__io *io, size_t len, bool ctrl)
{
	bool large = len > OFI_TX_SMALL;
	struct ofi_buf **fl = large ? &io->tx_large : &io->tx_small;
	unsigned *n = large ? &io->ntx_large : &io->ntx_small;
	struct ofi_buf *b = *fl;
	if (b) {
		*fl = b->next;
	} else {
		if (!ctrl && *n >= (large ? OFI_TX_LARGE_MAX : OFI_TX_SMALL_MAX))
			return NULL;
		b = buf_new(io, large ? OFI_HDR_LEN + io->msg_max : OFI_TX_SMALL,
		            OFI_BUF_TX);
		if (!b || !buf_track(io, b)) {
			buf_free(b);
			return NULL;
		}
		(*n)++;
	}
	b->large = large;
	b->len = len;
	b->next = NULL;
	return b;
}

void tsm__ofi_buf_put(tsm__io *io, struct ofi_buf *b)
{
	struct ofi_buf **fl = b->large ? &io->tx_large : &io->tx_small;
	b->next = *fl;
	*fl = b;
	io->tx_freed = true;
}

int tsm__ofi_rx_post(tsm__io *io, struct ofi_buf *b)
{
	return (int)fi_recv(io->ep, b->data, b->cap, b->desc, FI_ADDR_UNSPEC,
	                    &b->fctx);
}

static tsm_err ep_post_rx(tsm__io *io)
{
	size_t n = TSM_MIN((size_t)OFI_RX_POSTED, io->info->rx_attr->size);
	for (size_t i = 0; i < n; i++) {
		io->rx[i] = buf_new(io, OFI_HDR_LEN + io->msg_max, OFI_BUF_RX);
		if (!io->rx[i])
			return tsm__err_set(TSM_ENOMEM, "ofi: receive buffers");
		int r = tsm__ofi_rx_post(io, io->rx[i]);
		if (r)
			return ep_fail(r, "fi_recv");
	}
	return TSM_OK;
}

/* --- open / close -------------------------------------------------------- */

/* Once per process: remove the dial regions ("tsm:d-PID-...") of
 * processes that are gone (killed before they closed their endpoint).
 * Each holds about 4 MiB of tmpfs, that is memory, for good. Only our
 * own dial names are touched, and only when their pid does not exist;
 * listeners' regions are named by the application and left alone.
 * Caveat (docs/transports.md): a process in another pid namespace that
 * shares this /dev/shm looks gone; its region is unlinked, which keeps
 * its mapping but stops new peers from reaching it. */
static pthread_once_t sweep_once = PTHREAD_ONCE_INIT;

static void shm_sweep(void)
{
	DIR *d = opendir("/dev/shm");
	struct dirent *de;
	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		char *end;
		if (strncmp(de->d_name, "tsm:d-", 6) != 0)
			continue;
		long pid = strtol(de->d_name + 6, &end, 10);
		if (pid <= 0 || *end != '-' || pid == (long)getpid())
			continue;
		if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
			(void)unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

/* A shm endpoint that only dials gets a name of its own too. Left to
 * libfabric it would be "PID:0:N", and the region of a process killed
 * before it closed stays in /dev/shm under that name: the next process
 * given the same pid (pid_max is 32768 here) then found its own pid
 * alive in the stale region and got EBUSY from fi_enable. A random part
 * makes such a collision practically impossible. */
static const char *ep_dial_name(tsm__io *io, char *buf, size_t cap)
{
	uint64_t r = 0;
	if (strcmp(io->provider, "shm") != 0)
		return NULL;
	pthread_once(&sweep_once, shm_sweep);
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint64_t)tsm__now() ^ ((uint64_t)(uintptr_t)io << 16);
	io->addr_format = FI_ADDR_STR; /* what shm's fi_getinfo will say */
	snprintf(buf, cap, "d-%ld-%016llx", (long)getpid(), (unsigned long long)r);
	return buf;
}

tsm_err tsm__ofi_ep_open(tsm__io *io, const char *listen_addr)
{
	struct ep_bind b;
	char dial[48];
	if (!listen_addr)
		listen_addr = ep_dial_name(io, dial, sizeof(dial));
	tsm_err e = ep_bind_args(io, listen_addr, &b);
	if (!e)
		e = ep_getinfo(io, b.n, b.s, b.d);
	if (!e) {
		ep_attrs(io);
		e = ep_open_objects(io);
	}
	if (!e)
		e = ep_post_rx(io);
	if (e) {
		char why[256];
		snprintf(why, sizeof(why), "%s", tsm_err_detail());
		tsm__ofi_ep_close(io);
		tsm__err_set(e, "%s", why);
	}
	return e;
}

static void ep_free_buffers(tsm__io *io)
{
	for (size_t i = 0; i < OFI_RX_POSTED; i++) {
		buf_free(io->rx[i]);
		io->rx[i] = NULL;
	}
	for (unsigned i = 0; i < io->ntx_all; i++)
		buf_free(io->tx_all[i]);
	free(io->tx_all);
	io->tx_all = NULL;
	io->ntx_all = io->capt_all = io->ntx_small = io->ntx_large = 0;
	io->tx_small = io->tx_large = io->rx_unposted = NULL;
}

static void ep_close_fid(struct fid *f)
{
	if (f)
		fi_close(f);
}

/* Closes in dependency order: the endpoint first (it flushes what is in
 * flight), then the buffers' registrations, then what they hang on. */
void tsm__ofi_ep_close(tsm__io *io)
{
	bool shm = io->ep && io->addr_format == FI_ADDR_STR;
	if (shm) { /* no sender of this process may point into our region */
		pthread_rwlock_wrlock(&shm_rw);
		shm_live_del(io);
	}
	ep_close_fid(io->ep ? &io->ep->fid : NULL);
	ep_free_buffers(io);
	ep_close_fid(io->av ? &io->av->fid : NULL);
	ep_close_fid(io->cq ? &io->cq->fid : NULL);
	ep_close_fid(io->domain ? &io->domain->fid : NULL);
	ep_close_fid(io->fabric ? &io->fabric->fid : NULL);
	if (shm)
		pthread_rwlock_unlock(&shm_rw);
	if (io->info)
		fi_freeinfo(io->info);
	io->ep = NULL;
	io->av = NULL;
	io->cq = NULL;
	io->domain = NULL;
	io->fabric = NULL;
	io->info = NULL;
	io->wait_fd = -1;
	io->nlen = 0;
	ep_shm_release(io);
	memset(io->peers, 0, sizeof(io->peers));
	io->nblocked = 0;
}

/* --- names --------------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static tsm_err name_hex(const char *addr, uint8_t *name, size_t *nlen)
{
	if (strncmp(addr, "0x", 2) == 0)
		addr += 2;
	size_t n = strlen(addr);
	if (n == 0 || n % 2 || n / 2 > OFI_NAME_MAX || n / 2 > *nlen)
		return tsm__err_set(TSM_ERR_BAD_URL, "ofi: address '%s': want an "
		                    "even number of hex digits, at most %d bytes", addr,
		                    OFI_NAME_MAX);
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(addr[2 * i]), lo = hexval(addr[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return tsm__err_set(TSM_ERR_BAD_URL, "ofi: '%s' is not hex", addr);
		name[i] = (uint8_t)(hi << 4 | lo);
	}
	*nlen = n / 2;
	return TSM_OK;
}

static tsm_err name_sockaddr(const char *addr, uint8_t *name, size_t *nlen)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	char host[16];
	const char *c = strrchr(addr, ':');
	char *end = NULL;
	size_t hn = c ? (size_t)(c - addr) : 0;
	unsigned long port = c ? strtoul(c + 1, &end, 10) : 0;
	if (!c || hn == 0 || hn >= sizeof(host) || !end || *end || end == c + 1 ||
	    port == 0 || port > 65535 || *nlen < sizeof(sin))
		return tsm__err_set(TSM_ERR_BAD_URL, "ofi: address '%s': want "
		                    "A.B.C.D:PORT with PORT 1..65535", addr);
	memcpy(host, addr, hn);
	host[hn] = '\0';
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
		return tsm__err_set(TSM_ERR_BAD_URL, "ofi: '%s' is not an IPv4 literal",
		                    host);
	sin.sin_port = htons((uint16_t)port);
	memcpy(name, &sin, sizeof(sin));
	*nlen = sizeof(sin);
	return TSM_OK;
}

/* shm: "NAME" (a listener's name) or a raw "fi_shm://..."/"fi_ns://..". */
static tsm_err name_shm(const tsm__io *io, const char *addr, uint8_t *name,
                        size_t *nlen)
{
	char buf[OFI_NAME_MAX + 2];
	bool raw = strncmp(addr, "fi_", 3) == 0;
	if (!raw && (strlen(addr) == 0 || strlen(addr) > 48 ||
	             strspn(addr, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                          "0123456789._-") != strlen(addr)))
		return tsm__err_set(TSM_ERR_BAD_URL, "ofi shm: name '%s': want "
		                    "[A-Za-z0-9._-]{1,48}", addr);
	int n = raw
	            ? snprintf(buf, sizeof(buf), "%s", addr)
	            : snprintf(buf, sizeof(buf), "fi_ns://tsm:%s", addr);
	if (n < 0 || (size_t)n + 1 > *nlen || (size_t)n > OFI_NAME_MAX ||
	    !tsm__ofi_name_ok(io, (const uint8_t *)buf, (size_t)n + 1))
		return tsm__err_set(TSM_ERR_BAD_URL, "ofi shm: bad address '%s'", addr);
	memcpy(name, buf, (size_t)n + 1);
	*nlen = (size_t)n + 1;
	return TSM_OK;
}

tsm_err tsm__ofi_addr_name(const tsm__io *io, const char *addr, uint8_t *name,
                           size_t *nlen)
{
	if (io->addr_format == FI_SOCKADDR_IN)
		return name_sockaddr(addr, name, nlen);
	if (io->addr_format == FI_ADDR_STR)
		return name_shm(io, addr, name, nlen);
	return name_hex(addr, name, nlen);
}

static bool name_str_ok(const char *s, size_t n)
{
	const char *rest;
	if (n < 2 || s[n - 1] != '\0' || strlen(s) != n - 1)
		return false;
	if (strncmp(s, "fi_shm://", 9) == 0)
		rest = s + 9;
	else if (strncmp(s, "fi_ns://", 8) == 0)
		rest = s + 8;
	else
		return false;
	/* The name becomes a /dev/shm file name: no '/', no "..". */
	if (!*rest || strstr(rest, ".."))
		return false;
	for (; *rest; rest++) {
		char ch = *rest;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-' ||
		      ch == ':'))
			return false;
	}
	return true;
}

/* A name a peer sent us in CONNECT: checked before it reaches the AV
 * (security.md: a fabric address is attacker input). */
bool tsm__ofi_name_ok(const tsm__io *io, const uint8_t *name, size_t n)
{
	if (n == 0 || n > OFI_NAME_MAX)
		return false;
	if (io->addr_format == FI_SOCKADDR_IN) {
		struct sockaddr_in sin;
		if (n != sizeof(sin))
			return false;
		memcpy(&sin, name, sizeof(sin));
		return sin.sin_family == AF_INET && sin.sin_port != 0;
	}
	if (io->addr_format == FI_ADDR_STR)
		return name_str_ok((const char *)name, n);
	return true;
}

void tsm__ofi_name_str(const tsm__io *io, const uint8_t *name, size_t n,
                       char *buf, size_t cap)
{
	if (cap == 0)
		return;
	buf[0] = '\0';
	if (io->addr_format == FI_SOCKADDR_IN && n == sizeof(struct sockaddr_in)) {
		struct sockaddr_in sin;
		char ip[INET_ADDRSTRLEN];
		memcpy(&sin, name, sizeof(sin));
		inet_ntop(AF_INET, &sin.sin_addr, ip, sizeof(ip));
		snprintf(buf, cap, "%s:%u", ip, ntohs(sin.sin_port));
	} else if (io->addr_format == FI_ADDR_STR && n > 0 && name[n - 1] == 0) {
		snprintf(buf, cap, "%s", (const char *)name);
	} else {
		for (size_t i = 0; i < n && 2 * i + 2 < cap; i++)
			snprintf(buf + 2 * i, cap - 2 * i, "%02x", name[i]);
	}
}
