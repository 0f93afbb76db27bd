/*
 * One transport conformance suite, run over every transport (design.md
 * §2, issue 6): the same checks through the public API, one TCase per
 * transport: inproc, TCP on io_uring, TCP on epoll (TSM_NO_URING=1), and
 * libfabric ofi+tcp (tcp;ofi_rxm), ofi+shm and ofi+udp (udp;ofi_rxd).
 *
 * Exclusions (a capability rules the test out), one per line:
 *  - inproc / peer_killed_mid_message: inproc peers live in one process;
 *    a peer process cannot be killed without killing the test.
 *  - inproc / connect_refused: an inproc dial to no listener fails at
 *    once in the dialer (no transport round trip to observe); covered by
 *    the unit test of inproc instead.
 *  - ofi+shm / duplicate_listen: shm addresses are names; a second
 *    endpoint with the same name is allowed by the provider (it shares
 *    the name space), so there is no "address in use" to check.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/internal.h"
#include "transport/ofi/ofi.h" /* built with the stub without libfabric */
#include "unit_support.h"

struct tp {
	const char *name;
	const char *fmt;   /* URL with %d for a port or a unique number */
	bool epoll, processes, refused, dup_listen;
};

static const struct tp tps[] = {
	{"inproc", "inproc://conf-%d", false, false, false, true},
	{"tcp-io_uring", "tcp://127.0.0.1:%d", false, true, true, true},
	{"tcp-epoll", "tcp://127.0.0.1:%d", true, true, true, true},
	{"ofi-tcp", "ofi+tcp://127.0.0.1:%d", false, true, true, true},
	{"ofi-shm", "ofi+shm://tsmconf%d", false, true, true, false},
	{"ofi-udp", "ofi+udp://127.0.0.1:%d", false, true, true, true},
	{"auto", "auto://127.0.0.1:%d", false, true, true, true},
};

static const struct tp *cur;
static int port_seq;

static void url_of(char *buf, size_t cap)
{
	/* distinct per test process and call; ports from a range per pid,
	 * all below Linux's ephemeral range (32768 up), so that no outgoing
	 * connection of a test running beside this one can hold ours */
	int n = 10000 + (getpid() % 1400) * 16 + (port_seq++ % 16);
	/* shm names are not ports: the whole pid keeps them apart from a
	 * region a killed process of the same suite left behind */
	if (strncmp(cur->fmt, "ofi+shm://", 10) == 0)
		n = (int)(getpid() % 100000) * 16 + (port_seq % 16);
	snprintf(buf, cap, cur->fmt, n);
}

/* session_timeout 0: the default (10 s). */
static tsm_ctx *ctx_with_timeout(const char *listen, const char *connect,
                                 tsm_duration session_timeout)
{
	tsm_ctx_params p;
	us_params(&p, listen, connect);
	if (session_timeout)
		p.session_timeout = session_timeout;
	return us_open(cur->name, &p);
}

static tsm_ctx *ctx_with(const char *listen, const char *connect)
{
	return ctx_with_timeout(listen, connect, 0);
}


static void setup_tp(int i)
{
	cur = &tps[i];
	if (cur->epoll)
		setenv("TSM_NO_URING", "1", 1);
}

/* --- checks, parameterised by the transport in `cur` ------------------ */

