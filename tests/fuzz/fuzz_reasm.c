/*
 * tests/fuzz/fuzz_reasm.c - the real receive path of a session
 * (session/rx.c: byte stream -> frames -> records -> fragment reassembly
 * -> subscriber queue) driven by fuzz input, against a model of
 * docs/wire.md §6-§8.
 *
 * Feasibility: no network is needed. The session talks to its I/O engine
 * only through the ctx->io_ops table (transport/io.h), so this target
 * builds a bare context by hand (no progress thread, insecure mode, no
 * getrandom) with a fake engine: recv() only records the buffer the
 * session armed, send() hands the bytes to a checker, close() marks the
 * connection. The harness then plays the progress thread: it copies the
 * next chunk of the peer's byte stream into the armed buffer and calls
 * tsm__session_on_recv, completes sends with tsm__session_on_send, drains
 * a local subscriber (pattern "t/ **", a reliable queue of depth 4, so
 * deliveries park the session and tsm__session_rx_resume runs) and finally
 * frees everything, so LSan sees every leak. What is NOT covered: TLS and
 * sealed frames (the secure path needs certificates and a handshake),
 * timers (tsm__session_tick: deadline expiry during reassembly), and the
 * loop's session bookkeeping beyond what tsm__ctx_session_up/down do.
 *
 * The input is a program for the peer: a valid insecure PREFACE, ACCEPT
 * and three TOPIC declarations (one variant leaves ACCEPT to the program),
 * then operations: fragment records (continuing, restarting, skipping,
 * aborting, switching message, topic or total, wrong LAST, metadata on the
 * wrong fragment, in a non-FRAGMENT frame, with a record after them),
 * batches of whole records, PING, SUBSCRIBE, TOPIC, CLOSE, out-of-state
 * frames, header corruptions and raw bytes. The byte stream is cut into
 * recv() chunks of an input-chosen size pattern.
 *
 * The model predicts, frame by frame, what the session must do: where it
 * refuses (and then processes nothing more) and which messages reach the
 * subscriber, in order, whole, with the right id, lane, topic, content,
 * metadata and send time. At the end the two must agree. After raw bytes
 * the model stops predicting (the fuzzer may have written anything) and
 * only the sanitizers judge. Every frame the session sends must decode,
 * carry consecutive sequence numbers, and every PONG must answer a PING.
 */
#include <pthread.h>
#include <sys/random.h>

#include "fuzz_util.h"

#include "core/internal.h"
#include "core/tstats.h"
#include "session/resume.h"
#include "session/session.h"
#include "wire/frame.h"

tsm_err tsm__ts_init(tsm_ctx *ctx); /* core/tstats.c; used by ctx.c only */

/* The library must not need randomness here; if it does, make it fixed. */
ssize_t getrandom(void *buf, size_t n, unsigned int flags)
{
	(void)flags;
	memset(buf, 0x5a, n);
	return (ssize_t)n;
}

#define PEER_NODE 0x1234u
#define OUR_NODE 0x42u
#define NTOPIC 32u        /* topic ids the model tracks (0..31) */
#define BIG_TOPIC 5000u   /* over TSM_SESS_MAX_TOPICS */
#define MAX_MSG (16ull << 20)
#define MAX_DELIV 1024u
#define MAX_DONE 8192u
#define ID_WINDOW 65536u /* TSM_IDWIN_IDS */
#define QDEPTH 4u
#define BUDGET_FAR 600000000u /* 600 s: never expires during a run */

/*
 * FUZZ_REASM_IGNORE="name,..." turns named checks off, to explore past a
 * finding that is known and not fixed yet; run.sh never sets it. Names:
 * closed-conn (a CLOSED session whose connection was not closed),
 * topic-switch (fragments of one message with different topic ids).
 */
