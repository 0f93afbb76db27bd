/*
 * tests/fuzz/ref_names.h - reference implementations of the name grammars
 * and matchers, written from the specifications and not from the library
 * code, for differential fuzzing: topics and topic patterns
 * (docs/wire.md §8.1) and SPIFFE IDs and identity patterns
 * (security/spiffe.h, security.md "Identity").
 *
 * Deliberately simple rather than fast: names are cut into an array of
 * segments first, then compared segment list against segment list.
 * Header-only; every function is static and pure.
 */
#ifndef TSM_FUZZ_REF_NAMES_H
#define TSM_FUZZ_REF_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define REF_SEG_MAX 2100 /* more than any valid name can have */

typedef struct ref_seg {
	const char *s;
	size_t n;
} ref_seg;

/* ref_cut splits s on '/' into segs (empty ones included). */
static inline size_t ref_cut(const char *s, size_t len, ref_seg *segs)
{
	size_t k = 0, start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '/') {
			if (k < REF_SEG_MAX)
				segs[k++] = (ref_seg){s + start, i - start};
			start = i + 1;
		}
	}
	return k;
}

static inline bool ref_is(const ref_seg *g, const char *lit)
{
	return g->n == strlen(lit) && memcmp(g->s, lit, g->n) == 0;
}

static inline bool ref_eq(const ref_seg *a, const ref_seg *b)
{
	return a->n == b->n && memcmp(a->s, b->s, a->n) == 0;
}

/* ---- topics and topic patterns (docs/wire.md §8.1) ---------------------- */

static inline bool ref_topic_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static inline bool ref_topic_seg(const ref_seg *g)
{
	if (g->n == 0)
		return false;
	for (size_t i = 0; i < g->n; i++)
		if (!ref_topic_char((unsigned char)g->s[i]))
			return false;
	return true;
}

static inline bool ref_topic_valid(const char *s, size_t len)
{
	static ref_seg g[REF_SEG_MAX];
	if (len < 1 || len > 256)
		return false;
	size_t k = ref_cut(s, len, g);
	for (size_t i = 0; i < k; i++)
		if (!ref_topic_seg(&g[i]))
			return false;
	return true;
}

/* pattern = *( pseg "/" ) ( pseg / "**" ); pseg = segment / "*" */
static inline bool ref_pattern_valid(const char *s, size_t len)
{
	static ref_seg g[REF_SEG_MAX];
	if (len < 1 || len > 256)
		return false;
	size_t k = ref_cut(s, len, g);
	for (size_t i = 0; i < k; i++) {
		if (ref_is(&g[i], "*") || (i + 1 == k && ref_is(&g[i], "**")))
			continue;
		if (!ref_topic_seg(&g[i]))
			return false;
	}
	return true;
}

/* "*" is exactly one segment; a last "**" is zero or more further ones. */
static inline bool ref_topic_match_segs(const ref_seg *p, size_t np,
                                        const ref_seg *t, size_t nt)
{
	size_t i = 0;
	for (; i < np; i++) {
		if (i + 1 == np && ref_is(&p[i], "**"))
			return true;
		if (i >= nt)
			return false;
		if (!ref_is(&p[i], "*") && !ref_eq(&p[i], &t[i]))
			return false;
	}
	return i == nt;
}

static inline bool ref_topic_match(const char *p, size_t plen, const char *t,
                                   size_t tlen)
{
	static ref_seg ps[REF_SEG_MAX], ts[REF_SEG_MAX];
	size_t np = ref_cut(p, plen, ps), nt = ref_cut(t, tlen, ts);
	return ref_topic_match_segs(ps, np, ts, nt);
}

/* ---- SPIFFE IDs and identity patterns (security/spiffe.h) --------------- */

#define REF_SCHEME "spiffe://"
#define REF_SCHEME_LEN 9

static inline bool ref_td_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
	       c == '-' || c == '_';
}

/* segment = 1*( ALPHA / DIGIT / "." / "-" / "_" ), not "." or ".." */
static inline bool ref_id_seg(const ref_seg *g)
{
	if (g->n == 0 || ref_is(g, ".") || ref_is(g, ".."))
		return false;
	for (size_t i = 0; i < g->n; i++) {
		unsigned char c = (unsigned char)g->s[i];
		if (!ref_td_char(c) && !(c >= 'A' && c <= 'Z'))
			return false;
	}
	return true;
}

/*
 * ref_id_parse: scheme, trust domain (1..255 of [a-z0-9._-]) and at least
 * one path segment; the segments go to path (np of them). pattern admits
 * "*" segments and a last "**". The lone pattern "*" is handled by callers.
 */
static inline bool ref_id_parse(const char *s, size_t len, bool pattern,
                                ref_seg *td, ref_seg *path, size_t *np)
{
	if (len < 1 || len > 2048 || memchr(s, '\0', len))
		return false;
	if (len < REF_SCHEME_LEN || memcmp(s, REF_SCHEME, REF_SCHEME_LEN) != 0)
		return false;
	const char *rest = s + REF_SCHEME_LEN;
	size_t rlen = len - REF_SCHEME_LEN;
	const char *slash = memchr(rest, '/', rlen);
	if (slash == NULL)
		return false; /* no path */
	*td = (ref_seg){rest, (size_t)(slash - rest)};
	if (td->n < 1 || td->n > 255)
		return false;
	for (size_t i = 0; i < td->n; i++)
		if (!ref_td_char((unsigned char)td->s[i]))
			return false;
	*np = ref_cut(slash + 1, rlen - td->n - 1, path);
	for (size_t i = 0; i < *np; i++) {
		if (pattern && ref_is(&path[i], "*"))
			continue;
		if (pattern && i + 1 == *np && ref_is(&path[i], "**"))
			continue;
		if (!ref_id_seg(&path[i]))
			return false;
	}
	return true;
}

static inline bool ref_spiffe_valid(const char *s, size_t len)
{
	static ref_seg path[REF_SEG_MAX];
	ref_seg td;
	size_t np;
	return ref_id_parse(s, len, false, &td, path, &np);
}

static inline bool ref_id_pattern_valid(const char *s, size_t len)
{
	static ref_seg path[REF_SEG_MAX];
	ref_seg td;
	size_t np;
	if (len == 1 && s[0] == '*')
		return true;
	return ref_id_parse(s, len, true, &td, path, &np);
}

/* Trust domains compare exactly; "*" one segment; last "**" one or more. */
static inline bool ref_id_match(const char *p, size_t plen, const char *id,
                                size_t ilen)
{
	static ref_seg pp[REF_SEG_MAX], ip[REF_SEG_MAX];
	ref_seg ptd, itd;
	size_t np, ni;
	if (!ref_id_parse(id, ilen, false, &itd, ip, &ni))
		return false;
	if (plen == 1 && p[0] == '*')
		return true;
	if (!ref_id_parse(p, plen, true, &ptd, pp, &np) || !ref_eq(&ptd, &itd))
		return false;
	for (size_t i = 0; i < np; i++) {
		if (i + 1 == np && ref_is(&pp[i], "**"))
			return ni > i;
		if (i >= ni)
			return false;
		if (!ref_is(&pp[i], "*") && !ref_eq(&pp[i], &ip[i]))
			return false;
	}
	return ni == np;
}

#endif
