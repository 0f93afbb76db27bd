/*
 * bench/tsm_deadline.c - deadlines under offered load above capacity
 * (D1): no message may be handed over after its deadline, and every
 * message that is not delivered must be counted with its reason.
 *
 * A (the parent, CPU 0) publishes 64 KiB messages on bench/deadline as
 * fast as tsm_publish takes them, each with a 2 ms budget and a priority
 * cycling through the eight lanes (a mixed load). B (the child, CPU 1) is
 * deliberately slow: its subscriber has a small queue (4) and B sleeps
 * 500 us after each message, so messages queue far longer than their
 * budget and most of them must expire somewhere on the way.
 *
 * B checks each message at hand-over against tsm_msg_deadline (its own
 * clock): late = the deadline had passed when tsm_sub_recv returned
 * (the test "now <= deadline" right after the call), late_at_call = it
 * had passed before the call began, so the library certainly handed out
 * an expired message. late_e2e compares with the publisher's absolute
 * deadline carried in the payload (one host, one CLOCK_MONOTONIC): the
 * wire carries a remaining budget, so B's deadline is later than A's by
 * the transit time; informational.
 *
 * Accounting: every message tsm_publish accepted is delivered, or counted
 * by a drop.* counter of either context (and reported to the outcome
 * callback, counted here by reason and place). unaccounted =
 * published - delivered - drops(A) - drops(B) must be 0.
 *
 * Output, parsed by bench/run.sh:
 *   tsm: case=deadline policy=block size=65536 budget_us=2000 ...
 */
#include "bench_util.h"
#include "tsm_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TD_TOPIC "bench/deadline"
#define TD_SLICE (50 * TSM_MSEC)
#define TD_QUIET_NS ((int64_t)2000000000) /* B's drain gives up */
#define TD_FLUSH (10 * TSM_SEC)
#define TD_WHERE 7 /* tsm_where values 1..6, 0 for anything else */

struct td_opts {
	size_t size;
	int64_t budget_ns;
	int64_t work_ns;      /* B's sleep per message */
	double secs;          /* A publishes this long */
	uint64_t queue_depth; /* B's subscriber queue */
	tsm_backpressure bp;
	const char *policy;
	uint64_t lanes;       /* priorities 0..lanes-1, cycling */
	int pin, stats;
	const char *addr;
	struct tc_cred cr;
};

/* Drops seen by one side's outcome callback. */
struct td_outcomes {
	_Atomic uint64_t expired, queue_full, other;
	_Atomic uint64_t expired_at[TD_WHERE];
};

struct td_shared {
	/* A to B */
	_Atomic int a_final;         /* A published, flushed, counted */
	_Atomic uint64_t published;  /* accepted by tsm_publish */
	_Atomic uint64_t drops_a, expired_a, queue_full_a;
	/* B to A */
	_Atomic uint64_t delivered, late, late_at_call, late_e2e, dups, bad;
	_Atomic int64_t late_max_ns, slack_min_ns, late_e2e_max_ns;
	_Atomic uint64_t drops_b, expired_b, queue_full_b;
	_Atomic int b_final;
	struct td_outcomes out_a, out_b;
};

/* ---- outcomes ---- */

static void td_on_outcome(void *arg, const tsm_outcome *oc)
{
	struct td_outcomes *c = arg;

	if (oc->reason == TSM_ERR_DEADLINE_EXPIRED) {
		atomic_fetch_add(&c->expired, 1);
		atomic_fetch_add(&c->expired_at[oc->where > 0 &&
		                                oc->where < TD_WHERE
		                                        ? oc->where
		                                        : 0],
		                 1);
	} else if (oc->reason == TSM_ERR_QUEUE_FULL) {
		atomic_fetch_add(&c->queue_full, 1);
	} else {
		atomic_fetch_add(&c->other, 1);
	}
}

static tsm_err td_open(tsm_ctx **ctx, const struct td_opts *o, int is_b,
                       const char *url, char *bound,
                       struct td_outcomes *oc)
{
	tsm_ctx_params p;
	char want[TC_URL_MAX];
	tsm_err e;

	tsm_ctx_params_init(&p);
	p.name = is_b ? "deadline-b" : "deadline-a";
	p.connect[0] = url;
	p.insecure = !o->cr.secure;
	p.on_outcome = td_on_outcome;
	p.outcome_arg = oc;
	if (o->cr.secure) {
		p.cert_file = is_b && o->cr.cert_b ? o->cr.cert_b : o->cr.cert;
		p.key_file = is_b && o->cr.key_b ? o->cr.key_b : o->cr.key;
		p.trust_file = o->cr.trust;
		p.policy_file = o->cr.policy;
	}
	if ((e = tsm_ctx_open(ctx, &p)) || is_b)
		return e;
	snprintf(want, sizeof(want), "tcp://%s:0", o->addr);
	return tsm_ctx_listen(*ctx, want, bound, TC_URL_MAX);
}

