/*
 * Restart with new session keys (issue 9 item 4): frames recorded from an
 * old session are refused by a new one.
 *
 * Two real contexts with certificates from the test PKI talk over TCP
 * through a small proxy that records what the dialer sends in the first
 * connection. The dialer publishes "OLD" messages, then it is restarted (a
 * new context: a new process as far as the listener can tell, new
 * session, new keys) and publishes "NEW" ones. Then:
 *
 *  - old_data_injected_into_new_session: the proxy injects the recorded
 *    DATA frames of the old session into the new session's byte stream.
 *    Their headers are valid, their seals are not (other keys): the
 *    listener refuses the first one (AEAD_FAIL, counted), closes that
 *    session, delivers none of them, and serves the dialer's next session.
 *  - old_session_replayed_whole: the whole recorded connection (PREFACE,
 *    TLS handshake, ACCEPT, CTRL, DATA) is sent again, on a connection of
 *    its own, to a restarted listener. TLS 1.3 cannot be replayed: the
 *    listener answers the old ClientHello with a new ServerHello, the old
 *    client's second flight does not match it, and no session is ever
 *    established; nothing is delivered; a good peer is still served.
 *
 * (Replay of a frame inside its own session is test_secure.c
 * replayed_frame_dropped; the window itself is test_aead.c.)
 */
#include <arpa/inet.h>
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/internal.h"
#include "unit_support.h"
#include "wire/frame.h"

static char pki[256];

static void make_pki(void)
{
	const char *src = getenv("TSM_SRC_DIR");
	char cmd[1024];
	snprintf(pki, sizeof(pki), "/tmp/tsm-test-pki-%d", (int)getuid());
	snprintf(cmd, sizeof(cmd), "%s/tests/support/pki.sh %s >/dev/null",
	         src ? src : ".", pki);
	ck_assert_int_eq(system(cmd), 0);
}

static const char *policy_both =
	"allow publish spiffe://td-a.test/* s/**\n"
	"allow subscribe spiffe://td-a.test/* s/**\n";

struct node {
	tsm_ctx *ctx;
	char cert[300], key[300], trust[300], policy[300];
};

static void node_open(struct node *n, const char *name)
{
	tsm_ctx_params p;
	char tmp[320];
	tsm_ctx_params_init(&p);
	snprintf(n->cert, sizeof(n->cert), "%s/%s.chain.pem", pki, name);
	snprintf(n->key, sizeof(n->key), "%s/%s.key", pki, name);
	snprintf(n->trust, sizeof(n->trust), "td-a.test=%s/bundle-a.pem", pki);
	snprintf(n->policy, sizeof(n->policy), "%s/replay-policy-%d.txt", pki,
	         (int)getpid());
	snprintf(tmp, sizeof(tmp), "%s.tmp", n->policy);
	FILE *f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	fputs(policy_both, f);
	fclose(f);
	ck_assert_int_eq(rename(tmp, n->policy), 0);
	p.cert_file = n->cert;
	p.key_file = n->key;
	p.trust_file = n->trust;
	p.policy_file = n->policy;
	p.name = name;
	p.log_level = TSM_LOG_ERROR;
	p.reconnect_max = 200 * TSM_MSEC; /* the dialer comes back quickly */
	ck_assert_int_eq(tsm_ctx_open(&n->ctx, &p), TSM_OK);
}


static bool stat_reaches(tsm_ctx *c, const char *name, uint64_t v)
{
	return us_stat_reaches(c, name, v, 5 * TSM_SEC);
}

static int listen_port(tsm_ctx *c)
{
	char url[128];
	unsigned port;
	ck_assert_int_eq(tsm_ctx_listen(c, "tcp://127.0.0.1:0", url, sizeof(url)), TSM_OK);
	ck_assert_int_eq(sscanf(url, "tcp://127.0.0.1:%u", &port), 1);
	return (int)port;
}

static int tcp_connect(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k <= 0)
			return;
		p += k;
		n -= (size_t)k;
	}
}

/* --- a recording proxy -------------------------------------------------- */

struct proxy {
	int lfd, port;
	atomic_int target;       /* the listener's port */
	pthread_t th;
	atomic_bool stop, inject;
	atomic_int conns;        /* connections handled so far */
	uint8_t *rec;            /* connection 0, dialer -> listener, all bytes */
	size_t nrec;
};

/* The DATA frames of the recording, back to back. */
static size_t recorded_data(const struct proxy *px, uint8_t *out, size_t cap)
{
	size_t off = 0, n = 0;
	while (px->nrec - off >= TSM_WIRE_HDR_LEN) {
		size_t len = TSM_WIRE_HDR_LEN + tsm__le32(px->rec + off + 36);
		if (px->nrec - off < len)
			break;
		if (px->rec[off + 3] == TSM_F_DATA && n + len <= cap) {
			memcpy(out + n, px->rec + off, len);
			n += len;
		}
		off += len;
	}
	return n;
}

/* Forwards whole frames from the dialer; injects the old DATA frames at a
 * frame boundary when asked to. Returns the bytes consumed. */
