/*
 * Unit tests for transport/fault (issue 9): the fault-injection decorator
 * over a mock inner engine that records every byte written, so each
 * fault's effect on the byte stream is checked exactly and
 * deterministically; then TSM_FAULT at context open (off means no
 * decorator at all) and one in-process pub/sub through it.
 */
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#include "transport/fault/fault.h"

/* --- the mock inner engine ------------------------------------------------- */

#define OUT_CAP (1u << 20)

struct mev {
	int kind; /* TSM_OP_RECV/SEND/CONNECT, or 0 = closed */
	tsm__conn *c;
	long n;
	tsm_err err;
};

struct tsm__io {
	const tsm__io_cbs *cbs;
	struct mev q[4096];
	size_t nq;
};

static struct {
	uint8_t out[OUT_CAP];    /* everything written, in order */
	size_t nout;
	tsm_time wtime[4096];    /* when each inner send was made */
	size_t wlen[4096];
	size_t nwrites;
	size_t max_write;        /* > 0: complete at most this many bytes */
	bool fail_send;
	void *rx_buf;            /* the armed receive */
	size_t rx_len;
	tsm__conn *rx_conn;
	int closes;
} mk;

static void mk_push(tsm__io *io, int kind, tsm__conn *c, long n, tsm_err err)
{
	ck_assert_uint_lt(io->nq, 4096);
	io->q[io->nq++] = (struct mev){kind, c, n, err};
}

static tsm__io *mk_io; /* the mock under the decorator */

static tsm_err mk_init(tsm__io **out, const tsm__io_cbs *cbs, bool busy)
{
	(void)busy;
	tsm__io *io = calloc(1, sizeof(*io));
	io->cbs = cbs;
	*out = mk_io = io;
	return TSM_OK;
}

static void mk_fini(tsm__io *io)
{
	free(io);
}

static tsm_err mk_listen(tsm__io *io, tsm__lst *l)
{
	(void)io;
	(void)l;
	return TSM_OK;
}

static void mk_lst_close(tsm__io *io, tsm__lst *l)
{
	l->closing = true;
	io->cbs->on_lst_closed(l);
}

static tsm_err mk_connect(tsm__io *io, tsm__conn *c, const struct sockaddr *sa,
                          socklen_t len)
{
	(void)sa;
	(void)len;
	c->cx.pending = true;
	mk_push(io, TSM_OP_CONNECT, c, 0, TSM_OK);
	return TSM_OK;
}

static tsm_err mk_adopt(tsm__io *io, tsm__conn *c)
{
	(void)io;
	c->connected = true;
	return TSM_OK;
}

static tsm_err mk_recv(tsm__io *io, tsm__conn *c, void *buf, size_t len)
{
	(void)io;
	c->rx.pending = true;
	mk.rx_buf = buf;
	mk.rx_len = len;
	mk.rx_conn = c;
	return TSM_OK;
}

static tsm_err mk_send(tsm__io *io, tsm__conn *c)
{
	size_t total = 0;
	for (int i = 0; i < c->iovcnt; i++)
		total += c->iov[i].iov_len;
	c->tx.pending = true;
	if (mk.fail_send) {
		mk_push(io, TSM_OP_SEND, c, -1, TSM_ERR_PEER_LOST);
		return TSM_OK;
	}
	size_t n = mk.max_write && total > mk.max_write ? mk.max_write : total;
	size_t left = n;
	for (int i = 0; i < c->iovcnt && left; i++) {
		size_t k = c->iov[i].iov_len < left ? c->iov[i].iov_len : left;
		ck_assert_uint_le(mk.nout + k, OUT_CAP);
		memcpy(mk.out + mk.nout, c->iov[i].iov_base, k);
		mk.nout += k;
		left -= k;
	}
	if (mk.nwrites < 4096) {
		mk.wtime[mk.nwrites] = tsm__now();
		mk.wlen[mk.nwrites++] = n;
	}
	mk_push(io, TSM_OP_SEND, c, (long)n, TSM_OK);
	return TSM_OK;
}

static void mk_close(tsm__io *io, tsm__conn *c)
{
	c->closing = true;
	mk.closes++;
	mk_push(io, 0, c, 0, TSM_OK);
}

