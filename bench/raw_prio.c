/*
 * bench/raw_prio.c - raw TCP floors of the urgent-behind-bulk case
 * (P1 on loopback, P2 through a tbf bottleneck between two network
 * namespaces).
 *
 * Two processes, the parent A (CPU 0) and the child B (CPU 1). A's
 * urgent thread sends a small message at a fixed rate (1 kHz) and waits
 * for B's echo: one CLOCK_MONOTONIC sample per round trip. A's bulk
 * thread meanwhile sends large messages (1 MiB) as fast as the socket
 * takes them, one writev each (no copy). B parses every record, checks
 * every size and sequence number and echoes each urgent message at once.
 *
 *   split  (default) two connections: urgent ping-pong on one, the bulk
 *          stream on the other, each served by its own thread in B. This
 *          is the floor: the kernel keeps the urgent bytes out of the
 *          bulk's socket buffer.
 *   naive  (--naive) one connection for both; A's two threads take turns
 *          on it, one whole message at a time, and one B thread serves
 *          it: the urgent message waits behind whatever bulk is queued.
 *          A reference for what head-of-line blocking costs.
 *
 * Records on the wire: u32 length, u32 kind (0 urgent, 1 bulk), payload
 * (which starts with its sequence number and A's send time). With
 * --netns-b, B enters that network namespace before it dials --addr; A
 * runs wherever it was started (bench/run.sh starts it with ip netns
 * exec).
 *
 * Output, parsed by bench/run.sh:
 *   raw: case=prio mode=split urgent_size=64 bulk_size=1048576 ...
 */
#include "bench_util.h"
#include "mix.h"
#include "raw_net.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RP_HDR 8                      /* u32 length, u32 kind */
#define RP_RXBUF (256 * BENCH_KIB)    /* B's read size */
#define RP_SETUP_MS 10000             /* accept and first bytes */
#define RP_URGENT 0u
#define RP_BULK 1u

/* One connection and the lock its writers take turns under. */
struct rp_conn {
	int fd;
	pthread_mutex_t mu;
};

/* A's side: what the urgent exchange and the bulk thread need. */
struct rp_a {
	const struct mix_opts *o;
	struct mix_shared *sh;
	struct rp_conn *u, *b; /* the same connection when naive */
	unsigned char *rec;    /* an urgent record: header and payload */
	unsigned char *echo;
	int bulk_err;
};

/* ---- A ---- */

static int rp_exchange(void *arg, unsigned char *buf, uint64_t seq,
                       uint64_t *stale)
{
	struct rp_a *a = arg;
	size_t n = a->o->urgent_size;
	int rc;

	rn_put_u32(a->rec, (uint32_t)n);
	rn_put_u32(a->rec + 4, RP_URGENT);
	memcpy(a->rec + RP_HDR, buf, n);
	pthread_mutex_lock(&a->u->mu);
	rc = rn_send_all(a->u->fd, a->rec, RP_HDR + n);
	pthread_mutex_unlock(&a->u->mu);
	if (rc < 0) {
		perror("raw_prio A: send urgent");
		return -1;
	}
	for (;;) {
		uint64_t s;

		rc = rn_recv_all(a->u->fd, a->echo, RP_HDR + n);
		if (rc == 2)
			return 1;
		if (rc != 0) {
			fprintf(stderr, "raw_prio A: echo: %s\n",
			        rc == 1 ? "connection closed" : strerror(errno));
			return -1;
		}
		s = bench_get_seq(a->echo + RP_HDR);
		if (rn_get_u32(a->echo) != n || s > seq) {
			fprintf(stderr, "raw_prio A: bad echo (seq %llu, sent "
			        "%llu)\n", (unsigned long long)s,
			        (unsigned long long)seq);
			return -1;
		}
		if (s == seq)
			return 0;
		(*stale)++;
	}
}

static void *rp_bulk(void *arg)
{
	struct rp_a *a = arg;
	size_t n = a->o->bulk_size;
	unsigned char hdr[RP_HDR], *msg = malloc(n);
	uint64_t seq = 0;

	if (!msg) {
		a->bulk_err = 1;
		return NULL;
	}
	memset(msg, 0x5a, n);
	rn_put_u32(hdr, (uint32_t)n);
	rn_put_u32(hdr + 4, RP_BULK);
	while (!atomic_load(&a->sh->bulk_stop)) {
		struct iovec iov[2] = {{hdr, sizeof(hdr)}, {msg, n}};
		int rc;

		bench_put_seq(msg, seq);
		bench_put_seq(msg + 8, (uint64_t)bench_now_ns());
		pthread_mutex_lock(&a->b->mu);
		rc = rn_writev_all(a->b->fd, iov, 2);
		pthread_mutex_unlock(&a->b->mu);
		if (rc < 0) {
			perror("raw_prio A: send bulk");
			a->bulk_err = 1;
			break;
		}
		atomic_store(&a->sh->bulk_sent, ++seq);
	}
	free(msg);
	return NULL;
}

