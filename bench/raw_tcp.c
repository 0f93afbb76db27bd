/*
 * bench/raw_tcp.c - the raw TCP floors that libtsm is measured against.
 *
 * Two processes over loopback TCP (TCP_NODELAY), the parent pinned to
 * CPU 0 and the child to CPU 1, as tsm_bench does, so that a ratio
 * compares the library with the least a program could do over the same
 * kernel path:
 *
 *   rt      ping-pong of one N-byte message; the parent takes one
 *           CLOCK_MONOTONIC sample per round trip after a warm-up.
 *           Messages over 64 KiB are received through a 64 KiB staging
 *           buffer (see raw_recv_some).
 *           --busy makes both receivers spin on recv(MSG_DONTWAIT)
 *           instead of sleeping in the kernel.
 *   stream  the parent sends count length-prefixed N-byte messages,
 *           batched in user space into 64 KiB writes (large messages go
 *           out one writev each, header and payload, without a copy);
 *           the child parses every message, checks its sequence number
 *           and reports when the last one arrived.
 *
 * Output is one line that bench/run.sh parses:
 *   raw: case=rt mode=blocking size=64 iters=... p50_us=... ...
 *   raw: case=stream size=64 count=... secs=... msgs_per_s=... mb_per_s=...
 */
#include "bench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define RAW_BATCH (64 * BENCH_KIB) /* user-space batch per write() */
#define RAW_RXBUF (256 * BENCH_KIB) /* stream receiver's read size */
#define RAW_STAGE (64 * BENCH_KIB)  /* rt: larger messages are staged */
#define RAW_LEN_BYTES 4             /* length prefix, little-endian */
#define RAW_SEQ_BYTES 8             /* payload starts with its sequence */

struct raw_opts {
	int stream;      /* 0: rt, 1: stream */
	int busy;        /* rt: receivers spin */
	int pin;
	size_t size;
	uint64_t iters;  /* rt samples */
	uint64_t warmup; /* rt round trips not sampled */
	uint64_t count;  /* stream messages */
};

/* ---- sockets ---- */

