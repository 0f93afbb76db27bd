/*
 * Security of sessions end to end (security.md "What the tests must
 * show"): two contexts with certificates from a PKI made at test time
 * (tests/support/pki.sh), talking over real TCP, real TLS 1.3, sometimes
 * through a frame-aware proxy that tampers, replays or alters a preface.
 * Every refusal is checked by its reason counter on the refusing side and
 * by the absence of delivered data.
 */
#include <arpa/inet.h>
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/internal.h"
#include "unit_support.h"
#include "security/aead.h"
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

static void write_file(const char *path, const char *text)
{
	char tmp[512];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(rename(tmp, path), 0); /* atomic, as docs advise */
}

static const char *policy_all =
	"allow publish spiffe://td-a.test/pub s/**\n"
	"allow subscribe spiffe://td-a.test/sub s/**\n"
	"allow subscribe spiffe://td-a.test/revoked s/**\n"
	"allow subscribe spiffe://td-a.test/sub2 s/**\n";

/* Both directions: for tests where the dialer publishes. */
static const char *policy_both =
	"allow publish spiffe://td-a.test/* s/**\n"
	"allow subscribe spiffe://td-a.test/* s/**\n";

struct node {
	tsm_ctx *ctx;
	char cert[300], key[300], trust[300], policy[300], crl[300];
};

static tsm_err node_open(struct node *n, const char *name, const char *pol,
                         const char *crl)
{
	tsm_ctx_params p;
	tsm_ctx_params_init(&p);
	snprintf(n->cert, sizeof(n->cert), "%s/%s.chain.pem", pki, name);
	snprintf(n->key, sizeof(n->key), "%s/%s.key", pki, name);
	snprintf(n->trust, sizeof(n->trust), "td-a.test=%s/bundle-a.pem", pki);
	snprintf(n->policy, sizeof(n->policy), "%s/policy-%s-%d.txt", pki, name,
	         (int)getpid());
	write_file(n->policy, pol);
	p.cert_file = n->cert;
	p.key_file = n->key;
	p.trust_file = n->trust;
	p.policy_file = n->policy;
	if (crl) {
		snprintf(n->crl, sizeof(n->crl), "%s/crl-%s-%d.pem", pki, name,
		         (int)getpid());
		char cmd[800];
		snprintf(cmd, sizeof(cmd), "cp %s/%s %s", pki, crl, n->crl);
		ck_assert_int_eq(system(cmd), 0);
		p.crl_file = n->crl;
	}
	p.name = name;
	p.log_level = TSM_LOG_ERROR;
	p.reload_interval = 100 * TSM_MSEC;
	return tsm_ctx_open(&n->ctx, &p);
}


static bool stat_reaches(tsm_ctx *c, const char *name, uint64_t v)
{
	return us_stat_reaches(c, name, v, 3 * TSM_SEC);
}

/* Waits (bounded) until the publisher has no remote subscriber left. */
static bool unsubscribed_soon(tsm_pub *p)
{
	for (int i = 0; i < 300; i++) {
		if (tsm_pub_wait_subscribers(p, 1, 0) == TSM_ETIMEDOUT)
			return true;
		usleep(10 * 1000);
	}
	return false;
}

/* --- a frame-aware TCP proxy ------------------------------------------- */

/* T_FLIP_FRAG / T_FLIP_FRAG_HDR: a bit of the third FRAGMENT frame (a
 * continuation, which rx.c decrypts straight into the message being
 * reassembled), in its payload / in its record header (msg_id). */
enum tamper { T_NONE, T_FLIP_DATA, T_DUP_DATA, T_PREFACE, T_CAPTURE,
              T_FLIP_FRAG, T_FLIP_FRAG_HDR };

struct proxy {
	int lfd, port;
	char target[64];
	enum tamper mode;
	int frags;    /* FRAGMENT frames seen (T_FLIP_FRAG*) */
	pthread_t th;
	uint8_t *cap; /* T_CAPTURE: everything the dialer sent */
	size_t ncap;
};

static int tcp_listen(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	getsockname(fd, (struct sockaddr *)&sa, &len);
	*port = ntohs(sa.sin_port);
	return fd;
}