static bool ignored(const char *name)
{
	const char *v = getenv("FUZZ_REASM_IGNORE");
	size_t n = strlen(name);
	for (const char *p = v; p && (p = strstr(p, name)) != NULL; p += n)
		if ((p == v || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
			return true;
	return false;
}

/* ---- byte buffer ---------------------------------------------------------- */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void buf_put(struct buf *b, const void *src, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		FUZZ_CHECK(b->p != NULL, "out of memory");
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, src, n);
	b->len += n;
}

/* Content of byte k of message id on lane: any misplaced byte shows. */
static uint8_t content(unsigned lane, uint64_t id, uint64_t k)
{
	return (uint8_t)(id * 131u + k * 7u + lane * 29u + (k >> 8));
}

/* ---- the model ------------------------------------------------------------ */

enum { L_IDLE, L_FILL, L_DISCARD };

struct mlane {
	int state;
	uint64_t id, total, got, ts;
	uint32_t next, topic;
	bool has_u;
};

struct mdeliv {
	unsigned lane;
	uint64_t id, len, ts;
	uint32_t topic;
	bool has_u;
};

struct model {
	bool established, ended, blind;
	struct mlane lane[TSM_WIRE_LANES];
	bool declared[NTOPIC];
	char name[NTOPIC][16];
	struct mdeliv deliv[MAX_DELIV];
	size_t ndeliv;
	uint64_t pings[64];
	size_t npings;
	/* resume.c / idwin.h: ids of this peer that reached delivery; a
	 * message with one of them again is skipped (a copy sent after a
	 * loss). top and the window as in idwin.c. */
	uint64_t done[MAX_DONE];
	size_t ndone;
	uint64_t done_top;
};

/* The subscriber's pattern is "t/ **" (without the space). */
static bool m_wanted(const struct model *m, uint32_t topic)
{
	return m->name[topic][0] == 't' && m->name[topic][1] == '/';
}

/* Was id delivered before (and still within the window)? */
static bool m_dup(const struct model *m, uint64_t id)
{
	if (!id || id > m->done_top || m->done_top - id >= ID_WINDOW)
		return false;
	for (size_t i = 0; i < m->ndone; i++)
		if (m->done[i] == id)
			return true;
	return false;
}

static void m_done(struct model *m, uint64_t id)
{
	if (!id || (id <= m->done_top && m->done_top - id >= ID_WINDOW))
		return;
	if (id > m->done_top)
		m->done_top = id;
	FUZZ_CHECK(m->ndone < MAX_DONE, "model: more than %u ids delivered",
	           MAX_DONE);
	m->done[m->ndone++] = id;
}

/* route: the topic whose subscribers get it; topic: what it is labelled.
 * Every message that reaches delivery counts as done, wanted or not. */
static void m_deliver(struct model *m, unsigned lane, uint64_t id, uint64_t len,
                      uint32_t topic, uint32_t route, uint64_t ts, bool has_u)
{
	m_done(m, id);
	if (!m_wanted(m, route) || m->ndeliv == MAX_DELIV)
		return;
	m->deliv[m->ndeliv++] = (struct mdeliv){lane, id, len, ts, topic, has_u};
}

/* A record as the harness builds it. */
struct rec {
	uint32_t topic;
	uint16_t flags;
	uint32_t payload_len;
	uint32_t budget;
	uint64_t id, total, ts, base;
	uint32_t index;
	int meta; /* 0 none, 1 {"u":{}}, 2 {"ts":"x"} (refused by decode) */
};

static const uint8_t meta_u[] = {0x81, 0xa1, 'u', 0x80};
static const uint8_t meta_bad[] = {0x81, 0xa2, 't', 's', 0xa1, 'x'};

static size_t meta_len(int meta)
{
	return meta == 1 ? sizeof(meta_u) : meta == 2 ? sizeof(meta_bad) : 0;
}

/* docs/wire.md §6, §7: what the record decoder must refuse. */
static bool m_rec_valid(const struct rec *r, bool frag_frame, bool more_after)
{
	bool frag = r->flags & TSM_REC_FRAG, last = r->flags & TSM_REC_LAST;
	bool meta = r->flags & TSM_REC_META;
	if (r->topic == 0 || frag != frag_frame || (last && !frag))
		return false;
	if (frag_frame && more_after)
		return false; /* a FRAGMENT frame holds exactly one record */
	if (!frag)
		return !(r->flags & TSM_REC_ABORT) && r->payload_len <= MAX_MSG;
	if (r->total > MAX_MSG)
		return false;
	if (r->flags & TSM_REC_ABORT)
		return last && !meta && r->payload_len == 0 && r->index > 0;
	if (r->payload_len == 0 || r->payload_len > r->total)
		return false;
	if (r->index != 0 && meta)
		return false;
	return !(r->index == 0 && last && r->payload_len != r->total);
}

/* §7: the session's reassembler, one message per lane. */
static bool m_fragment(struct model *m, unsigned ln, const struct rec *r)
{
	struct mlane *l = &m->lane[ln];
	if (r->index == 0) {
		if (l->state != L_IDLE)
			return false; /* a new message before the last one ended */
		/* a copy of a delivered message, or refused metadata: skipped */
		bool skip = r->meta == 2 || m_dup(m, r->id);
		*l = (struct mlane){skip ? L_DISCARD : L_FILL, r->id, r->total,
		                    0, (r->flags & TSM_REC_TS) ? r->ts : 0, 0,
		                    r->topic, r->meta == 1};
	}
	/* msg_id, topic_id and total_len unchanged; consecutive indexes. */
	if (l->state == L_IDLE || r->id != l->id || r->index != l->next ||
	    r->total != l->total || l->got + r->payload_len > l->total)
		return false;
	if (r->topic != l->topic && !ignored("topic-switch"))
		return false;
	if (r->flags & TSM_REC_ABORT) {
		l->state = L_IDLE; /* §7.1: dropped, the lane is free */
		return true;
	}
	bool last = r->flags & TSM_REC_LAST;
	if (last != (l->got + r->payload_len == l->total))
		return false;
	l->got += r->payload_len;
	l->next++;
	if (last) {
		/* (With topic-switch ignored: rx.c routes by the last fragment's
		 * topic and labels the message with the first one's.) */
		if (l->state == L_FILL)
			m_deliver(m, ln, l->id, l->total, l->topic, r->topic, l->ts,
			          l->has_u);
		l->state = L_IDLE;
	}
	return true;
}

static bool m_record(struct model *m, unsigned ln, const struct rec *r)
{
	if (r->topic >= NTOPIC || !m->declared[r->topic])
		return false; /* UNKNOWN_TOPIC */
	if (r->flags & TSM_REC_FRAG)
		return m_fragment(m, ln, r);
	/* refused metadata drops the message, not the session; a copy of a
	 * delivered one is skipped */
	if (r->meta != 2 && !m_dup(m, r->id))
		m_deliver(m, ln, r->id, r->payload_len, r->topic, r->topic,
		          (r->flags & TSM_REC_TS) ? r->ts : 0, r->meta == 1);
	return true;
}

static bool trace; /* FUZZ_REASM_TRACE set: say what the model decides */

static void m_data(struct model *m, unsigned ln, bool frag_frame,
                   const struct rec *r, size_t n)
{
	if (m->ended || m->blind)
		return;
	for (size_t i = 0; trace && i < n; i++)
		fprintf(stderr, "fuzz_reasm: DATA lane %u%s: topic %u flags 0x%x id %llu "
		        "index %u total %llu payload %u meta %d\n", ln,
		        frag_frame ? " FRAGMENT" : "", r[i].topic, r[i].flags,
		        (unsigned long long)r[i].id, r[i].index,
		        (unsigned long long)r[i].total, r[i].payload_len, r[i].meta);
	if (!m->established) {
		m->ended = true; /* DATA before ESTABLISHED: OUT_OF_STATE */
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!m_rec_valid(&r[i], frag_frame, i + 1 < n) ||
		    !m_record(m, ln, &r[i])) {
			if (trace)
				fprintf(stderr, "fuzz_reasm: record %zu refused\n", i);
			m->ended = true;
			return;
		}
	}
}