static size_t proxy_frames(struct proxy *px, uint8_t *b, size_t n, int out)
{
	static uint8_t old[1 << 20];
	size_t off = 0;
	while (n - off >= TSM_WIRE_HDR_LEN) {
		size_t len = TSM_WIRE_HDR_LEN + tsm__le32(b + off + 36);
		if (n - off < len)
			break;
		write_all(out, b + off, len);
		off += len;
	}
	if (atomic_exchange(&px->inject, false)) {
		size_t k = recorded_data(px, old, sizeof(old));
		write_all(out, old, k);
	}
	return off;
}

static void proxy_one(struct proxy *px, int a, int conn)
{
	int b = tcp_connect(atomic_load(&px->target));
	static uint8_t buf[1 << 21];
	size_t have = 0;
	if (b < 0) {
		close(a);
		return;
	}
	struct pollfd pf[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
	while (!atomic_load(&px->stop)) {
		int r = poll(pf, 2, 20);
		if (r < 0)
			break;
		if (r == 0) {
			if (atomic_load(&px->inject) && have == 0)
				proxy_frames(px, buf, 0, b);
			continue;
		}
		if (pf[1].revents) {
			uint8_t t[65536];
			ssize_t k = read(b, t, sizeof(t));
			if (k <= 0)
				break;
			write_all(a, t, (size_t)k);
		}
		if (pf[0].revents) {
			ssize_t k = read(a, buf + have, sizeof(buf) - have);
			if (k <= 0)
				break;
			if (conn == 0 && px->nrec + (size_t)k <= (4u << 20)) {
				memcpy(px->rec + px->nrec, buf + have, (size_t)k);
				px->nrec += (size_t)k;
			}
			have += (size_t)k;
			size_t used = proxy_frames(px, buf, have, b);
			memmove(buf, buf + used, have - used);
			have -= used;
		}
	}
	close(a);
	close(b);
}

static void *proxy_main(void *arg)
{
	struct proxy *px = arg;
	while (!atomic_load(&px->stop)) {
		struct pollfd pf = {px->lfd, POLLIN, 0};
		if (poll(&pf, 1, 50) != 1)
			continue;
		int a = accept(px->lfd, NULL, NULL);
		if (a < 0)
			continue;
		proxy_one(px, a, atomic_fetch_add(&px->conns, 1));
	}
	return NULL;
}

static void proxy_start(struct proxy *px, int target)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	memset(px, 0, sizeof(*px));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	px->lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(px->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(px->lfd, 8), 0);
	getsockname(px->lfd, (struct sockaddr *)&sa, &len);
	px->port = ntohs(sa.sin_port);
	atomic_store(&px->target, target);
	px->rec = malloc(4u << 20);
	pthread_create(&px->th, NULL, proxy_main, px);
}

static void proxy_stop(struct proxy *px)
{
	atomic_store(&px->stop, true);
	pthread_join(px->th, NULL);
	close(px->lfd);
	free(px->rec);
}

/* --- the scenario ------------------------------------------------------- */

struct scene {
	struct node lst, dial;
	tsm_sub *s;              /* on the listener: every s/ topic */
	tsm_pub *p;              /* on the dialer: s/back */
	struct proxy px;
	int port;
};

static void dial_open(struct scene *sc)
{
	char url[128];
	node_open(&sc->dial, "a-sub");
	ck_assert_int_eq(tsm_pub_open(&sc->p, sc->dial.ctx, "s/back", NULL), TSM_OK);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", sc->px.port);
	ck_assert_int_eq(tsm_ctx_dial(sc->dial.ctx, url), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(sc->p, 1, 10 * TSM_SEC), TSM_OK);
}

static void dial_close(struct scene *sc)
{
	tsm_pub_close(sc->p);
	tsm_ctx_close(sc->dial.ctx);
	sc->p = NULL;
}

static void publish(tsm_pub *p, const char *tag, int n)
{
	char b[64];
	for (int i = 0; i < n; i++) {
		snprintf(b, sizeof(b), "%s-%d-payload", tag, i);
		ck_assert_int_eq(tsm_publish(p, b, strlen(b) + 1, NULL), TSM_OK);
	}
	ck_assert_int_eq(tsm_pub_flush(p, 5 * TSM_SEC), TSM_OK);
}

/* Receives for `wait`; every message must start with tag; returns count. */
static int drain_tagged(tsm_sub *s, const char *tag, tsm_duration wait)
{
	tsm_msg *m;
	int n = 0;
	while (tsm_sub_recv(s, &m, wait) == TSM_OK) {
		ck_assert_msg(strncmp(tsm_msg_data(m), tag, strlen(tag)) == 0,
		              "delivered '%s', expected only %s messages",
		              (const char *)tsm_msg_data(m), tag);
		tsm_msg_free(m);
		n++;
	}
	return n;
}

/* The listener, a proxy in front of it, and a first (old) session in
 * which the dialer published 5 OLD messages, all recorded. */