static int tcp_connect(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) { /* MSG_NOSIGNAL: a side closed on tampering is no crash */
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k <= 0)
			return;
		p += k;
		n -= (size_t)k;
	}
}

/* Forwards whole frames dialer->listener, applying the tamper mode once. */
static size_t proxy_frames(struct proxy *px, uint8_t *b, size_t n, int out,
                           bool *done)
{
	size_t off = 0;
	while (n - off >= TSM_WIRE_HDR_LEN) {
		uint32_t body = tsm__le32(b + off + 36);
		size_t len = TSM_WIRE_HDR_LEN + body;
		if (n - off < len)
			break;
		uint8_t type = b[off + 3];
		if (!*done && px->mode == T_PREFACE && type == TSM_F_PREFACE) {
			b[off + TSM_WIRE_HDR_LEN + 4] ^= 0x01; /* a nonce bit */
			*done = true;
		}
		if (!*done && type == TSM_F_DATA && px->mode == T_FLIP_DATA) {
			b[off + len - 20] ^= 0x80; /* a ciphertext bit */
			*done = true;
		}
		if (!*done && type == TSM_F_DATA && (b[off + 4] & TSM_FF_FRAGMENT) &&
		    (px->mode == T_FLIP_FRAG || px->mode == T_FLIP_FRAG_HDR) &&
		    ++px->frags == 3) {
			size_t at = px->mode == T_FLIP_FRAG ? len / 2 /* payload */
			                                    : TSM_WIRE_HDR_LEN + 16;
			b[off + at] ^= 0x10;
			*done = true;
		}
		write_all(out, b + off, len);
		if (!*done && type == TSM_F_DATA && px->mode == T_DUP_DATA) {
			write_all(out, b + off, len); /* the same frame again */
			*done = true;
		}
		off += len;
	}
	return off;
}

static void *proxy_main(void *arg)
{
	struct proxy *px = arg;
	int a = accept(px->lfd, NULL, NULL);
	int b = tcp_connect(atoi(px->target));
	static uint8_t buf[1 << 21];
	size_t have = 0;
	bool done = false;
	struct pollfd pf[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
	while (poll(pf, 2, 5000) > 0) {
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
			if (px->mode == T_CAPTURE && px->ncap + (size_t)k < (1u << 22)) {
				memcpy(px->cap + px->ncap, buf + have, (size_t)k);
				px->ncap += (size_t)k;
			}
			have += (size_t)k;
			size_t used = proxy_frames(px, buf, have, b, &done);
			memmove(buf, buf + used, have - used);
			have -= used;
		}
	}
	close(a);
	close(b);
	return NULL;
}

static void proxy_start(struct proxy *px, int target_port, enum tamper mode)
{
	memset(px, 0, sizeof(*px));
	px->lfd = tcp_listen(&px->port);
	snprintf(px->target, sizeof(px->target), "%d", target_port);
	px->mode = mode;
	if (mode == T_CAPTURE)
		px->cap = malloc(1u << 22);
	pthread_create(&px->th, NULL, proxy_main, px);
}

static void proxy_stop(struct proxy *px)
{
	pthread_join(px->th, NULL);
	close(px->lfd);
	free(px->cap);
}

/* --- a publisher node and a subscriber node ----------------------------- */

struct pair {
	struct node pub, sub;
	tsm_pub *p;
	tsm_sub *s;
	int port;
};

static int listen_port(tsm_ctx *c)
{
	char url[128];
	unsigned port;
	ck_assert_int_eq(tsm_ctx_listen(c, "tcp://127.0.0.1:0", url, sizeof(url)), TSM_OK);
	ck_assert_int_eq(sscanf(url, "tcp://127.0.0.1:%u", &port), 1);
	return (int)port;
}

/* Publisher listens; the subscriber dials `via` (a proxy) or directly. */
static void pair_open(struct pair *pr, const char *subname, const char *pub_pol,
                      const char *sub_pol, const char *pub_crl)
{
	make_pki();
	ck_assert_int_eq(node_open(&pr->pub, "a-pub", pub_pol, pub_crl), TSM_OK);
	ck_assert_int_eq(node_open(&pr->sub, subname, sub_pol, NULL), TSM_OK);
	pr->port = listen_port(pr->pub.ctx);
	ck_assert_int_eq(tsm_sub_open(&pr->s, pr->sub.ctx, "s/**", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&pr->p, pr->pub.ctx, "s/t", NULL), TSM_OK);
}

