/*
 * platform/clock.h - monotonic clock helpers. Thread-safe.
 */
#ifndef TSM_PLATFORM_CLOCK_H
#define TSM_PLATFORM_CLOCK_H

#include <time.h>
#include "tsm/time.h"

/* tsm__now is tsm_now for internal callers (inlined, vDSO clock). */
static inline tsm_time tsm__now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (tsm_time)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* tsm__deadline_after returns now + d, saturating at TSM_NEVER. */
static inline tsm_time tsm__deadline_after(tsm_time now, tsm_duration d)
{
	if (d <= 0)
		return now;
	if (d >= TSM_NEVER - now)
		return TSM_NEVER;
	return now + d;
}

/* tsm__abstime fills ts with the CLOCK_MONOTONIC time t (for condvars). */
static inline void tsm__abstime(tsm_time t, struct timespec *ts)
{
	ts->tv_sec = (time_t)(t / 1000000000LL);
	ts->tv_nsec = (long)(t % 1000000000LL);
}

#endif