/* ---- A ---- */

struct td_pubres {
	uint64_t published, refused_full, refused_expired;
};

static int td_publish_all(tsm_pub *pub, const struct td_opts *o,
                          struct td_pubres *res)
{
	unsigned char *buf = malloc(o->size);
	int64_t end = bench_now_ns() + (int64_t)(o->secs * 1e9);
	int rc = 0;

	if (!buf)
		return -1;
	memset(buf, 0x3c, o->size);
	for (uint64_t seq = 0; bench_now_ns() < end; seq++) {
		tsm_pub_opts po;
		tsm_err e;

		tsm_pub_opts_init(&po);
		po.flags = TSM_OPT_BUDGET | TSM_OPT_PRIORITY;
		po.budget = o->budget_ns;
		po.priority = (uint8_t)(seq % o->lanes);
		bench_put_seq(buf, seq);
		bench_put_seq(buf + 8, (uint64_t)(bench_now_ns() + o->budget_ns));
		e = tsm_publish(pub, buf, o->size, &po);
		if (e == TSM_OK) {
			res->published++;
		} else if (e == TSM_ERR_QUEUE_FULL) {
			res->refused_full++;
		} else if (e == TSM_ERR_DEADLINE_EXPIRED) {
			res->refused_expired++;
		} else {
			tc_fail("A", "publish", e);
			rc = -1;
			break;
		}
	}
	free(buf);
	return rc;
}

static int td_a_run(tsm_ctx *ctx, const struct td_opts *o,
                    struct td_shared *sh, struct td_pubres *res)
{
	tsm_pub *pub = NULL;
	tsm_err e;
	int rc = -1;

	if ((e = tsm_pub_open(&pub, ctx, TD_TOPIC, NULL)) ||
	    (e = tsm_pub_wait_subscribers(pub, 1, TC_SETUP_TIMEOUT))) {
		tc_fail("A", "deadline setup", e);
		goto out;
	}
	rc = td_publish_all(pub, o, res);
	if ((e = tsm_pub_flush(pub, TD_FLUSH))) {
		tc_fail("A", "flush", e);
		rc = -1;
	}
out:
	/* Everything A will ever count is counted once flushed. */
	atomic_store(&sh->published, res->published);
	atomic_store(&sh->drops_a, tc_drops(ctx));
	atomic_store(&sh->expired_a, tc_stat(ctx, "drop.deadline_expired"));
	atomic_store(&sh->queue_full_a, tc_stat(ctx, "drop.queue_full"));
	atomic_store(&sh->a_final, 1);
	tsm_pub_close(pub);
	return rc;
}

static void td_report(tsm_ctx *ctx, const struct td_opts *o,
                      struct td_shared *sh, const struct td_pubres *res)
{
	struct td_outcomes *a = &sh->out_a, *b = &sh->out_b;
	uint64_t drops = sh->drops_a + sh->drops_b;
	uint64_t expired = sh->expired_a + sh->expired_b;
	int64_t unacc = (int64_t)res->published - (int64_t)sh->delivered -
	                (int64_t)drops;
	uint64_t at[TD_WHERE];

