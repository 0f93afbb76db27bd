/*
 * tests/unit/test_fault_peer.c - publisher, subscriber and checker with
 * strict oracles, for the fault-injection tests (issue 9): used by
 * tests/integration/test_fault.sh and test_fault_netns.sh, not a test on
 * its own.
 *
 *   test_fault_peer pub   [common] [pub options] --out FILE
 *   test_fault_peer sub   [common] [sub options] --out FILE
 *   test_fault_peer check PUB_FILE SUB_FILE [check options]
 *
 * Unlike `tsm pub/sub`, it sets the session timers (so a partition longer
 * than session_timeout fits in a short test), records the id and publish
 * time of every message, every drop reported to tsm_outcome_fn (id and
 * reason) on both sides, the times sessions closed and came up (polled
 * from the stats), and checks lateness against tsm_msg_deadline. `check`
 * then proves, message by message:
 *
 *   - nothing was delivered twice, corrupted (checksum over the whole
 *     payload), partial (size), out of order in its lane, or after its
 *     deadline (more than --late-slack-ms past it when the application
 *     got it);
 *   - nothing was both delivered and reported dropped;
 *   - every message is delivered, or dropped with a reported reason, or
 *     (only where sessions broke) was in flight when a session broke: it
 *     was published at most --attrib-ms before a session close, on either
 *     side. With --all there may be no message of that last kind, and no
 *     drop except the reasons given with --allow;
 *   - the session came back: every message published more than
 *     --settle-ms after the last break arrived (and there were at least
 *     --min-after of them);
 *   - --min-breaks / --no-breaks: sessions did (or did not) break.
 *
 * Payload: magic "TFP1", seq (8), size (4), priority (1), 3 zero bytes,
 * publish time (8), FNV-1a of everything else (8), filler from the seq.
 * Exit: 0 ok, 1 a check failed or a runtime error, 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tsm/tsm.h>

#define HDR 40
#define MAGIC 0x31504654u /* "TFP1" */
#define MIN_(a, b) ((a) < (b) ? (a) : (b))

/* ---- small helpers -------------------------------------------------------- */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "test_fault_peer: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);
	if (!p)
		die("out of memory");
	return p;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t fnv(const uint8_t *p, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* The checksum covers bytes [0, 32) and [40, size). */
static uint64_t pl_sum(const uint8_t *b, size_t n)
{
	return fnv(b + HDR, n - HDR, fnv(b, 32, 0xcbf29ce484222325ull));
}

static void pl_build(uint8_t *b, uint64_t seq, uint32_t size, uint8_t prio,
                     tsm_time t)
{
	put64(b, MAGIC); /* bytes 4..7 stay zero */
	put64(b + 8, seq);
	for (int i = 0; i < 4; i++)
		b[16 + i] = (uint8_t)(size >> (8 * i));
	b[20] = prio;
	b[21] = b[22] = b[23] = 0;
	put64(b + 24, (uint64_t)t);
	for (uint32_t i = HDR; i < size; i++)
		b[i] = (uint8_t)(seq * 131u + i);
	put64(b + 32, pl_sum(b, size));
}

static uint64_t arg_u64(const char *opt, const char *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || end == v || *end || *v == '-')
		die("%s: not a number: '%s'", opt, v);
	return x;
}

/* ---- common options -------------------------------------------------------- */

struct opts {
	const char *listen, *connect, *topic, *out, *name;
	const char *cert, *key, *trust, *policy, *expect;
	bool insecure, mixed, stats, verbose;
	uint64_t session_timeout_ms, handshake_timeout_ms, reconnect_max_ms;
	/* pub */
	uint64_t count, rate, size, big_every, big_size, budget_us, wait_subs,
	         timeout_ms, tail_ms;
	/* sub */
	uint64_t duration_ms, until_count, until_seq, late_slack_ms, idle_ms,
	         e2e_budget_us;
	bool until_seq_set;
};