/* ---- the generator: the peer's byte stream --------------------------------- */

struct gen {
	fz f;
	struct buf strm;
	uint64_t seq[TSM_WIRE_LANES];
	int glitch; /* corruption for the next frame, 0 none */
	struct model m;
	uint32_t next_topic;
};

enum { G_NONE, G_MAGIC, G_VERSION, G_TYPE0, G_TYPE12, G_FLAGS, G_LANE, G_PRIO,
       G_RESERVED, G_GAP, G_REPLAY, G_SEALED, G_HUGE, G__N };

static void g_glitch(tsm__fhdr *h, uint8_t *hdr, int g)
{
	static const struct { int at; uint8_t v; } pokes[G__N] = {
		[G_MAGIC] = {0, 'X'}, [G_VERSION] = {2, 2}, [G_TYPE0] = {3, 0},
		[G_TYPE12] = {3, 12}, [G_FLAGS] = {4, 0x80}, [G_LANE] = {5, 8},
		[G_PRIO] = {28, 9}, [G_RESERVED] = {30, 1}};
	if (g == G_GAP || g == G_REPLAY || g == G_SEALED || g == G_HUGE) {
		h->seq += g == G_GAP ? 1 : g == G_REPLAY ? (uint64_t)-1 : 0;
		h->flags |= g == G_SEALED ? TSM_FF_SEALED : 0;
		h->body_len = g == G_HUGE ? TSM_WIRE_MAX_BODY + 1 : h->body_len;
		tsm__fhdr_encode(h, hdr);
		return;
	}
	hdr[pokes[g].at] = pokes[g].v;
}

/* Appends one frame; a pending glitch corrupts it and ends the model. */
static void g_frame(struct gen *g, uint8_t type, uint8_t flags, uint8_t lane,
                    uint32_t topic, const void *body, size_t len)
{
	uint8_t hdr[TSM_WIRE_HDR_LEN];
	tsm__fhdr h = {.version = TSM_WIRE_VERSION, .type = type, .flags = flags,
	               .lane = lane, .topic_id = topic, .priority = lane,
	               .body_len = (uint32_t)len};
	if (tsm__frame_sequenced(type))
		h.seq = g->seq[type == TSM_F_DATA ? lane : 0]++;
	tsm__fhdr_encode(&h, hdr);
	if (g->glitch) {
		g_glitch(&h, hdr, g->glitch);
		g->glitch = 0;
		g->m.ended = true;
	}
	buf_put(&g->strm, hdr, sizeof(hdr));
	buf_put(&g->strm, body, len);
}

static void g_preface(struct gen *g)
{
	uint8_t body[128];
	tsm__wbuf w;
	tsm__preface p = {.min_version = 1, .max_version = 1,
	                  .flags = TSM_PREFACE_INSECURE, .node_id = PEER_NODE,
	                  .name = (const uint8_t *)"peer", .name_len = 4};
	tsm__wbuf_init(&w, body, sizeof(body));
	tsm__preface_encode(&p, &w);
	g_frame(g, TSM_F_PREFACE, 0, 0, 0, body, w.len);
}

static void g_ctrl(struct gen *g, const tsm__ctrl *c)
{
	uint8_t body[32 + TSM_TOPIC_MAX];
	tsm__wbuf w;
	tsm__wbuf_init(&w, body, sizeof(body));
	tsm__ctrl_encode(c, &w);
	g_frame(g, TSM_F_CTRL, 0, 0, 0, body, w.len);
}

