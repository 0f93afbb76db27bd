/*
 * tests/support/attack.c - tsm_attack: a misbehaving peer for the
 * resource-exhaustion and process-fault tests (issue 9 items 4 and 5).
 *
 * Most attacks need an *authenticated* peer: a subscription flood, a
 * metadata bomb or a 16 MiB announcement only reach the code they target
 * after the handshake. tsm_attack is therefore a minimal secure peer built
 * from libtsm's own internals (wire/frame.h, security/tls.h, aead.h): it
 * dials, sends a PREFACE, runs TLS 1.3 in HS frames, derives the session
 * keys exactly as session/secure.c does, exchanges sealed ACCEPTs and then
 * sends whatever frames the mode calls for, sealed with valid keys, so that
 * the victim has to deal with them as with a real peer's.
 *
 *   tsm_attack subs HOST:PORT N CREDS     N SUBSCRIBE frames (distinct patterns)
 *   tsm_attack meta HOST:PORT CREDS       metadata bombs, then an oversized map
 *   tsm_attack huge HOST:PORT HOLD CREDS  lying lengths (3 sessions), then HOLD
 *                                         sessions announcing 16 MiB on each
 *                                         lane, held open for a few seconds
 *   tsm_attack closepub URL TOPIC N SIZE LINGER_MS CREDS
 *                                         a publisher (public API) that
 *                                         publishes N tsm-pub payloads and
 *                                         calls tsm_ctx_close at once; prints
 *                                         its outcome callbacks by reason
 *   CREDS = CERT KEY TRUST POLICY (POLICY only for closepub)
 *
 * Every mode prints "attack: ..." lines on stdout saying what it sent and
 * how the victim answered (a CLOSE and its reason, or the connection
 * closed); the test scripts judge the victim by its own counters. Exit 0
 * when the attack could be carried out (whatever the victim did), 1 when
 * it could not even get a session, 2 for usage errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/internal.h"
#include "security/aead.h"
#include "security/tls.h"
#include "wire/cursor.h"
#include "wire/frame.h"

#define SAY(...) (printf("attack: " __VA_ARGS__), putchar('\n'), fflush(stdout))

/* ---- a minimal secure peer ------------------------------------------------ */

struct peer {
	int fd;
	uint64_t session_id;
	uint8_t pref[2][256];
	size_t pref_len[2];
	tsm__tls *tls;
	tsm__aead tx[TSM_WIRE_LANES], rx[TSM_WIRE_LANES];
	bool keys;
	uint64_t txseq[TSM_WIRE_LANES];
	uint8_t *buf; /* receive buffer */
	size_t have;
	char closed_why[160]; /* how the victim ended the session */
};

static tsm__tls_cfg *g_cfg;

static int tcp_dial(const char *hostport)
{
	char host[128];
	const char *colon = strrchr(hostport, ':');
	if (!colon || (size_t)(colon - hostport) >= sizeof(host))
		return -1;
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = '\0';
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)atoi(colon + 1))};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static bool write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		b += k;
		n -= (size_t)k;
	}
	return true;
}