static int common_opt(struct opts *o, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
	struct { const char *name; const char **dst; } strs[] = {
		{"--listen", &o->listen}, {"--connect", &o->connect},
		{"--topic", &o->topic}, {"--out", &o->out}, {"--name", &o->name},
		{"--cert", &o->cert}, {"--key", &o->key}, {"--trust", &o->trust},
		{"--policy", &o->policy}, {"--expect", &o->expect}};
	struct { const char *name; uint64_t *dst; } nums[] = {
		{"--session-timeout-ms", &o->session_timeout_ms},
		{"--handshake-timeout-ms", &o->handshake_timeout_ms},
		{"--reconnect-max-ms", &o->reconnect_max_ms},
		{"--count", &o->count}, {"--rate", &o->rate}, {"--size", &o->size},
		{"--big-every", &o->big_every}, {"--big-size", &o->big_size},
		{"--budget-us", &o->budget_us}, {"--wait-subs", &o->wait_subs},
		{"--timeout-ms", &o->timeout_ms}, {"--tail-ms", &o->tail_ms},
		{"--duration-ms", &o->duration_ms}, {"--until-count", &o->until_count},
		{"--late-slack-ms", &o->late_slack_ms}, {"--idle-ms", &o->idle_ms},
		{"--until-seq", &o->until_seq}, {"--e2e-budget-us", &o->e2e_budget_us}};
	if (!strcmp(a, "--insecure"))
		return o->insecure = true, 0;
	if (!strcmp(a, "--mixed"))
		return o->mixed = true, 0;
	if (!strcmp(a, "--stats"))
		return o->stats = true, 0;
	if (!strcmp(a, "--verbose") || !strcmp(a, "-v"))
		return o->verbose = true, 0;
	for (size_t k = 0; k < sizeof(strs) / sizeof(strs[0]); k++)
		if (!strcmp(a, strs[k].name)) {
			if (!v)
				die("%s needs a value", a);
			*strs[k].dst = v;
			++*i;
			return 0;
		}
	for (size_t k = 0; k < sizeof(nums) / sizeof(nums[0]); k++)
		if (!strcmp(a, nums[k].name)) {
			if (!v)
				die("%s needs a value", a);
			*nums[k].dst = arg_u64(a, v);
			o->until_seq_set |= nums[k].dst == &o->until_seq;
			++*i;
			return 0;
		}
	die("unknown option '%s'", a);
}

/* ---- what a run records ---------------------------------------------------- */

struct drop { uint64_t id; int reason, where; tsm_time t; };

static struct {
	pthread_mutex_t mu;
	struct drop *v;
	size_t n, cap;
} drops = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_outcome(void *arg, const tsm_outcome *o)
{
	(void)arg;
	pthread_mutex_lock(&drops.mu);
	if (drops.n == drops.cap) {
		size_t cap = drops.cap ? drops.cap * 2 : 1024;
		struct drop *v = realloc(drops.v, cap * sizeof(*v));
		if (!v) {
			pthread_mutex_unlock(&drops.mu);
			return; /* the stats still count it */
		}
		drops.v = v;
		drops.cap = cap;
	}
	drops.v[drops.n++] = (struct drop){o->msg_id, (int)o->reason,
	                                   (int)o->where, tsm_now()};
	pthread_mutex_unlock(&drops.mu);
}

/* Session closes and establishments, polled from the counters. */
struct mon {
	tsm_ctx *ctx;
	pthread_t th;
	volatile int stop;
	tsm_time ev_t[4096];
	char ev_k[4096];
	size_t nev;
};

static uint64_t stat_get(tsm_ctx *ctx, const char *name)
{
	uint64_t v = 0;
	(void)tsm_stats_get(ctx, name, &v);
	return v;
}

/* A break: the number of established sessions went down (a dial that
 * never got established is not one); an establishment: it went up. */
static void *mon_main(void *arg)
{
	struct mon *m = arg;
	uint64_t cur = stat_get(m->ctx, "ctx.sessions");
	while (!m->stop) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
		uint64_t now_n = stat_get(m->ctx, "ctx.sessions");
		tsm_time now = tsm_now();
		for (; cur > now_n && m->nev < 4096; cur--, m->nev++) {
			m->ev_t[m->nev] = now;
			m->ev_k[m->nev] = 'B';
		}
		for (; cur < now_n && m->nev < 4096; cur++, m->nev++) {
			m->ev_t[m->nev] = now;
			m->ev_k[m->nev] = 'U';
		}
	}
	return NULL;
}

static void log_line(void *arg, tsm_log_level lvl, const char *line)
{
	(void)arg;
	(void)lvl;
	fprintf(stderr, "%s\n", line);
}

static tsm_ctx *peer_open(const struct opts *o, const char *role)
{
	tsm_ctx_params p;
	tsm_ctx *ctx;
	char url[600];
	tsm_ctx_params_init(&p);
	p.name = o->name ? o->name : role;
	if (o->listen)
		p.listen[0] = o->listen;
	if (o->connect) {
		snprintf(url, sizeof(url), "%s%s%s", o->connect, o->expect ? "#" : "",
		         o->expect ? o->expect : "");
		p.connect[0] = url;
	}
	p.insecure = o->insecure;
	p.cert_file = o->cert;
	p.key_file = o->key;
	p.trust_file = o->trust;
	p.policy_file = o->policy;
	p.session_timeout = (tsm_duration)o->session_timeout_ms * TSM_MSEC;
	p.handshake_timeout = (tsm_duration)o->handshake_timeout_ms * TSM_MSEC;
	p.reconnect_max = (tsm_duration)o->reconnect_max_ms * TSM_MSEC;
	p.log = log_line;
	p.log_level = o->verbose ? TSM_LOG_DEBUG : TSM_LOG_WARN;
	tsm_ctx_params_set_outcome(&p, on_outcome, NULL);
	tsm_err e = tsm_ctx_open(&ctx, &p);
	if (e) {
		fprintf(stderr, "test_fault_peer %s: tsm_ctx_open: %s (%s)\n", role,
		        tsm_err_name(e), tsm_err_detail());
		exit(1);
	}
	fprintf(stderr, "test_fault_peer %s: transport engine: %s\n", role,
	        tsm_ctx_transport(ctx));
	return ctx;
}