/* CTRL frames are refused before ESTABLISHED: one place says so. */
static bool g_ctrl_live(struct gen *g)
{
	if (g->m.ended || g->m.blind)
		return false;
	if (!g->m.established)
		g->m.ended = true;
	return !g->m.ended;
}

static void g_topic(struct gen *g, uint32_t id, const char *name)
{
	tsm__ctrl c = {.type = TSM_C_TOPIC, .id = id, .str = (const uint8_t *)name,
	               .str_len = (uint16_t)strlen(name)};
	if (g_ctrl_live(g)) {
		if (id >= TSM_SESS_MAX_TOPICS || (id < NTOPIC && g->m.declared[id]))
			g->m.ended = true; /* over the limit, or declared twice */
		else if (id < NTOPIC) {
			g->m.declared[id] = true;
			snprintf(g->m.name[id], sizeof(g->m.name[id]), "%s", name);
		}
	}
	g_ctrl(g, &c);
}

static void g_accept(struct gen *g)
{
	if (!g->m.ended && !g->m.blind)
		g->m.ended = g->m.established; /* a second ACCEPT is out of state */
	if (!g->m.ended)
		g->m.established = true;
	g_frame(g, TSM_F_ACCEPT, 0, 0, 0, NULL, 0);
}

static void g_prologue(struct gen *g, bool late_accept)
{
	g_preface(g);
	if (late_accept)
		return;
	g_accept(g);
	g_topic(g, 1, "t/a");
	g_topic(g, 2, "t/b");
	g_topic(g, 3, "u/c");
}

/* Encodes r (header, metadata, payload) into b. */
static void g_rec_bytes(struct buf *b, const struct rec *r, unsigned lane)
{
	uint8_t hdr[64], pay[512];
	tsm__wbuf w;
	tsm__rec wr = {.topic_id = r->topic, .flags = r->flags,
	               .meta_len = (uint16_t)meta_len(r->meta),
	               .payload_len = r->payload_len, .budget_us = r->budget,
	               .msg_id = r->id, .total_len = r->total,
	               .frag_index = r->index, .ts = r->ts};
	tsm__wbuf_init(&w, hdr, sizeof(hdr));
	tsm__rec_encode_hdr(&wr, &w);
	buf_put(b, hdr, w.len);
	buf_put(b, r->meta == 1 ? meta_u : meta_bad, meta_len(r->meta));
	for (uint32_t k = 0; k < r->payload_len; k++)
		pay[k] = content(lane, r->id, r->base + k);
	buf_put(b, pay, r->payload_len);
}

static void g_data(struct gen *g, unsigned lane, bool frag_frame,
                   const struct rec *r, size_t n)
{
	struct buf body = {0};
	for (size_t i = 0; i < n; i++)
		g_rec_bytes(&body, &r[i], lane);
	m_data(&g->m, lane, frag_frame, r, n);
	g_frame(g, TSM_F_DATA, frag_frame ? TSM_FF_FRAGMENT : 0, (uint8_t)lane,
	        r[0].topic, body.p, body.len);
	free(body.p);
}

/* Mostly the current or a declared topic; 0, undeclared and over-limit
 * ids now and then. */
static uint32_t g_pick_topic(uint8_t c, uint32_t current)
{
	static const uint32_t ids[8] = {1, 1, 2, 3, 4, 0, 9, BIG_TOPIC};
	if ((c & 7) == 0 && current)
		return current;
	return ids[c & 7];
}

/* One fragment record; the choices aim near the rules of §7. */
static void g_fragment(struct gen *g)
{
	uint8_t a = fz_u8(&g->f), b = fz_u8(&g->f), c = fz_u8(&g->f);
	uint8_t d = fz_u8(&g->f), e = fz_u8(&g->f);
	unsigned lane = (a & 0x80) ? 7 : a % 3;
	const struct mlane *l = &g->m.lane[lane];
	bool fresh = l->state == L_IDLE || (b & 3) == 1;
	struct rec r = {.flags = TSM_REC_FRAG};
	uint64_t ids[4] = {l->id, l->id + 1, l->id ^ 0x55, fz_u8(&g->f)};
	r.id = fresh && (b & 3) == 0 ? l->id + 1 : ids[b & 3];
	uint32_t idx[4] = {l->next, 0, l->next + 1, fz_u8(&g->f)};
	r.index = fresh && ((b >> 2) & 3) == 0 ? 0 : idx[(b >> 2) & 3];
	r.total = fresh || (b & 0x10) ? 1 + fz_u8(&g->f) % 200 : l->total;
	if (b & 0x20)
		r.total = fz_u16(&g->f) % 300;
	r.topic = g_pick_topic(c, fresh ? 0 : l->topic);
	bool same = l->state != L_IDLE && r.id == l->id && r.index != 0;
	r.base = same ? l->got : 0;
	uint64_t left = r.total > r.base ? r.total - r.base : 0;
	/* all that is left, some of it (never all unless 1), any, none */
	uint64_t some = left > 1 ? 1 + (d >> 2) % (left - 1) : left;
	uint32_t lens[4] = {(uint32_t)left, (uint32_t)some, fz_u8(&g->f), 0};
	r.payload_len = lens[d & 3] > 400 ? 400 : lens[d & 3];
	bool done = r.base + r.payload_len == r.total;
	uint16_t lastf[4] = {done ? TSM_REC_LAST : 0, TSM_REC_LAST, 0,
	                     TSM_REC_LAST | TSM_REC_ABORT};
	r.flags |= lastf[e & 3];
	if ((e & 3) == 3)
		r.payload_len = 0;
	if (e & 4) {
		r.flags |= TSM_REC_TS;
		r.ts = 1000 + r.id;
	}
	r.budget = (e & 8) ? BUDGET_FAR : 0;
	r.meta = (c & 0x18) == 0x08 ? 1 : (c & 0x18) == 0x10 ? 2 : 0;
	r.flags |= r.meta ? TSM_REC_META : 0;
	if (e & 0x40) { /* a second record after the fragment */
		struct rec two[2] = {r, r};
		two[1].index++;
		g_data(g, lane, !(e & 0x10), two, 2);
		return;
	}
	g_data(g, lane, !(e & 0x10), &r, 1);
}

