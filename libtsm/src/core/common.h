/*
 * core/common.h - what every libtsm source file needs: the export marker,
 * error detail helpers and small utilities. Internal; never installed.
 */
#ifndef TSM_CORE_COMMON_H
#define TSM_CORE_COMMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tsm/tsm.h"

/* Marks a definition as part of the public ABI (everything else is hidden). */
#define TSM_API __attribute__((visibility("default")))

#define TSM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TSM_LIKELY(x) __builtin_expect(!!(x), 1)
#define TSM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TSM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TSM_MAX(a, b) ((a) > (b) ? (a) : (b))

/*
 * tsm__err_set records a printf-style detail for the calling thread and
 * returns err, so that failure paths read `return tsm__err_set(E, "...")`.
 */
tsm_err tsm__err_set(tsm_err err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* tsm__err_clear empties the calling thread's detail string. */
void tsm__err_clear(void);
/* tsm__err_divert(true) sends the calling thread's details to a scratch
 * buffer (tsm_err_detail reads it too) until tsm__err_divert(false), so
 * that work whose errors are not the caller's leaves its detail as it
 * was (no copy). */
#define TSM__ERR_DETAIL_MAX 512
void tsm__err_divert(bool on);

#endif