/* Sends one frame; sealed (and sequenced) once keys exist, as tx.c does. */
static bool send_frame(struct peer *p, uint8_t type, uint8_t flags, uint8_t lane,
                       uint32_t topic_id, const uint8_t *body, size_t len)
{
	static uint8_t out[TSM_WIRE_HDR_LEN + TSM_WIRE_MAX_BODY + 64];
	tsm__fhdr h = {.version = TSM_WIRE_VERSION, .type = type, .flags = flags,
	               .lane = type == TSM_F_DATA ? lane : 0,
	               .session_id = p->session_id, .topic_id = topic_id,
	               .priority = type == TSM_F_DATA ? lane : 0,
	               .body_len = (uint32_t)len};
	bool sequenced = type != TSM_F_PREFACE && type != TSM_F_HS &&
	                 type != TSM_F_REJECT && type != TSM_F_RETRY;
	if (len > TSM_WIRE_MAX_BODY)
		return false;
	if (sequenced)
		h.seq = p->txseq[h.lane]++;
	if (p->keys && sequenced) {
		tsm__aead *a = &p->tx[h.lane];
		struct iovec in = {(void *)body, len};
		h.flags |= TSM_FF_SEALED;
		h.epoch = a->epoch;
		h.body_len += TSM_WIRE_TAG_LEN;
		tsm__fhdr_encode(&h, out);
		if (tsm__aead_seal(a, h.seq, out, TSM_WIRE_HDR_LEN, &in, len ? 1 : 0,
		                   out + TSM_WIRE_HDR_LEN,
		                   out + TSM_WIRE_HDR_LEN + len) != TSM_OK)
			return false;
	} else {
		tsm__fhdr_encode(&h, out);
		if (len)
			memcpy(out + TSM_WIRE_HDR_LEN, body, len);
	}
	return write_all(p->fd, out, TSM_WIRE_HDR_LEN + h.body_len);
}

/*
 * next_frame waits up to ms for one whole frame from the victim and opens
 * it. Returns 1 with *h and *body set, 0 on timeout, -1 when the connection
 * ended or the frame could not be read (p->closed_why says which).
 */
static int next_frame(struct peer *p, int ms, tsm__fhdr *h, uint8_t **body)
{
	const size_t cap = TSM_WIRE_HDR_LEN + TSM_WIRE_MAX_BODY + 64;
	for (;;) {
		if (p->have >= TSM_WIRE_HDR_LEN) {
			tsm_err e = tsm__fhdr_decode(p->buf, p->have, TSM_WIRE_MAX_BODY, h);
			if (e && e != TSM_ERR_TRUNCATED) {
				snprintf(p->closed_why, sizeof(p->closed_why),
				         "unreadable frame from the victim (%s)", tsm_err_name(e));
				return -1;
			}
			size_t len = TSM_WIRE_HDR_LEN + h->body_len;
			if (!e && p->have >= len) {
				static uint8_t frame[TSM_WIRE_HDR_LEN + TSM_WIRE_MAX_BODY + 64];
				memcpy(frame, p->buf, len);
				memmove(p->buf, p->buf + len, p->have - len);
				p->have -= len;
				*body = frame + TSM_WIRE_HDR_LEN;
				if ((h->flags & TSM_FF_SEALED) && p->keys) {
					tsm__aead *a = &p->rx[h->type == TSM_F_DATA ? h->lane : 0];
					size_t n = h->body_len - TSM_WIRE_TAG_LEN;
					if (h->epoch != a->epoch) /* the victim rekeyed: skip */
						return 1;
					if (tsm__aead_open(a, h->seq, frame, TSM_WIRE_HDR_LEN, *body,
					                   n, *body, *body + n) != TSM_OK) {
						snprintf(p->closed_why, sizeof(p->closed_why),
						         "victim frame failed to open");
						return -1;
					}
					h->body_len = (uint32_t)n;
				}
				return 1;
			}
		}
		struct pollfd pf = {.fd = p->fd, .events = POLLIN};
		int r = poll(&pf, 1, ms);
		if (r == 0)
			return 0;
		if (r < 0 && errno == EINTR)
			continue;
		ssize_t k = recv(p->fd, p->buf + p->have, cap - p->have, 0);
		if (k <= 0) {
			snprintf(p->closed_why, sizeof(p->closed_why), "%s",
			         k == 0 ? "connection closed by the victim"
			                : "connection reset by the victim");
			return -1;
		}
		p->have += (size_t)k;
	}
}

/* A REJECT or CLOSE body: "CLOSE: REASON 'text'" into closed_why. */
static void note_reason(struct peer *p, const char *what, const uint8_t *b,
                        size_t n)
{
	tsm__reason r;
	if (tsm__reason_decode(b, n, &r) != TSM_OK)
		r = (tsm__reason){.code = 0};
	snprintf(p->closed_why, sizeof(p->closed_why), "%s %s '%.*s'", what,
	         tsm_err_name((tsm_err)r.code), (int)r.text_len,
	         r.text ? (const char *)r.text : "");
}