/* A batch of whole (unfragmented) records in one frame. */
static void g_whole(struct gen *g)
{
	struct rec r[3] = {{0}};
	uint8_t a = fz_u8(&g->f);
	unsigned lane = a % 3, n = 1 + (a >> 2) % 3;
	for (unsigned i = 0; i < n; i++) {
		uint8_t b = fz_u8(&g->f), c = fz_u8(&g->f);
		r[i].topic = g_pick_topic(b, 0);
		r[i].id = fz_u8(&g->f);
		r[i].payload_len = c % 48;
		r[i].meta = (b >> 3) % 4 == 1 ? 1 : (b >> 3) % 4 == 2 ? 2 : 0;
		r[i].flags = r[i].meta ? TSM_REC_META : 0;
		if (b & 0x20) {
			r[i].flags |= TSM_REC_TS;
			r[i].ts = 77 + i;
		}
		r[i].budget = (b & 0x40) ? BUDGET_FAR : 0;
		if ((c & 0xc0) == 0xc0) /* invalid without FRAG */
			r[i].flags |= (c & 0x20) ? TSM_REC_LAST : TSM_REC_ABORT;
	}
	g_data(g, lane, false, r, n);
}

static void g_ping(struct gen *g)
{
	tsm__ctrl c = {.type = TSM_C_PING, .value = fz_u64(&g->f)};
	if (g_ctrl_live(g) && g->m.npings < 64)
		g->m.pings[g->m.npings++] = c.value;
	g_ctrl(g, &c);
}

static void g_subscribe(struct gen *g)
{
	static const char *const pats[] = {"t/*", "**", "x/y/**", "a//b", "a/**/b"};
	uint8_t a = fz_u8(&g->f);
	const char *p = pats[a % 5];
	tsm__ctrl c = {.type = (a & 0x80) ? TSM_C_UNSUBSCRIBE : TSM_C_SUBSCRIBE,
	               .str = (const uint8_t *)p, .str_len = (uint16_t)strlen(p)};
	/* An invalid pattern is refused (BAD_PATTERN) in SUBSCRIBE and in
	 * UNSUBSCRIBE alike (docs/wire.md §8). */
	if (g_ctrl_live(g) && a % 5 >= 3)
		g->m.ended = true;
	g_ctrl(g, &c);
}

static void g_declare(struct gen *g)
{
	uint8_t a = fz_u8(&g->f);
	char name[16];
	uint32_t id = (a & 0x80) ? (a & 1 ? BIG_TOPIC : 1 + a % 3) : 4 + a % 28;
	snprintf(name, sizeof(name), "%c/n%u", (a & 0x40) ? 'u' : 't', (unsigned)id);
	g_topic(g, id, name);
}

/* Frames a session in ESTABLISHED refuses whatever their body says. */
static void g_out_of_state(struct gen *g)
{
	static const uint8_t types[] = {TSM_F_PREFACE, TSM_F_HS, TSM_F_RETRY,
	                                TSM_F_REKEY, TSM_F_REJECT};
	uint8_t a = fz_u8(&g->f);
	if (a % 6 == 5)
		return g_accept(g);
	uint8_t body[8] = {0};
	if (!g->m.blind)
		g->m.ended = true;
	g_frame(g, types[a % 6], 0, 0, 0, body, types[a % 6] == TSM_F_REJECT ? 6 : 1);
}

static void g_close(struct gen *g)
{
	uint8_t body[6] = {0};
	if (!g->m.blind)
		g->m.ended = true; /* CLOSE: DRAINING, nothing more is read */
	g_frame(g, TSM_F_CLOSE, 0, 0, 0, body, sizeof(body));
}

static void g_raw(struct gen *g)
{
	const uint8_t *p;
	size_t n = fz_take(&g->f, fz_u8(&g->f) % 96, &p);
	g->m.blind = true;
	buf_put(&g->strm, p, n);
}

