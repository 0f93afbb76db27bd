/*
 * tests/fuzz/fuzz_advert.c - discovery ADVERT records (brokerless/advert.h,
 * docs/wire.md §12) and the gossip table fed with them.
 *
 * Properties: any bytes are accepted or refused with a §12 reason, never
 * a crash; an accepted frame re-encodes to exactly the same bytes (there
 * is one encoding), and every string it yields lies inside the input and
 * within its limit. Accepted records then go through the gossip table
 * (merge with a tiny capacity, expiry) and out again through
 * tsm__gossip_collect with a filter driven by the input: whatever the
 * table sends must itself decode cleanly, so a node can never be made to
 * emit a frame its peers refuse. LeakSanitizer checks every input.
 */
#include "fuzz_util.h"

#include "brokerless/advert.h"
#include "brokerless/gossip.h"
#include "tsm/tsm.h"
#include "wire/frame.h"

struct ctx {
	const uint8_t *in;
	size_t len;
	tsm__wbuf *w;       /* re-encoding of the input */
	tsm__gossip *g;
	unsigned n;
};

static bool inside(const struct ctx *c, const tsm__adv_str *s, size_t max)
{
	if (s->n == 0)
		return true;
	const uint8_t *p = (const uint8_t *)s->s;
	return s->n <= max && p >= c->in && p + s->n <= c->in + c->len;
}

static bool on_rec(void *arg, const tsm__adv_rec *r)
{
	struct ctx *c = arg;
	FUZZ_CHECK(r->node_id != 0 && r->nurls <= TSM_ADV_MAX_URLS &&
	           r->ntopics <= TSM_ADV_MAX_TOPICS, "limits not enforced");
	FUZZ_CHECK(inside(c, &r->id, TSM_ADV_ID_MAX), "id outside the input");
	for (unsigned i = 0; i < r->nurls; i++)
		FUZZ_CHECK(inside(c, &r->urls[i], TSM_ADV_URL_MAX) && r->urls[i].n,
		           "URL %u outside the input or empty", i);
	for (unsigned i = 0; i < r->ntopics; i++)
		FUZZ_CHECK(inside(c, &r->topics[i].name, TSM_TOPIC_MAX) &&
		                   r->topics[i].name.n,
		           "topic %u outside the input or empty", i);
	FUZZ_CHECK(tsm__adv_put(c->w, r), "an accepted record does not re-encode");
	tsm__gossip_merge(c->g, r, 1000 + c->n % 3, (tsm_time)c->n * TSM_SEC, NULL);
	c->n++;
	return true;
}

static bool filter(void *arg, const tsm__gnode *n, unsigned i)
{
	const struct ctx *c = arg;
	return ((c->len + n->node_id + i) & 3) != 0;
}

static bool check_out(void *arg, const tsm__adv_rec *r)
{
	(void)arg;
	FUZZ_CHECK(r->ntopics > 0 || (r->flags & TSM_ADV_F_SELF),
	           "a record with no visible topic was sent");
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t again[TSM_WIRE_ADVERT_MAX], out[TSM_WIRE_ADVERT_MAX];
	tsm__gossip g;
	tsm__wbuf w, o;
	if (tsm__gossip_init(&g, 1, 4, 3 * TSM_SEC) != TSM_OK)
		return 0;
	tsm__wbuf_init(&w, again, sizeof(again));
	tsm__adv_begin(&w);
	struct ctx c = {data, size, &w, &g, 0};
	tsm_err e = tsm__adv_decode(data, size, on_rec, &c);
	if (e != TSM_OK) {
		FUZZ_CHECK(e == TSM_ERR_BAD_LENGTH || e == TSM_ERR_BAD_FIELD ||
		                   e == TSM_ERR_BAD_TOPIC || e == TSM_ERR_BAD_PATTERN,
		           "refused with %s", tsm_err_name(e));
		FUZZ_CHECK(c.n == 0, "a refused frame had %u records used", c.n);
	} else {
		FUZZ_CHECK(w.len == size && memcmp(again, data, size) == 0,
		           "re-encoding differs (%zu vs %zu bytes)", w.len, size);
	}
	/* What the table sends is valid, whatever it was fed. */
	tsm__gossip_expire(&g, (tsm_time)(c.n / 2) * TSM_SEC, NULL, NULL);
	uint64_t cursor = 0;
	for (int round = 0; round < 4; round++) {
		tsm__wbuf_init(&o, out, 200 + (size % 3) * 4000);
		tsm__adv_begin(&o);
		unsigned put = tsm__gossip_collect(&g, &cursor, 1000 + round % 3,
		                                   filter, &c, &o);
		if (put == 0)
			break;
		e = tsm__adv_decode(out, o.len, check_out, NULL);
		FUZZ_CHECK(e == TSM_OK, "the table sent a frame it would refuse: %s",
		           tsm_err_detail());
	}
	tsm__gossip_fini(&g);
	return 0;
}
