/*
 * security/policy.c - parse the authorisation policy and answer "may this
 * identity do this to this topic, and with which caps" (security.md
 * "Authorisation").
 *
 * The parser works one line at a time: strip the comment, split on
 * blanks, then one small function per field, each reporting the line
 * number and, for a bad token, an echo with anything unprintable replaced
 * (policy text could come from anywhere). Identity and topic patterns are
 * checked by their own grammars (security/spiffe.h, pubsub/topic.h), so
 * a rule can only hold patterns that the matchers accept.
 *
 * A check scans every rule: one matching deny ends it (deny wins),
 * otherwise the first matching allow gives the grant (policy.h says why
 * first and not most permissive). Policies are small and checks happen
 * per subscription or per topic, not per byte, so a linear scan is fine.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "pubsub/topic.h"
#include "security/policy.h"
#include "security/spiffe.h"

#define POL_FIELDS_MAX 7 /* effect action identity topic + 3 options */
#define POL_ECHO_MAX 64  /* bytes of a bad token quoted in a detail */
#define POL_DETAIL 400   /* room for a nested grammar detail */

struct pol_rule {
	bool allow;
	int action;
	char *id;    /* identity pattern, NUL-terminated */
	char *topic; /* topic pattern, NUL-terminated */
	size_t topic_len;
	tsm__grant grant; /* what an allow rule grants */
};

struct tsm__policy {
	struct pol_rule *rules;
	size_t n, cap;
};

struct pol_tok {
	const char *s;
	size_t n;
};

/* One line being parsed: its number (for details) and its fields. */
struct pol_line {
	size_t no;
	size_t ntok;
	struct pol_tok tok[POL_FIELDS_MAX];
};

/* ---- small helpers ------------------------------------------------------ */