	for (int i = 0; i < TD_WHERE; i++)
		at[i] = a->expired_at[i] + b->expired_at[i];
	printf("tsm: case=deadline policy=%s transport=%s secure=%d size=%zu "
	       "budget_us=%lld queue_depth=%llu work_us=%lld lanes=%llu "
	       "published=%llu refused_full=%llu refused_expired=%llu "
	       "delivered=%llu late=%llu late_at_call=%llu late_max_us=%.2f "
	       "slack_min_us=%.2f late_e2e=%llu late_e2e_max_us=%.1f "
	       "expired=%llu expired_a=%llu "
	       "expired_b=%llu queue_full=%llu other_drops=%llu "
	       "unaccounted=%lld outcomes=%llu exp_publish=%llu "
	       "exp_route=%llu exp_sendq=%llu exp_reasm=%llu exp_subq=%llu "
	       "exp_handover=%llu dups=%llu bad=%llu\n",
	       o->policy, tsm_ctx_transport(ctx), o->cr.secure, o->size,
	       (long long)(o->budget_ns / 1000),
	       (unsigned long long)o->queue_depth,
	       (long long)(o->work_ns / 1000), (unsigned long long)o->lanes,
	       (unsigned long long)res->published,
	       (unsigned long long)res->refused_full,
	       (unsigned long long)res->refused_expired,
	       (unsigned long long)sh->delivered, (unsigned long long)sh->late,
	       (unsigned long long)sh->late_at_call,
	       (double)sh->late_max_ns / 1e3,
	       sh->delivered ? (double)sh->slack_min_ns / 1e3 : 0.0,
	       (unsigned long long)sh->late_e2e,
	       (double)sh->late_e2e_max_ns / 1e3, (unsigned long long)expired,
	       (unsigned long long)sh->expired_a,
	       (unsigned long long)sh->expired_b,
	       (unsigned long long)(sh->queue_full_a + sh->queue_full_b),
	       (unsigned long long)(drops - expired - sh->queue_full_a -
	                            sh->queue_full_b),
	       (long long)unacc,
	       (unsigned long long)(a->expired + a->queue_full + a->other +
	                            b->expired + b->queue_full + b->other),
	       (unsigned long long)at[TSM_AT_PUBLISH],
	       (unsigned long long)at[TSM_AT_ROUTE],
	       (unsigned long long)at[TSM_AT_SEND_QUEUE],
	       (unsigned long long)at[TSM_AT_REASSEMBLY],
	       (unsigned long long)at[TSM_AT_SUB_QUEUE],
	       (unsigned long long)at[TSM_AT_HANDOVER],
	       (unsigned long long)sh->dups, (unsigned long long)sh->bad);
}

/* 0 when the run kept its promises: none late, all accounted for. */
static int td_verdict(const struct td_shared *sh,
                      const struct td_pubres *res)
{
	int64_t unacc = (int64_t)res->published - (int64_t)sh->delivered -
	                (int64_t)(sh->drops_a + sh->drops_b);
	int rc = 0;

	if (sh->late) {
		fprintf(stderr, "tsm_deadline: %llu messages handed over after "
		        "their deadline (%llu already expired when recv was "
		        "called; worst %.2f us late)\n",
		        (unsigned long long)sh->late,
		        (unsigned long long)sh->late_at_call,
		        (double)sh->late_max_ns / 1e3);
	}
	if (unacc != 0) {
		fprintf(stderr, "tsm_deadline: %lld messages unaccounted for "
		        "(published %llu, delivered %llu, drops %llu + %llu)\n",
		        (long long)unacc, (unsigned long long)res->published,
		        (unsigned long long)sh->delivered,
		        (unsigned long long)sh->drops_a,
		        (unsigned long long)sh->drops_b);
		rc = -1;
	}
	if (sh->dups || sh->bad || !sh->b_final)
		rc = -1;
	return rc;
}

static int td_parent(int wfd, pid_t child, const struct td_opts *o,
                     struct td_shared *sh)
{
	char url[TC_URL_MAX] = "";
	struct td_pubres res = {0};
	tsm_ctx *ctx = NULL;
	tsm_err e;
	int rc = -1, ran = 0;

	if ((e = td_open(&ctx, o, 0, NULL, url, &sh->out_a))) {
		tc_fail("A", "open and listen", e);
	} else if (tc_send_url(wfd, url) < 0) {
		perror("tsm_deadline A: write URL");
	} else if ((e = tsm_ctx_wait_peers(ctx, 1, TC_SETUP_TIMEOUT))) {
		tc_fail("A", "wait for B", e);
	} else {
		rc = td_a_run(ctx, o, sh, &res);
		ran = 1;
	}
	atomic_store(&sh->a_final, 1);
	close(wfd);
	if (bench_wait_child(child, "tsm_deadline B") < 0)
		rc = -1;
	/* A failed run still shows what it counted. */
	if (ran)
		td_report(ctx, o, sh, &res);
	if (ran && td_verdict(sh, &res) < 0)
		rc = -1;
	if (ctx && (rc < 0 || o->stats))
		tc_dump_stats(ctx, "A", o->stats);
	tsm_ctx_close(ctx);
	return rc == 0 ? 0 : 1;
}

/* ---- B ---- */

/* B's record of sequence numbers seen, to catch duplicates. */
struct td_seen {
	unsigned char *bits;
	uint64_t n;
};

static void td_max(_Atomic int64_t *v, int64_t x)
{
	if (x > atomic_load(v))
		atomic_store(v, x);
}