static int mk_wait(tsm__io *io, tsm_time deadline)
{
	size_t n = io->nq;
	if (n == 0) {
		tsm_time now = tsm__now();
		if (deadline > now) {
			tsm_time d = deadline - now;
			struct timespec ts = {0, d > TSM_MSEC ? TSM_MSEC : d};
			nanosleep(&ts, NULL);
		}
		return 0;
	}
	struct mev v[4096];
	memcpy(v, io->q, n * sizeof(v[0]));
	memmove(io->q, io->q + n, (io->nq - n) * sizeof(v[0]));
	io->nq -= n;
	for (size_t i = 0; i < n; i++) {
		tsm__conn *c = v[i].c;
		if (v[i].kind == 0) {
			io->cbs->on_closed(c);
			continue;
		}
		if (c->closing)
			continue;
		if (v[i].kind == TSM_OP_SEND) {
			c->tx.pending = false;
			io->cbs->on_send(c, v[i].n, v[i].err);
		} else if (v[i].kind == TSM_OP_RECV) {
			c->rx.pending = false;
			io->cbs->on_recv(c, v[i].n, v[i].err);
		} else {
			c->cx.pending = false;
			io->cbs->on_connect(c, v[i].err);
		}
	}
	return (int)n;
}

static void mk_wake(tsm__io *io)
{
	(void)io;
}

static void mk_flush(tsm__io *io)
{
	(void)io;
}

static const tsm__io_ops mk_ops = {
	.size = sizeof(tsm__io_ops), .name = "mock", .init = mk_init,
	.fini = mk_fini, .listen = mk_listen, .lst_close = mk_lst_close,
	.connect = mk_connect, .adopt = mk_adopt, .recv = mk_recv,
	.send = mk_send, .close = mk_close, .wait = mk_wait, .wake = mk_wake,
	.flush = mk_flush,
};

/* Inbound bytes on the armed receive of the mock. */
static void mk_feed(tsm__io *io, const void *data, size_t n)
{
	ck_assert_ptr_nonnull(mk.rx_buf);
	ck_assert_uint_le(n, mk.rx_len);
	memcpy(mk.rx_buf, data, n);
	mk.rx_buf = NULL;
	mk_push(io, TSM_OP_RECV, mk.rx_conn, (long)n, TSM_OK);
}

/* --- the session side (upstream callbacks) --------------------------------- */

static struct {
	bool in_op;              /* inside a decorator operation */
	int sends, recvs, connects, closed;
	long last_send, last_recv;
	tsm_err last_send_err;
	tsm_time send_done_at;
} up;

static void up_accept(tsm__lst *l, int fd, tsm_err err)
{
	(void)l;
	(void)fd;
	(void)err;
}

static void up_connect(tsm__conn *c, tsm_err err)
{
	(void)c;
	ck_assert(!up.in_op);
	ck_assert_int_eq(err, TSM_OK);
	up.connects++;
}

static void up_recv(tsm__conn *c, long n, tsm_err err)
{
	(void)c;
	(void)err;
	ck_assert(!up.in_op);
	up.recvs++;
	up.last_recv = n;
}

static void up_send(tsm__conn *c, long n, tsm_err err)
{
	(void)c;
	ck_assert_msg(!up.in_op, "a send completed inside the call that started it");
	up.sends++;
	up.last_send = n;
	up.last_send_err = err;
	up.send_done_at = tsm__now();
}

static void up_closed(tsm__conn *c)
{
	(void)c;
	up.closed++;
}

static void up_lst_closed(tsm__lst *l)
{
	(void)l;
}

static const tsm__io_cbs up_cbs = {up_accept, up_connect, up_recv, up_send,
                                   up_closed, up_lst_closed};

/* --- harness --------------------------------------------------------------- */

static const tsm__io_ops *fops;
static tsm__io *fio;
static tsm__stats st;
static tsm__conn conn;

static uint64_t cnt(enum tsm__stat i)
{
	return atomic_load(&st.v[i]);
}

static tsm_time t_open;

static void open_with(const char *spec)
{
	tsm__fault_spec sp;
	ck_assert_int_eq(tsm__fault_parse(spec, &sp), TSM_OK);
	memset(&mk, 0, sizeof(mk));
	memset(&up, 0, sizeof(up));
	memset(&st, 0, sizeof(st));
	memset(&conn, 0, sizeof(conn));
	ck_assert_int_eq(tsm__fault_wrap(&mk_ops, &up_cbs, false, &sp, &st, NULL,
	                                 &fops, &fio), TSM_OK);
	ck_assert_str_eq(fops->name, "mock+fault");
	t_open = tsm__now();
	conn.fd = 1000;
	up.in_op = true;
	ck_assert_int_eq(fops->adopt(fio, &conn), TSM_OK);
	up.in_op = false;
}