static tsm_err pol_bad(size_t no, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static tsm_err pol_bad(size_t no, const char *fmt, ...)
{
	char msg[POL_DETAIL];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return tsm__err_set(TSM_ERR_BAD_PARAMS, "policy line %zu: %s", no, msg);
}

/* pol_echo: t as printable ASCII, '?' for other bytes, cut at 64 bytes. */
static const char *pol_echo(const struct pol_tok *t, char *buf, size_t cap)
{
	size_t n = TSM_MIN(t->n, (size_t)POL_ECHO_MAX), i = 0;
	for (; i < n && i + 4 < cap; i++) {
		unsigned char c = (unsigned char)t->s[i];
		buf[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (i < t->n && i + 4 <= cap) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

static bool tok_is(const struct pol_tok *t, const char *lit)
{
	return t->n == strlen(lit) && memcmp(t->s, lit, t->n) == 0;
}

static char *pol_dup(const struct pol_tok *t)
{
	char *s = malloc(t->n + 1);
	if (s != NULL) {
		memcpy(s, t->s, t->n);
		s[t->n] = '\0';
	}
	return s;
}

/* pol_nested: the grammar's own detail, copied before it is overwritten. */
static void pol_nested(char *buf, size_t cap)
{
	snprintf(buf, cap, "%s", tsm_err_detail());
}

/* ---- fields ------------------------------------------------------------- */

static tsm_err pol_effect(const struct pol_line *l, struct pol_rule *r)
{
	char e[POL_ECHO_MAX + 4];
	if (tok_is(&l->tok[0], "allow") || tok_is(&l->tok[0], "deny")) {
		r->allow = tok_is(&l->tok[0], "allow");
		return TSM_OK;
	}
	return pol_bad(l->no, "unknown effect '%s' (want allow or deny)",
	               pol_echo(&l->tok[0], e, sizeof(e)));
}

static tsm_err pol_action(const struct pol_line *l, struct pol_rule *r)
{
	char e[POL_ECHO_MAX + 4];
	if (tok_is(&l->tok[1], "publish"))
		r->action = TSM_ACT_PUBLISH;
	else if (tok_is(&l->tok[1], "subscribe"))
		r->action = TSM_ACT_SUBSCRIBE;
	else
		return pol_bad(l->no,
		               "unknown action '%s' (want publish or subscribe)",
		               pol_echo(&l->tok[1], e, sizeof(e)));
	return TSM_OK;
}

static tsm_err pol_identity(const struct pol_line *l, struct pol_rule *r)
{
	char d[POL_DETAIL];
	if (tsm__id_pattern_check(l->tok[2].s, l->tok[2].n) != TSM_OK) {
		pol_nested(d, sizeof(d));
		return pol_bad(l->no, "bad identity pattern: %s", d);
	}
	r->id = pol_dup(&l->tok[2]);
	return r->id ? TSM_OK : tsm__err_set(TSM_ENOMEM, "policy: no memory");
}

static tsm_err pol_topic(const struct pol_line *l, struct pol_rule *r)
{
	char d[POL_DETAIL];
	if (tsm__pattern_check(l->tok[3].s, l->tok[3].n) != TSM_OK) {
		pol_nested(d, sizeof(d));
		return pol_bad(l->no, "bad topic pattern: %s", d);
	}
	r->topic = pol_dup(&l->tok[3]);
	r->topic_len = l->tok[3].n;
	return r->topic ? TSM_OK
	                : tsm__err_set(TSM_ENOMEM, "policy: no memory");
}

/* ---- options ------------------------------------------------------------ */

/* Decimal digits only: no sign, no hex, so "-1" or "0x10" is an error. */
static tsm_err pol_number(size_t no, const char *name, const struct pol_tok *v,
                          uint64_t lo, uint64_t hi, uint64_t *out)
{
	char e[POL_ECHO_MAX + 4];
	uint64_t x = 0;
	if (v->n == 0)
		return pol_bad(no, "option '%s' has an empty value", name);
	for (size_t i = 0; i < v->n; i++) {
		unsigned char c = (unsigned char)v->s[i];
		if (c < '0' || c > '9')
			return pol_bad(no, "%s=%s is not a decimal number",
			               name, pol_echo(v, e, sizeof(e)));
		if (x <= hi) /* stops growing past hi: no overflow */
			x = x * 10 + (c - '0');
	}
	if (x < lo || x > hi)
		return pol_bad(no, "%s=%s out of range %llu..%llu", name,
		               pol_echo(v, e, sizeof(e)), (unsigned long long)lo,
		               (unsigned long long)hi);
	*out = x;
	return TSM_OK;
}

static tsm_err pol_set_priority(size_t no, const struct pol_tok *v,
                                tsm__grant *g)
{
	uint64_t x = 0;
	tsm_err err = pol_number(no, "max_priority", v, 0, 7, &x);
	if (err == TSM_OK)
		g->max_priority = (uint8_t)x;
	return err;
}

static tsm_err pol_set_bytes(size_t no, const struct pol_tok *v, tsm__grant *g)
{
	uint64_t x = 0;
	tsm_err err = pol_number(no, "max_bytes", v, 1,
	                         TSM_POLICY_MAX_BYTES_LIMIT, &x);
	if (err == TSM_OK)
		g->max_bytes = x;
	return err;
}

static tsm_err pol_set_protection(size_t no, const struct pol_tok *v,
                                  tsm__grant *g)
{
	static const char *const names[] = {
		[TSM_PROT_ENCRYPT] = "encrypt",
		[TSM_PROT_INTEGRITY] = "integrity",
		[TSM_PROT_NONE] = "none",
	};
	char e[POL_ECHO_MAX + 4];
	for (size_t i = 0; i < TSM_ARRAY_LEN(names); i++)
		if (tok_is(v, names[i])) {
			g->protection = (uint8_t)i;
			return TSM_OK;
		}
	return pol_bad(no, "protection=%s (want encrypt, integrity or none)",
	               pol_echo(v, e, sizeof(e)));
}

static const struct pol_opt {
	const char *name;
	tsm_err (*set)(size_t no, const struct pol_tok *v, tsm__grant *g);
} pol_opts[] = {
	{"max_priority", pol_set_priority},
	{"max_bytes", pol_set_bytes},
	{"protection", pol_set_protection},
};

static tsm_err pol_option(const struct pol_line *l, const struct pol_tok *t,
                          tsm__grant *g, unsigned *seen)
{
	char e[POL_ECHO_MAX + 4];
	const char *eq = memchr(t->s, '=', t->n);
	struct pol_tok name = {t->s, eq ? (size_t)(eq - t->s) : t->n};
	size_t i = 0;
	while (i < TSM_ARRAY_LEN(pol_opts) && !tok_is(&name, pol_opts[i].name))
		i++;
	if (i == TSM_ARRAY_LEN(pol_opts))
		return pol_bad(l->no, "unknown option '%s'",
		               pol_echo(&name, e, sizeof(e)));
	if (eq == NULL)
		return pol_bad(l->no, "option '%s' needs '=value'",
		               pol_opts[i].name);
	if (*seen & (1u << i))
		return pol_bad(l->no, "option '%s' given twice",
		               pol_opts[i].name);
	*seen |= 1u << i;
	struct pol_tok v = {eq + 1, t->n - name.n - 1};
	return pol_opts[i].set(l->no, &v, g);
}

/* Caps belong to grants, so options only make sense on allow rules. */
static tsm_err pol_options(const struct pol_line *l, struct pol_rule *r)
{
	char e[POL_ECHO_MAX + 4];
	if (!r->allow && l->ntok > 4)
		return pol_bad(l->no, "deny rule with option '%s' (options are "
		               "only for allow rules)",
		               pol_echo(&l->tok[4], e, sizeof(e)));
	if (!r->allow)
		return TSM_OK;
	r->grant = (tsm__grant){.allowed = true,
	                        .max_priority = 0,
	                        .max_bytes = TSM_POLICY_MAX_BYTES_DEFAULT,
	                        .protection = TSM_PROT_ENCRYPT};
	unsigned seen = 0;
	for (size_t i = 4; i < l->ntok; i++) {
		tsm_err err = pol_option(l, &l->tok[i], &r->grant, &seen);
		if (err != TSM_OK)
			return err;
	}
	return TSM_OK;
}

/* ---- lines -------------------------------------------------------------- */

static bool pol_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static tsm_err pol_split(const char *s, size_t n, struct pol_line *l)
{
	size_t i = 0;
	for (;;) {
		while (i < n && pol_blank(s[i]))
			i++;
		if (i == n)
			return TSM_OK;
		if (l->ntok == POL_FIELDS_MAX)
			return pol_bad(l->no, "more than %d fields",
			               POL_FIELDS_MAX);
		size_t start = i;
		while (i < n && !pol_blank(s[i]))
			i++;
		l->tok[l->ntok++] = (struct pol_tok){s + start, i - start};
	}
}

static tsm_err pol_need(const struct pol_line *l, size_t i, const char *what)
{
	return i < l->ntok ? TSM_OK : pol_bad(l->no, "missing %s", what);
}

static tsm_err pol_rule_parse(const struct pol_line *l, struct pol_rule *r)
{
	tsm_err err = pol_effect(l, r);
	if (err == TSM_OK)
		err = pol_need(l, 1, "action (publish or subscribe)");
	if (err == TSM_OK)
		err = pol_action(l, r);
	if (err == TSM_OK)
		err = pol_need(l, 2, "identity pattern");
	if (err == TSM_OK)
		err = pol_identity(l, r);
	if (err == TSM_OK)
		err = pol_need(l, 3, "topic pattern");
	if (err == TSM_OK)
		err = pol_topic(l, r);
	if (err == TSM_OK)
		err = pol_options(l, r);
	return err;
}

static void pol_rule_clear(struct pol_rule *r)
{
	free(r->id);
	free(r->topic);
}

static tsm_err pol_push(tsm__policy *p, const struct pol_rule *r)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 16;
		struct pol_rule *rules = realloc(p->rules, cap * sizeof(*rules));
		if (rules == NULL)
			return tsm__err_set(TSM_ENOMEM, "policy: no memory");
		p->rules = rules;
		p->cap = cap;
	}
	p->rules[p->n++] = *r;
	return TSM_OK;
}

static tsm_err pol_line_parse(tsm__policy *p, const char *s, size_t n,
                              size_t no)
{
	const char *nul = memchr(s, '\0', n);
	if (nul != NULL)
		return pol_bad(no, "NUL byte at column %zu",
		               (size_t)(nul - s) + 1);
	const char *hash = memchr(s, '#', n); /* '#' is in no grammar */
	struct pol_line l = {.no = no};
	tsm_err err = pol_split(s, hash ? (size_t)(hash - s) : n, &l);
	if (err != TSM_OK || l.ntok == 0)
		return err;
	struct pol_rule r = {0};
	err = pol_rule_parse(&l, &r);
	if (err == TSM_OK)
		err = pol_push(p, &r);
	if (err != TSM_OK)
		pol_rule_clear(&r);
	return err;
}

static tsm_err pol_parse_all(tsm__policy *p, const char *text, size_t len)
{
	size_t off = 0, no = 0;
	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
		tsm_err err = pol_line_parse(p, text + off, n, ++no);
		if (err != TSM_OK)
			return err;
		off += n + 1;
	}
	return TSM_OK;
}

tsm_err tsm__policy_parse(const char *text, size_t len, tsm__policy **out)
{
	if (out == NULL || (text == NULL && len > 0))
		return tsm__err_set(TSM_ERR_BAD_PARAMS,
		                    "tsm__policy_parse: NULL %s",
		                    out ? "text" : "out");
	tsm__policy *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return tsm__err_set(TSM_ENOMEM, "policy: no memory");
	tsm_err err = pol_parse_all(p, text, len);
	if (err != TSM_OK) {
		tsm__policy_free(p);
		return err;
	}
	*out = p;
	return TSM_OK;
}

void tsm__policy_free(tsm__policy *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++)
		pol_rule_clear(&p->rules[i]);
	free(p->rules);
	free(p);
}