static void pair_dial(struct pair *pr, int port, const char *expect)
{
	char url[256];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d%s%s", port, expect ? "#" : "",
	         expect ? expect : "");
	ck_assert_int_eq(tsm_ctx_dial(pr->sub.ctx, url), TSM_OK);
}

static void pair_close(struct pair *pr)
{
	tsm_ctx_close(pr->sub.ctx);
	tsm_ctx_close(pr->pub.ctx);
}

static int drain(tsm_sub *s, tsm_duration wait)
{
	int n = 0;
	tsm_msg *m;
	while (tsm_sub_recv(s, &m, wait) == TSM_OK) {
		tsm_msg_free(m);
		n++;
	}
	return n;
}

static void publish_n(tsm_pub *p, int n, size_t size, int prio)
{
	uint8_t *b = calloc(1, size);
	memcpy(b, "SECRET-PAYLOAD-MARKER-0123456789", size < 32 ? size : 32);
	tsm_pub_opts o;
	tsm_pub_opts_init(&o);
	if (prio >= 0) {
		o.flags = TSM_OPT_PRIORITY;
		o.priority = (uint8_t)prio;
	}
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(tsm_publish(p, b, size, &o), TSM_OK);
	free(b);
}

/* --- tests ---------------------------------------------------------------- */