struct stat_snap { char name[64]; uint64_t v; };
static struct stat_snap snaps[256];
static size_t nsnaps;

static void snap_one(void *arg, const char *name, uint64_t v)
{
	(void)arg;
	if (nsnaps < 256) {
		snprintf(snaps[nsnaps].name, sizeof(snaps[0].name), "%s", name);
		snaps[nsnaps++].v = v;
	}
}

static void write_common(FILE *f, const struct mon *m, const char *role,
                         bool print)
{
	for (size_t i = 0; i < m->nev; i++)
		fprintf(f, "%c %" PRId64 "\n", m->ev_k[i], m->ev_t[i]);
	pthread_mutex_lock(&drops.mu);
	for (size_t i = 0; i < drops.n; i++)
		fprintf(f, "D %" PRIu64 " %s %d %" PRId64 "\n", drops.v[i].id,
		        tsm_err_name((tsm_err)drops.v[i].reason), drops.v[i].where,
		        drops.v[i].t);
	pthread_mutex_unlock(&drops.mu);
	for (size_t i = 0; i < nsnaps; i++) {
		fprintf(f, "S %s %" PRIu64 "\n", snaps[i].name, snaps[i].v);
		if (print && snaps[i].v)
			fprintf(stderr, "test_fault_peer %s: stat %s = %" PRIu64 "\n",
			        role, snaps[i].name, snaps[i].v);
	}
}

static FILE *out_open(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		die("cannot write %s: %s", path, strerror(errno));
	return f;
}

/* ---- pub ------------------------------------------------------------------- */

struct prec { uint64_t id; tsm_time t; uint32_t size; int err; };

static volatile sig_atomic_t g_stop;
static void on_sig(int s)
{
	(void)s;
	g_stop = 1;
}

static int cmd_pub(struct opts *o)
{
	if (!o->out)
		die("pub: --out FILE is required");
	if (!o->count)
		o->count = 1000;
	if (!o->size)
		o->size = 256;
	if (o->size < HDR || (o->big_size && o->big_size < HDR))
		die("--size and --big-size must be at least %d", HDR);
	if (!o->timeout_ms)
		o->timeout_ms = 10000;
	tsm_ctx *ctx = peer_open(o, "pub");
	struct mon *m = xcalloc(1, sizeof(*m));
	m->ctx = ctx;
	pthread_create(&m->th, NULL, mon_main, m);
	tsm_qos q;
	tsm_qos_init(&q);
	q.reliability = TSM_RELIABLE;
	q.backpressure = TSM_BP_BLOCK;
	tsm_pub *pub;
	tsm_err e = tsm_pub_open(&pub, ctx, o->topic ? o->topic : "fault/t", &q);
	if (e)
		die("tsm_pub_open: %s", tsm_err_name(e));
	unsigned ws = o->wait_subs ? (unsigned)o->wait_subs : 1;
	e = tsm_pub_wait_subscribers(pub, ws, (tsm_duration)o->timeout_ms * TSM_MSEC);
	if (e) {
		fprintf(stderr, "test_fault_peer pub: no subscriber: %s\n", tsm_err_name(e));
		exit(1);
	}
	size_t maxsz = o->big_size > o->size ? o->big_size : o->size;
	uint8_t *buf = xcalloc(1, maxsz);
	struct prec *rec = xcalloc(o->count, sizeof(*rec));
	tsm_time t0 = tsm_now();
	uint64_t sent = 0, refused = 0;
	for (uint64_t seq = 0; seq < o->count && !g_stop; seq++) {
		if (o->rate) {
			tsm_time due = t0 + (tsm_time)((double)seq * 1e9 / (double)o->rate);
			struct timespec ts = {due / TSM_SEC, due % TSM_SEC};
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR &&
			       !g_stop)
				;
		}
		uint32_t size = (uint32_t)(o->big_every && seq % o->big_every == o->big_every - 1
		                               ? o->big_size : o->size);
		uint8_t prio = (uint8_t)(o->mixed ? seq % 8 : 4);
		tsm_pub_opts po;
		tsm_time give_up = tsm_now() + (tsm_duration)o->timeout_ms * TSM_MSEC;
		do { /* QUEUE_FULL is back-pressure, not loss: retry */
			tsm_pub_opts_init(&po);
			po.flags = TSM_OPT_PRIORITY;
			po.priority = prio;
			if (o->budget_us) {
				po.flags |= TSM_OPT_BUDGET;
				po.budget = (tsm_duration)o->budget_us * TSM_USEC;
			}
			rec[seq].t = tsm_now();
			pl_build(buf, seq, size, prio, rec[seq].t);
			e = tsm_publish(pub, buf, size, &po);
		} while (e == TSM_ERR_QUEUE_FULL && tsm_now() < give_up && !g_stop);
		rec[seq].id = e ? 0 : po.msg_id;
		rec[seq].size = size;
		rec[seq].err = (int)e;
		sent += !e;
		refused += !!e;
	}
	tsm_time t1 = tsm_now();
	e = tsm_pub_flush(pub, (tsm_duration)o->timeout_ms * TSM_MSEC);
	if (e)
		fprintf(stderr, "test_fault_peer pub: flush: %s\n", tsm_err_name(e));
	if (o->tail_ms) {
		struct timespec ts = {(time_t)(o->tail_ms / 1000),
		                      (long)(o->tail_ms % 1000) * 1000000};
		nanosleep(&ts, NULL);
	}
	m->stop = 1;
	pthread_join(m->th, NULL);
	tsm_stats_foreach(ctx, snap_one, NULL);
	tsm_time t_close = tsm_now(); /* breaks from here on are the ending */
	tsm_pub_close(pub);
	tsm_ctx_close(ctx);
	FILE *f = out_open(o->out);
	fprintf(f, "T %" PRId64 " %" PRId64 "\n", t0, t1);
	fprintf(f, "C %" PRId64 "\n", t_close);
	for (uint64_t s = 0; s < o->count; s++) {
		if (rec[s].err)
			fprintf(f, "X %" PRIu64 " %s\n", s, tsm_err_name((tsm_err)rec[s].err));
		else if (rec[s].t)
			fprintf(f, "P %" PRIu64 " %" PRIu64 " %" PRId64 " %u\n", s,
			        rec[s].id, rec[s].t, rec[s].size);
	}
	write_common(f, m, "pub", o->stats);
	fclose(f);
	printf("pub: published=%" PRIu64 " refused=%" PRIu64 " drops_reported=%zu "
	       "elapsed_ms=%.0f\n", sent, refused, drops.n, (double)(t1 - t0) / 1e6);
	free(rec);
	free(buf);
	free(m);
	free(drops.v);
	return 0;
}