static void check_exchange(void)
{
	char url[128];
	url_of(url, sizeof(url));
	tsm_ctx *a = ctx_with(url, NULL), *b = ctx_with(NULL, url);
	tsm_sub *sa, *sb;
	tsm_pub *pa, *pb;
	ck_assert_int_eq(tsm_sub_open(&sa, a, "x/b", NULL), TSM_OK);
	ck_assert_int_eq(tsm_sub_open(&sb, b, "x/a", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&pa, a, "x/a", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&pb, b, "x/b", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(pa, 1, 10 * TSM_SEC), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(pb, 1, 10 * TSM_SEC), TSM_OK);
	for (uint32_t i = 0; i < 500; i++) {
		ck_assert_int_eq(tsm_publish(pa, &i, 4, NULL), TSM_OK);
		ck_assert_int_eq(tsm_publish(pb, &i, 4, NULL), TSM_OK);
	}
	us_recv_seq(sb, 500, cur->name); /* each queue holds all 500 */
	us_recv_seq(sa, 500, cur->name);
	tsm_ctx_close(b);
	tsm_ctx_close(a);
}

/* Over ofi, the receiving session keeps a whole DATA message of room
 * armed (tsm__conn.rx_hint), so none is split between its block and the
 * engine's queue (which copies that part twice). */
static void check_no_split_reads(tsm_ctx *c)
{
	if (c->io_ops != &tsm__io_ofi_ops)
		return; /* a byte stream, or auto's own engine */
	tsm__ofi_info oi;
	tsm__ofi_query(c->io, &oi);
	ck_assert_msg(oi.rx_split == 0, "%s: %llu DATA messages split",
	              cur->name, (unsigned long long)oi.rx_split);
}

static void check_large_message(void)
{
	char url[128];
	url_of(url, sizeof(url));
	tsm_ctx *a = ctx_with(url, NULL), *b = ctx_with(NULL, url);
	tsm_sub *s;
	tsm_pub *p;
	ck_assert_int_eq(tsm_sub_open(&s, b, "big", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&p, a, "big", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(p, 1, 10 * TSM_SEC), TSM_OK);
	size_t n = 16u << 20;
	uint8_t *buf = malloc(n);
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(i * 7 + (i >> 12));
	ck_assert_int_eq(tsm_publish(p, buf, n, NULL), TSM_OK);
	tsm_msg *m;
	ck_assert_int_eq(tsm_sub_recv(s, &m, 30 * TSM_SEC), TSM_OK);
	ck_assert_uint_eq(tsm_msg_size(m), n);
	ck_assert(memcmp(tsm_msg_data(m), buf, n) == 0);
	tsm_msg_free(m);
	free(buf);
	check_no_split_reads(b);
	tsm_ctx_close(b);
	tsm_ctx_close(a);
}

/* Messages flushed right before close still arrive: a close must not
 * drop what the transport already accepted (libfabric keeps no data once
 * its endpoint is closed, unlike a kernel socket; issue 6's 1 MiB
 * round-trip "stall" was the last pong lost that way). The publisher is
 * another process where the transport allows (libfabric 1.17 shm crashes
 * when a peer endpoint of the same process closes under it). */
static void fill(uint8_t *buf, size_t n, uint32_t k)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(i * 13 + k + (i >> 10));
}

static void publish_then_close(const char *url, size_t n, bool child)
{
	tsm_ctx *a = ctx_with(url, NULL);
	tsm_pub *p;
	uint8_t *buf = malloc(n);
	tsm_err e = tsm_pub_open(&p, a, "last", NULL);
	if (!e)
		e = tsm_pub_wait_subscribers(p, 1, 10 * TSM_SEC);
	for (uint32_t k = 0; !e && k < 3; k++) {
		fill(buf, n, k);
		e = tsm_publish(p, buf, n, NULL);
	}
	if (!e)
		e = tsm_pub_flush(p, 30 * TSM_SEC);
	tsm_ctx_close(a); /* at once: nothing waits for the subscriber */
	free(buf);
	if (child)
		_exit(e ? 1 : 0);
	ck_assert_int_eq(e, TSM_OK);
}

static void check_close_after_flush(void)
{
	char url[128];
	size_t n = 1u << 20;
	pid_t child = -1;
	url_of(url, sizeof(url));
	if (cur->processes && (child = fork()) == 0) /* before any thread */
		publish_then_close(url, n, true);
	tsm_ctx *b = ctx_with(NULL, url);
	tsm_sub *s;
	ck_assert_int_eq(tsm_sub_open(&s, b, "last", NULL), TSM_OK);
	if (!cur->processes)
		publish_then_close(url, n, false);
	uint8_t *buf = malloc(n);
	for (uint32_t k = 0; k < 3; k++) {
		tsm_msg *m;
		tsm_err e = tsm_sub_recv(s, &m, 30 * TSM_SEC);
		ck_assert_msg(e == TSM_OK, "%s: message %u of 3 lost at close: %s",
		              cur->name, k + 1, tsm_err_name(e));
		fill(buf, n, k);
		ck_assert_uint_eq(tsm_msg_size(m), n);
		ck_assert(memcmp(tsm_msg_data(m), buf, n) == 0);
		tsm_msg_free(m);
	}
	free(buf);
	if (child > 0) {
		int st = 0;
		ck_assert_int_eq(waitpid(child, &st, 0), child);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "publisher %d", st);
	}
	tsm_ctx_close(b);
}