START_TEST(sealed_on_the_wire)
{
	struct pair pr;
	struct proxy px;
	pair_open(&pr, "a-sub", policy_both, policy_both, NULL);
	proxy_start(&px, pr.port, T_CAPTURE);
	pair_dial(&pr, px.port, "spiffe://td-a.test/pub");
	ck_assert_int_eq(tsm_pub_wait_subscribers(pr.p, 1, 5 * TSM_SEC), TSM_OK);
	ck_assert_int_eq(tsm_ctx_transport(pr.pub.ctx)[0] != 'n', 1);
	/* Reverse direction: the subscriber node publishes through the proxy. */
	tsm_sub *back;
	tsm_pub *bp;
	ck_assert_int_eq(tsm_sub_open(&back, pr.pub.ctx, "s/**", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&bp, pr.sub.ctx, "s/back", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(bp, 1, 5 * TSM_SEC), TSM_OK);
	publish_n(bp, 5, 64, -1);
	ck_assert_int_eq(tsm_pub_flush(bp, 5 * TSM_SEC), TSM_OK);
	ck_assert_int_eq(drain(back, 2 * TSM_SEC), 5);
	ck_assert_uint_gt(px.ncap, 0);
	ck_assert_ptr_null(memmem(px.cap, px.ncap, "SECRET-PAYLOAD", 14));
	ck_assert_ptr_null(memmem(px.cap, px.ncap, "s/back", 6)); /* topic too */
	ck_assert_uint_eq(us_stat(pr.pub.ctx, "ctx.insecure"), 0);
	pair_close(&pr);
	proxy_stop(&px);
}
END_TEST

START_TEST(tampered_frame_dropped)
{
	struct pair pr;
	struct proxy px;
	pair_open(&pr, "a-sub", policy_both, policy_both, NULL);
	tsm_sub *back;
	tsm_pub *bp;
	ck_assert_int_eq(tsm_sub_open(&back, pr.pub.ctx, "s/**", NULL), TSM_OK);
	proxy_start(&px, pr.port, T_FLIP_DATA);
	pair_dial(&pr, px.port, NULL);
	ck_assert_int_eq(tsm_pub_open(&bp, pr.sub.ctx, "s/back", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(bp, 1, 5 * TSM_SEC), TSM_OK);
	publish_n(bp, 3, 64, -1);
	ck_assert(stat_reaches(pr.pub.ctx, "reason.aead_fail", 1));
	ck_assert_int_eq(drain(back, 200 * TSM_MSEC), 0); /* nothing corrupt */
	pair_close(&pr);
	proxy_stop(&px);
}
END_TEST

/* A sealed 1 MiB message: its fragments after the first are opened
 * straight into the reassembled message (rx.c rx_place), every byte
 * arrives as sent. */
START_TEST(large_sealed_message_placed)
{
	struct pair pr;
	pair_open(&pr, "a-sub", policy_both, policy_both, NULL);
	pair_dial(&pr, pr.port, NULL);
	ck_assert_int_eq(tsm_pub_wait_subscribers(pr.p, 1, 5 * TSM_SEC), TSM_OK);
	size_t n = 1u << 20;
	uint8_t *b = malloc(n);
	tsm_msg *m;
	for (uint32_t k = 1; k <= 3; k++) {
		us_fill(b, n, k);
		ck_assert_int_eq(tsm_publish(pr.p, b, n, NULL), TSM_OK);
		ck_assert_int_eq(tsm_sub_recv(pr.s, &m, 5 * TSM_SEC), TSM_OK);
		us_expect_fill(m, n, k, "sealed 1 MiB message");
		tsm_msg_free(m);
	}
	free(b);
	/* at least 16 fragments each (64 KiB at most, fewer bytes where the
	 * kernel's send budget cuts one): all but the first are placed */
	ck_assert_uint_ge(us_stat(pr.sub.ctx, "rx.frags_placed"), 3 * 15);
	ck_assert_uint_eq(us_stat(pr.sub.ctx, "reason.aead_fail"), 0);
	pair_close(&pr);
}
END_TEST

/* A bit flipped in a continuation fragment's payload, or in its record
 * header (then it is opened in place, not placed): the tag fails, the
 * session closes, and the half-built message is never delivered. */
static void tampered_fragment(enum tamper mode)
{
	struct pair pr;
	struct proxy px;
	tsm_sub *back;
	tsm_pub *bp;
	pair_open(&pr, "a-sub", policy_both, policy_both, NULL);
	/* The proxy alters what the dialer (the subscriber node) sends. */
	ck_assert_int_eq(tsm_sub_open(&back, pr.pub.ctx, "s/**", NULL), TSM_OK);
	proxy_start(&px, pr.port, mode);
	pair_dial(&pr, px.port, NULL);
	ck_assert_int_eq(tsm_pub_open(&bp, pr.sub.ctx, "s/back", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(bp, 1, 5 * TSM_SEC), TSM_OK);
	publish_n(bp, 1, 1u << 20, -1);
	ck_assert(stat_reaches(pr.pub.ctx, "reason.aead_fail", 1));
	ck_assert_int_eq(drain(back, 300 * TSM_MSEC), 0); /* nothing corrupt */
	/* fragment 1 was placed; fragment 2, the altered one, counts only if
	 * its tag holds */
	ck_assert_uint_eq(us_stat(pr.pub.ctx, "rx.frags_placed"), 1);
	pair_close(&pr);
	proxy_stop(&px);
}

START_TEST(tampered_fragment_payload_dropped)
{
	tampered_fragment(T_FLIP_FRAG);
}
END_TEST

START_TEST(tampered_fragment_header_dropped)
{
	tampered_fragment(T_FLIP_FRAG_HDR);
}
END_TEST

START_TEST(replayed_frame_dropped)
{
	struct pair pr;
	struct proxy px;
	pair_open(&pr, "a-sub", policy_both, policy_both, NULL);
	tsm_sub *back;
	tsm_pub *bp;
	ck_assert_int_eq(tsm_sub_open(&back, pr.pub.ctx, "s/**", NULL), TSM_OK);
	proxy_start(&px, pr.port, T_DUP_DATA);
	pair_dial(&pr, px.port, NULL);
	ck_assert_int_eq(tsm_pub_open(&bp, pr.sub.ctx, "s/back", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(bp, 1, 5 * TSM_SEC), TSM_OK);
	publish_n(bp, 1, 64, -1);
	ck_assert(stat_reaches(pr.pub.ctx, "reason.replay", 1));
	ck_assert_int_le(drain(back, 200 * TSM_MSEC), 1); /* never twice */
	pair_close(&pr);
	proxy_stop(&px);
}
END_TEST

START_TEST(altered_preface_breaks_keys)
{
	struct pair pr;
	struct proxy px;
	pair_open(&pr, "a-sub", policy_all, policy_all, NULL);
	proxy_start(&px, pr.port, T_PREFACE);
	pair_dial(&pr, px.port, NULL);
	/* TLS itself succeeds, but the keys bound to the prefaces differ:
	 * the first sealed frame fails on both sides. */
	ck_assert(stat_reaches(pr.pub.ctx, "reason.aead_fail", 1));
	ck_assert_uint_eq(us_stat(pr.pub.ctx, "session.established"), 0);
	ck_assert_uint_eq(us_stat(pr.sub.ctx, "session.established"), 0);
	pair_close(&pr);
	proxy_stop(&px);
}
END_TEST

START_TEST(mitm_with_other_valid_identity)
{
	/* The dialer expects spiffe://td-a.test/pub but reaches a node that
	 * holds a valid certificate for spiffe://td-a.test/sub2. */
	struct node impostor, dialer;
	make_pki();
	ck_assert_int_eq(node_open(&impostor, "a-sub2", policy_all, NULL), TSM_OK);
	ck_assert_int_eq(node_open(&dialer, "a-sub", policy_all, NULL), TSM_OK);
	int port = listen_port(impostor.ctx);
	char url[256];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d#spiffe://td-a.test/pub", port);
	ck_assert_int_eq(tsm_ctx_dial(dialer.ctx, url), TSM_OK);
	ck_assert(stat_reaches(dialer.ctx, "reason.peer_id_mismatch", 1));
	ck_assert_uint_eq(us_stat(dialer.ctx, "session.established"), 0);
	tsm_ctx_close(dialer.ctx);
	tsm_ctx_close(impostor.ctx);
}
END_TEST

START_TEST(identity_not_in_policy)
{
	struct pair pr;
	/* The publisher's policy does not mention sub2 at all. */
	pair_open(&pr, "a-sub2",
	          "allow publish spiffe://td-a.test/pub s/**\n"
	          "allow subscribe spiffe://td-a.test/sub s/**\n",
	          policy_all, NULL);
	pair_dial(&pr, pr.port, NULL);
	ck_assert(stat_reaches(pr.pub.ctx, "reason.authz_denied", 1));
	ck_assert_uint_eq(us_stat(pr.pub.ctx, "session.established"), 0);
	pair_close(&pr);
}
END_TEST

START_TEST(forbidden_topic_not_sent)
{
	struct pair pr;
	pair_open(&pr, "a-sub",
	          "allow publish spiffe://td-a.test/pub s/**\n"
	          "allow subscribe spiffe://td-a.test/sub other/**\n",
	          policy_all, NULL);
	pair_dial(&pr, pr.port, NULL);
	ck_assert_int_eq(tsm_ctx_wait_peers(pr.pub.ctx, 1, 5 * TSM_SEC), TSM_OK);
	/* The subscription (s and two stars) is refused silently. */
	ck_assert_int_eq(tsm_pub_wait_subscribers(pr.p, 1, 300 * TSM_MSEC), TSM_ETIMEDOUT);
	publish_n(pr.p, 5, 64, -1);
	ck_assert_int_eq(drain(pr.s, 300 * TSM_MSEC), 0);
	ck_assert_uint_ge(us_stat(pr.pub.ctx, "reason.authz_denied"), 1);
	pair_close(&pr);
}
END_TEST

START_TEST(subscriber_drops_unauthorised_publisher)
{
	struct pair pr;
	/* The publisher sends (its policy lets sub subscribe), but the
	 * subscriber's own policy does not let pub publish s/t. */
	pair_open(&pr, "a-sub", policy_all,
	          "allow publish spiffe://td-a.test/pub other/**\n"
	          "allow subscribe spiffe://td-a.test/sub s/**\n", NULL);
	pair_dial(&pr, pr.port, NULL);
	ck_assert_int_eq(tsm_pub_wait_subscribers(pr.p, 1, 5 * TSM_SEC), TSM_OK);
	publish_n(pr.p, 4, 64, -1);
	ck_assert(stat_reaches(pr.sub.ctx, "reason.authz_denied", 4));
	ck_assert_int_eq(drain(pr.s, 100 * TSM_MSEC), 0);
	pair_close(&pr);
}
END_TEST

START_TEST(priority_and_size_caps)
{
	struct pair pr;
	pair_open(&pr, "a-sub",
	          "allow publish spiffe://td-a.test/pub s/**\n"
	          "allow subscribe spiffe://td-a.test/sub s/** max_priority=3 max_bytes=100\n",
	          policy_all, NULL);
	pair_dial(&pr, pr.port, NULL);
	ck_assert_int_eq(tsm_pub_wait_subscribers(pr.p, 1, 5 * TSM_SEC), TSM_OK);
	publish_n(pr.p, 2, 64, 1);   /* too urgent for the grant */
	publish_n(pr.p, 2, 200, 5);  /* too large for the grant */
	publish_n(pr.p, 3, 64, 5);   /* within the grant */
	ck_assert_int_eq(tsm_pub_flush(pr.p, 5 * TSM_SEC), TSM_OK);
	ck_assert_int_eq(drain(pr.s, 300 * TSM_MSEC), 3);
	ck_assert_uint_eq(us_stat(pr.pub.ctx, "reason.priority_cap"), 2);
	ck_assert_uint_eq(us_stat(pr.pub.ctx, "reason.msg_too_large"), 2);
	pair_close(&pr);
}
END_TEST

START_TEST(policy_reload_revokes_live_session)
{
	struct pair pr;
	pair_open(&pr, "a-sub", policy_all, policy_all, NULL);
	pair_dial(&pr, pr.port, NULL);
	ck_assert_int_eq(tsm_pub_wait_subscribers(pr.p, 1, 5 * TSM_SEC), TSM_OK);
	publish_n(pr.p, 2, 64, -1);
	ck_assert_int_eq(drain(pr.s, TSM_SEC), 2);
	write_file(pr.pub.policy, "allow publish spiffe://td-a.test/pub s/**\n");
	ck_assert(stat_reaches(pr.pub.ctx, "security.reloads", 1));
	ck_assert(stat_reaches(pr.pub.ctx, "reason.authz_denied", 1));
	ck_assert(unsubscribed_soon(pr.p));
	publish_n(pr.p, 2, 64, -1);
	ck_assert_int_eq(drain(pr.s, 300 * TSM_MSEC), 0);
	pair_close(&pr);
}
END_TEST

START_TEST(crl_reload_revokes_live_session)
{
	struct pair pr;
	/* a-revoked is valid under the empty CRL, listed in crl-a.pem. */
	pair_open(&pr, "a-revoked", policy_all, policy_all, "crl-a-empty.pem");
	pair_dial(&pr, pr.port, NULL);
	ck_assert_int_eq(tsm_pub_wait_subscribers(pr.p, 1, 5 * TSM_SEC), TSM_OK);
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "cp %s/crl-a.pem %s.new && mv %s.new %s", pki,
	         pr.pub.crl, pr.pub.crl, pr.pub.crl);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert(stat_reaches(pr.pub.ctx, "reason.cert_revoked", 1));
	ck_assert(unsubscribed_soon(pr.p));
	pair_close(&pr);
}
END_TEST

START_TEST(revoked_refused_at_handshake)
{
	struct pair pr;
	pair_open(&pr, "a-revoked", policy_all, policy_all, "crl-a.pem");
	pair_dial(&pr, pr.port, NULL);
	ck_assert(stat_reaches(pr.pub.ctx, "reason.cert_revoked", 1));
	ck_assert_uint_eq(us_stat(pr.pub.ctx, "session.established"), 0);
	pair_close(&pr);
}
END_TEST

START_TEST(rekey_before_usage_limit)
{
	struct pair pr;
	tsm__aead_set_limits(8, 0); /* test hook: rekey every 8 frames */
	pair_open(&pr, "a-sub", policy_all, policy_all, NULL);
	pair_dial(&pr, pr.port, NULL);
	ck_assert_int_eq(tsm_pub_wait_subscribers(pr.p, 1, 5 * TSM_SEC), TSM_OK);
	for (int i = 0; i < 50; i++) {
		publish_n(pr.p, 1, 64, i < 40 ? 4 : i % 8); /* 40 frames on lane 4 */
		ck_assert_int_eq(tsm_pub_flush(pr.p, 5 * TSM_SEC), TSM_OK);
	}
	ck_assert_int_eq(drain(pr.s, 300 * TSM_MSEC), 50);
	ck_assert_uint_ge(us_stat(pr.pub.ctx, "security.rekeys"), 4);
	ck_assert_uint_eq(us_stat(pr.sub.ctx, "reason.aead_fail"), 0);
	pair_close(&pr);
}
END_TEST

static void cp_atomic(const char *from, const char *to)
{
	char cmd[1400];
	snprintf(cmd, sizeof(cmd), "cp %s %s.new && mv %s.new %s", from, to, to, to);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(reauth_before_not_after_loses_nothing)
{
	/* The publisher starts with a certificate valid for 10 s and rotates
	 * to a long one on disk; the subscriber re-authenticates 8 s before
	 * the old notAfter, the new session replaces the old one, and the
	 * stream goes on with nothing lost and no CERT_EXPIRED. */
	char cmd[700], cert[400], key[400];
	struct node pub, sub;
	make_pki();
	snprintf(cmd, sizeof(cmd), "%s/tests/support/pki.sh %s issue a-pub-short "
	         "spiffe://td-a.test/pub 10 >/dev/null", getenv("TSM_SRC_DIR"), pki);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(cert, sizeof(cert), "%s/a-pub-short.chain.pem", pki);
	snprintf(key, sizeof(key), "%s/a-pub-short.key", pki);
	ck_assert_int_eq(node_open(&pub, "a-pub", policy_all, NULL), TSM_OK);
	tsm_ctx_close(pub.ctx); /* made the files; reopen on copies we rotate */
	tsm_ctx_params p;
	tsm_ctx_params_init(&p);
	char mycert[400], mykey[400];
	snprintf(mycert, sizeof(mycert), "%s/rot-%d.pem", pki, (int)getpid());
	snprintf(mykey, sizeof(mykey), "%s/rot-%d.key", pki, (int)getpid());
	cp_atomic(cert, mycert);
	cp_atomic(key, mykey);
	p.cert_file = mycert;
	p.key_file = mykey;
	p.trust_file = pub.trust;
	p.policy_file = pub.policy;
	p.log_level = TSM_LOG_ERROR;
	p.reload_interval = 100 * TSM_MSEC;
	ck_assert_int_eq(tsm_ctx_open(&pub.ctx, &p), TSM_OK);
	ck_assert_int_eq(node_open(&sub, "a-sub", policy_all, NULL), TSM_OK);
	int port = listen_port(pub.ctx);
	tsm_sub *s;
	tsm_pub *pp;
	ck_assert_int_eq(tsm_sub_open(&s, sub.ctx, "s/**", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&pp, pub.ctx, "s/t", NULL), TSM_OK);
	char url[128];
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	sub.ctx->p.reauth_before = 8 * TSM_SEC; /* white-box: test timing */
	ck_assert_int_eq(tsm_ctx_dial(sub.ctx, url), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(pp, 1, 5 * TSM_SEC), TSM_OK);
	/* Rotate the publisher's files (long-lived a-pub-rot), then stream
	 * across the re-authentication. */
	snprintf(cert, sizeof(cert), "%s/a-pub-rot.chain.pem", pki);
	snprintf(key, sizeof(key), "%s/a-pub-rot.key", pki);
	cp_atomic(key, mykey);
	cp_atomic(cert, mycert);
	uint32_t sent = 0, got = 0;
	tsm_msg *m;
	tsm_time end = tsm_now() + 5 * TSM_SEC;
	while (tsm_now() < end) {
		ck_assert_int_eq(tsm_publish(pp, &sent, sizeof(sent), NULL), TSM_OK);
		sent++;
		while (tsm_sub_recv(s, &m, 0) == TSM_OK) {
			uint32_t v;
			memcpy(&v, tsm_msg_data(m), 4);
			ck_assert_uint_eq(v, got); /* in order across the switch */
			got++;
			tsm_msg_free(m);
		}
		usleep(10 * 1000);
	}
	ck_assert_int_eq(tsm_pub_flush(pp, 5 * TSM_SEC), TSM_OK);
	while (tsm_sub_recv(s, &m, 500 * TSM_MSEC) == TSM_OK) {
		uint32_t v;
		memcpy(&v, tsm_msg_data(m), 4);
		ck_assert_uint_eq(v, got);
		got++;
		tsm_msg_free(m);
	}
	ck_assert_uint_eq(got, sent);
	ck_assert_uint_ge(us_stat(sub.ctx, "session.established"), 2);
	ck_assert_uint_ge(us_stat(sub.ctx, "session.duplicate"), 1);
	ck_assert_uint_eq(us_stat(sub.ctx, "reason.cert_expired"), 0);
	ck_assert_uint_ge(us_stat(pub.ctx, "security.reloads"), 1);
	tsm_ctx_close(sub.ctx);
	tsm_ctx_close(pub.ctx);
}
END_TEST

START_TEST(cipher_follows_the_initiator)
{
	struct pair pr;
	make_pki();
	ck_assert_int_eq(node_open(&pr.pub, "a-pub", policy_all, NULL), TSM_OK);
	pr.port = listen_port(pr.pub.ctx);
	tsm_ctx_params p;
	tsm_ctx_params_init(&p);
	struct node *n = &pr.sub;
	snprintf(n->cert, sizeof(n->cert), "%s/a-sub.chain.pem", pki);
	snprintf(n->key, sizeof(n->key), "%s/a-sub.key", pki);
	p.cert_file = n->cert;
	p.key_file = n->key;
	p.trust_file = pr.pub.trust;
	p.policy_file = pr.pub.policy;
	p.cipher = 1; /* the dialer wants ChaCha20-Poly1305; the listener AES */
	p.log_level = TSM_LOG_ERROR;
	ck_assert_int_eq(tsm_ctx_open(&n->ctx, &p), TSM_OK);
	ck_assert_int_eq(tsm_sub_open(&pr.s, n->ctx, "s/**", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&pr.p, pr.pub.ctx, "s/t", NULL), TSM_OK);
	pair_dial(&pr, pr.port, NULL);
	ck_assert_int_eq(tsm_pub_wait_subscribers(pr.p, 1, 5 * TSM_SEC), TSM_OK);
	publish_n(pr.p, 3, 64, -1);
	ck_assert_int_eq(drain(pr.s, TSM_SEC), 3);
	ck_assert_uint_eq(us_stat(pr.pub.ctx, "reason.aead_fail"), 0);
	pair_close(&pr);
}
END_TEST

START_TEST(missing_credentials_refused)
{
	tsm_ctx_params p;
	tsm_ctx *c = NULL;
	tsm_ctx_params_init(&p);
	p.cert_file = "/nonexistent.pem";
	ck_assert_int_eq(tsm_ctx_open(&c, &p), TSM_ERR_NO_CREDENTIALS);
	ck_assert_ptr_nonnull(strstr(tsm_err_detail(), "policy_file"));
	ck_assert_ptr_null(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("secure");
	TCase *tc = tcase_create("secure");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, sealed_on_the_wire);
	tcase_add_test(tc, tampered_frame_dropped);
	tcase_add_test(tc, large_sealed_message_placed);
	tcase_add_test(tc, tampered_fragment_payload_dropped);
	tcase_add_test(tc, tampered_fragment_header_dropped);
	tcase_add_test(tc, replayed_frame_dropped);
	tcase_add_test(tc, altered_preface_breaks_keys);
	tcase_add_test(tc, mitm_with_other_valid_identity);
	tcase_add_test(tc, identity_not_in_policy);
	tcase_add_test(tc, forbidden_topic_not_sent);
	tcase_add_test(tc, subscriber_drops_unauthorised_publisher);
	tcase_add_test(tc, priority_and_size_caps);
	tcase_add_test(tc, policy_reload_revokes_live_session);
	tcase_add_test(tc, crl_reload_revokes_live_session);
	tcase_add_test(tc, revoked_refused_at_handshake);
	tcase_add_test(tc, rekey_before_usage_limit);
	tcase_add_test(tc, missing_credentials_refused);
	tcase_add_test(tc, cipher_follows_the_initiator);
	tcase_add_test(tc, reauth_before_not_after_loses_nothing);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