size_t tsm__policy_rules(const tsm__policy *p)
{
	return p ? p->n : 0;
}

/* ---- files -------------------------------------------------------------- */

/* pol_read: the whole file into *buf (caller frees); capped, so a policy
 * path pointing at /dev/zero or a log cannot eat memory. */
static tsm_err pol_read(const char *path, char **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return tsm__err_set(TSM_ERR_BAD_PARAMS, "policy file '%s': %s",
		                    path, strerror(errno));
	tsm_err err = TSM_OK;
	char *b = malloc(TSM_POLICY_FILE_MAX + 1);
	size_t n = b ? fread(b, 1, TSM_POLICY_FILE_MAX + 1, f) : 0;
	if (b == NULL)
		err = tsm__err_set(TSM_ENOMEM, "policy file '%s': no memory",
		                   path);
	else if (ferror(f))
		err = tsm__err_set(TSM_ERR_BAD_PARAMS, "policy file '%s': %s",
		                   path, strerror(errno));
	else if (n > TSM_POLICY_FILE_MAX)
		err = tsm__err_set(TSM_ERR_BAD_PARAMS,
		                   "policy file '%s': larger than %u bytes", path,
		                   TSM_POLICY_FILE_MAX);
	fclose(f);
	if (err != TSM_OK) {
		free(b);
		return err;
	}
	*buf = b;
	*len = n;
	return TSM_OK;
}

