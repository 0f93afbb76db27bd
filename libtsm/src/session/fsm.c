/*
 * session/fsm.c - the transition table of design.md §3.
 *
 * Insecure mode runs the same states: the null handshake finishes at once
 * (SE_HS_DONE). Each side sends ACCEPT once it has verified the peer; the
 * peer's ACCEPT may arrive in HANDSHAKING or VERIFYING and is remembered;
 * the session raises SE_VERIFY_OK only when both hold (docs/wire.md §3). TLS plugs into HANDSHAKING/VERIFYING without changing
 * the table.
 */
#include "core/common.h"
#include "session/fsm.h"

#define X SS__COUNT /* not allowed */

/* next_state[state][event] */
static const unsigned char next_state[SS__COUNT][SE__COUNT] = {
	/*                 START         RX_PREFACE      RX_RETRY  RX_HS           HS_DONE       RX_ACCEPT       VERIFY_OK       RX_REJECT  RX_DATA         RX_CTRL         RX_REKEY     REKEY_DONE      RX_CLOSE     CLOSE        DRAINED    TIMEOUT    ERROR */
	[SS_IDLE] =        {SS_PREFACE,  X,              X,        X,              X,            X,              X,              X,         X,              X,              X,           X,              SS_CLOSED,   SS_CLOSED,   X,         X,         SS_CLOSED},
	[SS_PREFACE] =     {X,           SS_HANDSHAKING, X,        X,              X,            X,              X,              SS_CLOSED, X,              X,              X,           X,              SS_CLOSED,   SS_CLOSED,   X,         SS_CLOSED, SS_CLOSED},
	[SS_HANDSHAKING] = {X,           X,              X,        SS_HANDSHAKING, SS_VERIFYING, SS_HANDSHAKING,             X,              SS_CLOSED, X,              X,              X,           X,              SS_CLOSED,   SS_CLOSED,   X,         SS_CLOSED, SS_CLOSED},
	[SS_VERIFYING] =   {X,           X,              X,        X,              X,            SS_VERIFYING,   SS_ESTABLISHED, SS_CLOSED, X,              X,              X,           X,              SS_CLOSED,   SS_CLOSED,   X,         SS_CLOSED, SS_CLOSED},
	[SS_ESTABLISHED] = {X,           X,              X,        X,              X,            X,              X,              X,         SS_ESTABLISHED, SS_ESTABLISHED, SS_REKEYING, X,              SS_DRAINING, SS_DRAINING, X,         SS_CLOSED, SS_CLOSED},
	[SS_REKEYING] =    {X,           X,              X,        X,              X,            X,              X,              X,         SS_REKEYING,    SS_REKEYING,    X,           SS_ESTABLISHED, SS_DRAINING, SS_DRAINING, X,         SS_CLOSED, SS_CLOSED},
	[SS_DRAINING] =    {X,           X,              X,        X,              X,            X,              X,              X,         SS_DRAINING,    SS_DRAINING,    X,           X,              SS_DRAINING, SS_DRAINING, SS_CLOSED, SS_CLOSED, SS_CLOSED},
	[SS_CLOSED] =      {X,           X,              X,        X,              X,            X,              X,              X,         X,              X,              X,           X,              X,           SS_CLOSED,   X,         X,         X},
};
#undef X

tsm_err tsm__fsm_next(tsm__sstate st, tsm__sevent ev, tsm__sstate *next)
{
	if ((unsigned)st >= SS__COUNT || (unsigned)ev >= SE__COUNT)
		return tsm__err_set(TSM_ERR_OUT_OF_STATE, "fsm: bad state %d or event %d",
		                    (int)st, (int)ev);
	unsigned char n = next_state[st][ev];
	if (n == SS__COUNT)
		return tsm__err_set(TSM_ERR_OUT_OF_STATE,
		                    "session: event %s not allowed in state %s",
		                    tsm__sevent_name(ev), tsm__sstate_name(st));
	*next = (tsm__sstate)n;
	return TSM_OK;
}

int tsm__fsm_waits(tsm__sstate st)
{
	/* ESTABLISHED waits on the peer too: keepalive (docs/wire.md §8). */
	return st == SS_PREFACE || st == SS_HANDSHAKING || st == SS_VERIFYING ||
	       st == SS_ESTABLISHED || st == SS_REKEYING || st == SS_DRAINING;
}

const char *tsm__sstate_name(tsm__sstate st)
{
	static const char *const n[SS__COUNT] = {
		"IDLE", "PREFACE", "HANDSHAKING", "VERIFYING",
		"ESTABLISHED", "REKEYING", "DRAINING", "CLOSED"};
	return (unsigned)st < SS__COUNT ? n[st] : "?";
}

const char *tsm__sevent_name(tsm__sevent ev)
{
	static const char *const n[SE__COUNT] = {
		"START", "RX_PREFACE", "RX_RETRY", "RX_HS", "HS_DONE",
		"RX_ACCEPT", "VERIFY_OK", "RX_REJECT", "RX_DATA", "RX_CTRL",
		"RX_REKEY", "REKEY_DONE", "RX_CLOSE", "CLOSE", "DRAINED",
		"TIMEOUT", "ERROR"};
	return (unsigned)ev < SE__COUNT ? n[ev] : "?";
}
