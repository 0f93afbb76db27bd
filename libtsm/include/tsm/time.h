/*
 * tsm/time.h - monotonic time as used by deadlines.
 *
 * All deadlines in libtsm are absolute CLOCK_MONOTONIC nanoseconds of the
 * local host (tsm_time). Peers never exchange absolute times: on the wire a
 * deadline is a remaining budget (docs/wire.md §6). Thread-safe.
 */
#ifndef TSM_TIME_H
#define TSM_TIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Absolute monotonic time in nanoseconds; TSM_NEVER means "no deadline". */
typedef int64_t tsm_time;
/* A relative duration in nanoseconds. */
typedef int64_t tsm_duration;

#define TSM_NEVER INT64_MAX
#define TSM_USEC ((tsm_duration)1000)
#define TSM_MSEC ((tsm_duration)1000000)
#define TSM_SEC ((tsm_duration)1000000000)

/* tsm_now returns the current CLOCK_MONOTONIC time in nanoseconds. */
tsm_time tsm_now(void);

#ifdef __cplusplus
}
#endif
#endif