/*
 * wait_end reads (and answers PINGs) for up to ms; returns true if the
 * victim ended the session meanwhile (closed_why says how).
 */
static bool wait_end(struct peer *p, int ms)
{
	tsm_time end = tsm_now() + (tsm_time)ms * TSM_MSEC;
	tsm__fhdr h;
	uint8_t *body;
	for (;;) {
		tsm_time now = tsm_now();
		if (now >= end)
			return false;
		int r = next_frame(p, (int)((end - now) / TSM_MSEC) + 1, &h, &body);
		if (r < 0)
			return true;
		if (r == 0)
			continue;
		if (h.type == TSM_F_CLOSE || h.type == TSM_F_REJECT) {
			note_reason(p, h.type == TSM_F_CLOSE ? "CLOSE" : "REJECT", body,
			            h.body_len);
			return true;
		}
	}
}

static void sha256_prefaces(const struct peer *p, uint8_t out[32])
{
	unsigned n = 0;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	EVP_DigestInit_ex(m, EVP_sha256(), NULL);
	EVP_DigestUpdate(m, p->pref[0], p->pref_len[0]);
	EVP_DigestUpdate(m, p->pref[1], p->pref_len[1]);
	EVP_DigestFinal_ex(m, out, &n);
	EVP_MD_CTX_free(m);
}

static bool derive_keys(struct peer *p)
{
	uint8_t ctxhash[32], master[32], secret[32];
	sha256_prefaces(p, ctxhash);
	if (tsm__tls_export(p->tls, ctxhash, sizeof(ctxhash), master) != TSM_OK)
		return false;
	for (unsigned l = 0; l < TSM_WIRE_LANES; l++) {
		/* we are the initiator: direction 0 is ours (secure.c) */
		if (tsm__keys_derive(master, 0, l, secret) ||
		    tsm__aead_init(&p->tx[l], 0, secret) ||
		    tsm__keys_derive(master, 1, l, secret) ||
		    tsm__aead_init(&p->rx[l], 0, secret))
			return false;
	}
	p->keys = true;
	return true;
}

/* Runs TLS until done; sends what it produces in HS frames. */
static bool tls_pump(struct peer *p, bool *done)
{
	uint8_t out[8192];
	size_t n;
	do {
		tsm_err e = tsm__tls_step(p->tls, out, sizeof(out), &n, done);
		if (e) {
			snprintf(p->closed_why, sizeof(p->closed_why), "TLS: %s (%s)",
			         tsm_err_name(e), tsm_err_detail());
			return false;
		}
		if (n && !send_frame(p, TSM_F_HS, 0, 0, 0, out, n))
			return false;
	} while (n);
	return true;
}

static void peer_free(struct peer *p)
{
	if (p->fd >= 0)
		close(p->fd);
	tsm__tls_free(p->tls);
	for (unsigned l = 0; l < TSM_WIRE_LANES; l++) {
		tsm__aead_fini(&p->tx[l]);
		tsm__aead_fini(&p->rx[l]);
	}
	free(p->buf);
	memset(p, 0, sizeof(*p));
	p->fd = -1;
}

