/*
 * brokerless/advert.h - encode and decode the discovery records carried
 * in CTRL ADVERT frames (docs/wire.md §12). Pure: no I/O, no allocation,
 * so it can be fuzzed on its own (tests/fuzz/fuzz_advert.c).
 *
 * A decoded record points into the caller's buffer: it is valid as long
 * as that buffer is. Every string is checked here against its grammar
 * (SPIFFE ID or empty, topic, pattern, URL characters), so the gossip
 * table never stores anything malformed.
 */
#ifndef TSM_BROKERLESS_ADVERT_H
#define TSM_BROKERLESS_ADVERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tsm/err.h"
#include "wire/cursor.h"

#define TSM_ADV_VERSION 1
#define TSM_ADV_MAX_RECORDS 32   /* per ADVERT frame */
#define TSM_ADV_MAX_URLS 4       /* listen URLs per node */
#define TSM_ADV_URL_MAX 127      /* bytes per URL */
#define TSM_ADV_MAX_TOPICS 64    /* topic adverts per node */
#define TSM_ADV_ID_MAX 2048      /* SPIFFE ID bytes (security.md) */

/* §12.2 record flags */
#define TSM_ADV_F_SELF 0x01      /* the record describes its sender */
#define TSM_ADV_F_LEAVING 0x02   /* the node is closing: forget it */
#define TSM_ADV_F__ALL 0x03

/* §12.2 topic advert kinds */
enum tsm__adv_kind { TSM_ADV_PUB = 1, TSM_ADV_SUB = 2 };

typedef struct tsm__adv_str {
	const char *s;   /* not NUL-terminated */
	uint16_t n;
} tsm__adv_str;

typedef struct tsm__adv_topic {
	uint8_t kind;    /* enum tsm__adv_kind */
	tsm__adv_str name; /* PUB: a topic; SUB: a pattern */
} tsm__adv_topic;

typedef struct tsm__adv_rec {
	uint64_t node_id;  /* != 0, random per context (its incarnation) */
	uint64_t version;  /* grows with every change and heartbeat */
	uint8_t flags;     /* TSM_ADV_F_* */
	tsm__adv_str id;   /* SPIFFE ID; empty for an insecure node */
	uint8_t nurls;
	tsm__adv_str urls[TSM_ADV_MAX_URLS];
	uint16_t ntopics;
	tsm__adv_topic topics[TSM_ADV_MAX_TOPICS];
} tsm__adv_rec;

/* tsm__adv_rec_size: the encoded size of r (§12.2). */
size_t tsm__adv_rec_size(const tsm__adv_rec *r);

/*
 * tsm__adv_begin writes the §12.1 header (count 0) into w; each
 * tsm__adv_put appends one record and bumps the count at *count_at.
 * tsm__adv_put returns false (and writes nothing) when r does not fit in
 * what is left of w or the frame already holds TSM_ADV_MAX_RECORDS.
 */
void tsm__adv_begin(tsm__wbuf *w);
bool tsm__adv_put(tsm__wbuf *w, const tsm__adv_rec *r);

/*
 * tsm__adv_decode checks the whole of buf (1..TSM_WIRE_ADVERT_MAX bytes)
 * against §12 and then calls fn once per record, in order; fn returning
 * false stops the walk. Nothing is passed to fn unless the whole frame is
 * valid, so a bad frame has no partial effect. Returns TSM_OK, or
 * TSM_ERR_BAD_LENGTH / TSM_ERR_BAD_FIELD / TSM_ERR_BAD_TOPIC /
 * TSM_ERR_BAD_PATTERN with a detail naming the record and byte offset.
 */
typedef bool (*tsm__adv_fn)(void *arg, const tsm__adv_rec *r);
tsm_err tsm__adv_decode(const uint8_t *buf, size_t len, tsm__adv_fn fn,
                        void *arg);

#endif