static void pump_ms(int ms)
{
	tsm_time end = tsm__now() + ms * TSM_MSEC;
	while (tsm__now() < end)
		fops->wait(fio, tsm__now() + TSM_MSEC);
}

static void pump_until(bool (*done)(void), int ms)
{
	tsm_time end = tsm__now() + ms * TSM_MSEC;
	while (!done() && tsm__now() < end)
		fops->wait(fio, tsm__now() + TSM_MSEC);
}

static int want_sends;
static bool sends_done(void)
{
	return up.sends >= want_sends;
}

/* Sends len bytes (value v + i) and waits for the session's completion. */
static void send_seg(uint8_t v, size_t len)
{
	static uint8_t buf[65536];
	ck_assert_uint_le(len, sizeof(buf));
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(v + i);
	conn.iov[0] = (struct iovec){buf, len / 2};
	conn.iov[1] = (struct iovec){buf + len / 2, len - len / 2};
	conn.iovcnt = 2;
	up.in_op = true;
	ck_assert_int_eq(fops->send(fio, &conn), TSM_OK);
	up.in_op = false;
	want_sends = up.sends + 1;
	pump_until(sends_done, 2000);
	ck_assert_int_eq(up.sends, want_sends);
	ck_assert_int_eq(up.last_send, (long)len);
}

static void close_all(void)
{
	if (!conn.closing) {
		up.in_op = true;
		fops->close(fio, &conn);
		up.in_op = false;
	}
	tsm_time end = tsm__now() + 2 * TSM_SEC;
	while (up.closed == 0 && tsm__now() < end)
		fops->wait(fio, tsm__now() + TSM_MSEC);
	ck_assert_int_eq(up.closed, 1);
	fops->fini(fio);
}

/* The bytes segment (v, len) would have. */
static bool seg_at(size_t off, uint8_t v, size_t len)
{
	if (off + len > mk.nout)
		return false;
	for (size_t i = 0; i < len; i++)
		if (mk.out[off + i] != (uint8_t)(v + i))
			return false;
	return true;
}

/* --- TSM_FAULT parsing ------------------------------------------------------- */

START_TEST(parse_good_and_bad)
{
	tsm__fault_spec s;
	char text[400];
	ck_assert_int_eq(tsm__fault_parse("seed=42,loss=0.01,corrupt=0.001,dup=0.5,"
	                                  "reorder=1,delay_us=200,jitter_us=100,"
	                                  "partition=300ms@2000ms,partition_every=5s,"
	                                  "from=100,until=9s,hold_kb=64,ctx=pub", &s),
	                 TSM_OK);
	ck_assert(s.seed_given);
	ck_assert_uint_eq(s.seed, 42);
	ck_assert(s.loss == 0.01 && s.corrupt == 0.001 && s.dup == 0.5 && s.reorder == 1);
	ck_assert_int_eq(s.delay, 200 * TSM_USEC);
	ck_assert_int_eq(s.jitter, 100 * TSM_USEC);
	ck_assert_int_eq(s.part_len, 300 * TSM_MSEC);
	ck_assert_int_eq(s.part_at, 2 * TSM_SEC);
	ck_assert_int_eq(s.part_every, 5 * TSM_SEC);
	ck_assert_int_eq(s.from, 100 * TSM_MSEC);
	ck_assert_int_eq(s.until, 9 * TSM_SEC);
	ck_assert_uint_eq(s.hold_max, 64 * 1024);
	ck_assert_str_eq(s.ctx_name, "pub");
	tsm__fault_describe(&s, text, sizeof(text));
	ck_assert_ptr_nonnull(strstr(text, "seed=42 loss=0.01"));
	ck_assert_ptr_nonnull(strstr(text, "partition=300ms@2000ms/5000ms"));
	ck_assert_int_eq(tsm__fault_parse("delay=2ms, jitter=500us, partition=1s@0/3s,"
	                                  "reorder_wait_ms=50", &s), TSM_OK);
	ck_assert_int_eq(s.reorder_wait, 50 * TSM_MSEC);
	ck_assert_int_eq(s.delay, 2 * TSM_MSEC);
	ck_assert_int_eq(s.jitter, 500 * TSM_USEC);
	ck_assert_int_eq(s.part_every, 3 * TSM_SEC);
	ck_assert(!s.seed_given);
	ck_assert_uint_eq(s.hold_max, TSM_FAULT_HOLD_DEFAULT);
	const char *bad[] = {"loss=2", "loss=-0.1", "bogus=1", "loss", "=1",
	                     "delay_us=-1", "delay=5xs", "partition=100",
	                     "partition=0@1", "partition=100ms@0/50ms",
	                     "from=2s,until=1s", "hold_kb=0", "seed=abc",
	                     "ctx=", "dup=nan"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(tsm__fault_parse(bad[i], &s) == TSM_ERR_BAD_PARAMS,
		              "accepted '%s'", bad[i]);
		ck_assert_ptr_nonnull(strstr(tsm_err_detail(), "TSM_FAULT"));
	}
}
END_TEST