/* peer_open dials and authenticates; false with p->closed_why on failure. */
static bool peer_open(struct peer *p, const char *hostport)
{
	memset(p, 0, sizeof(*p));
	p->buf = malloc(TSM_WIRE_HDR_LEN + TSM_WIRE_MAX_BODY + 64);
	if ((p->fd = tcp_dial(hostport)) < 0 || !p->buf) {
		snprintf(p->closed_why, sizeof(p->closed_why), "cannot connect to %s",
		         hostport);
		return false;
	}
	/* PREFACE: our nonce holds the session id and dial generation 1. */
	tsm__preface pf = {.min_version = 1, .max_version = 1,
	                   .name = (const uint8_t *)"attack", .name_len = 6};
	if (getrandom(pf.nonce, sizeof(pf.nonce), 0) != (ssize_t)sizeof(pf.nonce) ||
	    getrandom(&pf.node_id, sizeof(pf.node_id), 0) != (ssize_t)sizeof(pf.node_id))
		return false;
	memcpy(&p->session_id, pf.nonce, 8);
	tsm__st64(pf.nonce + 8, 1);
	tsm__wbuf w;
	tsm__wbuf_init(&w, p->pref[0], sizeof(p->pref[0]));
	tsm__preface_encode(&pf, &w);
	p->pref_len[0] = w.len;
	if (!send_frame(p, TSM_F_PREFACE, 0, 0, 0, p->pref[0], p->pref_len[0]))
		return false;
	tsm__fhdr h;
	uint8_t *body;
	if (next_frame(p, 5000, &h, &body) != 1 || h.type != TSM_F_PREFACE ||
	    h.body_len > sizeof(p->pref[1])) {
		if (!p->closed_why[0])
			snprintf(p->closed_why, sizeof(p->closed_why), "no PREFACE");
		return false;
	}
	memcpy(p->pref[1], body, h.body_len);
	p->pref_len[1] = h.body_len;
	bool done = false;
	if (tsm__tls_new(g_cfg, true, NULL, &p->tls) != TSM_OK || !tls_pump(p, &done))
		return false;
	while (!done) {
		int r = next_frame(p, 5000, &h, &body);
		if (r != 1)
			return false;
		if (h.type == TSM_F_REJECT) {
			note_reason(p, "REJECT", body, h.body_len);
			return false;
		}
		if (h.type != TSM_F_HS || tsm__tls_feed(p->tls, body, h.body_len) ||
		    !tls_pump(p, &done))
			return false;
	}
	if (!tls_pump(p, &done) || !derive_keys(p) ||
	    !send_frame(p, TSM_F_ACCEPT, 0, 0, 0, NULL, 0))
		return false;
	for (;;) { /* the victim's ACCEPT settles it (docs/wire.md §3) */
		if (next_frame(p, 5000, &h, &body) != 1)
			return false;
		if (h.type == TSM_F_ACCEPT)
			return true;
		if (h.type == TSM_F_REJECT || h.type == TSM_F_CLOSE) {
			note_reason(p, "REJECT", body, h.body_len);
			return false;
		}
	}
}

static bool send_ctrl(struct peer *p, uint8_t type, uint32_t id, const char *str)
{
	uint8_t body[300];
	tsm__ctrl c = {.type = type, .id = id, .str = (const uint8_t *)str,
	               .str_len = (uint16_t)strlen(str)};
	tsm__wbuf w;
	tsm__wbuf_init(&w, body, sizeof(body));
	tsm__ctrl_encode(&c, &w);
	return send_frame(p, TSM_F_CTRL, 0, 0, 0, body, w.len);
}

/* One DATA record (a fragment when r->flags has FRAG) in its own frame. */
static bool send_record(struct peer *p, uint8_t lane, const tsm__rec *r,
                        const uint8_t *meta, const uint8_t *payload,
                        size_t payload_bytes)
{
	static uint8_t body[TSM_WIRE_MAX_BODY];
	tsm__wbuf w;
	tsm__wbuf_init(&w, body, sizeof(body));
	tsm__rec_encode_hdr(r, &w);
	tsm__wbuf_bytes(&w, meta, r->meta_len);
	tsm__wbuf_bytes(&w, payload, payload_bytes);
	if (w.overflow)
		return false;
	return send_frame(p, TSM_F_DATA, (r->flags & TSM_REC_FRAG) ? TSM_FF_FRAGMENT : 0,
	                  lane, r->topic_id, body, w.len);
}

static void report_end(struct peer *p, const char *what, int wait_ms)
{
	if (wait_end(p, wait_ms))
		SAY("%s: victim ended the session: %s", what, p->closed_why);
	else
		SAY("%s: session still open after %d ms", what, wait_ms);
}

/* ---- modes ------------------------------------------------------------- */

