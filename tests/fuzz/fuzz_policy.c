/*
 * tests/fuzz/fuzz_policy.c - the policy parser and its decisions
 * (security/policy.h, security.md "Authorisation").
 *
 * Any bytes go to tsm__policy_parse: no crash, no leak (LSan runs at the
 * end of every input), and a refusal is BAD_PARAMS or ENOMEM with a
 * detail naming the line. A policy it accepts is parsed again by a small
 * reference reader here (its text is known to be well formed by then),
 * and for identities and topics made from the policy's own patterns plus a
 * few fixed ones, tsm__policy_check must give the reference decision:
 * default deny, deny wins, the first matching allow rule gives the caps.
 * tsm__policy_admits must be "some allow rule names the identity", and
 * tsm__policy_may_subscribe_pattern must never hide a pattern one of whose
 * sampled topics tsm__policy_check would grant.
 */
#include "fuzz_util.h"
#include "ref_names.h"

#include "security/policy.h"
#include "tsm/tsm.h"

#define MAXR 64   /* rules the reference looks at (decisions use all) */
#define MAXQ 12   /* identities and topics sampled per input */
#define NAME 2100 /* room for a sample name */

struct rrule {
	bool allow;
	int action;
	char *id, *topic;
	tsm__grant grant;
};

struct ref {
	struct rrule r[MAXR];
	size_t n, total; /* total: rules in the text, n: those kept here */
	char *ids[MAXQ], *topics[MAXQ];
	size_t nids, ntopics;
};

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* ref_tokens: the blank-separated fields of one line before any '#'. */
static size_t ref_tokens(const char *s, size_t n, const char **tok,
                         size_t *len, size_t max)
{
	const char *hash = memchr(s, '#', n);
	size_t k = 0, i = 0;
	if (hash)
		n = (size_t)(hash - s);
	while (i < n && k < max) {
		while (i < n && blank(s[i]))
			i++;
		size_t start = i;
		while (i < n && !blank(s[i]))
			i++;
		if (i > start) {
			tok[k] = s + start;
			len[k++] = i - start;
		}
	}
	return k;
}

static void ref_option(const char *t, size_t n, tsm__grant *g)
{
	const char *eq = memchr(t, '=', n);
	FUZZ_CHECK(eq != NULL, "accepted option without '='");
	/* The whole value: the parser takes any number of leading zeros, so a
	 * fixed-size copy would truncate "000...09223" to 0 (found by CI). */
	char *v = fz_cstr(eq + 1, n - (size_t)(eq - t) - 1);
	if (strncmp(t, "max_priority=", 13) == 0)
		g->max_priority = (uint8_t)strtoul(v, NULL, 10);
	else if (strncmp(t, "max_bytes=", 10) == 0)
		g->max_bytes = strtoull(v, NULL, 10);
	else if (strcmp(v, "integrity") == 0)
		g->protection = TSM_PROT_INTEGRITY;
	else if (strcmp(v, "none") == 0)
		g->protection = TSM_PROT_NONE;
	else
		g->protection = TSM_PROT_ENCRYPT;
	free(v);
}

static void ref_rule(struct ref *f, const char **tok, const size_t *len,
                     size_t k)
{
	f->total++;
	if (f->n == MAXR)
		return;
	struct rrule *r = &f->r[f->n++];
	r->allow = len[0] == 5; /* "allow" or "deny": the parser checked */
	r->action = len[1] == 7 ? TSM_ACT_PUBLISH : TSM_ACT_SUBSCRIBE;
	r->id = fz_cstr(tok[2], len[2]);
	r->topic = fz_cstr(tok[3], len[3]);
	r->grant = (tsm__grant){0};
	if (!r->allow)
		return;
	r->grant = (tsm__grant){true, 0, TSM_POLICY_MAX_BYTES_DEFAULT,
	                        TSM_PROT_ENCRYPT};
	for (size_t i = 4; i < k; i++)
		ref_option(tok[i], len[i], &r->grant);
}

static void ref_parse(struct ref *f, const char *text, size_t n)
{
	size_t off = 0;
	while (off < n) {
		const char *nl = memchr(text + off, '\n', n - off);
		size_t ln = nl ? (size_t)(nl - (text + off)) : n - off;
		const char *tok[8];
		size_t len[8];
		size_t k = ref_tokens(text + off, ln, tok, len, 8);
		if (k > 0) {
			FUZZ_CHECK(k >= 4 && k <= 7, "accepted line with %zu fields", k);
			ref_rule(f, tok, len, k);
		}
		off += ln + 1;
	}
}

/* A name matching pattern p: "*" becomes "x", a last "**" becomes "x/y". */
static char *instance(const char *p, bool id)
{
	static ref_seg g[REF_SEG_MAX];
	char buf[NAME * 2];
	size_t o = 0, n = strlen(p);
	if (id && n == 1 && p[0] == '*')
		return fz_cstr("spiffe://td-a/x", 15);
	size_t k = ref_cut(p, n, g);
	for (size_t i = 0; i < k && o + 8 < sizeof(buf); i++) {
		const ref_seg *s = &g[i];
		size_t m = s->n < sizeof(buf) - o - 8 ? s->n : sizeof(buf) - o - 8;
		if (i)
			buf[o++] = '/';
		if (ref_is(s, "**")) {
			memcpy(buf + o, "x/y", 3);
			o += 3;
		} else if (ref_is(s, "*")) {
			buf[o++] = 'x';
		} else {
			memcpy(buf + o, s->s, m);
			o += m;
		}
	}
	return fz_cstr(buf, o);
}

static void add(char **v, size_t *n, char *s)
{
	if (*n < MAXQ)
		v[(*n)++] = s;
	else
		free(s);
}