static void generate(struct gen *g)
{
	uint8_t first = fz_u8(&g->f);
	for (uint32_t i = 0; i < NTOPIC; i++)
		snprintf(g->m.name[i], sizeof(g->m.name[i]), "?");
	g_prologue(g, (first & 7) == 7);
	for (unsigned ops = 0; g->f.left && ops < 256; ops++) {
		uint8_t op = fz_u8(&g->f);
		/* A pending glitch corrupts the first frame of this operation:
		 * the session refuses it before its content counts. */
		if (g->glitch && op % 16 != 12 && op % 16 != 14)
			g->m.ended = true;
		switch (op % 16) {
		case 0: case 1: case 2: case 3: case 4: case 5:
			g_fragment(g);
			break;
		case 6: case 7: case 8:
			g_whole(g);
			break;
		case 9:
			g_ping(g);
			break;
		case 10:
			g_subscribe(g);
			break;
		case 11:
			g_declare(g);
			break;
		case 12:
			g->glitch = 1 + fz_u8(&g->f) % (G__N - 1);
			break;
		case 13:
			g_out_of_state(g);
			break;
		case 14:
			g_raw(g);
			break;
		default:
			g_close(g);
			break;
		}
	}
}

/* ---- the fake engine and the harness's progress thread ---------------------- */

struct harness {
	tsm_ctx *ctx;
	struct tsm_sub *sub;
	tsm__session *s;
	void *rx_buf;
	size_t rx_cap;
	bool rx_armed;
	uint64_t tx_seq[TSM_WIRE_LANES];
	bool preface_seen;
	const struct model *m;
	size_t ndeliv;
	tsm_msg *deliv[MAX_DELIV];
};

static struct harness H;

static tsm_err fk_recv(tsm__io *io, tsm__conn *c, void *buf, size_t len)
{
	(void)io;
	(void)c;
	FUZZ_CHECK(!H.rx_armed, "a second receive armed before the first "
	           "completed");
	FUZZ_CHECK(len > 0, "receive armed with no room");
	H.rx_buf = buf;
	H.rx_cap = len;
	H.rx_armed = true;
	return TSM_OK;
}

static void check_pong(uint64_t v)
{
	for (size_t i = 0; i < H.m->npings; i++)
		if (H.m->pings[i] == v)
			return;
	FUZZ_CHECK(H.m->blind, "PONG %llu answers no PING", (unsigned long long)v);
}

/* One frame we sent: valid, in sequence, and what this peer may get. */
static void check_sent_frame(const tsm__fhdr *h, const uint8_t *body)
{
	tsm__ctrl c;
	tsm__reason r;
	FUZZ_CHECK(!(h->flags & TSM_FF_SEALED), "sealed frame in insecure mode");
	FUZZ_CHECK(H.preface_seen || h->type == TSM_F_PREFACE,
	           "frame type %u before our PREFACE", h->type);
	H.preface_seen = true;
	if (tsm__frame_sequenced(h->type)) {
		uint64_t *want = &H.tx_seq[h->type == TSM_F_DATA ? h->lane : 0];
		FUZZ_CHECK(h->seq == *want, "sent seq %llu, expected %llu",
		           (unsigned long long)h->seq, (unsigned long long)*want);
		(*want)++;
	}
	switch (h->type) {
	case TSM_F_CTRL:
		FUZZ_CHECK(tsm__ctrl_decode(body, h->body_len, &c) == TSM_OK,
		           "sent CTRL does not decode: %s", tsm_err_detail());
		if (c.type == TSM_C_PONG)
			check_pong(c.value);
		break;
	case TSM_F_REJECT:
	case TSM_F_CLOSE:
		FUZZ_CHECK(tsm__reason_decode(body, h->body_len, &r) == TSM_OK,
		           "sent reason does not decode: %s", tsm_err_detail());
		break;
	case TSM_F_DATA:
		FUZZ_CHECK(false, "DATA sent though nothing was published");
		break;
	default:
		break;
	}
}

static tsm_err fk_send(tsm__io *io, tsm__conn *c)
{
	struct buf out = {0};
	(void)io;
	FUZZ_CHECK(!c->tx.pending, "a second send before the first completed");
	for (int i = 0; i < c->iovcnt; i++)
		buf_put(&out, c->iov[i].iov_base, c->iov[i].iov_len);
	size_t off = 0;
	while (off < out.len) {
		tsm__fhdr h;
		tsm_err e = tsm__fhdr_decode(out.p + off, out.len - off,
		                             TSM_WIRE_MAX_BODY, &h);
		FUZZ_CHECK(e == TSM_OK, "sent header does not decode: %s",
		           tsm_err_detail());
		FUZZ_CHECK(out.len - off - TSM_WIRE_HDR_LEN >= h.body_len,
		           "send ends inside a frame");
		check_sent_frame(&h, out.p + off + TSM_WIRE_HDR_LEN);
		off += TSM_WIRE_HDR_LEN + h.body_len;
	}
	free(out.p);
	c->tx.pending = true;
	return TSM_OK;
}

static void fk_close(tsm__io *io, tsm__conn *c)
{
	(void)io;
	c->closing = true;
}

static void fk_wake(tsm__io *io)
{
	(void)io;
}

static const tsm__io_ops fake_ops = {
	.size = sizeof(tsm__io_ops),
	.name = "fuzz",
	.recv = fk_recv,
	.send = fk_send,
	.close = fk_close,
	.wake = fk_wake,
};

