/*
 * bench/raw_fanout.c - raw TCP floor of the fan-out case (S1): one
 * publisher process (CPU 0) with one loopback connection to each of N
 * subscriber processes (all on CPU 1). Modes and results as fan.h says.
 *
 *   cost  length-prefixed messages are copied into one 64 KiB batch,
 *         which is written to every connection in turn (blocking), as the
 *         raw stream floor batches; the least a program can spend per
 *         message and subscriber.
 *   lat   each message is sent at once to every connection, without
 *         blocking (MSG_DONTWAIT): a connection whose socket buffer is
 *         full loses that message (counted), and one that cannot take
 *         the rest of a started message within 100 ms is given up. So a
 *         stalled reader (--stalled: subscriber 0 never reads) costs the
 *         publisher no waiting, the best a raw publisher can do.
 *
 * Every subscriber checks every size and sequence number.
 *
 * Output, parsed by bench/run.sh:
 *   raw: case=fanout mode=cost subs=4 ... cpu_ns_per_msg=... msgs_per_s=...
 */
#include "bench_util.h"
#include "fan.h"
#include "raw_net.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RF_LEN 4                    /* length prefix */
#define RF_BATCH (64 * BENCH_KIB)
#define RF_RXBUF (256 * BENCH_KIB)
#define RF_GIVE_UP_MS 100           /* a started message not finished */
#define RF_SETUP_MS 10000

struct rf_pub {
	const struct fan_opts *o;
	struct fan_shared *sh;
	int fd[FAN_MAX];
	int dead[FAN_MAX];
	unsigned char *batch, *rec;
	size_t used;
};

/* ---- publisher ---- */

static int rf_flush_batch(struct rf_pub *p)
{
	for (int i = 0; i < (int)p->o->subs; i++) {
		if (rn_send_all(p->fd[i], p->batch, p->used) < 0) {
			perror("raw_fanout: send");
			return -1;
		}
	}
	p->used = 0;
	return 0;
}

static int rf_publish_cost(void *arg, const unsigned char *buf, uint64_t seq)
{
	struct rf_pub *p = arg;
	size_t rec = RF_LEN + p->o->size;

	(void)seq;
	if (!buf || p->used + rec > RF_BATCH) {
		if (p->used && rf_flush_batch(p) < 0)
			return -1;
		if (!buf)
			return 0;
	}
	rn_put_u32(p->batch + p->used, (uint32_t)p->o->size);
	memcpy(p->batch + p->used + RF_LEN, buf, p->o->size);
	p->used += rec;
	return 0;
}

/* Finish a started message on subscriber i, or give i up. */
static int rf_finish(struct rf_pub *p, int i, const unsigned char *rest,
                     size_t n)
{
	int64_t until = bench_now_ns() + (int64_t)RF_GIVE_UP_MS * 1000000;

	while (n > 0) {
		struct pollfd pf = {.fd = p->fd[i], .events = POLLOUT};
		int64_t left_ms = (until - bench_now_ns()) / 1000000;
		ssize_t r;

		if (left_ms <= 0 || poll(&pf, 1, (int)left_ms) <= 0) {
			fprintf(stderr, "raw_fanout: subscriber %d stalled: "
			        "given up\n", i);
			p->dead[i] = 1;
			return 0;
		}
		r = send(p->fd[i], rest, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r < 0)
			return -1;
		rest += r;
		n -= (size_t)r;
	}
	return 0;
}

static int rf_publish_lat(void *arg, const unsigned char *buf, uint64_t seq)
{
	struct rf_pub *p = arg;
	size_t n = RF_LEN + p->o->size;

	(void)seq;
	if (!buf)
		return 0;
	rn_put_u32(p->rec, (uint32_t)p->o->size);
	memcpy(p->rec + RF_LEN, buf, p->o->size);
	for (int i = 0; i < (int)p->o->subs; i++) {
		ssize_t r;

		if (p->dead[i]) {
			atomic_fetch_add(&p->sh->sub[i].drops, 1);
			continue;
		}
		r = send(p->fd[i], p->rec, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			atomic_fetch_add(&p->sh->sub[i].drops, 1);
			continue;
		}
		if (r < 0) {
			perror("raw_fanout: send");
			return -1;
		}
		if ((size_t)r < n && rf_finish(p, i, p->rec + r, n - (size_t)r))
			return -1;
	}
	return 0;
}

/* Accept every subscriber; each says its index in one byte. */
static int rf_accept_all(int lfd, struct rf_pub *p)
{
	if (rn_timeout(lfd, RF_SETUP_MS) < 0)
		return -1;
	for (uint64_t k = 0; k < p->o->subs; k++) {
		unsigned char idx;
		int fd = rn_accept(lfd);

		if (fd < 0 || rn_timeout(fd, RF_SETUP_MS) < 0 ||
		    rn_recv_all(fd, &idx, 1) != 0 || idx >= p->o->subs ||
		    p->fd[idx] >= 0) {
			if (fd >= 0)
				close(fd);
			return -1;
		}
		p->fd[idx] = fd;
	}
	return 0;
}