/* Accept one connection and read its one-byte tag ('U', 'B' or 'N'). */
static int rp_accept(int lfd, char *tag)
{
	int fd = rn_accept(lfd);

	if (fd < 0)
		return -1;
	if (rn_timeout(fd, RP_SETUP_MS) < 0 || rn_recv_all(fd, tag, 1) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Accept B's connections: c[0] urgent, c[1] bulk (the same if naive). */
static int rp_accept_all(int lfd, const struct mix_opts *o,
                         struct rp_conn *c)
{
	int want = o->naive ? 1 : 2;

	if (rn_timeout(lfd, RP_SETUP_MS) < 0)
		return -1;
	for (int i = 0; i < want; i++) {
		char tag;
		int fd = rp_accept(lfd, &tag);

		if (fd < 0)
			return -1;
		c[tag == 'B' ? 1 : 0].fd = fd;
	}
	if (o->naive)
		c[1].fd = -1;
	else if (c[0].fd < 0 || c[1].fd < 0)
		return -1;
	/* A lost echo shows as a receive time-out, not a hang. */
	return rn_timeout(c[0].fd, (int)(MIX_ECHO_TIMEOUT_NS / 1000000));
}

static int rp_parent(int lfd, pid_t child, const struct mix_opts *o,
                     struct mix_shared *sh)
{
	struct rp_conn c[2] = {{.fd = -1}, {.fd = -1}};
	struct rp_a a = {.o = o, .sh = sh, .u = &c[0]};
	struct mix_result r = {0};
	int64_t *samples = calloc(o->iters, sizeof(int64_t));
	pthread_t bulk;
	int rc = -1, started = 0;

	pthread_mutex_init(&c[0].mu, NULL);
	pthread_mutex_init(&c[1].mu, NULL);
	a.rec = malloc(RP_HDR + o->urgent_size);
	a.echo = malloc(RP_HDR + o->urgent_size);
	if (!samples || !a.rec || !a.echo) {
		perror("raw_prio A: alloc");
		goto out;
	}
	if (rp_accept_all(lfd, o, c) < 0) {
		perror("raw_prio A: accept");
		goto out;
	}
	a.b = o->naive ? &c[0] : &c[1];
	if (!o->no_bulk) {
		if (pthread_create(&bulk, NULL, rp_bulk, &a) != 0)
			goto out;
		started = 1;
	}
	rc = mix_urgent_run(o, sh, rp_exchange, &a, samples, &r);
	atomic_store(&sh->bulk_stop, 1);
	if (started)
		pthread_join(bulk, NULL);
	if (a.bulk_err)
		rc = -1;
	atomic_store(&sh->urgent_sent, r.sent);
	atomic_store(&sh->stop, 1);
out:
	close(lfd);
	for (int i = 0; i < 2; i++)
		if (c[i].fd >= 0)
			shutdown(c[i].fd, SHUT_WR); /* B reads to EOF, exits */
	if (bench_wait_child(child, "raw_prio B") < 0)
		rc = -1;
	if (rc == 0) {
		mix_report("raw", o->naive ? "naive" : "split", "", o, samples,
		           &r, sh);
		if (mix_failed(&r, sh)) {
			fprintf(stderr, "raw_prio: messages lost or corrupted\n");
			rc = -1;
		}
	}
	for (int i = 0; i < 2; i++)
		if (c[i].fd >= 0)
			close(c[i].fd);
	free(a.rec);
	free(a.echo);
	free(samples);
	return rc == 0 ? 0 : 1;
}

/* ---- B ---- */

/* B's parser of one connection's records. */
struct rp_parser {
	const struct mix_opts *o;
	struct mix_shared *sh;
	int fd;
	unsigned char hdr[RP_HDR];
	size_t hdr_have;
	int in_body;
	uint32_t len, kind;
	size_t body_have, keep;
	unsigned char *rec; /* gathered record: header + kept body */
};

/* A whole record arrived: echo an urgent one, count either. */
static int rp_complete(struct rp_parser *p)
{
	const struct mix_opts *o = p->o;

	if (p->kind == RP_BULK) {
		mix_b_bulk(p->sh, p->rec + RP_HDR, p->len, o->bulk_size);
		return 0;
	}
	memcpy(p->rec, p->hdr, RP_HDR);
	if (rn_send_all(p->fd, p->rec, RP_HDR + p->len) < 0) {
		perror("raw_prio B: echo");
		return -1;
	}
	mix_b_urgent(p->sh, p->rec + RP_HDR, p->len, o->urgent_size);
	return 0;
}

/* A record's header is complete: check it, decide what to keep. */
static int rp_header(struct rp_parser *p)
{
	p->len = rn_get_u32(p->hdr);
	p->kind = rn_get_u32(p->hdr + 4);
	if ((p->kind == RP_URGENT && p->len != p->o->urgent_size) ||
	    (p->kind == RP_BULK && p->len != p->o->bulk_size) ||
	    p->kind > RP_BULK) {
		fprintf(stderr, "raw_prio B: bad record: kind %u, %u B\n",
		        p->kind, p->len);
		atomic_store(&p->sh->bad, 1);
		return -1;
	}
	p->keep = p->kind == RP_URGENT ? p->len : MIX_HDR;
	p->in_body = 1;
	p->body_have = 0;
	return 0;
}

static int rp_feed(struct rp_parser *p, const unsigned char *b, size_t n)
{
	size_t off = 0;

	while (off < n) {
		size_t take;

		if (!p->in_body) {
			take = RP_HDR - p->hdr_have;
			take = take < n - off ? take : n - off;
			memcpy(p->hdr + p->hdr_have, b + off, take);
			p->hdr_have += take;
			off += take;
			if (p->hdr_have == RP_HDR && rp_header(p) < 0)
				return -1;
			continue;
		}
		take = p->len - p->body_have;
		take = take < n - off ? take : n - off;
		if (p->body_have < p->keep) {
			size_t k = p->keep - p->body_have;

			memcpy(p->rec + RP_HDR + p->body_have, b + off,
			       k < take ? k : take);
		}
		p->body_have += take;
		off += take;
		if (p->body_have == p->len) {
			p->in_body = 0;
			p->hdr_have = 0;
			if (rp_complete(p) < 0)
				return -1;
		}
	}
	return 0;
}

/* Serve one connection until A closes it. */
static int rp_serve(int fd, const struct mix_opts *o, struct mix_shared *sh)
{
	struct rp_parser p = {.o = o, .sh = sh, .fd = fd};
	unsigned char *buf = malloc(RP_RXBUF);
	int rc = -1;

	p.rec = malloc(RP_HDR + (o->urgent_size > MIX_HDR ? o->urgent_size
	                                                    : MIX_HDR));
	if (!buf || !p.rec)
		goto out;
	for (;;) {
		ssize_t r = recv(fd, buf, RP_RXBUF, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			perror("raw_prio B: recv");
			break;
		}
		if (r == 0) {
			rc = p.in_body || p.hdr_have ? -1 : 0;
			break;
		}
		if (rp_feed(&p, buf, (size_t)r) < 0)
			break;
	}
out:
	free(buf);
	free(p.rec);
	return rc;
}

struct rp_serve_arg {
	int fd, rc;
	const struct mix_opts *o;
	struct mix_shared *sh;
};

static void *rp_serve_thread(void *arg)
{
	struct rp_serve_arg *s = arg;

	s->rc = rp_serve(s->fd, s->o, s->sh);
	return NULL;
}

static int rp_dial(const struct mix_opts *o, uint16_t port, char tag)
{
	int fd = rn_connect(o->addr, port);

	if (fd < 0 || rn_send_all(fd, &tag, 1) < 0) {
		perror("raw_prio B: connect");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int rp_child(uint16_t port, const struct mix_opts *o,
                    struct mix_shared *sh)
{
	struct rp_serve_arg bulk = {.fd = -1, .o = o, .sh = sh};
	pthread_t t;
	int ufd, rc;

	if (o->netns_b && bench_enter_netns(o->netns_b) < 0)
		return 1;
	if (o->pin)
		bench_pin(1);
	ufd = rp_dial(o, port, o->naive ? 'N' : 'U');
	if (ufd < 0)
		return 1;
	if (!o->naive) {
		bulk.fd = rp_dial(o, port, 'B');
		if (bulk.fd < 0 ||
		    pthread_create(&t, NULL, rp_serve_thread, &bulk) != 0)
			return 1;
	}
	rc = rp_serve(ufd, o, sh);
	if (!o->naive) {
		pthread_join(t, NULL);
		rc |= bulk.rc;
		close(bulk.fd);
	}
	close(ufd);
	return rc == 0 && !atomic_load(&sh->bad) ? 0 : 1;
}

/* ---- options ---- */

static void rp_usage(void)
{
	fprintf(stderr, "usage: raw_prio [--naive]\n" MIX_USAGE
	        "defaults: 64 B urgent at 1000 Hz behind 1 MiB bulk, "
	        "2000 samples after 200, 127.0.0.1\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		MIX_LONGOPTS,
		{"naive", no_argument, NULL, MIX_OPT_NAIVE},
		{NULL, 0, NULL, 0},
	};
	struct mix_opts o;
	struct mix_shared *sh;
	uint16_t port;
	int c, bad = 0, lfd;
	pid_t pid;

	mix_opts_init(&o);
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1)
		bad |= mix_opt(c, optarg, &o) != 0;
	if (bad || optind != argc || mix_opts_check(&o) < 0) {
		rp_usage();
		return 2;
	}
	sh = bench_shm_map(sizeof(*sh));
	lfd = rn_listen(o.addr, 4, &port);
	if (!sh || lfd < 0) {
		perror("raw_prio: setup");
		return 1;
	}
	fflush(stdout);
	pid = bench_fork();
	if (pid < 0) {
		perror("raw_prio: fork");
		return 1;
	}
	if (pid == 0) {
		close(lfd);
		_exit(rp_child(port, &o, sh));
	}
	if (o.pin)
		bench_pin(0);
	return rp_parent(lfd, pid, &o, sh);
}