/* --- each fault on the byte stream ----------------------------------------- */

START_TEST(no_fault_passes_everything_in_order)
{
	open_with("seed=1");
	mk.max_write = 7; /* partial writes inside and across segments */
	size_t off = 0;
	for (int i = 0; i < 50; i++)
		send_seg((uint8_t)(i * 3), (size_t)(10 + i));
	pump_ms(20);
	for (int i = 0; i < 50; i++) {
		ck_assert_msg(seg_at(off, (uint8_t)(i * 3), (size_t)(10 + i)),
		              "segment %d differs", i);
		off += (size_t)(10 + i);
	}
	ck_assert_uint_eq(mk.nout, off);
	ck_assert_uint_eq(cnt(ST_FAULT_SEGMENTS), 50);
	ck_assert_uint_eq(cnt(ST_FAULT_LOST) + cnt(ST_FAULT_CORRUPTED) +
	                  cnt(ST_FAULT_DUPLICATED) + cnt(ST_FAULT_REORDERED), 0);
	close_all();
}
END_TEST

START_TEST(loss_drops_whole_segments_and_counts_them)
{
	open_with("seed=1,loss=1");
	for (int i = 0; i < 10; i++)
		send_seg((uint8_t)i, 100);
	pump_ms(10);
	ck_assert_uint_eq(mk.nout, 0);
	ck_assert_uint_eq(cnt(ST_FAULT_LOST), 10);
	ck_assert_int_eq(up.sends, 10); /* the session never knows */
	close_all();
}
END_TEST

/* Which of 64 segments of 4 bytes survive loss=0.5 with this seed. */
static uint64_t loss_pattern(const char *spec)
{
	uint64_t bits = 0;
	open_with(spec);
	for (int i = 0; i < 64; i++)
		send_seg((uint8_t)i, 4);
	pump_ms(5);
	for (size_t off = 0; off < mk.nout; off += 4)
		bits |= 1ull << mk.out[off];
	ck_assert_uint_eq(cnt(ST_FAULT_LOST), 64 - (uint64_t)__builtin_popcountll(bits));
	close_all();
	return bits;
}

START_TEST(same_seed_same_faults)
{
	uint64_t a = loss_pattern("seed=7,loss=0.5");
	uint64_t b = loss_pattern("seed=7,loss=0.5");
	uint64_t c = loss_pattern("seed=8,loss=0.5");
	ck_assert_uint_eq(a, b);
	ck_assert_uint_ne(a, c);
	ck_assert_int_gt(__builtin_popcountll(a), 10);
	ck_assert_int_lt(__builtin_popcountll(a), 54);
}
END_TEST

START_TEST(corrupt_flips_exactly_one_bit)
{
	open_with("seed=3,corrupt=1");
	for (int i = 0; i < 20; i++)
		send_seg((uint8_t)(i * 11), 64);
	pump_ms(5);
	ck_assert_uint_eq(mk.nout, 20 * 64);
	for (int i = 0; i < 20; i++) {
		int bits = 0;
		for (int k = 0; k < 64; k++)
			bits += __builtin_popcount(mk.out[i * 64 + k] ^ (uint8_t)(i * 11 + k));
		ck_assert_int_eq(bits, 1);
	}
	ck_assert_uint_eq(cnt(ST_FAULT_CORRUPTED), 20);
	close_all();
}
END_TEST