/* ---- sub ------------------------------------------------------------------- */

struct rrec { uint64_t seq, id; tsm_time t; };

static int cmd_sub(struct opts *o)
{
	if (!o->out)
		die("sub: --out FILE is required");
	if (!o->duration_ms)
		o->duration_ms = 10000;
	if (!o->late_slack_ms)
		o->late_slack_ms = 20;
	tsm_ctx *ctx = peer_open(o, "sub");
	struct mon *m = xcalloc(1, sizeof(*m));
	m->ctx = ctx;
	pthread_create(&m->th, NULL, mon_main, m);
	tsm_qos q;
	tsm_qos_init(&q);
	q.reliability = TSM_RELIABLE;
	tsm_sub *sub;
	tsm_err e = tsm_sub_open(&sub, ctx, o->topic ? o->topic : "fault/**", &q);
	if (e)
		die("tsm_sub_open: %s", tsm_err_name(e));
	fprintf(stderr, "test_fault_peer sub: subscribed\n");
	size_t cap = 4096, n = 0, nerr = 0;
	struct rrec *rv = xcalloc(cap, sizeof(*rv));
	char **errs = NULL;
	size_t caperr = 0;
	uint8_t *seen = NULL;
	size_t seen_cap = 0;
	uint64_t last[8] = {0};
	bool any[8] = {false};
	uint64_t distinct = 0;
	tsm_time t0 = tsm_now(), end = t0 + (tsm_time)o->duration_ms * TSM_MSEC;
	tsm_time last_rx = t0, seen_last = 0, max_age = 0;
	uint64_t over_budget = 0;
	while (!g_stop) {
		tsm_time now = tsm_now();
		if (seen_last && now - seen_last > 300 * TSM_MSEC)
			break; /* the last message came: a moment for stragglers */
		if (now >= end || (o->until_count && distinct >= o->until_count) ||
		    (o->idle_ms && distinct && now - last_rx > (tsm_time)o->idle_ms * TSM_MSEC))
			break;
		tsm_msg *msg;
		e = tsm_sub_recv(sub, &msg, MIN_(end - now, 50 * TSM_MSEC));
		if (e == TSM_ETIMEDOUT)
			continue;
		if (e) {
			fprintf(stderr, "test_fault_peer sub: recv: %s\n", tsm_err_name(e));
			break;
		}
		now = last_rx = tsm_now();
		const uint8_t *d = tsm_msg_data(msg);
		size_t len = tsm_msg_size(msg);
		char why[160] = "";
		uint64_t seq = UINT64_MAX;
		tsm_time dl = tsm_msg_deadline(msg);
		if (dl != TSM_NEVER && now > dl + (tsm_time)o->late_slack_ms * TSM_MSEC)
			snprintf(why, sizeof(why), "LATE by %.3f ms",
			         (double)(now - dl) / 1e6);
		uint32_t size = 0;
		if (len >= HDR)
			for (int i = 0; i < 4; i++)
				size |= (uint32_t)d[16 + i] << (8 * i);
		if (len < HDR || get64(d) != MAGIC || size != len || get64(d + 32) != pl_sum(d, len)) {
			snprintf(why, sizeof(why), "CORRUPT or PARTIAL (%zu bytes)", len);
		} else {
			seq = get64(d + 8);
			uint8_t lane = d[20] & 7;
			tsm_time age = now - (tsm_time)get64(d + 24);
			max_age = age > max_age ? age : max_age;
			if (o->e2e_budget_us && age > (tsm_time)o->e2e_budget_us * TSM_USEC)
				over_budget++;
			if (o->until_seq_set && seq == o->until_seq && !seen_last)
				seen_last = now;
			if (lane != tsm_msg_priority(msg))
				snprintf(why, sizeof(why), "PRIORITY %u, sent %u",
				         tsm_msg_priority(msg), lane);
			if (seq / 8 >= seen_cap) {
				size_t nc = (seq / 8 + 1) * 2;
				uint8_t *ns = realloc(seen, nc);
				if (!ns)
					die("out of memory");
				memset(ns + seen_cap, 0, nc - seen_cap);
				seen = ns;
				seen_cap = nc;
			}
			if (seen[seq / 8] & (1u << (seq % 8))) {
				snprintf(why, sizeof(why), "DUPLICATE");
			} else {
				seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
				distinct++;
				if (any[lane] && seq <= last[lane] && !why[0])
					snprintf(why, sizeof(why), "ORDER: after %" PRIu64
					         " in lane %u", last[lane], lane);
				any[lane] = true;
				last[lane] = seq;
				if (n == cap) {
					cap *= 2;
					struct rrec *nv = realloc(rv, cap * sizeof(*rv));
					if (!nv)
						die("out of memory");
					rv = nv;
				}
				rv[n++] = (struct rrec){seq, tsm_msg_id(msg), now};
			}
		}
		if (why[0]) {
			if (nerr == caperr) {
				caperr = caperr ? caperr * 2 : 64;
				char **ne = realloc(errs, caperr * sizeof(*ne));
				if (!ne)
					die("out of memory");
				errs = ne;
			}
			char *line = xcalloc(1, 200);
			snprintf(line, 200, "%s %" PRId64, why, seq == UINT64_MAX ? -1 : (int64_t)seq);
			errs[nerr++] = line;
			if (nerr <= 10)
				fprintf(stderr, "test_fault_peer sub: ANOMALY: %s seq=%" PRId64 "\n",
				        why, seq == UINT64_MAX ? -1 : (int64_t)seq);
		}
		tsm_msg_free(msg);
	}
	tsm_time t1 = tsm_now();
	m->stop = 1;
	pthread_join(m->th, NULL);
	tsm_stats_foreach(ctx, snap_one, NULL);
	tsm_sub_close(sub);
	tsm_ctx_close(ctx);
	FILE *f = out_open(o->out);
	fprintf(f, "T %" PRId64 " %" PRId64 "\n", t0, t1);
	fprintf(f, "C %" PRId64 "\n", t1); /* its ending starts here */
	fprintf(f, "A %" PRIu64 " %" PRId64 "\n", over_budget, max_age);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "R %" PRIu64 " %" PRIu64 " %" PRId64 "\n", rv[i].seq, rv[i].id,
		        rv[i].t);
	for (size_t i = 0; i < nerr; i++) {
		fprintf(f, "E %s\n", errs[i]);
		free(errs[i]);
	}
	write_common(f, m, "sub", o->stats);
	fclose(f);
	printf("sub: received=%zu anomalies=%zu drops_reported=%zu elapsed_ms=%.0f "
	       "max_age_ms=%.1f over_e2e_budget=%" PRIu64 "\n", n, nerr, drops.n,
	       (double)(t1 - t0) / 1e6, (double)max_age / 1e6, over_budget);
	free(errs);
	free(rv);
	free(seen);
	free(m);
	free(drops.v);
	return 0;
}