/* Check one handed-over message; t0/t1 bracket the tsm_sub_recv call. */
static void td_check(struct td_shared *sh, struct td_seen *seen,
                     const struct td_opts *o, tsm_msg *m, int64_t t0,
                     int64_t t1)
{
	tsm_time dl = tsm_msg_deadline(m);
	const unsigned char *d = tsm_msg_data(m);
	uint64_t seq;

	if (tsm_msg_size(m) != o->size) {
		atomic_fetch_add(&sh->bad, 1);
		return;
	}
	seq = bench_get_seq(d);
	if (seq < seen->n * 8 && (seen->bits[seq / 8] & (1u << (seq % 8))))
		atomic_fetch_add(&sh->dups, 1);
	else if (seq < seen->n * 8)
		seen->bits[seq / 8] |= (unsigned char)(1u << (seq % 8));
	if (dl == TSM_NEVER) {
		atomic_fetch_add(&sh->bad, 1); /* it was sent with a budget */
		return;
	}
	if (t1 > dl) {
		atomic_fetch_add(&sh->late, 1);
		td_max(&sh->late_max_ns, t1 - dl);
	}
	if (t0 > dl)
		atomic_fetch_add(&sh->late_at_call, 1);
	if (dl - t1 < atomic_load(&sh->slack_min_ns))
		atomic_store(&sh->slack_min_ns, dl - t1);
	if (t1 > (int64_t)bench_get_seq(d + 8)) {
		atomic_fetch_add(&sh->late_e2e, 1);
		td_max(&sh->late_e2e_max_ns, t1 - (int64_t)bench_get_seq(d + 8));
	}
	atomic_fetch_add(&sh->delivered, 1);
}

/* 1 once A is done and every message it published is accounted for. */
static int td_b_settled(tsm_ctx *ctx, struct td_shared *sh)
{
	return atomic_load(&sh->a_final) &&
	       atomic_load(&sh->delivered) + atomic_load(&sh->drops_a) +
	                       tc_drops(ctx) >=
	               atomic_load(&sh->published);
}

static int td_b_loop(tsm_ctx *ctx, tsm_sub *sub, const struct td_opts *o,
                     struct td_shared *sh, struct td_seen *seen)
{
	int64_t quiet = bench_now_ns();

	atomic_store(&sh->slack_min_ns, INT64_MAX);
	for (;;) {
		int64_t t0 = bench_now_ns(), t1;
		tsm_msg *m;
		tsm_err e = tsm_sub_recv(sub, &m, TD_SLICE);

		t1 = bench_now_ns();
		if (tsm_err_class(e) == TSM_ETIMEDOUT) {
			/* The queue is empty: expired ones were counted. */
			if (td_b_settled(ctx, sh))
				return 0;
			if (!atomic_load(&sh->a_final))
				quiet = t1;
			else if (t1 - quiet > TD_QUIET_NS)
				return -1;
			continue;
		}
		if (e) {
			tc_fail("B", "recv", e);
			return -1;
		}
		td_check(sh, seen, o, m, t0, t1);
		tsm_msg_free(m);
		quiet = bench_now_ns();
		bench_sleep_until(quiet + o->work_ns);
	}
}

static int td_b_run(tsm_ctx *ctx, const struct td_opts *o,
                    struct td_shared *sh)
{
	struct td_seen seen = {.n = 1u << 20}; /* 8 M sequence numbers */
	tsm_sub *sub = NULL;
	tsm_qos q;
	tsm_err e;
	int rc = -1;

	seen.bits = calloc(seen.n, 1);
	tsm_qos_init(&q);
	q.queue_depth = (uint32_t)o->queue_depth;
	q.backpressure = o->bp;
	if (!seen.bits) {
		perror("tsm_deadline B: alloc");
	} else if ((e = tsm_sub_open(&sub, ctx, TD_TOPIC, &q))) {
		tc_fail("B", "subscribe", e);
	} else {
		rc = td_b_loop(ctx, sub, o, sh, &seen);
		if (rc < 0)
			fprintf(stderr, "tsm_deadline B: not settled: delivered "
			        "%llu + drops %llu (A) + %llu (B) of %llu\n",
			        (unsigned long long)sh->delivered,
			        (unsigned long long)sh->drops_a,
			        (unsigned long long)tc_drops(ctx),
			        (unsigned long long)sh->published);
	}
	atomic_store(&sh->drops_b, tc_drops(ctx));
	atomic_store(&sh->expired_b, tc_stat(ctx, "drop.deadline_expired"));
	atomic_store(&sh->queue_full_b, tc_stat(ctx, "drop.queue_full"));
	atomic_store(&sh->b_final, rc == 0);
	tsm_sub_close(sub);
	free(seen.bits);
	return rc;
}