static int rf_parent(int lfd, const pid_t *kids, const struct fan_opts *o,
                     struct fan_shared *sh)
{
	struct rf_pub p = {.o = o, .sh = sh};
	struct fan_result r = {0};
	int rc = -1;

	for (int i = 0; i < FAN_MAX; i++)
		p.fd[i] = -1;
	p.batch = malloc(RF_BATCH);
	p.rec = malloc(RF_LEN + o->size);
	if (!p.batch || !p.rec || rf_accept_all(lfd, &p) < 0) {
		perror("raw_fanout: setup");
		atomic_store(&sh->stop, 1);
	} else {
		rc = fan_run(o, sh, o->lat ? rf_publish_lat : rf_publish_cost,
		             &p, &r);
	}
	close(lfd);
	for (int i = 0; i < (int)o->subs; i++)
		if (p.fd[i] >= 0)
			shutdown(p.fd[i], SHUT_WR); /* readers see EOF */
	for (int i = 0; i < (int)o->subs; i++)
		if (bench_wait_child(kids[i], "raw_fanout subscriber") < 0)
			rc = -1;
	if (r.sent && fan_report("raw", "", o, sh, &r) < 0)
		rc = -1;
	for (int i = 0; i < (int)o->subs; i++)
		if (p.fd[i] >= 0)
			close(p.fd[i]);
	free(p.batch);
	free(p.rec);
	return rc == 0 ? 0 : 1;
}

/* ---- subscribers ---- */

/* cost: parse a stream of fixed-size records out of large reads. */
static int rf_sub_stream(int fd, const struct fan_opts *o,
                         struct fan_shared *sh, int i)
{
	size_t rec = RF_LEN + o->size, have = 0;
	unsigned char *buf = malloc(RF_RXBUF + rec);
	int rc = -1;

	while (buf && !fan_sub_done(sh, i)) {
		ssize_t r = recv(fd, buf + have, RF_RXBUF, 0);
		size_t off = 0;
		int64_t now = bench_now_ns();

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r == 0 && have == 0 ? 0 : -1;
			break;
		}
		have += (size_t)r;
		for (; have - off >= rec; off += rec)
			fan_sub_check(o, sh, i, buf + off + RF_LEN,
			              rn_get_u32(buf + off), now);
		memmove(buf, buf + off, have - off);
		have -= off;
	}
	if (buf && fan_sub_done(sh, i))
		rc = 0;
	free(buf);
	return rc;
}

/* lat: one record at a time, timed as soon as it is complete. */
static int rf_sub_each(int fd, const struct fan_opts *o,
                       struct fan_shared *sh, int i)
{
	size_t rec = RF_LEN + o->size;
	unsigned char *buf = malloc(rec);
	int rc = -1;

	while (buf && !fan_sub_done(sh, i)) {
		int r = rn_recv_all(fd, buf, rec);

		if (r != 0) {
			rc = r == 1 ? 0 : -1;
			break;
		}
		fan_sub_check(o, sh, i, buf + RF_LEN, rn_get_u32(buf),
		              bench_now_ns());
	}
	if (buf && fan_sub_done(sh, i))
		rc = 0;
	free(buf);
	return rc;
}

static int rf_child(int i, uint16_t port, const struct fan_opts *o,
                    struct fan_shared *sh)
{
	unsigned char idx = (unsigned char)i;
	int fd, rc;

	if (o->pin)
		bench_pin(1);
	fd = rn_connect("127.0.0.1", port);
	if (fd < 0 || rn_send_all(fd, &idx, 1) < 0) {
		perror("raw_fanout subscriber: connect");
		return 1;
	}
	if (!fan_active(o, i)) {
		while (!atomic_load(&sh->stop)) /* subscribed, never reads */
			bench_sleep_until(bench_now_ns() + 10000000);
		rc = 0;
	} else {
		rc = o->lat ? rf_sub_each(fd, o, sh, i)
		            : rf_sub_stream(fd, o, sh, i);
	}
	atomic_store(&sh->sub[i].done, rc == 0 ? 1 : -1);
	close(fd);
	return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {FAN_LONGOPTS, {NULL, 0, NULL, 0}};
	struct fan_opts o;
	struct fan_shared *sh;
	pid_t kids[FAN_MAX];
	uint16_t port;
	int lfd;

	if (fan_parse(argc, argv, lo, &o, NULL) < 0) {
		fprintf(stderr, "usage: raw_fanout" FAN_USAGE, "raw_fanout");
		return 2;
	}
	sh = fan_shared_map(&o);
	lfd = rn_listen("127.0.0.1", FAN_MAX, &port);
	if (!sh || lfd < 0) {
		perror("raw_fanout: setup");
		return 1;
	}
	fflush(stdout);
	for (int i = 0; i < (int)o.subs; i++) {
		kids[i] = bench_fork();
		if (kids[i] < 0) {
			perror("raw_fanout: fork");
			return 1;
		}
		if (kids[i] == 0) {
			close(lfd);
			_exit(rf_child(i, port, &o, sh));
		}
	}
	if (o.pin)
		bench_pin(0);
	return rf_parent(lfd, kids, &o, sh);
}
