/*
 * tests/fuzz/gen_seeds.c - writes the small seed corpora of
 * tests/fuzz/corpus/<target>/ (run by `build.sh --seeds`; the output is
 * checked in, so this runs only when the seeds should change).
 *
 * Binary seeds are made with the library's own encoders, so they are
 * valid frames and maps that the fuzzer then mutates; text seeds (names,
 * policies) are written out literally. Each seed is a handful of bytes to
 * a few hundred: libFuzzer learns the rest.
 */
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "wire/cursor.h"
#include "wire/frame.h"
#include "wire/meta.h"

static const char *root;

static void put(const char *target, const char *name, const void *p, size_t n)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", root, target);
	if (mkdir(path, 0755) != 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static void put_text(const char *target, const char *name, const char *s)
{
	put(target, name, s, strlen(s));
}

/* ---- frames ---------------------------------------------------------------- */

struct out {
	uint8_t b[8192];
	tsm__wbuf w;
};

static void frame(tsm__wbuf *w, uint8_t type, uint8_t flags, uint8_t lane,
                  uint64_t seq, uint32_t topic, const uint8_t *body, size_t n)
{
	uint8_t hdr[TSM_WIRE_HDR_LEN];
	tsm__fhdr h = {.version = TSM_WIRE_VERSION, .type = type, .flags = flags,
	               .lane = lane, .seq = seq, .topic_id = topic,
	               .priority = lane, .body_len = (uint32_t)n};
	tsm__fhdr_encode(&h, hdr);
	tsm__wbuf_bytes(w, hdr, sizeof(hdr));
	tsm__wbuf_bytes(w, body, n);
}

static size_t preface_body(uint8_t *b, size_t cap, uint16_t pad)
{
	tsm__wbuf w;
	tsm__preface p = {.min_version = 1, .max_version = 1,
	                  .flags = TSM_PREFACE_INSECURE, .node_id = 7,
	                  .name = (const uint8_t *)"node-a", .name_len = 6,
	                  .pad_len = pad};
	memset(p.nonce, 0xab, sizeof(p.nonce));
	tsm__wbuf_init(&w, b, cap);
	tsm__preface_encode(&p, &w);
	return w.len;
}

static size_t ctrl_body(uint8_t *b, uint8_t type, uint32_t id, uint64_t v,
                        const char *s)
{
	tsm__wbuf w;
	tsm__ctrl c = {.type = type, .id = id, .value = v,
	               .str = (const uint8_t *)s, .str_len = (uint16_t)strlen(s)};
	tsm__wbuf_init(&w, b, 512);
	tsm__ctrl_encode(&c, &w);
	return w.len;
}

static size_t reason_body(uint8_t *b, uint32_t code, const char *text)
{
	tsm__wbuf w;
	tsm__reason r = {.code = code, .text = (const uint8_t *)text,
	                 .text_len = (uint16_t)strlen(text)};
	tsm__wbuf_init(&w, b, 512);
	tsm__reason_encode(&r, &w);
	return w.len;
}

static void record(tsm__wbuf *w, tsm__rec r, const uint8_t *meta,
                   const char *payload)
{
	r.payload_len = (uint32_t)strlen(payload);
	tsm__rec_encode_hdr(&r, w);
	tsm__wbuf_bytes(w, meta, r.meta_len);
	tsm__wbuf_bytes(w, payload, r.payload_len);
}

static const uint8_t meta_u[] = {0x81, 0xa1, 'u', 0x81, 0xa1, 'k', 0x01};

static size_t data_whole(uint8_t *b)
{
	tsm__wbuf w;
	tsm__wbuf_init(&w, b, 1024);
	record(&w, (tsm__rec){.topic_id = 1, .msg_id = 1}, NULL, "hello");
	record(&w, (tsm__rec){.topic_id = 2, .flags = TSM_REC_META | TSM_REC_TS,
	                      .meta_len = sizeof(meta_u), .budget_us = 5000,
	                      .msg_id = 2, .ts = 123456},
	       meta_u, "world!");
	return w.len;
}

static size_t data_frag(uint8_t *b, uint32_t index, uint16_t flags,
                        const char *payload)
{
	tsm__wbuf w;
	tsm__wbuf_init(&w, b, 1024);
	record(&w, (tsm__rec){.topic_id = 1, .flags = TSM_REC_FRAG | flags,
	                      .msg_id = 9, .total_len = 10, .frag_index = index},
	       NULL, payload);
	return w.len;
}

static void seeds_frame(void)
{
	static struct out o;
	uint8_t body[2048];
	size_t n;
	/* A session's first frames, then data: mode 0 (after auth). */
	tsm__wbuf_init(&o.w, o.b, sizeof(o.b));
	tsm__wbuf_u8(&o.w, 0);
	n = preface_body(body, sizeof(body), 0);
	frame(&o.w, TSM_F_PREFACE, 0, 0, 0, 0, body, n);
	frame(&o.w, TSM_F_ACCEPT, 0, 0, 0, 0, NULL, 0);
	n = ctrl_body(body, TSM_C_TOPIC, 1, 0, "t/a");
	frame(&o.w, TSM_F_CTRL, 0, 0, 1, 0, body, n);
	n = data_whole(body);
	frame(&o.w, TSM_F_DATA, 0, 3, 0, 1, body, n);
	put("fuzz_frame", "session", o.b, o.w.len);
	/* Fragments: 0, LAST, then a message aborted after fragment 0. */
	tsm__wbuf_init(&o.w, o.b, sizeof(o.b));
	tsm__wbuf_u8(&o.w, 0);
	n = data_frag(body, 0, 0, "01234");
	frame(&o.w, TSM_F_DATA, TSM_FF_FRAGMENT, 1, 0, 1, body, n);
	n = data_frag(body, 1, TSM_REC_LAST, "56789");
	frame(&o.w, TSM_F_DATA, TSM_FF_FRAGMENT, 1, 1, 1, body, n);
	n = data_frag(body, 1, TSM_REC_LAST | TSM_REC_ABORT, "");
	frame(&o.w, TSM_F_DATA, TSM_FF_FRAGMENT, 1, 2, 1, body, n);
	put("fuzz_frame", "fragments", o.b, o.w.len);
	/* REJECT, and a sealed CLOSE (reason plus a 16-byte tag). */
	tsm__wbuf_init(&o.w, o.b, sizeof(o.b));
	tsm__wbuf_u8(&o.w, 2);
	n = reason_body(body, 0x1106, "not allowed");
	frame(&o.w, TSM_F_REJECT, 0, 0, 0, 0, body, n);
	n = reason_body(body, 0, "");
	memset(body + n, 0xee, TSM_WIRE_TAG_LEN);
	frame(&o.w, TSM_F_CLOSE, TSM_FF_SEALED, 0, 5, 0, body, n + TSM_WIRE_TAG_LEN);
	put("fuzz_frame", "reasons", o.b, o.w.len);
	/* Bodies alone: PREFACE with padding, reason, CTRL, DATA. */
	body[0] = 4;
	n = preface_body(body + 1, sizeof(body) - 1, 24);
	put("fuzz_frame", "body-preface", body, n + 1);
	body[0] = 5;
	n = reason_body(body + 1, 0x0e06, "bad frame");
	put("fuzz_frame", "body-reason", body, n + 1);
	body[0] = 6;
	n = ctrl_body(body + 1, TSM_C_SUBSCRIBE, 0, 0, "t/*");
	put("fuzz_frame", "body-ctrl-sub", body, n + 1);
	body[0] = 6;
	n = ctrl_body(body + 1, TSM_C_PING, 0, 42, "");
	put("fuzz_frame", "body-ctrl-ping", body, n + 1);
	body[0] = 7;
	n = data_whole(body + 1);
	put("fuzz_frame", "body-data", body, n + 1);
	body[0] = 15;
	n = data_frag(body + 1, 0, TSM_REC_LAST, "0123456789");
	put("fuzz_frame", "body-fragment", body, n + 1);
}

/* ---- metadata ---------------------------------------------------------------- */

static int sink(void *data, const char *buf, size_t len)
{
	tsm__wbuf_bytes(data, buf, len);
	return 0;
}

static void pstr(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

static void seeds_meta(void)
{
	static struct out o;
	msgpack_packer pk;
	/* Every well-known key, a user map with an array and nil. */
	tsm__wbuf_init(&o.w, o.b, sizeof(o.b));
	msgpack_packer_init(&pk, &o.w, sink);
	msgpack_pack_map(&pk, 4);
	pstr(&pk, "ts");
	msgpack_pack_uint64(&pk, 1234567890123ull);
	pstr(&pk, "ct");
	pstr(&pk, "application/json");
	pstr(&pk, "tc");
	pstr(&pk, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
	pstr(&pk, "u");
	msgpack_pack_map(&pk, 2);
	pstr(&pk, "k");
	msgpack_pack_array(&pk, 3);
	msgpack_pack_int(&pk, -1);
	msgpack_pack_double(&pk, 2.5);
	msgpack_pack_nil(&pk);
	pstr(&pk, "b");
	msgpack_pack_bin(&pk, 3);
	msgpack_pack_bin_body(&pk, "\x00\x01\x02", 3);
	put("fuzz_meta", "well-known", o.b, o.w.len);
	/* Nested to the depth limit, plus an unknown key and an ext. */
	tsm__wbuf_init(&o.w, o.b, sizeof(o.b));
	msgpack_packer_init(&pk, &o.w, sink);
	msgpack_pack_map(&pk, 2);
	pstr(&pk, "x-unknown");
	msgpack_pack_ext(&pk, 2, 7);
	msgpack_pack_ext_body(&pk, "ab", 2);
	pstr(&pk, "u");
	for (int d = 0; d < 6; d++) {
		msgpack_pack_map(&pk, 1);
		pstr(&pk, "n");
	}
	msgpack_pack_array(&pk, 0);
	put("fuzz_meta", "deep", o.b, o.w.len);
	put("fuzz_meta", "empty-map", "\x80", 1);
	put("fuzz_meta", "ts-wrong-type", "\x81\xa2ts\xa1x", 6);
	/* A bomb: a map announcing 2^32-1 pairs in 5 bytes. */
	put("fuzz_meta", "bomb", "\xdf\xff\xff\xff\xff", 5);
}

/* ---- names, policies, state machine -------------------------------------------- */

static void seeds_text(void)
{
	static const char *const topics[][2] = {
		{"match-star", "a/*\na/b"}, {"match-globstar", "a/**\na"},
		{"all", "**\nx/y/z"}, {"lead-star", "*/b/*\na/b/c"},
		{"self", "sensors/imu-0/accel.x"}, {"empty-seg", "a//b\na/b"},
		{"star-in-seg", "x*y\nx"}, {"globstar-mid", "a/**/b\na/q/b"},
	};
	for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
		put_text("fuzz_topic", topics[i][0], topics[i][1]);
	static const char *const ids[][2] = {
		{"star", "spiffe://td-a/*\nspiffe://td-a/pub"},
		{"globstar", "spiffe://td-a/svc/**\nspiffe://td-a/svc/x/y"},
		{"any", "*\nspiffe://example.org/ns/a/sa/b"},
		{"other-td", "spiffe://td-b/x\nspiffe://td-a/x"},
		{"bad-bits", "spiffe://TD/x\nspiffe://td/./x"},
		{"port-query", "spiffe://td:80/x\nspiffe://td/x?q=1"},
		{"self", "spiffe://prod.example.com/ns/default/sa/web"},
	};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		put_text("fuzz_spiffe", ids[i][0], ids[i][1]);
	put_text("fuzz_policy", "typical",
	         "# publishers of td-a\n"
	         "allow publish spiffe://td-a/pub/* sensors/** max_priority=2 "
	         "max_bytes=65536\n"
	         "deny  publish spiffe://td-a/pub/bad sensors/secret\n"
	         "allow subscribe spiffe://td-a/sub/** sensors/*/accel "
	         "protection=integrity\n"
	         "allow\tsubscribe\t*\tpublic/**\r\n"
	         "\n"
	         "deny subscribe spiffe://td-b/** **   # nobody of td-b\n");
	put_text("fuzz_policy", "first-wins",
	         "allow publish * a/** max_bytes=10\n"
	         "allow publish * a/b max_bytes=99 protection=none\n"
	         "deny publish spiffe://td-a/x a/c\n");
	put_text("fuzz_policy", "bad-option",
	         "allow publish * a max_priority=9\n");
	put_text("fuzz_policy", "deny-option", "deny publish * a max_bytes=1\n");
	put_text("fuzz_policy", "empty", "");
}

static void seeds_fsm(void)
{
	/* IDLE: START, RX_PREFACE, HS_DONE, RX_ACCEPT, VERIFY_OK, DATA, CTRL,
	 * REKEY, REKEY_DONE, RX_CLOSE, RX_DATA, DRAINED, CLOSE. */
	static const uint8_t happy[] = {0, 0, 1, 4, 5, 6, 8, 9, 10, 11, 12, 8,
	                                14, 13};
	static const uint8_t error[] = {0, 0, 1, 3, 3, 16, 13, 8, 0};
	static const uint8_t reject[] = {0, 0, 1, 4, 7, 13, 13};
	static const uint8_t anystate[] = {0x84, 8, 9, 12, 14, 15};
	put("fuzz_fsm", "happy", happy, sizeof(happy));
	put("fuzz_fsm", "error", error, sizeof(error));
	put("fuzz_fsm", "reject", reject, sizeof(reject));
	put("fuzz_fsm", "any-state", anystate, sizeof(anystate));
}

/* fuzz_reasm programs (see its generate()): op bytes and their operands. */
static void seeds_reasm(void)
{
	/* A two-fragment message on lane 0, then a batch of whole records
	 * (metadata, send time, one with refused metadata), a PING and a
	 * CLOSE; recv() in chunks of 1..64 bytes (the last byte). */
	static const uint8_t two_frags[] = {
		0,                                /* normal prologue */
		0, 0, 0, 1, 5, 0, 0, 0, 9, 0,     /* fragment 0: 2 of 10 bytes */
		0, 0, 0, 0, 0, 0, 0, 0, 0,        /* fragment 1: the other 8 */
		6, 0x08, 0x09, 5, 1, 0x2a, 20, 2, 0x31, 9, 3, /* 3 records */
		9, 1, 2, 3, 4, 5, 6, 7, 8,        /* PING */
		15, 2};                           /* CLOSE */
	/* Interleaved lanes, an ABORT, metadata on fragment 0. */
	static const uint8_t lanes[] = {
		0,
		0, 0, 0, 0x09, 1, 4, 0, 0, 50, 0, /* lane 0, meta, 2 of 51 */
		0, 1, 0, 2, 1, 4, 0, 0, 30, 0,    /* lane 1, 2 of 31 */
		0, 1, 0, 0, 0, 3, 0, 0, 0,        /* lane 1: ABORT */
		0, 0, 0, 0, 0, 0, 0, 0, 0,        /* lane 0: the rest, LAST */
		11, 0x05,                         /* TOPIC 9 "t/n9" */
		10, 0x00,                         /* SUBSCRIBE t/ * */
		3};
	/* Late ACCEPT, a TOPIC, a record; recv() byte by byte. */
	static const uint8_t late[] = {7, 13, 5, 11, 0x80, 6, 0x00, 0x03, 10, 4,
	                               1};
	/* Six messages at once: the queue of 4 fills and the session parks. */
	static const uint8_t park[] = {0, 6, 0x08, 1, 5, 1, 1, 6, 2, 1, 7, 3,
	                               6, 0x08, 2, 5, 4, 2, 6, 5, 2, 7, 6, 0};
	/* A corrupted header, then raw bytes. */
	static const uint8_t raw[] = {0, 12, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8, 14, 8,
	                              'T', 'M', 1, 6, 0, 0, 0, 0, 3};
	put("fuzz_reasm", "two-fragments", two_frags, sizeof(two_frags));
	put("fuzz_reasm", "lanes-abort", lanes, sizeof(lanes));
	put("fuzz_reasm", "late-accept", late, sizeof(late));
	put("fuzz_reasm", "park", park, sizeof(park));
	put("fuzz_reasm", "glitch-raw", raw, sizeof(raw));
}

static void seeds_planted(void)
{
	put_text("fuzz_planted", "near", "BUG.");
	put_text("fuzz_planted", "far", "hello");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS-DIR\n", argv[0]);
		return 2;
	}
	root = argv[1];
	if (mkdir(root, 0755) != 0 && errno != EEXIST) {
		perror(root);
		return 1;
	}
	seeds_frame();
	seeds_meta();
	seeds_text();
	seeds_fsm();
	seeds_reasm();
	seeds_planted();
	return 0;
}
