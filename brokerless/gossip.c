/*
 * brokerless/gossip.c - the membership table (gossip.h).
 */
#include "brokerless/gossip.h"

#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "core/common.h"

static size_t g_bucket(const tsm__gossip *g, uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdull; /* murmur3 finaliser: ids are random,
	                                but a peer chooses its own */
	id ^= id >> 33;
	return (size_t)id & (g->nbuckets - 1);
}

tsm_err tsm__gossip_init(tsm__gossip *g, uint64_t self_id, size_t max_nodes,
                         tsm_duration timeout)
{
	memset(g, 0, sizeof(*g));
	g->self_id = self_id;
	g->max_nodes = max_nodes ? max_nodes : 1;
	g->timeout = timeout;
	g->nbuckets = 16;
	while (g->nbuckets < g->max_nodes)
		g->nbuckets *= 2;
	g->buckets = calloc(g->nbuckets, sizeof(*g->buckets));
	if (!g->buckets)
		return tsm__err_set(TSM_ENOMEM, "gossip table");
	return TSM_OK;
}

static void g_clear(tsm__gnode *n)
{
	free(n->id);
	for (unsigned i = 0; i < n->nurls; i++)
		free(n->urls[i]);
	for (unsigned i = 0; i < n->ntopics; i++)
		free(n->topics[i].name);
	free(n->topics);
	n->id = NULL;
	n->nurls = 0;
	n->ntopics = 0;
	n->topics = NULL;
}

static void g_unlink_order(tsm__gossip *g, tsm__gnode *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		g->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		g->tail = n->prev;
	n->prev = n->next = NULL;
}

/* A change: the entry moves to the end of the stamp order. */
static void g_touch(tsm__gossip *g, tsm__gnode *n)
{
	if (n->prev || n->next || g->head == n)
		g_unlink_order(g, n);
	n->stamp = ++g->clock;
	n->prev = g->tail;
	if (g->tail)
		g->tail->next = n;
	else
		g->head = n;
	g->tail = n;
}

static void g_unlink_hash(tsm__gossip *g, tsm__gnode *n)
{
	tsm__gnode **pp = &g->buckets[g_bucket(g, n->node_id)];
	while (*pp && *pp != n)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = n->hnext;
}

void tsm__gossip_fini(tsm__gossip *g)
{
	tsm__gnode *n = g->head;
	while (n) {
		tsm__gnode *next = n->next;
		g_clear(n);
		free(n);
		n = next;
	}
	free(g->buckets);
	memset(g, 0, sizeof(*g));
}

tsm__gnode *tsm__gossip_find(const tsm__gossip *g, uint64_t node_id)
{
	if (!g->buckets)
		return NULL;
	for (tsm__gnode *n = g->buckets[g_bucket(g, node_id)]; n; n = n->hnext)
		if (n->node_id == node_id)
			return n;
	return NULL;
}