static int raw_nodelay(int fd)
{
	int one = 1;

	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Listen on 127.0.0.1 with a kernel-chosen port, stored in *port. */
static int raw_listen(uint16_t *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(fd, 1) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static int raw_connect(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(port);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    raw_nodelay(fd) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int raw_accept(int lfd)
{
	int fd = accept(lfd, NULL, NULL);

	if (fd >= 0 && raw_nodelay(fd) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int raw_send_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/*
 * One recv() towards buf + got. A message larger than RAW_STAGE is read
 * through a cache-hot staging buffer and copied out: on the 2-core VMs
 * here, recv() straight into a 1 MiB buffer made a 1 MiB round trip 3x
 * slower (the kernel's copy into a large destination dominates), and
 * libtsm itself reads into fixed-size buffers, so a floor without
 * staging would flatter the library.
 */
static ssize_t raw_recv_some(int fd, char *buf, size_t got, size_t n,
                             int flags)
{
	static char stage[RAW_STAGE];
	size_t want = n - got;
	ssize_t r;

	if (n <= RAW_STAGE)
		return recv(fd, buf + got, want, flags);
	r = recv(fd, stage, want < RAW_STAGE ? want : RAW_STAGE, flags);
	if (r > 0)
		memcpy(buf + got, stage, (size_t)r);
	return r;
}

/*
 * Read exactly n bytes. Returns 0, 1 on a clean EOF before the first
 * byte (the peer is done), -1 on error or a short message. busy spins on
 * MSG_DONTWAIT instead of sleeping, which is what a busy-polling
 * receiver costs at least.
 */
static int raw_recv_all(int fd, void *buf, size_t n, int busy)
{
	size_t got = 0;
	int flags = busy ? MSG_DONTWAIT : 0;

	while (got < n) {
		ssize_t r = raw_recv_some(fd, buf, got, n, flags);

		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r == 0)
			return got == 0 ? 1 : -1;
		if (errno == EINTR || (busy && errno == EAGAIN))
			continue;
		return -1;
	}
	return 0;
}

/* ---- rt: ping-pong ---- */

static int rt_echo(int fd, const struct raw_opts *o)
{
	char *buf = malloc(o->size);
	int rc;

	if (!buf)
		return -1;
	while ((rc = raw_recv_all(fd, buf, o->size, o->busy)) == 0) {
		if (raw_send_all(fd, buf, o->size) < 0) {
			rc = -1;
			break;
		}
	}
	free(buf);
	return rc == 1 ? 0 : -1;
}

/* Runs warm-up + iters round trips; samples[i] gets the i-th sampled one. */
static int rt_ping(int fd, const struct raw_opts *o, int64_t *samples)
{
	char *buf = calloc(1, o->size);
	uint64_t total = o->warmup + o->iters;
	int rc = 0;

	if (!buf)
		return -1;
	for (uint64_t i = 0; i < total && rc == 0; i++) {
		int64_t t0 = bench_now_ns();

		if (raw_send_all(fd, buf, o->size) < 0 ||
		    raw_recv_all(fd, buf, o->size, o->busy) != 0)
			rc = -1;
		if (i >= o->warmup)
			samples[i - o->warmup] = bench_now_ns() - t0;
	}
	free(buf);
	return rc;
}

static void rt_report(const struct raw_opts *o, int64_t *samples)
{
	struct bench_lat l = bench_lat_compute(samples, o->iters);

	printf("raw: case=rt mode=%s size=%zu iters=%llu p50_us=%.2f "
	       "p99_us=%.2f p999_us=%.2f max_us=%.2f\n",
	       o->busy ? "busy" : "blocking", o->size,
	       (unsigned long long)o->iters, l.p50, l.p99, l.p999, l.max);
}

/* ---- stream ---- */

static void raw_put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t raw_get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Small messages: copy each one into a 64 KiB batch, one send per batch. */
static int stream_send_batched(int fd, const struct raw_opts *o,
                               const unsigned char *msg)
{
	unsigned char *batch = malloc(RAW_BATCH);
	size_t used = 0, rec = RAW_LEN_BYTES + o->size;
	int rc = 0;

	if (!batch)
		return -1;
	for (uint64_t seq = 0; seq < o->count && rc == 0; seq++) {
		if (used + rec > RAW_BATCH) {
			rc = raw_send_all(fd, batch, used);
			used = 0;
		}
		raw_put_u32(batch + used, (uint32_t)o->size);
		memcpy(batch + used + RAW_LEN_BYTES, msg, o->size);
		bench_put_seq(batch + used + RAW_LEN_BYTES, seq);
		used += rec;
	}
	if (rc == 0 && used > 0)
		rc = raw_send_all(fd, batch, used);
	free(batch);
	return rc;
}

/* writev until both iovecs are out; advances them on short writes. */
static int raw_writev_all(int fd, struct iovec *iov, int cnt)
{
	while (cnt > 0) {
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
		ssize_t r = sendmsg(fd, &mh, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		while (cnt > 0 && (size_t)r >= iov->iov_len) {
			r -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

/* Large messages: a copy would cost more than the batching saves. */
static int stream_send_large(int fd, const struct raw_opts *o,
                             unsigned char *msg)
{
	unsigned char hdr[RAW_LEN_BYTES];

	raw_put_u32(hdr, (uint32_t)o->size);
	for (uint64_t seq = 0; seq < o->count; seq++) {
		struct iovec iov[2] = {{hdr, sizeof(hdr)}, {msg, o->size}};

		bench_put_seq(msg, seq);
		if (raw_writev_all(fd, iov, 2) < 0)
			return -1;
	}
	return 0;
}

static int stream_send(int fd, const struct raw_opts *o,
                       struct bench_shared *sh)
{
	unsigned char *msg = malloc(o->size);
	int rc;

	if (!msg)
		return -1;
	memset(msg, 0xa5, o->size);
	atomic_store(&sh->t_start, bench_now_ns());
	if (RAW_LEN_BYTES + o->size <= RAW_BATCH / 2)
		rc = stream_send_batched(fd, o, msg);
	else
		rc = stream_send_large(fd, o, msg);
	free(msg);
	return rc;
}

/*
 * Receiver-side parser: a header is the length prefix plus the sequence
 * number at the start of the payload; it may be split across reads, so it
 * is gathered in hdr. The rest of the payload is skipped.
 */
struct stream_parser {
	unsigned char hdr[RAW_LEN_BYTES + RAW_SEQ_BYTES];
	size_t hdr_have;
	size_t body_left;
	uint64_t count;
	size_t size;
	int bad;
};

static void parser_header(struct stream_parser *p, const unsigned char *h)
{
	uint32_t len = raw_get_u32(h);
	uint64_t seq = bench_get_seq(h + RAW_LEN_BYTES);

	if (len != p->size || seq != p->count) {
		fprintf(stderr, "raw: bad message: len %u (want %zu), seq %llu "
		        "(want %llu)\n", len, p->size, (unsigned long long)seq,
		        (unsigned long long)p->count);
		p->bad = 1;
	}
	p->body_left = len - RAW_SEQ_BYTES;
	if (p->body_left == 0)
		p->count++;
}

/* Consume n bytes of b; returns how many were used (all, unless bad). */
static size_t parser_feed(struct stream_parser *p, const unsigned char *b,
                          size_t n)
{
	size_t off = 0, hlen = sizeof(p->hdr);

	while (off < n && !p->bad) {
		if (p->body_left > 0) {
			size_t take = n - off < p->body_left ? n - off : p->body_left;

			off += take;
			p->body_left -= take;
			p->count += p->body_left == 0;
		} else if (p->hdr_have == 0 && n - off >= hlen) {
			parser_header(p, b + off);
			off += hlen;
		} else {
			size_t take = hlen - p->hdr_have;

			take = take < n - off ? take : n - off;
			memcpy(p->hdr + p->hdr_have, b + off, take);
			p->hdr_have += take;
			off += take;
			if (p->hdr_have == hlen) {
				p->hdr_have = 0;
				parser_header(p, p->hdr);
			}
		}
	}
	return off;
}

static int stream_recv(int fd, const struct raw_opts *o,
                       struct bench_shared *sh)
{
	struct stream_parser p = {.size = o->size};
	unsigned char *buf = malloc(RAW_RXBUF);

	if (!buf)
		return -1;
	while (p.count < o->count && !p.bad) {
		ssize_t r = recv(fd, buf, RAW_RXBUF, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		parser_feed(&p, buf, (size_t)r);
	}
	atomic_store(&sh->t_end, bench_now_ns());
	atomic_store(&sh->received, p.count);
	free(buf);
	return p.count == o->count && !p.bad ? 0 : -1;
}

static void stream_report(const struct raw_opts *o, struct bench_shared *sh)
{
	double secs = (double)(atomic_load(&sh->t_end) -
	                       atomic_load(&sh->t_start)) / 1e9;
	double mps = (double)o->count / secs;

	printf("raw: case=stream size=%zu count=%llu secs=%.3f "
	       "msgs_per_s=%.0f mb_per_s=%.1f\n", o->size,
	       (unsigned long long)o->count, secs, mps,
	       mps * (double)o->size / 1e6);
}

/* ---- processes ---- */

/* The child: echo (rt) or parse (stream) until the parent is done. */
static int raw_child(uint16_t port, const struct raw_opts *o,
                     struct bench_shared *sh)
{
	int fd, rc;

	if (o->pin)
		bench_pin(1);
	fd = raw_connect(port);
	if (fd < 0) {
		perror("raw: connect");
		return 1;
	}
	rc = o->stream ? stream_recv(fd, o, sh) : rt_echo(fd, o);
	close(fd);
	return rc == 0 ? 0 : 1;
}

/* The parent: measure, then wait for the child's verdict. */
static int raw_parent(int lfd, pid_t child, const struct raw_opts *o,
                      struct bench_shared *sh)
{
	int64_t *samples = o->stream ? NULL : calloc(o->iters, sizeof(int64_t));
	int fd = raw_accept(lfd);
	int rc = -1;

	close(lfd); /* a child still in the backlog gets a reset, not a hang */
	if (fd < 0 || (!o->stream && !samples)) {
		perror("raw: accept/alloc");
		goto out;
	}
	rc = o->stream ? stream_send(fd, o, sh) : rt_ping(fd, o, samples);
	if (rc < 0)
		perror("raw: transfer");
out:
	if (fd >= 0)
		shutdown(fd, SHUT_WR); /* the echoing child sees EOF and exits */
	if (bench_wait_child(child, "raw_tcp child") < 0)
		rc = -1;
	if (rc == 0 && o->stream)
		stream_report(o, sh);
	else if (rc == 0)
		rt_report(o, samples);
	if (fd >= 0)
		close(fd);
	free(samples);
	return rc == 0 ? 0 : 1;
}

/* ---- options ---- */

static void raw_usage(void)
{
	fprintf(stderr,
	        "usage: raw_tcp rt [--busy] [--size B] [--iters N] [--warmup N]\n"
	        "       raw_tcp stream [--size B] [--count N]\n"
	        "       common: [--no-pin]\n"
	        "sizes take K/KiB/M/MiB suffixes; stream needs size >= 8\n");
}

static int raw_parse(int argc, char **argv, struct raw_opts *o)
{
	static const struct option lo[] = {
		{"busy", no_argument, NULL, 'b'},
		{"size", required_argument, NULL, 's'},
		{"iters", required_argument, NULL, 'i'},
		{"warmup", required_argument, NULL, 'w'},
		{"count", required_argument, NULL, 'c'},
		{"no-pin", no_argument, NULL, 'P'},
		{NULL, 0, NULL, 0},
	};
	int c, bad = 0;

	if (argc < 2)
		return -1;
	o->stream = strcmp(argv[1], "stream") == 0;
	if (!o->stream && strcmp(argv[1], "rt") != 0)
		return -1;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'b': o->busy = 1; break;
		case 's': bad |= bench_parse_size(optarg, &o->size); break;
		case 'i': bad |= bench_parse_u64(optarg, &o->iters); break;
		case 'w': bad |= bench_parse_u64(optarg, &o->warmup); break;
		case 'c': bad |= bench_parse_u64(optarg, &o->count); break;
		case 'P': o->pin = 0; break;
		default: bad = -1;
		}
	}
	if (o->stream && (o->size < RAW_SEQ_BYTES || o->size > UINT32_MAX))
		bad = -1;
	return bad || optind != argc ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct raw_opts o = {.pin = 1, .size = 64, .iters = 20000,
	                     .warmup = 2000, .count = 1000000};
	struct bench_shared *sh;
	uint16_t port;
	int lfd;
	pid_t pid;

	if (raw_parse(argc, argv, &o) < 0) {
		raw_usage();
		return 2;
	}
	sh = bench_shared_map();
	lfd = raw_listen(&port);
	if (!sh || lfd < 0) {
		perror("raw: setup");
		return 1;
	}
	fflush(stdout);
	pid = bench_fork();
	if (pid < 0) {
		perror("raw: fork");
		return 1;
	}
	if (pid == 0) {
		close(lfd);
		_exit(raw_child(port, &o, sh));
	}
	if (o.pin)
		bench_pin(0);
	return raw_parent(lfd, pid, &o, sh);
}
