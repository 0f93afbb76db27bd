/*
 * tests/unit/unit_support.h - what the unit tests that run real contexts
 * share (test_conformance, test_busy, test_auto_efa): an insecure context
 * opened or the test fails with the reason, a counter read that must
 * exist, and a numbered stream received in order. Header-only: each test
 * is one program.
 */
#ifndef TSM_UNIT_SUPPORT_H
#define TSM_UNIT_SUPPORT_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tsm/tsm.h"

/* Defaults for a test context: insecure (said loudly by libtsm itself),
 * errors only in the log, one listen and one connect URL (either NULL). */
static inline void us_params(tsm_ctx_params *p, const char *listen,
                             const char *connect)
{
	tsm_ctx_params_init(p);
	p->insecure = 1;
	p->log_level = TSM_LOG_ERROR;
	p->listen[0] = listen;
	p->connect[0] = connect;
}

/* Opens a context or fails the test, naming `what` and libtsm's reason. */
static inline tsm_ctx *us_open(const char *what, const tsm_ctx_params *p)
{
	tsm_ctx *c = NULL;
	tsm_err e = tsm_ctx_open(&c, p);
	ck_assert_msg(e == TSM_OK, "%s: open: %s %s", what, tsm_err_name(e),
	              tsm_err_detail());
	return c;
}

/* A counter by name; an unknown name fails the test (a renamed counter
 * must not turn a check into 0 == 0). */
static inline uint64_t us_stat(tsm_ctx *c, const char *name)
{
	uint64_t v = 0;
	tsm_err e = tsm_stats_get(c, name, &v);
	ck_assert_msg(e == TSM_OK, "counter %s: %s", name, tsm_err_name(e));
	return v;
}

/* Whether counter `name` of c reaches v within `within` (polled every
 * 10 ms): for effects that follow an event on the progress thread. */
static inline bool us_stat_reaches(tsm_ctx *c, const char *name, uint64_t v,
                                   tsm_duration within)
{
	for (tsm_duration t = 0; t < within && us_stat(c, name) < v; t += 10 * TSM_MSEC)
		usleep(10 * 1000);
	return us_stat(c, name) >= v;
}

/* Receives n messages of 4 bytes each, 0..n-1 in order, each within
 * 10 s, or fails the test naming `what`. */
static inline void us_recv_seq(tsm_sub *s, uint32_t n, const char *what)
{
	for (uint32_t i = 0; i < n; i++) {
		tsm_msg *m;
		uint32_t v;
		tsm_err e = tsm_sub_recv(s, &m, 10 * TSM_SEC);
		ck_assert_msg(e == TSM_OK, "%s: message %u of %u: %s", what, i, n,
		              tsm_err_name(e));
		ck_assert_msg(tsm_msg_size(m) == sizeof(v), "%s: message %u: %zu "
		              "bytes", what, i, tsm_msg_size(m));
		memcpy(&v, tsm_msg_data(m), sizeof(v));
		tsm_msg_free(m);
		ck_assert_msg(v == i, "%s: got %u where %u was due", what, v, i);
	}
}

/* A payload that tells message k and every offset apart (a shifted or
 * mixed-up fragment shows). us_expect_fill checks one, naming `what`. */
static inline uint8_t us_byte(uint32_t k, size_t i)
{
	return (uint8_t)(k * 31u + i * 7u + (i >> 9));
}

static inline void us_fill(uint8_t *b, size_t n, uint32_t k)
{
	for (size_t i = 0; i < n; i++)
		b[i] = us_byte(k, i);
}

static inline void us_expect_fill(const tsm_msg *m, size_t n, uint32_t k,
                                  const char *what)
{
	ck_assert_msg(tsm_msg_size(m) == n, "%s: message %u: %zu bytes, want %zu",
	              what, k, tsm_msg_size(m), n);
	const uint8_t *d = tsm_msg_data(m);
	for (size_t i = 0; i < n; i++)
		if (d[i] != us_byte(k, i))
			ck_abort_msg("%s: message %u byte %zu of %zu wrong", what, k, i, n);
}

/* Runs the suite (each case forked) and gives main's exit status. */
static inline int us_run(Suite *s)
{
	SRunner *r = srunner_create(s);
	srunner_set_fork_status(r, CK_FORK);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
