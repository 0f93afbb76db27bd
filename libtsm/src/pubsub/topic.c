/*
 * pubsub/topic.c - topic and pattern grammar and matching
 * (docs/wire.md §8.1).
 *
 * Names are checked one segment at a time; a failure names the byte
 * offset and echoes only the part before it, which has passed the grammar
 * and so holds no control characters (names also come from peers). The
 * matcher walks pattern and topic segments side by side in one pass: with
 * "*" matching exactly one segment and "**" allowed only last, no
 * backtracking is ever needed.
 */
#include <string.h>

#include "core/common.h"
#include "pubsub/topic.h"

/* Which grammar a check applies, and how it reports. */
struct name_kind {
	bool pattern;
	tsm_err err;
	const char *what;
};

static const struct name_kind topic_kind = {false, TSM_ERR_BAD_TOPIC,
                                            "topic"};
static const struct name_kind pattern_kind = {true, TSM_ERR_BAD_PATTERN,
                                              "pattern"};

static tsm_err name_bad(const struct name_kind *k, const char *s, size_t at,
                        const char *rule)
{
	return tsm__err_set(k->err, "%s: %s at byte %zu (after \"%.*s\")",
	                    k->what, rule, at, (int)at, s);
}

/* [A-Za-z0-9._-], spelled out: isalnum() would depend on the locale. */
static bool seg_char_ok(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

/* seg_len: bytes from off to the next '/' or the end. */
static size_t seg_len(const char *s, size_t len, size_t off)
{
	size_t n = 0;
	while (off + n < len && s[off + n] != '/')
		n++;
	return n;
}

static bool seg_is(const char *s, size_t off, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(s + off, lit, n) == 0;
}

/* seg_chars: every byte of a plain segment is in the grammar. */
static tsm_err seg_chars(const struct name_kind *k, const char *s, size_t off,
                         size_t n)
{
	for (size_t i = off; i < off + n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (seg_char_ok(ch))
			continue;
		if (ch == '\0')
			return name_bad(k, s, i, "NUL byte");
		if (ch == '*' && k->pattern)
			return name_bad(k, s, i, "'*' inside a segment");
		return name_bad(k, s, i, "byte not in [A-Za-z0-9._-/]");
	}
	return TSM_OK;
}

static tsm_err seg_check(const struct name_kind *k, const char *s, size_t len,
                         size_t off, size_t n)
{
	if (n == 0)
		return name_bad(k, s, off, "empty segment");
	if (k->pattern && seg_is(s, off, n, "*"))
		return TSM_OK;
	if (k->pattern && seg_is(s, off, n, "**"))
		return off + n == len ? TSM_OK
		                      : name_bad(k, s, off, "'**' not last");
	return seg_chars(k, s, off, n);
}

static tsm_err name_check(const struct name_kind *k, const char *s,
                          size_t len)
{
	if (s == NULL || len == 0)
		return tsm__err_set(k->err, "%s: empty", k->what);
	if (len > TSM_TOPIC_MAX)
		return tsm__err_set(k->err, "%s: %zu bytes, more than %d",
		                    k->what, len, TSM_TOPIC_MAX);
	for (size_t off = 0;; off++) { /* off++ steps over the '/' */
		size_t n = seg_len(s, len, off);
		tsm_err err = seg_check(k, s, len, off, n);
		if (err != TSM_OK)
			return err;
		off += n;
		if (off == len)
			return TSM_OK;
	}
}

tsm_err tsm__topic_check(const char *s, size_t len)
{
	return name_check(&topic_kind, s, len);
}

tsm_err tsm__pattern_check(const char *s, size_t len)
{
	return name_check(&pattern_kind, s, len);
}

/*
 * Offsets step past each segment and its '/', so after the last segment
 * they are len + 1: "> len" (not "== len") means the name is used up.
 */
bool tsm__topic_match(const char *p, size_t plen, const char *t, size_t tlen)
{
	size_t po = 0, to = 0;
	for (;;) {
		if (po > plen)
			return to > tlen;
		size_t pn = seg_len(p, plen, po);
		if (seg_is(p, po, pn, "**")) /* last by the grammar */
			return true;
		if (to > tlen)
			return false;
		size_t tn = seg_len(t, tlen, to);
		if (!seg_is(p, po, pn, "*") &&
		    (pn != tn || memcmp(p + po, t + to, pn) != 0))
			return false;
		po += pn + 1;
		to += tn + 1;
	}
}
