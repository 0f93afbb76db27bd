/*
 * tests/fuzz/fuzz_fsm.c - the session state table (session/fsm.h,
 * docs/wire.md §3) driven by byte sequences of events.
 *
 * The first byte picks the start state (IDLE most of the time, so that
 * paths are real sessions; any state otherwise), each further byte an
 * event, some of them out of range. Along the path:
 *  - a refused event leaves *next untouched and is OUT_OF_STATE;
 *  - CLOSED is absorbing: only SE_CLOSE is accepted there, and it stays;
 *  - SE_RX_DATA and SE_RX_CTRL are accepted only in ESTABLISHED, REKEYING
 *    or DRAINING, and on a path from IDLE never before ESTABLISHED;
 *  - ESTABLISHED is entered only from VERIFYING by SE_VERIFY_OK or from
 *    REKEYING by SE_REKEY_DONE: verification cannot be skipped;
 *  - PREFACE frames only in PREFACE, HS frames only in HANDSHAKING,
 *    RETRY in no state (reserved);
 *  - every state but CLOSED can always be closed (SE_ERROR -> CLOSED;
 *    SE_CLOSE accepted), and every state that waits on the peer has a
 *    timeout (SE_TIMEOUT -> CLOSED);
 *  - names exist for every state and event, "?" outside the range.
 */
#include "fuzz_util.h"

#include "session/fsm.h"
#include "tsm/tsm.h"

static bool data_state(tsm__sstate s)
{
	return s == SS_ESTABLISHED || s == SS_REKEYING || s == SS_DRAINING;
}

/* Properties that hold for every state, whatever the path. */
static void check_state(tsm__sstate st)
{
	tsm__sstate next;
	FUZZ_CHECK(tsm__sstate_name(st) != NULL && tsm__sstate_name(st)[0] != '?',
	           "state %d has no name", (int)st);
	if (st == SS_CLOSED)
		return;
	FUZZ_CHECK(tsm__fsm_next(st, SE_ERROR, &next) == TSM_OK &&
	                   next == SS_CLOSED,
	           "SE_ERROR does not close state %s", tsm__sstate_name(st));
	FUZZ_CHECK(tsm__fsm_next(st, SE_CLOSE, &next) == TSM_OK,
	           "SE_CLOSE refused in %s", tsm__sstate_name(st));
	if (tsm__fsm_waits(st))
		FUZZ_CHECK(tsm__fsm_next(st, SE_TIMEOUT, &next) == TSM_OK &&
		                   next == SS_CLOSED,
		           "%s waits on the peer without a timeout",
		           tsm__sstate_name(st));
}

/* Rules about one accepted step st --ev--> next. */
static void check_step(tsm__sstate st, tsm__sevent ev, tsm__sstate next,
                       bool from_idle, bool seen_established)
{
	const char *s = tsm__sstate_name(st), *e = tsm__sevent_name(ev);
	FUZZ_CHECK((unsigned)next < SS__COUNT, "%s --%s--> %d", s, e, (int)next);
	FUZZ_CHECK(st != SS_CLOSED || (ev == SE_CLOSE && next == SS_CLOSED),
	           "CLOSED left or changed by %s (to %s)", e,
	           tsm__sstate_name(next));
	if (ev == SE_RX_DATA || ev == SE_RX_CTRL) {
		FUZZ_CHECK(data_state(st), "%s accepted in %s", e, s);
		FUZZ_CHECK(!from_idle || seen_established,
		           "%s accepted before ESTABLISHED", e);
	}
	if (next == SS_ESTABLISHED && st != SS_ESTABLISHED)
		FUZZ_CHECK((st == SS_VERIFYING && ev == SE_VERIFY_OK) ||
		                   (st == SS_REKEYING && ev == SE_REKEY_DONE),
		           "ESTABLISHED entered from %s by %s", s, e);
	FUZZ_CHECK(ev != SE_RX_PREFACE || st == SS_PREFACE, "PREFACE in %s", s);
	FUZZ_CHECK(ev != SE_RX_HS || st == SS_HANDSHAKING, "HS in %s", s);
	FUZZ_CHECK(ev != SE_RX_RETRY, "RETRY accepted in %s", s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz f = fz_init(data, size);
	uint8_t first = fz_u8(&f);
	/* Mostly IDLE; a high bit picks any state, out of range ones too. */
	tsm__sstate st = (first & 0x80) ? (tsm__sstate)(first % (SS__COUNT + 2))
	                                : SS_IDLE;
	bool from_idle = st == SS_IDLE, seen_est = false;
	while (f.left) {
		uint8_t b = fz_u8(&f);
		tsm__sevent ev = (tsm__sevent)(b % (SE__COUNT + 3));
		tsm__sstate next = (tsm__sstate)0x5a;
		tsm_err e = tsm__fsm_next(st, ev, &next);
		FUZZ_CHECK(tsm__sevent_name(ev) != NULL, "event without a name");
		if ((unsigned)st >= SS__COUNT || (unsigned)ev >= SE__COUNT) {
			FUZZ_CHECK(e == TSM_ERR_OUT_OF_STATE && next == 0x5a,
			           "out-of-range state %d / event %d accepted",
			           (int)st, (int)ev);
			FUZZ_CHECK(strcmp((unsigned)ev >= SE__COUNT
			                          ? tsm__sevent_name(ev)
			                          : tsm__sstate_name(st), "?") == 0,
			           "out-of-range name is not '?'");
			if ((unsigned)st >= SS__COUNT)
				return 0; /* nothing more to walk from there */
			continue;
		}
		check_state(st);
		if (e != TSM_OK) {
			FUZZ_CHECK(e == TSM_ERR_OUT_OF_STATE && next == 0x5a,
			           "refusal %s changed *next", tsm_err_name(e));
			continue;
		}
		check_step(st, ev, next, from_idle, seen_est);
		st = next;
		seen_est = seen_est || st == SS_ESTABLISHED;
	}
	return 0;
}