/* ---- check ----------------------------------------------------------------- */

struct pmsg { uint64_t id; tsm_time t; bool known, refused, recv, dropped;
              char why[32]; };

struct side {
	tsm_time *breaks;
	size_t nbreaks, nups, nerr;
	struct stat_snap *st;
	size_t nst;
	uint64_t over_budget;
	tsm_time max_age;
	tsm_time closed_at;       /* when it began closing (the end) */
};

static uint64_t side_stat(const struct side *s, const char *name)
{
	for (size_t i = 0; i < s->nst; i++)
		if (!strcmp(s->st[i].name, name))
			return s->st[i].v;
	return 0;
}

static int cmp_time(const void *a, const void *b)
{
	tsm_time x = *(const tsm_time *)a, y = *(const tsm_time *)b;
	return x < y ? -1 : x > y;
}

/* id -> seq: ids grow with seq on one publisher, so a binary search. */
static int64_t seq_of(const uint64_t *ids, const uint64_t *seqs, size_t n, uint64_t id)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && ids[lo] == id ? (int64_t)seqs[lo] : -1;
}

struct reasons { char name[32]; uint64_t n; } rsn[32];
static size_t nrsn;

static void reason_add(const char *name)
{
	for (size_t i = 0; i < nrsn; i++)
		if (!strcmp(rsn[i].name, name)) {
			rsn[i].n++;
			return;
		}
	if (nrsn < 32) {
		snprintf(rsn[nrsn].name, sizeof(rsn[0].name), "%.31s", name);
		rsn[nrsn++].n = 1;
	}
}