tsm_err tsm__policy_load(const char *path, tsm__policy **out)
{
	if (path == NULL || out == NULL)
		return tsm__err_set(TSM_ERR_BAD_PARAMS,
		                    "tsm__policy_load: NULL %s",
		                    path ? "out" : "path");
	char *buf = NULL, d[POL_DETAIL];
	size_t len = 0;
	tsm_err err = pol_read(path, &buf, &len);
	if (err != TSM_OK)
		return err;
	err = tsm__policy_parse(buf, len, out);
	free(buf);
	if (err != TSM_OK) {
		pol_nested(d, sizeof(d));
		tsm__err_set(err, "policy file '%s': %s", path, d);
	}
	return err;
}

/* ---- decisions ---------------------------------------------------------- */

static bool pol_hits(const struct pol_rule *r, int action, const char *id,
                     const char *topic, size_t tlen)
{
	return r->action == action && tsm__id_match(r->id, id) &&
	       tsm__topic_match(r->topic, r->topic_len, topic, tlen);
}

/* security.md "Authorisation": default deny; deny wins over allow. */
tsm__grant tsm__policy_check(const tsm__policy *p, const char *identity,
                             int action, const char *topic)
{
	const tsm__grant deny = {0};
	if (p == NULL || identity == NULL || topic == NULL ||
	    (action != TSM_ACT_PUBLISH && action != TSM_ACT_SUBSCRIBE))
		return deny;
	size_t tlen = strnlen(topic, TSM_TOPIC_MAX + 1);
	if (tsm__topic_check(topic, tlen) != TSM_OK)
		return deny;
	const struct pol_rule *first = NULL;
	for (size_t i = 0; i < p->n; i++) {
		const struct pol_rule *r = &p->rules[i];
		if (!pol_hits(r, action, identity, topic, tlen))
			continue;
		if (!r->allow)
			return deny;
		if (first == NULL)
			first = r;
	}
	return first ? first->grant : deny;
}