static void fk_log(void *arg, tsm_log_level lvl, const char *line)
{
	(void)arg;
	(void)lvl;
	FUZZ_CHECK(line != NULL, "NULL log line");
}

static tsm_ctx *ctx_new(void)
{
	tsm_ctx *c = calloc(1, sizeof(*c));
	FUZZ_CHECK(c != NULL, "out of memory");
	tsm_ctx_params_init(&c->p);
	c->p.log = fk_log;
	c->p.log_level = TSM_LOG_DEBUG; /* format every line, print none */
	c->p.handshake_timeout = 5 * TSM_SEC;
	c->p.session_timeout = 10 * TSM_SEC;
	c->p.linger = TSM_SEC;
	c->p.fragment_size = 65536;
	c->p.reassembly_bytes = 256ull << 20; /* the defaults of core/ctx.c */
	c->p.session_queue_bytes = 64ull << 20;
	c->p.publish_queue = 65536;
	c->p.reauth_before = 60 * TSM_SEC;
	snprintf(c->name, sizeof(c->name), "fuzz");
	c->node_id = OUR_NODE;
	c->insecure = true;
	c->io_ops = &fake_ops;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	pthread_cond_init(&c->pubq_cv, NULL);
	pthread_cond_init(&c->dlv_cv, NULL);
	c->cmds_tail = &c->cmds;
	FUZZ_CHECK(tsm__ts_init(c) == TSM_OK, "topic statistics");
	return c;
}

static void ctx_free(tsm_ctx *c)
{
	tsm__rsm_ctx_free(c); /* what session/resume.c kept for the peer */
	tsm__ts_free(c);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	pthread_cond_destroy(&c->pubq_cv);
	pthread_cond_destroy(&c->dlv_cv);
	free(c);
}

/* A reliable, blocking subscriber "t/ **" with a tiny queue. */
static struct tsm_sub *sub_new(tsm_ctx *ctx)
{
	struct tsm_sub *u = calloc(1, sizeof(*u));
	FUZZ_CHECK(u != NULL, "out of memory");
	tsm_qos_init(&u->qos);
	u->qos.reliability = TSM_RELIABLE;
	u->qos.backpressure = TSM_BP_BLOCK;
	u->qos.queue_depth = QDEPTH;
	u->qos.block_timeout = 3600 * TSM_SEC;
	u->ring = calloc(QDEPTH, sizeof(*u->ring));
	FUZZ_CHECK(u->ring != NULL, "out of memory");
	u->cap = QDEPTH;
	u->ctx = ctx;
	snprintf(u->pattern, sizeof(u->pattern), "t/**");
	u->plen = 4;
	atomic_init(&u->refs, 1);
	pthread_mutex_init(&u->mu, NULL);
	pthread_cond_init(&u->cv, NULL);
	pthread_cond_init(&u->space_cv, NULL);
	ctx->subs = u;
	atomic_store(&ctx->sub_epoch, 1);
	return u;
}

static void drain_sub(void)
{
	tsm_msg *m;
	while (tsm_sub_recv(H.sub, &m, 0) == TSM_OK) {
		if (H.ndeliv < MAX_DELIV)
			H.deliv[H.ndeliv++] = m;
		else
			tsm_msg_free(m);
	}
}

static void complete_sends(void)
{
	tsm__session *s = H.s;
	tsm__session_pump(s);
	for (int i = 0; s->tx_busy && s->state != SS_CLOSED && i < 100000; i++) {
		s->conn.tx.pending = false;
		tsm__session_on_send(s, (long)s->tx_total, TSM_OK);
	}
}

/* What the progress thread does between receives. */
static void settle(void)
{
	for (int i = 0; i < 100000; i++) {
		drain_sub();
		complete_sends();
		if (H.s->npend == 0 || H.s->state == SS_CLOSED)
			return;
		tsm__session_rx_resume(H.s);
	}
	FUZZ_CHECK(false, "the session never unparks");
}

/* recv() chunk sizes: all at once, bytewise, or a pattern of small sizes. */
static size_t chunk(uint8_t mode, uint32_t *lcg)
{
	*lcg = *lcg * 1103515245u + 12345u;
	switch (mode & 3) {
	case 0:
		return SIZE_MAX;
	case 1:
		return 1;
	case 2:
		return 1 + (*lcg >> 16) % 64;
	default:
		return 1 + (*lcg >> 16) % 4096;
	}
}

static void feed(const struct buf *strm, uint8_t mode)
{
	uint32_t lcg = mode;
	size_t off = 0;
	while (off < strm->len) {
		settle();
		if (H.s->state == SS_CLOSED || !H.rx_armed)
			break;
		size_t n = chunk(mode, &lcg);
		n = n < strm->len - off ? n : strm->len - off;
		n = n < H.rx_cap ? n : H.rx_cap;
		memcpy(H.rx_buf, strm->p + off, n);
		off += n;
		H.rx_armed = false;
		tsm__session_on_recv(H.s, (long)n, TSM_OK);
	}
	settle();
}

static void trace_stat(void *arg, const char *name, uint64_t v)
{
	(void)arg;
	if (v)
		fprintf(stderr, "fuzz_reasm:   %s = %llu\n", name,
		        (unsigned long long)v);
}