static int fails;
static void bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void bad(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("check: FAIL: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fails++;
}

/* Reads one side's file; messages and drops go into pm (by seq). */
static void read_side(const char *path, bool is_pub, struct pmsg **pm, size_t *npm,
                      struct side *sd, uint64_t **ids, uint64_t **seqs, size_t *nids)
{
	FILE *f = fopen(path, "r");
	char line[512];
	if (!f)
		die("cannot read %s: %s", path, strerror(errno));
	size_t capst = 0, capb = 0;
	while (fgets(line, sizeof(line), f)) {
		uint64_t a, b;
		int64_t t;
		unsigned sz;
		char name[128];
		if (is_pub && sscanf(line, "P %" SCNu64 " %" SCNu64 " %" SCNd64 " %u", &a, &b,
		                     &t, &sz) == 4) {
			if (a >= *npm) {
				size_t n = (a + 1) * 2;
				struct pmsg *v = realloc(*pm, n * sizeof(*v));
				if (!v)
					die("out of memory");
				memset(v + *npm, 0, (n - *npm) * sizeof(*v));
				*pm = v;
				*npm = n;
			}
			(*pm)[a].id = b;
			(*pm)[a].t = t;
			(*pm)[a].known = true;
			*ids = realloc(*ids, (*nids + 1) * sizeof(**ids));
			*seqs = realloc(*seqs, (*nids + 1) * sizeof(**seqs));
			if (!*ids || !*seqs)
				die("out of memory");
			(*ids)[*nids] = b;
			(*seqs)[(*nids)++] = a;
		} else if (is_pub && sscanf(line, "X %" SCNu64 " %127s", &a, name) == 2) {
			if (a < *npm) {
				(*pm)[a].refused = true;
			}
			reason_add(name);
		} else if (line[0] == 'B' || line[0] == 'U') {
			if (line[0] == 'U') {
				sd->nups++;
				continue;
			}
			if (sd->nbreaks == capb) {
				capb = capb ? capb * 2 : 64;
				sd->breaks = realloc(sd->breaks, capb * sizeof(tsm_time));
				if (!sd->breaks)
					die("out of memory");
			}
			sd->breaks[sd->nbreaks++] = strtoll(line + 2, NULL, 10);
		} else if (line[0] == 'S' && sscanf(line, "S %127s %" SCNu64, name, &a) == 2) {
			if (sd->nst == capst) {
				capst = capst ? capst * 2 : 128;
				sd->st = realloc(sd->st, capst * sizeof(*sd->st));
				if (!sd->st)
					die("out of memory");
			}
			snprintf(sd->st[sd->nst].name, sizeof(sd->st[0].name), "%.63s", name);
			sd->st[sd->nst++].v = a;
		} else if (line[0] == 'C' && sscanf(line, "C %" SCNd64, &t) == 1) {
			sd->closed_at = t;
		} else if (line[0] == 'A' && sscanf(line, "A %" SCNu64 " %" SCNd64, &a, &t) == 2) {
			sd->over_budget = a;
			sd->max_age = t;
		} else if (line[0] == 'E') {
			sd->nerr++;
			if (sd->nerr <= 10)
				printf("check: sub anomaly: %s", line + 2);
		}
	}
	fclose(f);
}

/* Applies D lines (and R lines for the sub) once the id map exists. */
static void apply_side(const char *path, bool is_pub, struct pmsg *pm, size_t npm,
                       const uint64_t *ids, const uint64_t *seqs, size_t nids,
                       uint64_t *received, uint64_t *unknown)
{
	FILE *f = fopen(path, "r");
	char line[512], name[128];
	uint64_t a, b;
	int w;
	int64_t t;
	if (!f)
		die("cannot read %s", path);
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == 'D' && sscanf(line, "D %" SCNu64 " %127s %d %" SCNd64, &a, name,
		                              &w, &t) == 4) {
			int64_t s = seq_of(ids, seqs, nids, a);
			if (s < 0 || (size_t)s >= npm) {
				(*unknown)++;
				continue;
			}
			if (pm[s].recv) {
				bad("seq %" PRId64 " (id %" PRIu64 ") was delivered and also "
				    "reported dropped (%s, %s side)", s, a, name,
				    is_pub ? "pub" : "sub");
			}
			if (!pm[s].dropped) {
				pm[s].dropped = true;
				snprintf(pm[s].why, sizeof(pm[s].why), "%.31s", name);
				reason_add(name);
			}
		} else if (!is_pub && sscanf(line, "R %" SCNu64 " %" SCNu64 " %" SCNd64, &a, &b,
		                             &t) == 3) {
			if (a >= npm || !pm[a].known) {
				bad("received seq %" PRIu64 " that was never published", a);
				continue;
			}
			if (pm[a].id != b)
				bad("seq %" PRIu64 ": id %" PRIu64 " received, %" PRIu64 " sent", a,
				    b, pm[a].id);
			if (pm[a].dropped)
				bad("seq %" PRIu64 " was reported dropped (%s) and delivered", a,
				    pm[a].why);
			pm[a].recv = true;
			(*received)++;
		}
	}
	fclose(f);
}