START_TEST(dup_writes_a_segment_twice)
{
	open_with("seed=1,dup=1");
	send_seg(10, 30);
	send_seg(90, 40);
	pump_ms(5);
	ck_assert_uint_eq(mk.nout, 140);
	ck_assert(seg_at(0, 10, 30) && seg_at(30, 10, 30));
	ck_assert(seg_at(60, 90, 40) && seg_at(100, 90, 40));
	ck_assert_uint_eq(cnt(ST_FAULT_DUPLICATED), 2);
	close_all();
}
END_TEST

START_TEST(reorder_swaps_neighbours_and_flushes_a_lone_one)
{
	open_with("seed=1,reorder=1,reorder_wait_ms=300");
	send_seg(1, 10);   /* A: held */
	send_seg(50, 20);  /* B: out, then A */
	send_seg(100, 10); /* C: held */
	send_seg(150, 20); /* D: out, then C */
	pump_ms(2);
	ck_assert_uint_eq(mk.nout, 60);
	ck_assert(seg_at(0, 50, 20) && seg_at(20, 1, 10));
	ck_assert(seg_at(30, 150, 20) && seg_at(50, 100, 10));
	ck_assert_uint_eq(cnt(ST_FAULT_REORDERED), 2);
	tsm_time t = tsm__now();
	send_seg(200, 5);  /* E: held; nothing follows */
	pump_ms(2);
	if (tsm__now() - t < 250 * TSM_MSEC) /* not if the machine stalled */
		ck_assert_uint_eq(mk.nout, 60);
	pump_ms(400);
	ck_assert_uint_eq(mk.nout, 65);
	ck_assert(seg_at(60, 200, 5));
	ck_assert_int_ge(mk.wtime[mk.nwrites - 1] - t, 300 * TSM_MSEC);
	ck_assert_uint_eq(cnt(ST_FAULT_REORDERED), 2);
	close_all();
}
END_TEST

START_TEST(delay_and_jitter_keep_stream_order)
{
	open_with("seed=5,delay_us=60000,jitter_us=20000");
	tsm_time sent[6];
	for (int i = 0; i < 6; i++) {
		sent[i] = tsm__now();
		send_seg((uint8_t)(i * 40), 16);
		pump_ms(3);
	}
	pump_ms(150);
	ck_assert_uint_eq(mk.nout, 6 * 16);
	size_t off = 0;
	for (size_t w = 0; w < mk.nwrites; w++) {
		/* every segment in write w was sent at least 40 ms before it */
		ck_assert_int_ge(mk.wtime[w] - sent[off / 16], 40 * TSM_MSEC);
		off += mk.wlen[w];
	}
	for (int i = 0; i < 6; i++)
		ck_assert(seg_at((size_t)i * 16, (uint8_t)(i * 40), 16));
	ck_assert_int_le(mk.wtime[mk.nwrites - 1] - sent[5], 150 * TSM_MSEC);
	ck_assert_uint_eq(cnt(ST_FAULT_DELAYED), 6);
	close_all();
}
END_TEST

static void pump_to(tsm_duration since_open)
{
	while (tsm__now() - t_open < since_open)
		fops->wait(fio, tsm__now() + TSM_MSEC);
}

START_TEST(window_limits_the_faults)
{
	open_with("seed=1,loss=1,from=200ms,until=700ms");
	tsm_time t1 = tsm__now() - t_open;
	send_seg(1, 10);   /* before: passes */
	pump_to(300 * TSM_MSEC);
	tsm_time t2 = tsm__now() - t_open;
	send_seg(2, 10);   /* inside: lost */
	pump_to(800 * TSM_MSEC);
	send_seg(3, 10);   /* after: passes */
	pump_ms(5);
	if (t1 < 200 * TSM_MSEC && t2 < 700 * TSM_MSEC) { /* no stall */
		ck_assert_uint_eq(mk.nout, 20);
		ck_assert(seg_at(0, 1, 10) && seg_at(10, 3, 10));
		ck_assert_uint_eq(cnt(ST_FAULT_LOST), 1);
	}
	close_all();
}
END_TEST

static bool got_recv(void)
{
	return up.recvs > 0;
}