static void scene_open(struct scene *sc)
{
	memset(sc, 0, sizeof(*sc));
	make_pki();
	node_open(&sc->lst, "a-pub");
	sc->port = listen_port(sc->lst.ctx);
	ck_assert_int_eq(tsm_sub_open(&sc->s, sc->lst.ctx, "s/**", NULL), TSM_OK);
	proxy_start(&sc->px, sc->port);
	dial_open(sc);
	publish(sc->p, "OLD", 5);
	ck_assert_int_eq(drain_tagged(sc->s, "OLD", TSM_SEC), 5);
	/* The dialer restarts: its old session and keys are gone. */
	dial_close(sc);
	for (int i = 0; i < 300 && us_stat(sc->lst.ctx, "ctx.sessions") > 0; i++)
		usleep(10 * 1000);
	ck_assert_uint_eq(us_stat(sc->lst.ctx, "ctx.sessions"), 0);
	ck_assert_uint_gt(sc->px.nrec, 0);
}

START_TEST(old_data_injected_into_new_session)
{
	struct scene sc;
	scene_open(&sc);
	dial_open(&sc); /* a new context: new session, new keys */
	publish(sc.p, "NEW", 1);
	ck_assert_int_eq(drain_tagged(sc.s, "NEW", TSM_SEC), 1);
	uint64_t est = us_stat(sc.lst.ctx, "session.established");
	ck_assert_uint_eq(us_stat(sc.lst.ctx, "reason.aead_fail"), 0);
	atomic_store(&sc.px.inject, true); /* the 5 old DATA frames, now */
	ck_assert(stat_reaches(sc.lst.ctx, "reason.aead_fail", 1));
	ck_assert_int_eq(drain_tagged(sc.s, "NEW", 300 * TSM_MSEC), 0);
	/* That session is closed; the dialer's next one is served. */
	ck_assert(stat_reaches(sc.lst.ctx, "session.established", est + 1));
	ck_assert_int_eq(tsm_pub_wait_subscribers(sc.p, 1, 10 * TSM_SEC), TSM_OK);
	publish(sc.p, "NEW", 3);
	ck_assert_int_eq(drain_tagged(sc.s, "NEW", TSM_SEC), 3);
	ck_assert_uint_eq(us_stat(sc.lst.ctx, "reason.replay"), 0);
	dial_close(&sc);
	proxy_stop(&sc.px);
	tsm_ctx_close(sc.lst.ctx);
}
END_TEST

START_TEST(old_session_replayed_whole)
{
	struct scene sc;
	scene_open(&sc);
	/* The listener restarts too: a new context on a new port. */
	tsm_ctx_close(sc.lst.ctx);
	node_open(&sc.lst, "a-pub");
	sc.port = listen_port(sc.lst.ctx);
	ck_assert_int_eq(tsm_sub_open(&sc.s, sc.lst.ctx, "s/**", NULL), TSM_OK);
	/* Everything the old dialer sent, in one go, on a connection of its
	 * own; then read until the listener closes it (bounded). */
	int fd = tcp_connect(sc.port);
	ck_assert_int_ge(fd, 0);
	write_all(fd, sc.px.rec, sc.px.nrec);
	uint8_t junk[65536];
	struct pollfd pf = {fd, POLLIN, 0};
	bool closed = false;
	for (int i = 0; i < 100 && !closed; i++) {
		if (poll(&pf, 1, 100) == 1 && read(fd, junk, sizeof(junk)) <= 0)
			closed = true;
	}
	close(fd);
	ck_assert_msg(closed, "the listener kept a replayed connection open");
	ck_assert_uint_eq(us_stat(sc.lst.ctx, "session.established"), 0);
	ck_assert_uint_ge(us_stat(sc.lst.ctx, "session.closed"), 1);
	ck_assert_int_eq(drain_tagged(sc.s, "NEW", 200 * TSM_MSEC), 0);
	fprintf(stderr, "replayed session refused: session.rejected=%llu "
	        "err.protocol=%llu reason.other=%llu reason.aead_fail=%llu\n",
	        (unsigned long long)us_stat(sc.lst.ctx, "session.rejected"),
	        (unsigned long long)us_stat(sc.lst.ctx, "err.protocol"),
	        (unsigned long long)us_stat(sc.lst.ctx, "reason.other"),
	        (unsigned long long)us_stat(sc.lst.ctx, "reason.aead_fail"));
	ck_assert_uint_ge(us_stat(sc.lst.ctx, "session.rejected") +
	                  us_stat(sc.lst.ctx, "err.protocol"), 1);
	/* A good peer is still served by the restarted listener. */
	atomic_store(&sc.px.target, sc.port);
	dial_open(&sc);
	publish(sc.p, "NEW", 2);
	ck_assert_int_eq(drain_tagged(sc.s, "NEW", TSM_SEC), 2);
	dial_close(&sc);
	proxy_stop(&sc.px);
	tsm_ctx_close(sc.lst.ctx);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("replay");
	TCase *tc = tcase_create("replay");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, old_data_injected_into_new_session);
	tcase_add_test(tc, old_session_replayed_whole);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