static bool allowed(const char *allow, const char *reason)
{
	char buf[256], *save = NULL;
	if (!allow)
		return false;
	snprintf(buf, sizeof(buf), "%s", allow);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (!strcmp(t, reason))
			return true;
	return false;
}

/* The earlier of two times, 0 standing for "never". */
static tsm_time earliest(tsm_time a, tsm_time b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

static int cmd_check(int argc, char **argv)
{
	if (argc < 4)
		die("usage: check PUB_FILE SUB_FILE [--all] [--allow R1,R2] "
		    "[--attrib-ms W] [--settle-ms S] [--min-after N] [--min-breaks N] "
		    "[--no-breaks] [--min-received N]");
	const char *pf = argv[2], *sf = argv[3], *allow = NULL;
	bool all = false, no_breaks = false;
	uint64_t attrib_ms = 3000, settle_ms = 1500, min_after = 1, min_breaks = 0,
	         min_recv = 1;
	for (int i = 4; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : "";
		if (!strcmp(argv[i], "--all"))
			all = true;
		else if (!strcmp(argv[i], "--no-breaks"))
			no_breaks = true;
		else if (!strcmp(argv[i], "--allow"))
			allow = argv[++i];
		else if (!strcmp(argv[i], "--attrib-ms"))
			attrib_ms = arg_u64(argv[i], v), i++;
		else if (!strcmp(argv[i], "--settle-ms"))
			settle_ms = arg_u64(argv[i], v), i++;
		else if (!strcmp(argv[i], "--min-after"))
			min_after = arg_u64(argv[i], v), i++;
		else if (!strcmp(argv[i], "--min-breaks"))
			min_breaks = arg_u64(argv[i], v), i++;
		else if (!strcmp(argv[i], "--min-received"))
			min_recv = arg_u64(argv[i], v), i++;
		else
			die("check: unknown option '%s'", argv[i]);
	}
	struct pmsg *pm = NULL;
	size_t npm = 0, nids = 0;
	uint64_t *ids = NULL, *seqs = NULL, received = 0, unknown = 0;
	struct side ps = {0}, ss = {0};
	read_side(pf, true, &pm, &npm, &ps, &ids, &seqs, &nids);
	read_side(sf, false, &pm, &npm, &ss, &ids, &seqs, &nids);
	/* R lines first, so a drop reported for a delivered message shows. */
	apply_side(sf, false, pm, npm, ids, seqs, nids, &received, &unknown);
	apply_side(pf, true, pm, npm, ids, seqs, nids, &received, &unknown);
	if (ss.nerr)
		bad("the subscriber saw %zu anomalies (duplicate, corrupt, partial, "
		    "out of order or late deliveries)", ss.nerr);
	size_t nb = ps.nbreaks + ss.nbreaks;
	tsm_time *br = xcalloc(nb, sizeof(*br));
	if (ps.nbreaks)
		memcpy(br, ps.breaks, ps.nbreaks * sizeof(*br));
	if (ss.nbreaks)
		memcpy(br + ps.nbreaks, ss.breaks, ss.nbreaks * sizeof(*br));
	qsort(br, nb, sizeof(*br), cmp_time);
	/* Either side closing at the end is no break (the subscriber may
	 * close first: the publisher then sees its session go). */
	tsm_time ending = earliest(ps.closed_at, ss.closed_at);
	while (nb && ending && br[nb - 1] >= ending)
		nb--;
	uint64_t published = 0, dropped = 0, inflight = 0, unattributed = 0,
	         after = 0, missing_after = 0;
	tsm_time last_break = nb ? br[nb - 1] : 0;
	for (size_t s = 0; s < npm; s++) {
		struct pmsg *p = &pm[s];
		if (!p->known)
			continue;
		published++;
		bool late_enough = !nb || p->t > last_break + (tsm_time)settle_ms * TSM_MSEC;
		if (nb && late_enough) {
			after++;
			if (!p->recv)
				missing_after++;
		}
		if (p->recv)
			continue;
		if (p->dropped) {
			dropped++;
			if (all && !allowed(allow, p->why) && dropped <= 5)
				bad("seq %zu dropped (%s) where nothing may be", s, p->why);
			continue;
		}
		/* Lost in flight: the first break at or after its publication. */
		size_t lo = 0, hi = nb;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (br[mid] < p->t)
				lo = mid + 1;
			else
				hi = mid;
		}
		bool attributed = lo < nb && br[lo] - p->t <= (tsm_time)attrib_ms * TSM_MSEC;
		inflight++;
		if (all || !attributed) {
			unattributed++;
			if (unattributed <= 5)
				printf("check: seq %zu (published at +%.1f ms) neither delivered "
				       "nor reported dropped%s\n", s,
				       (double)(p->t - pm[0].t) / 1e6,
				       attributed ? "" : ", and no session broke within "
				                         "--attrib-ms after it");
		}
	}
	if (unattributed)
		bad("%" PRIu64 " messages lost without a reason%s", unattributed,
		    all ? " (--all: every message must be delivered or dropped with "
		          "a reason)" : "");
	if (all && dropped) {
		for (size_t i = 0; i < nrsn; i++)
			if (!allowed(allow, rsn[i].name))
				bad("%" PRIu64 " drops with reason %s, not allowed here",
				    rsn[i].n, rsn[i].name);
	}
	if (no_breaks && nb)
		bad("%zu session closes during the run where none may be", nb);
	if (nb < min_breaks)
		bad("%zu session closes, expected at least %" PRIu64 " (was the fault "
		    "injected?)", nb, min_breaks);
	if (nb && after < min_after)
		bad("only %" PRIu64 " messages were published after the last break "
		    "settled (need %" PRIu64 "): did the session come back?", after,
		    min_after);
	if (missing_after)
		bad("%" PRIu64 " of the %" PRIu64 " messages published after the last "
		    "break (+%" PRIu64 " ms) did not arrive: the session did not come "
		    "back whole", missing_after, after, settle_ms);
	if (received < min_recv)
		bad("received %" PRIu64 ", expected at least %" PRIu64, received, min_recv);
	if (unknown)
		printf("check: note: %" PRIu64 " drops with ids of no published message\n",
		       unknown);
	printf("check: published=%" PRIu64 " received=%" PRIu64 " dropped=%" PRIu64
	       " lost_at_break=%" PRIu64 " breaks=%zu (sessions down, pub %zu + sub %zu with the ending) ups=%zu/%zu"
	       " after_last_break=%" PRIu64, published, received, dropped, inflight,
	       nb, ps.nbreaks, ss.nbreaks, ps.nups, ss.nups, after);
	for (size_t i = 0; i < nrsn; i++)
		printf(" %s=%" PRIu64, rsn[i].name, rsn[i].n);
	printf(" anomalies=%zu verdict=%s\n", ss.nerr, fails ? "FAIL" : "ok");
	printf("check: end-to-end age at hand-over (publisher's clock to the "
	       "application): max %.1f ms, %" PRIu64 " over --e2e-budget-us "
	       "(information: a deadline travels as a remaining budget, transit "
	       "is not subtracted)\n", (double)ss.max_age / 1e6, ss.over_budget);
	/* Counters for the scripts: sub's reasons, both sides' fault.* */
	const char *show[] = {"reason.aead_fail", "reason.replay", "reason.peer_lost",
	                      "err.protocol", "err.out_of_state", "session.protocol_error",
	                      "session.timeout", "fault.lost", "fault.corrupted",
	                      "fault.duplicated", "fault.reordered", "fault.delayed",
	                      "fault.partitions", "fault.partition_held",
	                      "drop.deadline_expired", "drop.peer_lost", "pub.no_subscriber"};
	for (size_t i = 0; i < sizeof(show) / sizeof(show[0]); i++)
		printf("check: counter %s pub=%" PRIu64 " sub=%" PRIu64 "\n", show[i],
		       side_stat(&ps, show[i]), side_stat(&ss, show[i]));
	free(br);
	free(pm);
	free(ids);
	free(seqs);
	free(ps.breaks);
	free(ss.breaks);
	free(ps.st);
	free(ss.st);
	return fails ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	memset(&o, 0, sizeof(o));
	if (argc < 2)
		die("usage: test_fault_peer pub|sub|check ...");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_sig);
	signal(SIGINT, on_sig);
	if (!strcmp(argv[1], "check"))
		return cmd_check(argc, argv);
	for (int i = 2; i < argc; i++)
		common_opt(&o, argc, argv, &i);
	if (!o.listen == !o.connect)
		die("give exactly one of --listen URL and --connect URL");
	if (!strcmp(argv[1], "pub"))
		return cmd_pub(&o);
	if (!strcmp(argv[1], "sub"))
		return cmd_sub(&o);
	die("unknown command '%s'", argv[1]);
}