START_TEST(partition_holds_both_directions_then_releases)
{
	static uint8_t rbuf[64];
	open_with("seed=1,partition=600ms@150ms");
	up.in_op = true;
	fops->recv(fio, &conn, rbuf, sizeof(rbuf));
	up.in_op = false;
	send_seg(1, 10);
	pump_ms(5);
	if (tsm__now() - t_open < 150 * TSM_MSEC) /* not if the machine stalled */
		ck_assert_uint_eq(mk.nout, 10);
	pump_to(250 * TSM_MSEC); /* now inside the partition */
	send_seg(2, 10);         /* completes for the session, but is held */
	mk_feed(mk_io, "ping", 4);
	pump_to(400 * TSM_MSEC);
	ck_assert_int_lt(tsm__now() - t_open, 750 * TSM_MSEC);
	ck_assert(!seg_at(10, 2, 10));
	ck_assert_int_eq(up.recvs, 0);
	ck_assert_uint_eq(cnt(ST_FAULT_PARTITIONS), 1);
	ck_assert_uint_ge(cnt(ST_FAULT_HELD), 2);
	pump_until(got_recv, 1000);
	ck_assert_int_ge(tsm__now() - t_open, 750 * TSM_MSEC);
	ck_assert_int_eq(up.recvs, 1);
	ck_assert_int_eq(up.last_recv, 4);
	ck_assert_mem_eq(rbuf, "ping", 4);
	pump_ms(5);
	ck_assert_uint_eq(mk.nout, 20);
	ck_assert(seg_at(10, 2, 10));
	close_all();
}
END_TEST

START_TEST(backpressure_when_the_hold_is_full)
{
	open_with("seed=1,delay_us=60000,hold_kb=1");
	static uint8_t buf[2048];
	conn.iov[0] = (struct iovec){buf, sizeof(buf)};
	conn.iovcnt = 1;
	tsm_time t = tsm__now();
	up.in_op = true;
	fops->send(fio, &conn);
	up.in_op = false;
	want_sends = 1;
	pump_until(sends_done, 1000);
	ck_assert_int_eq(up.sends, 1);
	/* 2 KiB > 1 KiB held: the send waited until the bytes were written */
	ck_assert_int_ge(up.send_done_at - t, 50 * TSM_MSEC);
	ck_assert_uint_eq(mk.nout, sizeof(buf));
	close_all();
}
END_TEST

/* io.h: a send without iovecs waits for room and sends nothing. A send's
 * completion already waits until the hold is below the limit, so the
 * wait that follows it completes at once. */
START_TEST(wait_for_room_without_iovecs)
{
	open_with("seed=1,delay_us=60000,hold_kb=1");
	send_seg(1, 1100); /* over the hold: completes once written */
	ck_assert_uint_eq(mk.nout, 1100);
	conn.iovcnt = 0;
	up.in_op = true;
	fops->send(fio, &conn);
	up.in_op = false;
	want_sends = up.sends + 1;
	pump_until(sends_done, 500);
	ck_assert_int_eq(up.sends, want_sends);
	ck_assert_int_eq(up.last_send, 0);
	pump_ms(5);
	ck_assert_uint_eq(mk.nout, 1100); /* nothing added by the wait */
	ck_assert_uint_eq(cnt(ST_FAULT_SEGMENTS), 1);
	close_all();
}
END_TEST

START_TEST(close_writes_what_is_held_then_closes_once)
{
	open_with("seed=1,delay_us=200000");
	tsm_time t = tsm__now();
	send_seg(7, 100);
	up.in_op = true;
	fops->close(fio, &conn);
	up.in_op = false;
	ck_assert_int_eq(mk.closes, 0); /* lingering */
	pump_ms(20);
	if (tsm__now() - t < 150 * TSM_MSEC)
		ck_assert_int_eq(up.closed, 0);
	pump_ms(300);
	ck_assert_uint_eq(mk.nout, 100);
	ck_assert(seg_at(0, 7, 100));
	ck_assert_int_eq(up.closed, 1);
	ck_assert_int_eq(mk.closes, 1);
	ck_assert_uint_eq(cnt(ST_FAULT_DISCARDED), 0);
	fops->fini(fio);
}
END_TEST