static void samples(struct ref *f)
{
	static const char *const ids[] = {"spiffe://td-a/pub", "spiffe://td-b/x/y",
	                                  "spiffe://TD/x"};
	static const char *const topics[] = {"a", "a/b/c", "x"};
	for (size_t i = 0; i < 3; i++) {
		add(f->ids, &f->nids, fz_cstr(ids[i], strlen(ids[i])));
		add(f->topics, &f->ntopics, fz_cstr(topics[i], strlen(topics[i])));
	}
	for (size_t i = 0; i < f->n; i++) {
		add(f->ids, &f->nids, instance(f->r[i].id, true));
		add(f->topics, &f->ntopics, instance(f->r[i].topic, false));
	}
}

static tsm__grant ref_decide(const struct ref *f, const char *id, int act,
                             const char *topic)
{
	const tsm__grant deny = {0};
	size_t tn = strnlen(topic, 257), in = strlen(id);
	const struct rrule *first = NULL;
	if (!ref_topic_valid(topic, tn))
		return deny;
	for (size_t i = 0; i < f->n; i++) {
		const struct rrule *r = &f->r[i];
		if (r->action != act || !ref_id_match(r->id, strlen(r->id), id, in) ||
		    !ref_topic_match(r->topic, strlen(r->topic), topic, tn))
			continue;
		if (!r->allow)
			return deny;
		if (!first)
			first = r;
	}
	return first ? first->grant : deny;
}

static void check_decision(const tsm__policy *p, const struct ref *f,
                           const char *id, int act, const char *topic)
{
	tsm__grant lib = tsm__policy_check(p, id, act, topic);
	tsm__grant ref = ref_decide(f, id, act, topic);
	FUZZ_CHECK(lib.allowed == ref.allowed && lib.max_priority == ref.max_priority &&
	                   lib.max_bytes == ref.max_bytes &&
	                   lib.protection == ref.protection,
	           "%s %s %s: library {%d prio %u bytes %llu prot %u}, reference "
	           "{%d prio %u bytes %llu prot %u}", id,
	           act == TSM_ACT_PUBLISH ? "publish" : "subscribe", topic,
	           lib.allowed, lib.max_priority, (unsigned long long)lib.max_bytes,
	           lib.protection, ref.allowed, ref.max_priority,
	           (unsigned long long)ref.max_bytes, ref.protection);
}

static void check_admits(const tsm__policy *p, const struct ref *f,
                         const char *id)
{
	bool ref = false;
	for (size_t i = 0; i < f->n; i++)
		ref = ref || (f->r[i].allow &&
		              ref_id_match(f->r[i].id, strlen(f->r[i].id), id, strlen(id)));
	FUZZ_CHECK(tsm__policy_admits(p, id) == ref, "admits(%s): library %d",
	           id, !ref);
}

/* A pattern the filter drops must have no sampled topic that is granted. */
static void check_filter(const tsm__policy *p, const struct ref *f,
                         const char *id, const char *pat)
{
	if (tsm__policy_may_subscribe_pattern(p, id, pat))
		return;
	for (size_t t = 0; t < f->ntopics; t++) {
		const char *topic = f->topics[t];
		if (!ref_topic_valid(topic, strnlen(topic, 257)) ||
		    !ref_topic_match(pat, strlen(pat), topic, strlen(topic)))
			continue;
		FUZZ_CHECK(!tsm__policy_check(p, id, TSM_ACT_SUBSCRIBE, topic).allowed,
		           "may_subscribe_pattern(%s, %s) is false but topic %s is "
		           "granted", id, pat, topic);
	}
}

static void check_all(const tsm__policy *p, struct ref *f)
{
	FUZZ_CHECK(tsm__policy_rules(p) == f->total, "%zu rules, reference %zu",
	           tsm__policy_rules(p), f->total);
	if (f->total > MAXR)
		return; /* the reference kept only the first rules */
	samples(f);
	for (size_t i = 0; i < f->nids; i++) {
		check_admits(p, f, f->ids[i]);
		for (size_t t = 0; t < f->ntopics; t++) {
			check_decision(p, f, f->ids[i], TSM_ACT_PUBLISH, f->topics[t]);
			check_decision(p, f, f->ids[i], TSM_ACT_SUBSCRIBE, f->topics[t]);
		}
		check_filter(p, f, f->ids[i], "**");
		for (size_t r = 0; r < f->n && r < 4; r++)
			check_filter(p, f, f->ids[i], f->r[r].topic);
	}
}

static void ref_free(struct ref *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->r[i].id);
		free(f->r[i].topic);
	}
	for (size_t i = 0; i < f->nids; i++)
		free(f->ids[i]);
	for (size_t i = 0; i < f->ntopics; i++)
		free(f->topics[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tsm__policy *p = NULL;
	tsm_err e = tsm__policy_parse((const char *)data, size, &p);
	if (e != TSM_OK) {
		FUZZ_CHECK(p == NULL, "refused parse set *out");
		FUZZ_CHECK(e == TSM_ERR_BAD_PARAMS || e == TSM_ENOMEM,
		           "parse refused with %s", tsm_err_name(e));
		FUZZ_CHECK(strncmp(tsm_err_detail(), "policy", 6) == 0,
		           "detail '%s'", tsm_err_detail());
		return 0;
	}
	FUZZ_CHECK(p != NULL, "accepted parse without a policy");
	static struct ref f;
	memset(&f, 0, sizeof(f));
	ref_parse(&f, (const char *)data, size);
	check_all(p, &f);
	ref_free(&f);
	tsm__policy_free(p);
	return 0;
}