/* ---- the verdict ---------------------------------------------------------- */

static void check_message(const tsm_msg *m, const struct mdeliv *d,
                          const struct model *mo, size_t i)
{
	size_t ml = 0;
	const uint8_t *meta = tsm_msg_meta(m, &ml);
	const uint8_t *p = tsm_msg_data(m);
	FUZZ_CHECK(tsm_msg_id(m) == d->id && tsm_msg_priority(m) == d->lane &&
	                   tsm_msg_size(m) == d->len,
	           "message %zu: id %llu lane %u size %zu, model id %llu lane %u "
	           "size %llu", i, (unsigned long long)tsm_msg_id(m),
	           tsm_msg_priority(m), tsm_msg_size(m), (unsigned long long)d->id,
	           d->lane, (unsigned long long)d->len);
	FUZZ_CHECK(strcmp(tsm_msg_topic(m), mo->name[d->topic]) == 0,
	           "message %zu: topic %s, model %s", i, tsm_msg_topic(m),
	           mo->name[d->topic]);
	for (uint64_t k = 0; k < d->len; k++)
		FUZZ_CHECK(p[k] == content(d->lane, d->id, k),
		           "message %zu: byte %llu corrupted", i,
		           (unsigned long long)k);
	FUZZ_CHECK(d->has_u ? (ml == 1 && meta && meta[0] == 0x80) : ml == 0,
	           "message %zu: user metadata %zu bytes", i, ml);
	FUZZ_CHECK(tsm_msg_sent_at(m) == (tsm_time)d->ts,
	           "message %zu: sent_at %lld, model %llu", i,
	           (long long)tsm_msg_sent_at(m), (unsigned long long)d->ts);
}

static void verdict(const struct model *mo, size_t parked_lost)
{
	tsm__session *s = H.s;
	bool ended = s->state == SS_CLOSED || s->state == SS_DRAINING ||
	             s->close_after_tx;
	FUZZ_CHECK(ended == mo->ended, "session %s (state %s), model %s", ended
	           ? "refused or closed" : "still up", tsm__sstate_name(s->state),
	           mo->ended ? "refuses" : "accepts everything");
	if (!ended)
		FUZZ_CHECK((s->state == SS_ESTABLISHED) == mo->established,
		           "state %s, model established %d",
		           tsm__sstate_name(s->state), mo->established);
	/* Parked deliveries of a closed session are dropped (and counted). */
	FUZZ_CHECK(H.ndeliv + parked_lost == mo->ndeliv,
	           "%zu messages delivered + %zu dropped at close, model %zu",
	           H.ndeliv, parked_lost, mo->ndeliv);
	for (size_t i = 0; i < H.ndeliv; i++)
		check_message(H.deliv[i], &mo->deliv[i], mo, i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct gen g;
	trace = getenv("FUZZ_REASM_TRACE") != NULL;
	memset(&g, 0, sizeof(g));
	g.f = fz_init(data, size);
	uint8_t mode = size ? data[size - 1] : 0; /* chunking: the last byte */
	generate(&g);

	memset(&H, 0, sizeof(H));
	H.m = &g.m;
	H.ctx = ctx_new();
	H.sub = sub_new(H.ctx);
	FUZZ_CHECK(tsm__session_new(H.ctx, -1, false, &H.s) == TSM_OK, "session");
	snprintf(H.s->peer_addr, sizeof(H.s->peer_addr), "fuzz-peer");
	H.s->conn.connected = true;
	tsm__session_start(H.s);
	feed(&g.strm, mode);

	size_t parked_lost = H.s->npend - H.s->pend_head;
	if (trace) /* for checking what a seed does */
		tsm_stats_foreach(H.ctx, trace_stat, NULL);
	if (trace)
		fprintf(stderr, "fuzz_reasm: %zu stream bytes; model: established %d "
		        "ended %d blind %d, %zu messages; session %s, %zu delivered, "
		        "%zu parked at close\n", g.strm.len, g.m.established,
		        g.m.ended, g.m.blind, g.m.ndeliv, tsm__sstate_name(H.s->state),
		        H.ndeliv, parked_lost);
	/* Whatever the input: a closed session has told its engine to close,
	 * or its connection and the session itself are never reaped. */
	FUZZ_CHECK(H.s->state != SS_CLOSED || H.s->conn.closing ||
	                   ignored("closed-conn"),
	           "session CLOSED but its connection was never closed");
	if (!g.m.blind)
		verdict(&g.m, parked_lost);
	if (H.s->state != SS_CLOSED)
		tsm__session_close(H.s, TSM_ECLOSED);
	tsm__session_free(H.s);
	FUZZ_CHECK(atomic_load(&H.ctx->reasm_used) == 0, "%llu bytes of the "
	           "reassembly budget never given back",
	           (unsigned long long)atomic_load(&H.ctx->reasm_used));
	for (size_t i = 0; i < H.ndeliv; i++)
		tsm_msg_free(H.deliv[i]);
	tsm__sub_unref(H.sub); /* frees what is still queued */
	ctx_free(H.ctx);
	free(g.strm.p);
	return 0;
}
