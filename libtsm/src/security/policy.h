/*
 * security/policy.h - the authorisation policy: who may publish or
 * subscribe to which topics, with which caps (security.md "Authorisation").
 *
 * Threading: a tsm__policy is immutable once parsed, so any number of
 * threads may call the check functions on it at once. Reloading means
 * parsing a new policy and swapping the pointer (the caller's job, with
 * whatever publication it uses), then re-evaluating live subscriptions
 * against the new one; the old one is freed when no thread reads it.
 *
 * Text format, one rule a line, fields separated by spaces or tabs, '#'
 * to the end of the line a comment, blank lines ignored (a '\r' before
 * the '\n' is tolerated):
 *
 *   allow|deny  publish|subscribe  <identity pattern>  <topic pattern>
 *               [max_priority=N] [max_bytes=N] [protection=P]
 *
 * Identity patterns are those of security/spiffe.h ("*", or a SPIFFE ID
 * with "*" / trailing "**" segments); topic patterns those of
 * pubsub/topic.h. Options appear only on allow rules, at most once each:
 * max_priority 0..7 (the most urgent priority the grant permits; 0 is
 * most urgent, so max_priority=2 allows 2..7), max_bytes 1..2^40 (largest
 * message), protection encrypt|integrity|none (the weakest data
 * protection the grant permits). Defaults: max_priority=0, max_bytes=16
 * MiB, protection=encrypt.
 *
 * Decision (security.md: default deny, deny wins): a request is allowed
 * only if some allow rule matches it and no deny rule does; rules match
 * on action, identity pattern and topic pattern. When several allow rules
 * match, the FIRST in file order gives the caps. We do not merge the
 * most permissive caps of all matching rules: that would grant a
 * combination no single line wrote (one rule's priority with another's
 * size, and the weakest protection of any), so a broad rule further down
 * would silently loosen a narrow one above it. First match lets an
 * operator put specific rules before general ones, as in a firewall.
 */
#ifndef TSM_SECURITY_POLICY_H
#define TSM_SECURITY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tsm/err.h"

#define TSM_POLICY_FILE_MAX (1u << 20)                 /* bytes */
#define TSM_POLICY_MAX_BYTES_DEFAULT (16ull << 20)     /* 16 MiB */
#define TSM_POLICY_MAX_BYTES_LIMIT (1ull << 40)

enum { TSM_ACT_PUBLISH = 1, TSM_ACT_SUBSCRIBE = 2 };
enum { TSM_PROT_ENCRYPT = 0, TSM_PROT_INTEGRITY = 1, TSM_PROT_NONE = 2 };

typedef struct tsm__policy tsm__policy;

/*
 * The outcome of a check. When allowed is false the other fields are zero
 * (max_bytes 0 admits nothing) and must not be used. max_priority is the
 * most urgent priority allowed (0..7, lower is more urgent); protection
 * is the weakest TSM_PROT_* allowed (a peer may always use stronger).
 */
typedef struct tsm__grant {
	bool allowed;
	uint8_t max_priority;
	uint64_t max_bytes;
	uint8_t protection;
} tsm__grant;

/*
 * tsm__policy_parse parses len bytes of policy text (need not be
 * NUL-terminated; a NUL byte is an error). On success *out owns a new
 * policy (free with tsm__policy_free); an empty text gives a policy that
 * denies everything. On failure *out is unchanged and the result is
 * TSM_ERR_BAD_PARAMS with a detail naming the first bad line and the
 * problem ("policy line 7: unknown option 'foo'"), or TSM_ENOMEM.
 */
tsm_err tsm__policy_parse(const char *text, size_t len, tsm__policy **out);

/*
 * tsm__policy_load reads and parses the policy file at path (at most
 * TSM_POLICY_FILE_MAX bytes). Same results as tsm__policy_parse; every
 * failure detail starts with the path. *out is unchanged on failure.
 */
tsm_err tsm__policy_load(const char *path, tsm__policy **out);

/* tsm__policy_free frees p; NULL is a no-op. */
void tsm__policy_free(tsm__policy *p);

/*
 * tsm__policy_admits returns true if some allow rule (publish or
 * subscribe) matches identity: the ACL part of VERIFYING. False for NULL.
 */
bool tsm__policy_admits(const tsm__policy *p, const char *identity);

/* tsm__policy_rules returns the number of rules in p (0 for NULL). */
size_t tsm__policy_rules(const tsm__policy *p);

/*
 * tsm__policy_check decides whether identity (a SPIFFE ID) may perform
 * action (TSM_ACT_PUBLISH or TSM_ACT_SUBSCRIBE) on topic (a topic name,
 * not a pattern). Fails closed: a NULL policy, NULL or invalid identity
 * or topic, or unknown action is denied. May overwrite the thread's
 * error detail when the topic is invalid.
 */
tsm__grant tsm__policy_check(const tsm__policy *p, const char *identity,
                             int action, const char *topic);

/*
 * tsm__policy_may_subscribe_pattern returns true if identity might be
 * granted some topic matching pattern: some allow-subscribe rule for it
 * has a topic pattern that overlaps pattern, and no deny-subscribe rule
 * for it covers every topic of pattern. Only a filter for whether a
 * subscription is worth recording at all; tsm__policy_check on each topic
 * is authoritative. False for NULL arguments or an invalid pattern.
 */
bool tsm__policy_may_subscribe_pattern(const tsm__policy *p,
                                       const char *identity,
                                       const char *pattern);

/* tsm__policy_may_pattern: the same filter for either action (discovery
 * shows a peer only the adverts it might be granted, brokerless/). */
bool tsm__policy_may_pattern(const tsm__policy *p, const char *identity,
                             int action, const char *pattern);

#endif