/*
 * A cursor over the segments of a valid topic pattern. As in
 * pubsub/topic.c, off steps past each segment and its '/', so off > len
 * means the pattern is used up.
 */
struct pat_cur {
	const char *s;
	size_t len, off;
};

static bool cur_end(const struct pat_cur *c)
{
	return c->off > c->len;
}

static size_t cur_n(const struct pat_cur *c)
{
	const char *slash = memchr(c->s + c->off, '/', c->len - c->off);
	return slash ? (size_t)(slash - (c->s + c->off)) : c->len - c->off;
}

static bool cur_is(const struct pat_cur *c, const char *lit)
{
	return !cur_end(c) && cur_n(c) == strlen(lit) &&
	       memcmp(c->s + c->off, lit, cur_n(c)) == 0;
}

static bool cur_same(const struct pat_cur *a, const struct pat_cur *b)
{
	return cur_n(a) == cur_n(b) &&
	       memcmp(a->s + a->off, b->s + b->off, cur_n(a)) == 0;
}

static void cur_step(struct pat_cur *c)
{
	c->off += cur_n(c) + 1;
}

/* pat_overlap: some topic matches both patterns ("**" is zero or more). */
static bool pat_overlap(struct pat_cur a, struct pat_cur b)
{
	for (;;) {
		if (cur_is(&a, "**") || cur_is(&b, "**"))
			return true;
		if (cur_end(&a) || cur_end(&b))
			return cur_end(&a) && cur_end(&b);
		if (!cur_is(&a, "*") && !cur_is(&b, "*") && !cur_same(&a, &b))
			return false;
		cur_step(&a);
		cur_step(&b);
	}
}

/*
 * b's "**" stands for every run of segments: one or more where nothing
 * precedes it (a topic is never empty), zero or more elsewhere. The rest
 * of a (not "**", handled before) covers that only when it is all of a
 * and a is one '*' segment followed by a "**" segment.
 */
static bool pat_covers_rest(const struct pat_cur *a)
{
	return a->off == 0 && a->len == 4 && memcmp(a->s, "*/**", 4) == 0;
}

/* pat_covers: every topic matching b also matches a. */
static bool pat_covers(struct pat_cur a, struct pat_cur b)
{
	for (;;) {
		if (cur_is(&a, "**"))
			return true;
		if (cur_end(&a) || cur_end(&b))
			return cur_end(&a) && cur_end(&b);
		if (cur_is(&b, "**"))
			return pat_covers_rest(&a);
		if (!cur_is(&a, "*") && (cur_is(&b, "*") || !cur_same(&a, &b)))
			return false;
		cur_step(&a);
		cur_step(&b);
	}
}

bool tsm__policy_may_subscribe_pattern(const tsm__policy *p,
                                       const char *identity,
                                       const char *pattern)
{
	return tsm__policy_may_pattern(p, identity, TSM_ACT_SUBSCRIBE, pattern);
}

bool tsm__policy_may_pattern(const tsm__policy *p, const char *identity,
                             int action, const char *pattern)
{
	if (p == NULL || identity == NULL || pattern == NULL)
		return false;
	size_t len = strnlen(pattern, TSM_TOPIC_MAX + 1);
	if (tsm__pattern_check(pattern, len) != TSM_OK)
		return false;
	struct pat_cur want = {pattern, len, 0};
	bool some_allow = false;
	for (size_t i = 0; i < p->n; i++) {
		const struct pol_rule *r = &p->rules[i];
		if (r->action != action || !tsm__id_match(r->id, identity))
			continue;
		struct pat_cur rule = {r->topic, r->topic_len, 0};
		if (!r->allow && pat_covers(rule, want))
			return false;
		some_allow = some_allow || (r->allow && pat_overlap(rule, want));
	}
	return some_allow;
}

/* security.md "Handshake": VERIFYING needs "the ACL admits it": some allow
 * rule, of either action, names the identity. Per-topic checks stay
 * authoritative; this only refuses peers the policy never mentions. */
bool tsm__policy_admits(const tsm__policy *p, const char *identity)
{
	if (!p || !identity)
		return false;
	for (size_t i = 0; i < p->n; i++)
		if (p->rules[i].allow && tsm__id_match(p->rules[i].id, identity))
			return true;
	return false;
}