/* Subscription flood: N SUBSCRIBE frames with distinct valid patterns. */
static int mode_subs(const char *target, long n)
{
	struct peer p;
	if (!peer_open(&p, target)) {
		SAY("subs: no session: %s", p.closed_why);
		peer_free(&p);
		return 1;
	}
	SAY("subs: authenticated; sending %ld SUBSCRIBE frames", n);
	long sent = 0;
	char pat[64];
	for (; sent < n; sent++) {
		snprintf(pat, sizeof(pat), "flood/%ld/**", sent);
		if (!send_ctrl(&p, TSM_C_SUBSCRIBE, 0, pat))
			break;
	}
	SAY("subs: sent=%ld of %ld", sent, n);
	report_end(&p, "subs", 5000);
	peer_free(&p);
	return 0;
}

/* Metadata bombs, each in one message that fits every frame rule. */
struct bomb {
	const char *name;
	uint8_t b[4096];
	size_t n;
};

static void bomb_put(struct bomb *x, const char *name, const void *p, size_t n)
{
	x->name = name;
	memcpy(x->b, p, n);
	x->n = n;
}

static size_t make_bombs(struct bomb *v)
{
	size_t k = 0;
	uint8_t t[4096];
	/* 1: {"u": [[[[...]]]]} nested 200 deep (depth limit 8) */
	size_t n = 0;
	t[n++] = 0x81;
	t[n++] = 0xa1;
	t[n++] = 'u';
	for (int i = 0; i < 200; i++)
		t[n++] = 0x91;
	t[n++] = 0xc0;
	bomb_put(&v[k++], "nested-200-deep", t, n);
	/* 2: map32 announcing 2^32-1 pairs in 5 bytes */
	bomb_put(&v[k++], "map32-4G-entries", "\xdf\xff\xff\xff\xff", 5);
	/* 3: {"u": str32 of 4 GiB} */
	bomb_put(&v[k++], "str32-4GiB", "\x81\xa1u\xdb\xff\xff\xff\xff", 8);
	/* 4: {"u": bin32 of 2 GiB} */
	bomb_put(&v[k++], "bin32-2GiB", "\x81\xa1u\xc6\x80\x00\x00\x00", 8);
	/* 5: {"u": array32 of 2^32-1 nils} */
	bomb_put(&v[k++], "array32-4G-items", "\x81\xa1u\xdd\xff\xff\xff\xff", 8);
	/* 6: {"u": [nil x 400]} (item limit 256) */
	n = 0;
	t[n++] = 0x81;
	t[n++] = 0xa1;
	t[n++] = 'u';
	t[n++] = 0xdc;
	t[n++] = 0x01;
	t[n++] = 0x90;
	memset(t + n, 0xc0, 400);
	n += 400;
	bomb_put(&v[k++], "400-items", t, n);
	/* 7: {1: 2}: a key that is not a string */
	bomb_put(&v[k++], "int-key", "\x81\x01\x02", 3);
	/* 8: two maps back to back */
	bomb_put(&v[k++], "two-maps", "\x80\x80", 2);
	/* 9: {"ts": "x"}: a well-known key of the wrong type */
	bomb_put(&v[k++], "ts-wrong-type", "\x81\xa2ts\xa1x", 6);
	/* 10: 4096 bytes of 0xc1 (never used in msgpack) */
	memset(t, 0xc1, 4096);
	bomb_put(&v[k++], "reserved-byte-4KiB", t, 4096);
	return k;
}

