/*
 * session/fsm.h - the session state machine as a table (design.md §3,
 * docs/wire.md §3). Pure and thread-safe: the session code feeds it
 * events and acts on the new state; anything not in the table is refused
 * with TSM_ERR_OUT_OF_STATE.
 */
#ifndef TSM_SESSION_FSM_H
#define TSM_SESSION_FSM_H

#include "tsm/err.h"
#include "tsm/time.h"

typedef enum tsm__sstate {
	SS_IDLE = 0,
	SS_PREFACE,     /* our preface sent, waiting for the peer's */
	SS_HANDSHAKING, /* HS records flow (TLS 1.3 in the security issue) */
	SS_VERIFYING,   /* peer identity and policy being checked */
	SS_ESTABLISHED, /* DATA and CTRL allowed */
	SS_REKEYING,    /* keys being replaced; DATA still flows */
	SS_DRAINING,    /* CLOSE sent or received: flush, then close */
	SS_CLOSED,
	SS__COUNT
} tsm__sstate;

typedef enum tsm__sevent {
	SE_START = 0,   /* connection up: send preface */
	SE_RX_PREFACE,
	SE_RX_RETRY,
	SE_RX_HS,
	SE_HS_DONE,     /* handshake engine finished (or the null one) */
	SE_RX_ACCEPT,
	SE_VERIFY_OK,
	SE_RX_REJECT,
	SE_RX_DATA,
	SE_RX_CTRL,
	SE_RX_REKEY,
	SE_REKEY_DONE,
	SE_RX_CLOSE,
	SE_CLOSE,       /* local close request */
	SE_DRAINED,
	SE_TIMEOUT,
	SE_ERROR,       /* protocol or transport error: close at once */
	SE__COUNT
} tsm__sevent;

/*
 * tsm__fsm_next: the state after event ev in state st, or
 * TSM_ERR_OUT_OF_STATE (and *next untouched) if ev is not allowed there.
 */
tsm_err tsm__fsm_next(tsm__sstate st, tsm__sevent ev, tsm__sstate *next);

/* tsm__fsm_waits: true if st waits on the peer (so it has a timeout). */
int tsm__fsm_waits(tsm__sstate st);

const char *tsm__sstate_name(tsm__sstate st);
const char *tsm__sevent_name(tsm__sevent ev);

#endif
