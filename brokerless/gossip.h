/*
 * brokerless/gossip.h - the membership table that discovery gossips
 * (docs/design/discovery.md). Pure bookkeeping: no I/O, no clock reads,
 * no threads, so the same code runs in the context (disc.c) and in the
 * in-process simulation of 100 and 1 000 nodes (bench/gossip_sim.c).
 *
 * Each node owns one record about itself (its listen URLs and topic
 * adverts) and bumps its version on every change and every heartbeat.
 * Records spread by anti-entropy deltas: every entry has a local change
 * stamp, entries are kept in stamp order, and each peer has a cursor, so
 * a gossip round sends a peer only what changed since the last round it
 * got, never an entry back to the node that told us. A newer version of
 * a node always wins; an entry whose version stops growing for `timeout`
 * is forgotten, and a LEAVING record is kept as a tombstone for that long
 * so that an older copy cannot bring it back.
 *
 * Memory: at most max_nodes entries (beyond, new nodes are refused and
 * counted), each bounded by the §12 limits of one record.
 */
#ifndef TSM_BROKERLESS_GOSSIP_H
#define TSM_BROKERLESS_GOSSIP_H

#include "brokerless/advert.h"
#include "tsm/time.h"

typedef struct tsm__gtopic {
	uint8_t kind;           /* enum tsm__adv_kind */
	uint16_t len;
	char *name;             /* NUL-terminated */
} tsm__gtopic;

typedef struct tsm__gnode {
	uint64_t node_id;
	uint64_t version;
	uint8_t flags;          /* TSM_ADV_F_LEAVING: a tombstone */
	char *id;               /* identity, "" when insecure */
	uint8_t nurls;
	char *urls[TSM_ADV_MAX_URLS];
	uint16_t ntopics;
	tsm__gtopic *topics;
	uint64_t from;          /* node that told us last (self: 0) */
	uint64_t stamp;         /* local change order */
	tsm_time updated;       /* when version last grew here */
	tsm_time first_seen;
	void *user;             /* the owner's per-node state (disc.c) */
	struct tsm__gnode *prev, *next; /* ascending stamp */
	struct tsm__gnode *hnext;
} tsm__gnode;

typedef struct tsm__gossip {
	uint64_t self_id;
	tsm__gnode *self;
	size_t max_nodes, n;
	tsm_duration timeout;
	uint64_t clock;             /* last stamp given */
	tsm__gnode *head, *tail;    /* ascending stamp */
	tsm__gnode **buckets;
	size_t nbuckets;            /* power of two */
	uint64_t merged, stale, refused_full, expired, left;
} tsm__gossip;

enum tsm__gmerge { TSM_G_NEW, TSM_G_UPDATED, TSM_G_STALE, TSM_G_FULL,
                   TSM_G_LEFT, TSM_G_SELF, TSM_G_NOMEM };

/* tsm__gossip_init: the table of node self_id (!= 0); TSM_ENOMEM. */
tsm_err tsm__gossip_init(tsm__gossip *g, uint64_t self_id, size_t max_nodes,
                         tsm_duration timeout);
void tsm__gossip_fini(tsm__gossip *g);

/* tsm__gossip_set_self replaces this node's record (r->node_id and
 * version are ignored: the version grows). TSM_ENOMEM leaves it as was. */
tsm_err tsm__gossip_set_self(tsm__gossip *g, const tsm__adv_rec *r,
                             tsm_time now);
/* tsm__gossip_heartbeat: a new version of the self record, so that the
 * others see this node alive. */
void tsm__gossip_heartbeat(tsm__gossip *g, tsm_time now);
/* tsm__gossip_leave marks the self record LEAVING (sent last). */
void tsm__gossip_leave(tsm__gossip *g, tsm_time now);

/*
 * tsm__gossip_merge takes record r heard from node `from`. A record with
 * a version not above the one held is STALE; a new node beyond max_nodes
 * is FULL; the node's own record is SELF (ignored). *out (may be NULL)
 * receives the entry for NEW, UPDATED and LEFT.
 */
enum tsm__gmerge tsm__gossip_merge(tsm__gossip *g, const tsm__adv_rec *r,
                                   uint64_t from, tsm_time now,
                                   tsm__gnode **out);

tsm__gnode *tsm__gossip_find(const tsm__gossip *g, uint64_t node_id);

/* tsm__gossip_expire forgets entries silent for the timeout (tombstones
 * included; never self), calling fn(arg, node) before each is freed. */
typedef void (*tsm__gnode_fn)(void *arg, tsm__gnode *n);
void tsm__gossip_expire(tsm__gossip *g, tsm_time now, tsm__gnode_fn fn,
                        void *arg);

/*
 * tsm__gossip_collect appends to w (after tsm__adv_begin) the entries
 * changed after stamp *cursor, oldest change first, skipping those that
 * node `to` told us or that describe `to` itself, and advances *cursor
 * past what it has dealt with. filter(arg, node, i) says whether topic i
 * of node may be shown to `to` (NULL: all); a record other than self
 * with no topic that may be shown is skipped (so a peer learns only of
 * nodes it may exchange data with). Returns the number
 * of records written; stops early when w is full (the rest goes in the
 * next call).
 */
typedef bool (*tsm__gfilter_fn)(void *arg, const tsm__gnode *n, unsigned i);
unsigned tsm__gossip_collect(tsm__gossip *g, uint64_t *cursor, uint64_t to,
                             tsm__gfilter_fn filter, void *arg, tsm__wbuf *w);

#endif