static int mode_meta(const char *target)
{
	static struct bomb bombs[16];
	struct peer p;
	size_t nb = make_bombs(bombs);
	if (!peer_open(&p, target)) {
		SAY("meta: no session: %s", p.closed_why);
		peer_free(&p);
		return 1;
	}
	if (!send_ctrl(&p, TSM_C_TOPIC, 1, "it/attack/meta")) {
		SAY("meta: could not declare the topic");
		peer_free(&p);
		return 1;
	}
	uint8_t payload[64] = "metadata bomb";
	size_t sent = 0;
	for (size_t i = 0; i < nb; i++) {
		tsm__rec r = {.topic_id = 1, .flags = TSM_REC_META,
		              .meta_len = (uint16_t)bombs[i].n,
		              .payload_len = sizeof(payload), .msg_id = i + 1};
		if (!send_record(&p, 4, &r, bombs[i].b, payload, sizeof(payload)))
			break;
		sent++;
		SAY("meta: sent bomb %zu: %s (%zu bytes)", i + 1, bombs[i].name, bombs[i].n);
	}
	if (wait_end(&p, 1000)) {
		SAY("meta: victim ended the session after the bombs: %s", p.closed_why);
		peer_free(&p);
		return 0;
	}
	SAY("meta: %zu bombs sent, session still open (each dropped alone)", sent);
	/* The record announces 4097 bytes of metadata: over TSM_META_MAX. */
	static uint8_t big[4097];
	memset(big, 0x80, sizeof(big));
	tsm__rec r = {.topic_id = 1, .flags = TSM_REC_META, .meta_len = 4097,
	              .payload_len = sizeof(payload), .msg_id = 99};
	send_record(&p, 4, &r, big, payload, sizeof(payload));
	SAY("meta: sent a record with meta_len 4097 (over the 4096 limit)");
	report_end(&p, "meta-oversized", 5000);
	peer_free(&p);
	return 0;
}

/* A DATA header that announces more body than any state allows. */
static void huge_header(struct peer *p)
{
	uint8_t hdr[TSM_WIRE_HDR_LEN + 64] = {0};
	tsm__fhdr h = {.version = TSM_WIRE_VERSION, .type = TSM_F_DATA,
	               .flags = TSM_FF_SEALED, .lane = 4, .session_id = p->session_id,
	               .seq = p->txseq[4]++, .topic_id = 1, .priority = 4,
	               .body_len = 0xFFFFFFFFu};
	tsm__fhdr_encode(&h, hdr);
	write_all(p->fd, hdr, sizeof(hdr));
}

static int mode_huge(const char *target, long hold)
{
	struct peer p;
	uint8_t payload[1024] = {0};
	for (int kind = 0; kind < 3; kind++) {
		static const char *names[] = {
			"header body_len 4 GiB",
			"fragment 0 announcing total_len 1 TiB",
			"unfragmented record announcing payload_len 4 GiB"};
		if (!peer_open(&p, target)) {
			SAY("huge: no session: %s", p.closed_why);
			peer_free(&p);
			return 1;
		}
		send_ctrl(&p, TSM_C_TOPIC, 1, "it/attack/huge");
		if (kind == 0) {
			huge_header(&p);
		} else if (kind == 1) {
			tsm__rec r = {.topic_id = 1, .flags = TSM_REC_FRAG,
			              .payload_len = sizeof(payload), .msg_id = 1,
			              .total_len = (uint64_t)1 << 40};
			send_record(&p, 4, &r, NULL, payload, sizeof(payload));
		} else {
			tsm__rec r = {.topic_id = 1, .payload_len = 0xFFFFFFFFu, .msg_id = 1};
			send_record(&p, 4, &r, NULL, payload, sizeof(payload));
		}
		SAY("huge: sent %s", names[kind]);
		report_end(&p, "huge", 5000);
		peer_free(&p);
	}
	/* Partial messages: 16 MiB announced on every lane, never finished. */
	struct peer *v = calloc((size_t)hold, sizeof(*v));
	long open = 0, announced = 0;
	for (long i = 0; i < hold; i++) {
		if (!peer_open(&v[i], target)) {
			SAY("huge: hold %ld: no session: %s", i, v[i].closed_why);
			peer_free(&v[i]);
			continue;
		}
		open++;
		send_ctrl(&v[i], TSM_C_TOPIC, 1, "it/attack/huge");
		for (uint8_t lane = 0; lane < TSM_WIRE_LANES; lane++) {
			tsm__rec r = {.topic_id = 1, .flags = TSM_REC_FRAG,
			              .payload_len = sizeof(payload),
			              .msg_id = (uint64_t)i * 8 + lane + 1,
			              .total_len = 16u << 20};
			if (send_record(&v[i], lane, &r, NULL, payload, sizeof(payload)))
				announced++;
		}
	}
	SAY("huge: %ld sessions hold %ld partial messages of 16 MiB announced (%ld MiB)",
	    open, announced, announced * 16);
	/* Keep them open a while (reading, so the victim is not blocked). */
	for (long i = 0; i < hold; i++)
		if (v[i].fd >= 0 && wait_end(&v[i], i == 0 ? 2000 : 1))
			SAY("huge: hold %ld ended: %s", i, v[i].closed_why);
	fflush(stdout);
	printf("attack: huge: holding done\n");
	for (long i = 0; i < hold; i++)
		peer_free(&v[i]);
	free(v);
	return 0;
}