static char *g_dup(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* Copies r's strings into a fresh set (all or nothing). */
static bool g_fill(tsm__gnode *n, const tsm__adv_rec *r)
{
	tsm__gnode t = {0};
	bool ok = (t.id = g_dup(r->id.s ? r->id.s : "", r->id.n)) != NULL;
	for (unsigned i = 0; ok && i < r->nurls; i++, t.nurls++)
		ok = (t.urls[i] = g_dup(r->urls[i].s, r->urls[i].n)) != NULL;
	if (ok && r->ntopics)
		ok = (t.topics = calloc(r->ntopics, sizeof(*t.topics))) != NULL;
	for (unsigned i = 0; ok && i < r->ntopics; i++, t.ntopics++) {
		t.topics[i].kind = r->topics[i].kind;
		t.topics[i].len = r->topics[i].name.n;
		ok = (t.topics[i].name = g_dup(r->topics[i].name.s,
		                               r->topics[i].name.n)) != NULL;
	}
	if (!ok) {
		g_clear(&t);
		return false;
	}
	g_clear(n);
	n->id = t.id;
	n->nurls = t.nurls;
	memcpy(n->urls, t.urls, sizeof(t.urls));
	n->ntopics = t.ntopics;
	n->topics = t.topics;
	return true;
}

static tsm__gnode *g_insert(tsm__gossip *g, uint64_t node_id)
{
	tsm__gnode *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->node_id = node_id;
	size_t b = g_bucket(g, node_id);
	n->hnext = g->buckets[b];
	g->buckets[b] = n;
	g->n++;
	return n;
}

tsm_err tsm__gossip_set_self(tsm__gossip *g, const tsm__adv_rec *r,
                             tsm_time now)
{
	tsm__gnode *n = g->self;
	if (!n && !(n = g_insert(g, g->self_id)))
		return tsm__err_set(TSM_ENOMEM, "gossip self record");
	g->self = n;
	if (!g_fill(n, r))
		return tsm__err_set(TSM_ENOMEM, "gossip self record");
	if (!n->first_seen)
		n->first_seen = now;
	n->flags = 0;
	tsm__gossip_heartbeat(g, now);
	return TSM_OK;
}

void tsm__gossip_heartbeat(tsm__gossip *g, tsm_time now)
{
	if (!g->self)
		return;
	g->self->version++;
	g->self->updated = now;
	g_touch(g, g->self);
}

void tsm__gossip_leave(tsm__gossip *g, tsm_time now)
{
	if (!g->self)
		return;
	g->self->flags |= TSM_ADV_F_LEAVING;
	tsm__gossip_heartbeat(g, now);
}

enum tsm__gmerge tsm__gossip_merge(tsm__gossip *g, const tsm__adv_rec *r,
                                   uint64_t from, tsm_time now,
                                   tsm__gnode **out)
{
	if (out)
		*out = NULL;
	if (r->node_id == g->self_id)
		return TSM_G_SELF;
	tsm__gnode *n = tsm__gossip_find(g, r->node_id);
	bool fresh = n == NULL;
	if (n && r->version <= n->version) {
		g->stale++;
		return TSM_G_STALE;
	}
	if (fresh && g->n >= g->max_nodes) {
		g->refused_full++;
		return TSM_G_FULL;
	}
	if (fresh && !(n = g_insert(g, r->node_id)))
		return TSM_G_NOMEM;
	if (!g_fill(n, r)) {
		if (fresh) {
			g_unlink_hash(g, n);
			g->n--;
			free(n);
		}
		return TSM_G_NOMEM;
	}
	if (fresh)
		n->first_seen = now;
	n->version = r->version;
	n->flags = r->flags & TSM_ADV_F_LEAVING;
	n->from = from;
	n->updated = now;
	g_touch(g, n);
	g->merged++;
	if (out)
		*out = n;
	if (n->flags & TSM_ADV_F_LEAVING) {
		g->left++;
		return TSM_G_LEFT;
	}
	return fresh ? TSM_G_NEW : TSM_G_UPDATED;
}

void tsm__gossip_expire(tsm__gossip *g, tsm_time now, tsm__gnode_fn fn,
                        void *arg)
{
	tsm__gnode *n = g->head;
	/* Stamp order is change order, so the silent ones come first. */
	while (n && now - n->updated >= g->timeout) {
		tsm__gnode *next = n->next;
		if (n != g->self) {
			if (fn)
				fn(arg, n);
			g_unlink_order(g, n);
			g_unlink_hash(g, n);
			g->n--;
			g->expired++;
			g_clear(n);
			free(n);
		}
		n = next;
	}
}

/* Fills r from n with the topics filter lets through; false when a
 * non-self record would show nothing. */
static bool g_view(const tsm__gossip *g, const tsm__gnode *n,
                   tsm__gfilter_fn filter, void *arg, tsm__adv_rec *r)
{
	memset(r, 0, offsetof(tsm__adv_rec, topics));
	r->node_id = n->node_id;
	r->version = n->version;
	r->flags = n->flags | (n == g->self ? TSM_ADV_F_SELF : 0);
	r->id = (tsm__adv_str){n->id, (uint16_t)strlen(n->id)};
	r->nurls = n->nurls;
	for (unsigned i = 0; i < n->nurls; i++)
		r->urls[i] = (tsm__adv_str){n->urls[i], (uint16_t)strlen(n->urls[i])};
	for (unsigned i = 0; i < n->ntopics; i++) {
		if (filter && !filter(arg, n, i))
			continue;
		r->topics[r->ntopics].kind = n->topics[i].kind;
		r->topics[r->ntopics++].name =
			(tsm__adv_str){n->topics[i].name, n->topics[i].len};
	}
	/* A tombstone too: who may not see a node's topics never learnt of
	 * it, and must not learn of it when it leaves either. */
	return n == g->self || r->ntopics > 0;
}

unsigned tsm__gossip_collect(tsm__gossip *g, uint64_t *cursor, uint64_t to,
                             tsm__gfilter_fn filter, void *arg, tsm__wbuf *w)
{
	tsm__adv_rec rec;
	unsigned put = 0;
	tsm__gnode *n = g->tail;
	/* Walk back to the first change after the cursor: O(changes). */
	while (n && n->prev && n->prev->stamp > *cursor)
		n = n->prev;
	if (n && n->stamp <= *cursor)
		n = NULL;
	for (; n; n = n->next) {
		if (n->node_id != to && (n->from != to || n == g->self) &&
		    g_view(g, n, filter, arg, &rec)) {
			if (!tsm__adv_put(w, &rec))
				break;
			put++;
		}
		*cursor = n->stamp;
	}
	return put;
}