static int td_child(int rfd, const struct td_opts *o, struct td_shared *sh)
{
	char url[TC_URL_MAX];
	tsm_ctx *ctx = NULL;
	tsm_err e;
	int rc = -1;

	if (o->pin)
		bench_pin(1);
	if (tc_recv_url(rfd, url) < 0) {
		fprintf(stderr, "tsm_deadline B: no URL from A\n");
		return 1;
	}
	if ((e = td_open(&ctx, o, 1, url, NULL, &sh->out_b))) {
		tc_fail("B", "tsm_ctx_open", e);
		return 1;
	}
	if ((e = tsm_ctx_wait_peers(ctx, 1, TC_SETUP_TIMEOUT)))
		tc_fail("B", "wait for A", e);
	else
		rc = td_b_run(ctx, o, sh);
	if (rc < 0 || o->stats)
		tc_dump_stats(ctx, "B", o->stats);
	tsm_ctx_close(ctx);
	return rc == 0 ? 0 : 1;
}

/* ---- options ---- */

static void td_usage(void)
{
	fprintf(stderr,
	        "usage: tsm_deadline [--size B] [--budget-us N] [--work-us N]\n"
	        "        [--secs S] [--queue-depth N] [--lanes N]\n"
	        "        [--backpressure block|drop_oldest|drop_newest|"
	        "latest_only]\n"
	        "        [--addr IPV4] [--no-pin] [--stats]\n" TC_CRED_USAGE
	        "defaults: 64 KiB, 2000 us budget, B sleeps 500 us per "
	        "message, 2 s,\nqueue 4, block, 8 lanes\n");
}

static int td_policy(const char *s, struct td_opts *o)
{
	static const char *names[] = {"block", "drop_oldest", "drop_newest",
	                              "latest_only"};

	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			o->bp = (tsm_backpressure)i;
			o->policy = names[i];
			return 0;
		}
	}
	return -1;
}

static int td_opt(int c, const char *arg, struct td_opts *o)
{
	uint64_t v;
	char *end;

	switch (c) {
	case 's': return bench_parse_size(arg, &o->size);
	case 'b':
		if (bench_parse_u64(arg, &v))
			return -1;
		o->budget_ns = (int64_t)v * 1000;
		return 0;
	case 'w':
		if (bench_parse_u64(arg, &v))
			return -1;
		o->work_ns = (int64_t)v * 1000;
		return 0;
	case 'T':
		o->secs = strtod(arg, &end);
		return *end || o->secs <= 0 ? -1 : 0;
	case 'q': return bench_parse_u64(arg, &o->queue_depth);
	case 'l':
		return bench_parse_u64(arg, &o->lanes) || o->lanes > 8 ? -1 : 0;
	case 'p': return td_policy(arg, o);
	case 'a': o->addr = arg; return 0;
	case 'P': o->pin = 0; return 0;
	case 'S': o->stats = 1; return 0;
	default: return tc_cred_opt(c, arg, &o->cr) ? -1 : 0;
	}
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"size", required_argument, NULL, 's'},
		{"budget-us", required_argument, NULL, 'b'},
		{"work-us", required_argument, NULL, 'w'},
		{"secs", required_argument, NULL, 'T'},
		{"queue-depth", required_argument, NULL, 'q'},
		{"lanes", required_argument, NULL, 'l'},
		{"backpressure", required_argument, NULL, 'p'},
		{"addr", required_argument, NULL, 'a'},
		{"no-pin", no_argument, NULL, 'P'},
		{"stats", no_argument, NULL, 'S'},
		TC_CRED_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	struct td_opts o = {.size = 64 * BENCH_KIB, .budget_ns = 2000000,
	                    .work_ns = 500000, .secs = 2, .queue_depth = 4,
	                    .bp = TSM_BP_BLOCK, .policy = "block", .lanes = 8,
	                    .pin = 1, .addr = "127.0.0.1"};
	struct td_shared *sh;
	int c, bad = 0, fds[2];
	pid_t pid;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1)
		bad |= td_opt(c, optarg, &o);
	if (bad || optind != argc || o.size < 16 || o.size > UINT32_MAX ||
	    tc_cred_check(&o.cr) < 0) {
		td_usage();
		return 2;
	}
	sh = bench_shm_map(sizeof(*sh));
	if (!sh || pipe(fds) < 0) {
		perror("tsm_deadline: setup");
		return 1;
	}
	fflush(stdout);
	/* Fork before any libtsm call: a context owns threads. */
	pid = bench_fork();
	if (pid < 0) {
		perror("tsm_deadline: fork");
		return 1;
	}
	if (pid == 0) {
		close(fds[1]);
		_exit(td_child(fds[0], &o, sh));
	}
	close(fds[0]);
	if (o.pin)
		bench_pin(0);
	return td_parent(fds[1], pid, &o, sh);
}