/* ---- closepub: exactly one outcome per message at tsm_ctx_close -------- */

/* The payload of examples/tsm.c (tsm pub), so that `tsm sub --verify`
 * checks what arrives: magic, stream, seq, size, prio, FNV-1a checksum,
 * filler from splitmix64(seq). */
static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void pl_build(uint8_t *buf, size_t len, uint32_t stream, uint64_t seq,
                     uint8_t prio)
{
	uint64_t x = seq;
	size_t i = 32;
	for (; i + 8 <= len; i += 8)
		put_le(buf + i, splitmix64(&x), 8);
	if (i < len)
		put_le(buf + i, splitmix64(&x), (unsigned)(len - i));
	put_le(buf, 0x504d5354u, 4);
	put_le(buf + 4, stream, 4);
	put_le(buf + 8, seq, 8);
	put_le(buf + 16, len, 4);
	buf[20] = prio;
	memset(buf + 21, 0, 3);
	uint64_t h = fnv1a(0xcbf29ce484222325ull, buf, 24);
	put_le(buf + 24, fnv1a(h, buf + 32, len - 32), 8);
}

static atomic_ulong g_outcomes;
static atomic_ulong g_by_reason[8]; /* PEER_LOST, ECLOSED, QUEUE_FULL, DEADLINE, NO_SUB, other */

static void on_outcome(void *arg, const tsm_outcome *o)
{
	(void)arg;
	int k = o->reason == TSM_ERR_PEER_LOST       ? 0
	        : o->reason == TSM_ECLOSED           ? 1
	        : o->reason == TSM_ERR_QUEUE_FULL    ? 2
	        : o->reason == TSM_ERR_DEADLINE_EXPIRED ? 3
	        : o->reason == TSM_ERR_NO_SUBSCRIBER ? 4
	                                             : 5;
	atomic_fetch_add(&g_outcomes, 1);
	atomic_fetch_add(&g_by_reason[k], 1);
}