static void check_many_peers(void)
{
	char url[128];
	url_of(url, sizeof(url));
	tsm_ctx *a = ctx_with(url, NULL), *b[5];
	tsm_sub *s[5];
	tsm_pub *p;
	for (int i = 0; i < 5; i++) {
		b[i] = ctx_with(NULL, url);
		ck_assert_int_eq(tsm_sub_open(&s[i], b[i], "many", NULL), TSM_OK);
	}
	ck_assert_int_eq(tsm_pub_open(&p, a, "many", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(p, 5, 15 * TSM_SEC), TSM_OK);
	for (uint32_t i = 0; i < 100; i++)
		ck_assert_int_eq(tsm_publish(p, &i, 4, NULL), TSM_OK);
	for (int k = 0; k < 5; k++)
		for (uint32_t i = 0; i < 100; i++) {
			tsm_msg *m;
			ck_assert_int_eq(tsm_sub_recv(s[k], &m, 10 * TSM_SEC), TSM_OK);
			tsm_msg_free(m);
		}
	for (int i = 0; i < 5; i++)
		tsm_ctx_close(b[i]);
	tsm_ctx_close(a);
}

static void check_connect_refused(void)
{
	char url[128];
	if (!cur->refused)
		return; /* excluded: see the file comment */
	url_of(url, sizeof(url));
	tsm_ctx *b = ctx_with(NULL, url); /* nobody listens there */
	for (int i = 0; i < 500 && us_stat(b, "transport.connect_failed") +
	                               us_stat(b, "session.timeout") == 0; i++)
		usleep(10 * 1000);
	ck_assert_uint_ge(us_stat(b, "transport.connect_failed") +
	                  us_stat(b, "session.timeout"), 1);
	ck_assert_int_eq(tsm_ctx_wait_peers(b, 1, 0), TSM_ETIMEDOUT);
	tsm_ctx_close(b);
}

static void check_listener_closed(void)
{
	char url[128];
	url_of(url, sizeof(url));
	tsm_ctx *a = ctx_with(url, NULL), *b = ctx_with(NULL, url);
	ck_assert_int_eq(tsm_ctx_wait_peers(b, 1, 10 * TSM_SEC), TSM_OK);
	tsm_ctx_close(a);
	for (int i = 0; i < 1000 && us_stat(b, "ctx.sessions") > 0; i++)
		usleep(10 * 1000);
	ck_assert_uint_eq(us_stat(b, "ctx.sessions"), 0); /* the peer went away */
	tsm_ctx_close(b);
}

static void check_duplicate_listen(void)
{
	char url[128];
	if (!cur->dup_listen)
		return; /* excluded: see the file comment */
	url_of(url, sizeof(url));
	tsm_ctx *a = ctx_with(url, NULL);
	tsm_ctx_params p;
	tsm_ctx *c = NULL;
	tsm_ctx_params_init(&p);
	p.insecure = 1;
	p.log_level = TSM_LOG_ERROR;
	p.listen[0] = url;
	tsm_err e = tsm_ctx_open(&c, &p);
	ck_assert_msg(e != TSM_OK, "%s: a second listener on %s", cur->name, url);
	ck_assert_ptr_null(c);
	tsm_ctx_close(a);
}

/* A secure listener (test PKI) and an insecure dialer: the handshake is
 * refused over the transport with its reason, and no session comes up. */
static void check_handshake_refused(void)
{
	char url[128], cmd[512], f[4][320];
	const char *src = getenv("TSM_SRC_DIR"), *dir = "/tmp/tsm-conf-pki";
	snprintf(cmd, sizeof(cmd), "%s/tests/support/pki.sh %s >/dev/null",
	         src ? src : ".", dir);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(f[0], sizeof(f[0]), "%s/a-pub.chain.pem", dir);
	snprintf(f[1], sizeof(f[1]), "%s/a-pub.key", dir);
	snprintf(f[2], sizeof(f[2]), "td-a.test=%s/bundle-a.pem", dir);
	snprintf(f[3], sizeof(f[3]), "%s/conf-policy-%d.txt", dir, (int)getpid());
	FILE *pf = fopen(f[3], "w");
	ck_assert_ptr_nonnull(pf);
	fputs("allow subscribe spiffe://td-a.test/* **\n", pf);
	fclose(pf);
	url_of(url, sizeof(url));
	tsm_ctx_params p;
	tsm_ctx *a;
	tsm_ctx_params_init(&p);
	p.cert_file = f[0];
	p.key_file = f[1];
	p.trust_file = f[2];
	p.policy_file = f[3];
	p.log_level = TSM_LOG_ERROR;
	p.listen[0] = url;
	ck_assert_int_eq(tsm_ctx_open(&a, &p), TSM_OK);
	tsm_ctx *b = ctx_with(NULL, url); /* insecure */
	for (int i = 0; i < 500 && us_stat(a, "reason.insecure_mismatch") == 0; i++)
		usleep(10 * 1000);
	ck_assert_uint_ge(us_stat(a, "reason.insecure_mismatch"), 1);
	ck_assert_uint_eq(us_stat(a, "session.established"), 0);
	ck_assert_uint_eq(us_stat(b, "session.established"), 0);
	tsm_ctx_close(b);
	tsm_ctx_close(a);
	unlink(f[3]);
}

static void check_deadline_in_flight(void)
{
	char url[128];
	url_of(url, sizeof(url));
	tsm_ctx *a = ctx_with(url, NULL), *b = ctx_with(NULL, url);
	tsm_sub *s;
	tsm_pub *p;
	ck_assert_int_eq(tsm_sub_open(&s, b, "dl", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&p, a, "dl", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(p, 1, 10 * TSM_SEC), TSM_OK);
	size_t n = 8u << 20;
	uint8_t *buf = calloc(1, n);
	tsm_pub_opts o;
	tsm_pub_opts_init(&o);
	o.flags = TSM_OPT_BUDGET;
	o.budget = 200 * TSM_USEC; /* far less than 8 MiB takes to move */
	ck_assert_int_eq(tsm_publish(p, buf, n, &o), TSM_OK);
	uint32_t after = 7;
	ck_assert_int_eq(tsm_publish(p, &after, 4, NULL), TSM_OK);
	tsm_msg *m;
	ck_assert_int_eq(tsm_sub_recv(s, &m, 10 * TSM_SEC), TSM_OK);
	ck_assert_uint_eq(tsm_msg_size(m), 4); /* the late one never arrives */
	tsm_msg_free(m);
	ck_assert_uint_ge(us_stat(a, "drop.deadline_expired") +
	                  us_stat(b, "drop.deadline_expired"), 1);
	free(buf);
	tsm_ctx_close(b);
	tsm_ctx_close(a);
}

static void check_peer_killed_mid_message(void)
{
	char url[128];
	if (!cur->processes)
		return; /* excluded: see the file comment */
	url_of(url, sizeof(url));
	/* Datagram transports (shm, udp) learn of a killed peer only from
	 * its silence: 3 s of it, so a slow (sanitizer) run has room. */
	tsm_ctx *b = ctx_with_timeout(url, NULL, 3 * TSM_SEC);
	tsm_sub *s;
	ck_assert_int_eq(tsm_sub_open(&s, b, "kill", NULL), TSM_OK);
	pid_t child = fork();
	if (child == 0) { /* the publisher: sends 16 MiB messages until killed */
		tsm_ctx *a = ctx_with(NULL, url);
		tsm_pub *p;
		tsm_pub_open(&p, a, "kill", NULL);
		tsm_pub_wait_subscribers(p, 1, 10 * TSM_SEC);
		uint8_t *buf = calloc(1, 16u << 20);
		for (;;)
			tsm_publish(p, buf, 16u << 20, NULL);
	}
	ck_assert_int_eq(tsm_ctx_wait_peers(b, 1, 10 * TSM_SEC), TSM_OK);
	usleep(200 * 1000); /* mid-stream */
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	tsm_msg *m;
	while (tsm_sub_recv(s, &m, TSM_SEC) == TSM_OK) { /* never partial */
		ck_assert_uint_eq(tsm_msg_size(m), 16u << 20);
		tsm_msg_free(m);
	}
	for (int i = 0; i < 2000 && us_stat(b, "ctx.sessions") > 0; i++)
		usleep(10 * 1000); /* 20 s: far more than the 3 s timeout */
	ck_assert_uint_eq(us_stat(b, "ctx.sessions"), 0);
	ck_assert_uint_eq(us_stat(b, "err.protocol"), 0);
	tsm_ctx_close(b);
}

/* One START_TEST per (check, transport), generated. */
#define CHECKS(X)                                                            \
	X(exchange) X(large_message) X(many_peers) X(connect_refused)        \
	X(listener_closed) X(duplicate_listen) X(handshake_refused)          \
	X(deadline_in_flight) X(peer_killed_mid_message) X(close_after_flush)

#define DEF(name)                                                            \
	START_TEST(t_##name)                                                 \
	{                                                                    \
		setup_tp(_i);                                                \
		check_##name();                                              \
	}                                                                    \
	END_TEST
CHECKS(DEF)

/* No RDMA device here: asking for verbs or EFA fails clearly (issue 6). */
START_TEST(verbs_and_efa_report_no_device)
{
	static const char *urls[] = {"ofi+verbs://127.0.0.1:7471", "ofi+efa://0"};
	for (int i = 0; i < 2; i++) {
		tsm_ctx_params p;
		tsm_ctx *c = NULL;
		tsm_ctx_params_init(&p);
		p.insecure = 1;
		p.log_level = TSM_LOG_ERROR;
		p.listen[0] = urls[i];
		tsm_err e = tsm_ctx_open(&c, &p);
		ck_assert_msg(e == TSM_ERR_NO_DEVICE, "%s: %s (%s)", urls[i],
		              tsm_err_name(e), tsm_err_detail());
		ck_assert_ptr_nonnull(strstr(tsm_err_detail(), "no "));
		ck_assert_ptr_null(c);
	}
}
END_TEST

/* --- auto:// (issue 6 item 5) ------------------------------------------ */

static tsm_ctx *open_urls(const char *listen, const char *connect)
{
	static const struct tp t = {"auto", "", false, true, true, true};
	cur = &t;
	return ctx_with(listen, connect);
}

/* One message each way: the session works, whatever carries it. */
static void ping(tsm_ctx *a, tsm_ctx *b)
{
	tsm_sub *s;
	tsm_pub *p;
	tsm_msg *m;
	ck_assert_int_eq(tsm_sub_open(&s, b, "auto/x", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&p, a, "auto/x", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(p, 1, 10 * TSM_SEC), TSM_OK);
	ck_assert_int_eq(tsm_publish(p, "hi", 2, NULL), TSM_OK);
	ck_assert_int_eq(tsm_sub_recv(s, &m, 10 * TSM_SEC), TSM_OK);
	ck_assert_uint_eq(tsm_msg_size(m), 2);
	tsm_msg_free(m);
	tsm_pub_close(p);
	tsm_sub_close(s);
}

/* The listener side of auto_same_host_uses_shm, in a child process:
 * exit 0 once one message came in over shm, after its own listen-side
 * fallbacks from verbs and EFA were counted. */
static void auto_listener_child(const char *url, int up)
{
	tsm_ctx *a = open_urls(url, NULL);
	tsm_sub *s;
	tsm_msg *m;
	int rc = 2;
	if (tsm_sub_open(&s, a, "auto/x", NULL) == TSM_OK &&
	    write(up, "u", 1) == 1 && tsm_sub_recv(s, &m, 20 * TSM_SEC) == TSM_OK) {
		tsm_msg_free(m);
		bool verbs = strstr(tsm_ctx_transport(a), "verbs") != NULL;
		rc = us_stat(a, verbs ? "transport.chosen_verbs" : "transport.chosen_shm") >= 1 &&
		             (verbs || us_stat(a, "transport.fallback_verbs") >= 1) &&
		             us_stat(a, "transport.fallback_efa") >= 1
		         ? 0 : 3;
	}
	tsm_ctx_close(a);
	_exit(rc);
}

/* Both ends auto on this host, in two processes: shm, after verbs and
 * EFA fell back (no device here; with a verbs device the dial goes over
 * verbs, and the check says so). What was chosen and every fallback is
 * counted, on both sides. */
START_TEST(auto_same_host_uses_shm)
{
	char url[128];
	int up[2];
	char byte;
	snprintf(url, sizeof(url), "auto://127.0.0.1:%d", 24000 + getpid() % 8000);
	ck_assert_int_eq(pipe(up), 0);
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0)
		auto_listener_child(url, up[1]);
	/* Dial once the listener is up: a dial racing its start may find
	 * only TCP (then it stays TCP; legitimate, but not this test). */
	ck_assert_int_eq(read(up[0], &byte, 1), 1);
	tsm_ctx *b = open_urls(NULL, url);
	tsm_pub *p;
	ck_assert_int_eq(tsm_pub_open(&p, b, "auto/x", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(p, 1, 20 * TSM_SEC), TSM_OK);
	ck_assert_int_eq(tsm_publish(p, "hi", 2, NULL), TSM_OK);
	const char *tb = tsm_ctx_transport(b);
	ck_assert_msg(strncmp(tb, "auto:", 5) == 0, "transport %s", tb);
	ck_assert_uint_eq(us_stat(b, "transport.auto"), 1);
	if (strstr(tb, "verbs")) { /* a verbs device: it must win */
		ck_assert_uint_eq(us_stat(b, "transport.chosen"), 1);
		ck_assert_uint_ge(us_stat(b, "transport.chosen_verbs"), 1);
	} else {
		ck_assert_uint_eq(us_stat(b, "transport.chosen"), 3); /* shm */
		ck_assert_uint_ge(us_stat(b, "transport.chosen_shm"), 1);
		ck_assert_uint_ge(us_stat(b, "transport.fallback_verbs"), 1);
	}
	ck_assert_uint_ge(us_stat(b, "transport.fallback_efa"), 1); /* never dialed */
	ck_assert_uint_ge(us_stat(b, "transport.fallbacks"),
	                  us_stat(b, "transport.fallback_verbs") +
	                  us_stat(b, "transport.fallback_efa"));
	ck_assert_uint_eq(us_stat(b, "transport.chosen_tcp"), 0);
	int st = 0;
	ck_assert_int_eq(waitpid(child, &st, 0), child);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "listener: %d", st);
	tsm_pub_close(p);
	tsm_ctx_close(b);
	close(up[0]);
	close(up[1]);
}
END_TEST

/* In one process, auto does not pick shm (see tsm__ofi_shm_held): TCP,
 * with the shm fallback counted. */
START_TEST(auto_same_process_uses_tcp)
{
	char url[128];
	snprintf(url, sizeof(url), "auto://127.0.0.1:%d", 24000 + getpid() % 8000 + 3);
	tsm_ctx *a = open_urls(url, NULL), *b = open_urls(NULL, url);
	ck_assert_int_eq(tsm_ctx_wait_peers(b, 1, 10 * TSM_SEC), TSM_OK);
	ping(a, b);
	ck_assert_uint_eq(us_stat(b, "transport.chosen"), 4);
	ck_assert_uint_ge(us_stat(b, "transport.fallback_shm"), 1);
	ck_assert_uint_ge(us_stat(a, "transport.chosen_tcp"), 1);
	tsm_ctx_close(b);
	tsm_ctx_close(a);
}
END_TEST

/* auto dials a plain tcp:// listener: no shm region answers for it, so
 * shm falls back (counted) and the connection is io_uring TCP. */
START_TEST(auto_dials_tcp_listener)
{
	char url[128], aurl[128];
	int port = 24000 + getpid() % 8000 + 1;
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	snprintf(aurl, sizeof(aurl), "auto://127.0.0.1:%d", port);
	tsm_ctx *a = open_urls(url, NULL), *b = open_urls(NULL, aurl);
	ck_assert_int_eq(tsm_ctx_wait_peers(b, 1, 10 * TSM_SEC), TSM_OK);
	ping(a, b);
	ck_assert_uint_eq(us_stat(b, "transport.chosen"), 4); /* tcp */
	ck_assert_uint_ge(us_stat(b, "transport.chosen_tcp"), 1);
	ck_assert_uint_ge(us_stat(b, "transport.fallback_shm"), 1);
	tsm_ctx_close(b);
	tsm_ctx_close(a);
}
END_TEST

/* A tcp:// dialer reaches an auto listener: the TCP tier is the tcp://
 * wire, so auto and tcp:// peers talk. */
START_TEST(tcp_dials_auto_listener)
{
	char url[128], aurl[128];
	int port = 24000 + getpid() % 8000 + 2;
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	snprintf(aurl, sizeof(aurl), "auto://127.0.0.1:%d", port);
	tsm_ctx *a = open_urls(aurl, NULL), *b = open_urls(NULL, url);
	ck_assert_int_eq(tsm_ctx_wait_peers(b, 1, 10 * TSM_SEC), TSM_OK);
	ping(b, a);
	ck_assert_uint_ge(us_stat(a, "transport.chosen_tcp"), 1);
	tsm_ctx_close(b);
	tsm_ctx_close(a);
}
END_TEST

/* Mixing auto with another transport in one context is refused. */
START_TEST(auto_bad_urls)
{
	tsm_ctx_params p;
	tsm_ctx *c = NULL;
	tsm_ctx_params_init(&p);
	p.insecure = 1;
	p.log_level = TSM_LOG_ERROR;
	p.listen[0] = "auto://127.0.0.1:7470";
	p.connect[0] = "tcp://127.0.0.1:7471";
	ck_assert_int_eq(tsm_ctx_open(&c, &p), TSM_ERR_BAD_URL);
	ck_assert_ptr_null(c);
	static const char *bad[] = {"auto://", "auto://host:1", "auto://1.2.3.4",
	                            "auto://1.2.3.4:99999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p.listen[0] = bad[i];
		p.connect[0] = NULL;
		ck_assert_msg(tsm_ctx_open(&c, &p) == TSM_ERR_BAD_URL, "%s", bad[i]);
		ck_assert_ptr_nonnull(strstr(tsm_err_detail(), "auto://"));
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("conformance");
	int n = (int)(sizeof(tps) / sizeof(tps[0]));
	for (int i = 0; i < n; i++) {
		TCase *tc = tcase_create(tps[i].name);
		tcase_set_timeout(tc, 60);
#define ADD(name) tcase_add_loop_test(tc, t_##name, i, i + 1);
		CHECKS(ADD)
#undef ADD
		suite_add_tcase(s, tc);
	}
	TCase *dev = tcase_create("devices");
	tcase_set_timeout(dev, 30);
	tcase_add_test(dev, verbs_and_efa_report_no_device);
	tcase_add_test(dev, auto_same_host_uses_shm);
	tcase_add_test(dev, auto_same_process_uses_tcp);
	tcase_add_test(dev, auto_dials_tcp_listener);
	tcase_add_test(dev, tcp_dials_auto_listener);
	tcase_add_test(dev, auto_bad_urls);
	suite_add_tcase(s, dev);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
