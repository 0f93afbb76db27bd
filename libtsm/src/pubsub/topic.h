/*
 * pubsub/topic.h - topic names and patterns (docs/wire.md §8.1).
 *
 * Grammar: a topic is 1..256 bytes of segments [A-Za-z0-9._-]+ separated
 * by '/', no empty segment (so no leading, trailing or double '/'). A
 * pattern has the same shape, and a segment may also be exactly "*" (one
 * segment) or, as the last segment only, "**" (zero or more further
 * segments: the pattern "a" '/' "**" matches "a", "a/b" and "a/b/c";
 * "**" alone matches every topic). Invalid names are rejected, never
 * normalised. Pure functions, thread-safe.
 */
#ifndef TSM_PUBSUB_TOPIC_H
#define TSM_PUBSUB_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#include "tsm/err.h"

/*
 * tsm__topic_check returns TSM_OK for a valid topic of len bytes, else
 * TSM_ERR_BAD_TOPIC with the thread's error detail naming the byte offset
 * and the rule broken.
 */
tsm_err tsm__topic_check(const char *s, size_t len);

/* tsm__pattern_check: same for patterns; TSM_ERR_BAD_PATTERN. */
tsm_err tsm__pattern_check(const char *s, size_t len);

/*
 * tsm__topic_match returns true if the valid topic t matches the valid
 * pattern p. Both must have passed their checks.
 */
bool tsm__topic_match(const char *p, size_t plen, const char *t, size_t tlen);

#endif