static int mode_closepub(char **a)
{
	const char *url = a[0], *topic = a[1];
	long n = atol(a[2]), size = atol(a[3]), linger_ms = atol(a[4]);
	tsm_ctx_params p;
	tsm_ctx *ctx;
	tsm_pub *pub;
	tsm_ctx_params_init(&p);
	p.name = "closepub";
	p.listen[0] = url;
	p.cert_file = a[5];
	p.key_file = a[6];
	p.trust_file = a[7];
	p.policy_file = a[8];
	p.linger = linger_ms > 0 ? linger_ms * TSM_MSEC : 1;
	p.on_outcome = on_outcome;
	p.log_level = TSM_LOG_WARN;
	tsm_err e = tsm_ctx_open(&ctx, &p);
	if (e) {
		SAY("closepub: tsm_ctx_open: %s (%s)", tsm_err_name(e), tsm_err_detail());
		return 1;
	}
	fprintf(stderr, "tsm pub: listening on %s\n", url); /* for lib.sh */
	if ((e = tsm_pub_open(&pub, ctx, topic, NULL)) ||
	    (e = tsm_pub_wait_subscribers(pub, 1, 20 * TSM_SEC))) {
		SAY("closepub: %s (%s)", tsm_err_name(e), tsm_err_detail());
		tsm_ctx_close(ctx);
		return 1;
	}
	/* A second for the test to stop the subscriber (SIGSTOP), so that
	 * what follows is still queued here when the context closes. */
	printf("closepub: subscriber connected\n");
	fflush(stdout);
	sleep(1);
	uint8_t *buf = malloc((size_t)size);
	uint32_t stream = (uint32_t)getpid();
	long published = 0, refused = 0;
	tsm_time t_pub = tsm_now();
	for (long i = 0; i < n; i++) {
		pl_build(buf, (size_t)size, stream, (uint64_t)i, TSM_PRIO_DEFAULT);
		tsm_pub_opts o;
		tsm_pub_opts_init(&o);
		o.flags = TSM_OPT_PRIORITY;
		o.priority = TSM_PRIO_DEFAULT;
		if (tsm_publish(pub, buf, (size_t)size, &o) == TSM_OK)
			published++;
		else
			refused++; /* never queued: the caller was told at once */
	}
	free(buf);
	uint64_t before = atomic_load(&g_outcomes);
	tsm_time t_close = tsm_now();
	t_pub = t_close - t_pub;
	/* No flush: close with messages still queued, linger as given. */
	tsm_pub_close(pub);
	tsm_ctx_close(ctx);
	t_close = tsm_now() - t_close;
	printf("closepub: publish_ms=%lld close_ms=%lld published=%ld refused=%ld outcomes=%lu outcomes_before_close=%lu"
	       " peer_lost=%lu closed=%lu queue_full=%lu deadline=%lu no_subscriber=%lu"
	       " other=%lu linger_ms=%ld\n",
	       (long long)(t_pub / TSM_MSEC), (long long)(t_close / TSM_MSEC),
	       published, refused, (unsigned long)atomic_load(&g_outcomes),
	       (unsigned long)before, (unsigned long)atomic_load(&g_by_reason[0]),
	       (unsigned long)atomic_load(&g_by_reason[1]),
	       (unsigned long)atomic_load(&g_by_reason[2]),
	       (unsigned long)atomic_load(&g_by_reason[3]),
	       (unsigned long)atomic_load(&g_by_reason[4]),
	       (unsigned long)atomic_load(&g_by_reason[5]), linger_ms);
	return 0;
}

/* ---- main ---------------------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr,
	        "usage: tsm_attack subs HOST:PORT N CERT KEY TRUST\n"
	        "       tsm_attack meta HOST:PORT CERT KEY TRUST\n"
	        "       tsm_attack huge HOST:PORT HOLD CERT KEY TRUST\n"
	        "       tsm_attack closepub URL TOPIC N SIZE LINGER_MS CERT KEY TRUST POLICY\n");
	return 2;
}

static bool load_creds(char **a)
{
	tsm__tls_files f = {.cert_file = a[0], .key_file = a[1], .trust_file = a[2]};
	tsm_err e = tsm__tls_cfg_new(&f, &g_cfg);
	if (e)
		fprintf(stderr, "tsm_attack: credentials: %s (%s)\n", tsm_err_name(e),
		        tsm_err_detail());
	return !e;
}

int main(int argc, char **argv)
{
	int rc;
	if (argc < 2)
		return usage();
	const char *m = argv[1];
	if (!strcmp(m, "closepub"))
		return argc == 11 ? mode_closepub(argv + 2) : usage();
	if (!strcmp(m, "subs") && argc == 7 && load_creds(argv + 4))
		rc = mode_subs(argv[2], atol(argv[3]));
	else if (!strcmp(m, "meta") && argc == 6 && load_creds(argv + 3))
		rc = mode_meta(argv[2]);
	else if (!strcmp(m, "huge") && argc == 7 && load_creds(argv + 4))
		rc = mode_huge(argv[2], atol(argv[3]));
	else
		return usage();
	tsm__tls_cfg_free(g_cfg);
	return rc;
}