START_TEST(close_in_a_long_partition_discards_and_counts)
{
	open_with("seed=1,partition=5s@0");
	pump_ms(2);
	send_seg(7, 100);
	up.in_op = true;
	fops->close(fio, &conn);
	up.in_op = false;
	pump_ms((int)(TSM_FAULT_LINGER / TSM_MSEC) + 50);
	ck_assert_int_eq(up.closed, 1);
	ck_assert_uint_eq(mk.nout, 0);
	ck_assert_uint_eq(cnt(ST_FAULT_DISCARDED), 100);
	fops->fini(fio);
}
END_TEST

START_TEST(broken_socket_fails_the_next_send)
{
	open_with("seed=1");
	mk.fail_send = true;
	send_seg(1, 10); /* completes for the session; the write fails */
	pump_ms(5);
	static uint8_t b[4];
	conn.iov[0] = (struct iovec){b, 4};
	conn.iovcnt = 1;
	up.in_op = true;
	fops->send(fio, &conn);
	up.in_op = false;
	want_sends = 2;
	pump_until(sends_done, 500);
	ck_assert_int_eq(up.sends, 2);
	ck_assert_int_eq(up.last_send, -1);
	ck_assert_int_eq(up.last_send_err, TSM_ERR_PEER_LOST);
	close_all();
}
END_TEST

static bool got_connect(void)
{
	return up.connects > 0;
}

START_TEST(connect_and_receive_pass_through)
{
	tsm__fault_spec sp;
	static uint8_t rbuf[32];
	ck_assert_int_eq(tsm__fault_parse("seed=1,delay_us=1000", &sp), TSM_OK);
	memset(&mk, 0, sizeof(mk));
	memset(&up, 0, sizeof(up));
	memset(&conn, 0, sizeof(conn));
	ck_assert_int_eq(tsm__fault_wrap(&mk_ops, &up_cbs, false, &sp, &st, NULL,
	                                 &fops, &fio), TSM_OK);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	conn.fd = 1001;
	up.in_op = true;
	ck_assert_int_eq(fops->connect(fio, &conn, (struct sockaddr *)&sa, sizeof(sa)),
	                 TSM_OK);
	up.in_op = false;
	pump_until(got_connect, 500);
	ck_assert_int_eq(up.connects, 1);
	ck_assert(conn.connected);
	up.in_op = true;
	fops->recv(fio, &conn, rbuf, sizeof(rbuf));
	up.in_op = false;
	ck_assert(conn.rx.pending);
	mk_feed(mk_io, "hello", 5);
	pump_until(got_recv, 500);
	ck_assert_int_eq(up.last_recv, 5);
	ck_assert_mem_eq(rbuf, "hello", 5);
	close_all();
}
END_TEST

/* --- at context open ------------------------------------------------------- */

static tsm_ctx *open_ctx(const char *name, const char *listen, const char *dial,
                         tsm_err want)
{
	tsm_ctx_params p;
	tsm_ctx *c = NULL;
	tsm_ctx_params_init(&p);
	p.insecure = 1;
	p.name = name;
	p.log_level = TSM_LOG_ERROR;
	p.listen[0] = listen;
	p.connect[0] = dial;
	ck_assert_int_eq(tsm_ctx_open(&c, &p), want);
	return c;
}

static uint64_t stat(tsm_ctx *c, const char *n)
{
	uint64_t v = 0;
	ck_assert_int_eq(tsm_stats_get(c, n, &v), TSM_OK);
	return v;
}

START_TEST(off_means_no_decorator)
{
	unsetenv("TSM_FAULT");
	tsm_ctx *c = open_ctx("a", "inproc://fault-off", NULL, TSM_OK);
	ck_assert_ptr_null(strstr(tsm_ctx_transport(c), "fault"));
	ck_assert(c->io_ops == &tsm__io_uring_ops || c->io_ops == &tsm__io_epoll_ops);
	ck_assert_uint_eq(stat(c, "fault.enabled"), 0);
	tsm_ctx_close(c);
	setenv("TSM_FAULT", "", 1);
	c = open_ctx("a", "inproc://fault-off", NULL, TSM_OK);
	ck_assert_uint_eq(stat(c, "fault.enabled"), 0);
	tsm_ctx_close(c);
	setenv("TSM_FAULT", "seed=1,loss=1,ctx=someone-else", 1);
	c = open_ctx("a", "inproc://fault-off", NULL, TSM_OK);
	ck_assert_uint_eq(stat(c, "fault.enabled"), 0);
	tsm_ctx_close(c);
	setenv("TSM_FAULT", "seed=1,loss=7", 1);
	open_ctx("a", "inproc://fault-off", NULL, TSM_ERR_BAD_PARAMS);
	ck_assert_ptr_nonnull(strstr(tsm_err_detail(), "TSM_FAULT"));
	unsetenv("TSM_FAULT");
}
END_TEST

START_TEST(on_is_visible_and_delivers_through_delay)
{
	setenv("TSM_FAULT", "seed=9,delay_us=2000,jitter_us=1500", 1);
	tsm_ctx *a = open_ctx("a", "inproc://fault-on", NULL, TSM_OK);
	tsm_ctx *b = open_ctx("b", NULL, "inproc://fault-on", TSM_OK);
	unsetenv("TSM_FAULT");
	ck_assert_ptr_nonnull(strstr(tsm_ctx_transport(a), "+fault"));
	ck_assert_uint_eq(stat(a, "fault.enabled"), 1);
	tsm_sub *s;
	tsm_pub *p;
	ck_assert_int_eq(tsm_sub_open(&s, b, "f/x", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_open(&p, a, "f/x", NULL), TSM_OK);
	ck_assert_int_eq(tsm_pub_wait_subscribers(p, 1, 5 * TSM_SEC), TSM_OK);
	enum { N = 300 };
	for (uint32_t i = 0; i < N; i++) {
		uint8_t buf[3000];
		size_t len = i % 10 == 9 ? sizeof(buf) : 8;
		memset(buf, (int)(i & 0xff), len);
		memcpy(buf, &i, sizeof(i));
		ck_assert_int_eq(tsm_publish(p, buf, len, NULL), TSM_OK);
	}
	for (uint32_t i = 0; i < N; i++) {
		tsm_msg *m;
		ck_assert_int_eq(tsm_sub_recv(s, &m, 5 * TSM_SEC), TSM_OK);
		uint32_t got;
		memcpy(&got, tsm_msg_data(m), sizeof(got));
		ck_assert_uint_eq(got, i); /* once, in order */
		ck_assert_uint_eq(tsm_msg_size(m), i % 10 == 9 ? 3000 : 8);
		const uint8_t *d = tsm_msg_data(m);
		for (size_t k = 4; k < tsm_msg_size(m); k++)
			ck_assert_uint_eq(d[k], i & 0xff);
		tsm_msg_free(m);
	}
	ck_assert_uint_gt(stat(a, "fault.delayed"), 0);
	ck_assert_uint_gt(stat(b, "fault.delayed"), 0); /* both directions */
	ck_assert_uint_eq(stat(a, "session.closed"), 0);
	tsm_pub_close(p);
	tsm_sub_close(s);
	tsm_ctx_close(b);
	tsm_ctx_close(a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fault");
	TCase *t = tcase_create("decorator");
	tcase_set_timeout(t, 30);
	tcase_add_test(t, parse_good_and_bad);
	tcase_add_test(t, no_fault_passes_everything_in_order);
	tcase_add_test(t, loss_drops_whole_segments_and_counts_them);
	tcase_add_test(t, same_seed_same_faults);
	tcase_add_test(t, corrupt_flips_exactly_one_bit);
	tcase_add_test(t, dup_writes_a_segment_twice);
	tcase_add_test(t, reorder_swaps_neighbours_and_flushes_a_lone_one);
	tcase_add_test(t, delay_and_jitter_keep_stream_order);
	tcase_add_test(t, window_limits_the_faults);
	tcase_add_test(t, partition_holds_both_directions_then_releases);
	tcase_add_test(t, backpressure_when_the_hold_is_full);
	tcase_add_test(t, wait_for_room_without_iovecs);
	tcase_add_test(t, close_writes_what_is_held_then_closes_once);
	tcase_add_test(t, close_in_a_long_partition_discards_and_counts);
	tcase_add_test(t, broken_socket_fails_the_next_send);
	tcase_add_test(t, connect_and_receive_pass_through);
	suite_add_tcase(s, t);
	TCase *c = tcase_create("context");
	tcase_set_timeout(c, 30);
	tcase_add_test(c, off_means_no_decorator);
	tcase_add_test(c, on_is_visible_and_delivers_through_delay);
	suite_add_tcase(s, c);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
