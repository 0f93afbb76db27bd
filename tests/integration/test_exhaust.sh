#!/usr/bin/env bash
# Resource exhaustion (issue 9 item 5): test_exhaust.sh CASE throws one
# kind of flood at a running `tsm pub` (the victim, secure, default limits)
# and checks three things every time:
#
#   1. the limit holds: the victim's own counters (--stats) show the
#      refusals with their reason, and it is still running;
#   2. a good peer is served: a real secure `tsm sub` dials the victim
#      during or right after the attack and gets every message, verified;
#   3. memory and descriptors stay bounded: the victim's VmHWM (peak RSS,
#      /proc/PID/status) stays under a generous bound, and its open
#      descriptors (/proc/PID/fd) come back to what they were before.
#
# The attackers are tests/support/attack_net.py (anonymous: floods,
# slow-loris, half-open handshakes) and tsm_attack (tests/support/attack.c,
# an authenticated peer: subscription flood, metadata bombs, huge
# announcements). No timing is asserted: every wait is bounded, and what
# counts is what the victim counted and what the good peer received.
#
# Cases (meson.build lists them): conn-flood slow-handshake half-open
# huge-announce sub-flood meta-bomb stalled-sub fd-exhaust.
# Already covered elsewhere and not repeated here: the per-source budget
# (test_security.sh preauth-limit), garbage and a 4 GiB length before the
# handshake (test_security.sh garbage), metadata walker limits on their own
# (tests/unit/test_meta.c), the reassembly budget in-process
# (tests/unit/test_session.c reassembly_budget_bounds_memory).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

CASE=${1:?usage: test_exhaust.sh CASE (see meson.build)}
ATTACK_NET="$SUPPORT/attack_net.py"
: "${TSM_ATTACK:?TSM_ATTACK must name the tsm_attack binary (meson sets it)}"

# A generous bound on the victim's peak RSS. Sanitizer builds keep freed
# memory in quarantine and shadow memory besides, so they get more room.
RSS_MAX_MB=${EXHAUST_RSS_MAX_MB:-512}
case $(ldd "$TSM_BIN" 2>/dev/null) in
*asan*) RSS_MAX_MB=${EXHAUST_RSS_MAX_MB:-1536} ;;
esac

# vm_kb PID FIELD: VmRSS / VmHWM of PID in kB (nothing once it exited).
vm_kb() {
	sed -nE "s/^$2:[[:space:]]+([0-9]+) kB/\\1/p" "/proc/$1/status" 2>/dev/null || true
}

fd_count() {
	find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

victim_pid() { printf '%s\n' "${PID_OF[pub]}"; }

# wait_fds_above N SECS: until the victim has more than N descriptors
# (the good peer's session is open).
wait_fds_above() {
	local deadline=$((SECONDS + $2))
	until [ "$(fd_count "$(victim_pid)")" -gt "$1" ]; do
		[ "$SECONDS" -lt "$deadline" ] || fail "the good peer did not connect within $2 s"
		sleep 0.05
	done
}

# expect_memory_bounded WHAT: the victim's peak RSS is under the bound.
expect_memory_bounded() {
	local hwm rss
	hwm=$(vm_kb "$(victim_pid)" VmHWM)
	rss=$(vm_kb "$(victim_pid)" VmRSS)
	[ -n "$hwm" ] || fail "$1: cannot read the victim's /proc status: it exited before the check (log above)"
	[ "$hwm" -le $((RSS_MAX_MB * 1024)) ] ||
		fail "$1: victim peak RSS $((hwm / 1024)) MiB over the bound of $RSS_MAX_MB MiB"
	log "memory after $1: VmRSS $((rss / 1024)) MiB, VmHWM $((hwm / 1024)) MiB (bound $RSS_MAX_MB MiB)"
}

# wait_fds_at_most N SECS: the victim's descriptors come back down to N.
wait_fds_at_most() {
	local deadline=$((SECONDS + $2)) n
	while :; do
		n=$(fd_count "$(victim_pid)")
		[ "$n" -le "$1" ] && break
		[ "$SECONDS" -lt "$deadline" ] ||
			fail "victim still has $n open descriptors after the attack, expected <= $1 (leak?)"
		sleep 0.1
	done
	log "victim descriptors after the attack: $n (before: at most $1)"
}

# The victim: a secure publisher that waits for one subscriber, then
# streams COUNT messages at RATE per second (so that it outlives the
# attack and its counters include everything).
victim() {
	start_pub pub it/exh --count "$1" --rate "$2" --wait-subs 1 \
		--timeout-ms 60000 --stats "${@:3}"
	PORT=${URL##*:}
}

# good_peer N: a secure subscriber that must get all N verified.
good_peer() {
	start_sub good 'it/**' --verify --quiet --count "$1" --timeout-ms 60000 --stats
}

finish_good() {
	expect_exit pub 90 0
	expect_exit good 90 0
	expect_clean_sub good "$1"
	expect_field pub published "$1"
}

attack_creds() {
	ATTACK_CREDS=("$PKI/a-sub2.chain.pem" "$PKI/a-sub2.key" "$TRUST_A")
}

# run_attack NAME CMD...: runs an attacker to completion (bounded), its
# output in $WORK/NAME.out, echoed into the log.
run_attack() {
	local name=$1 rc=0
	shift
	start "$name" "$@"
	await "$name" 120 || rc=$?
	sed 's/^/    /' "$WORK/$name.out" || true
	[ "$rc" -eq 0 ] || fail "$name exited $rc: $(tail -n 3 "$WORK/$name.err")"
}

# ---- anonymous floods -------------------------------------------------------

case_conn_flood() {
	# 600 connections from 30 source addresses, as fast as they go, while
	# the good peer receives a stream.
	local base
	victim 2000 400
	base=$(fd_count "$(victim_pid)")
	good_peer 2000
	wait_fds_above "$base" 30
	base=$(fd_count "$(victim_pid)")
	run_attack flood python3 "$ATTACK_NET" flood 127.0.0.1 "$PORT" 600 30
	grep -q 'flood: 600 connections made' "$WORK/flood.out" ||
		fail "the flood did not get its 600 connections through the kernel"
	wait_fds_at_most $((base + 1)) 20
	expect_memory_bounded "600 connections"
	alive "$(victim_pid)" || fail "the victim died under the flood"
	finish_good 2000
	[ "$(stat_of pub transport.accepts)" -ge 600 ] ||
		fail "pub: transport.accepts = $(stat_of pub transport.accepts), expected >= 600"
	log "ok: pub transport.accepts = $(stat_of pub transport.accepts)," \
		"session.protocol_error = $(stat_of pub session.protocol_error)," \
		"reason.preauth_limit = $(stat_of pub reason.preauth_limit)," \
		"session.established = $(stat_of pub session.established)"
	pass "600 connections (resets, garbage, bare prefaces) from 30 sources during a stream: the good peer got 2000/2000, descriptors back to $base, memory bounded"
}

case_slow_handshake() {
	# Two slow-loris peers (1 byte per second) must be cut by
	# handshake_timeout (5 s by default, per waiting state) long before
	# they finish; the good peer is served meanwhile.
	victim 40 5
	start slow python3 "$ATTACK_NET" slow 127.0.0.1 "$PORT" 60
	good_peer 40
	local rc=0
	await slow 90 || rc=$?
	[ "$rc" -eq 0 ] || fail "the slow-loris attacker exited $rc"
	sed 's/^/    /' "$WORK/slow.out"
	[ "$(grep -c 'cut by the listener' "$WORK/slow.out")" -eq 2 ] ||
		fail "a slow-loris connection was not cut by the listener"
	if grep -q 'STILL OPEN' "$WORK/slow.out"; then
		fail "a slow-loris connection outlived 60 s"
	fi
	expect_memory_bounded "slow-loris"
	finish_good 40
	[ "$(stat_of pub reason.handshake_timeout)" -ge 2 ] ||
		fail "pub: reason.handshake_timeout = $(stat_of pub reason.handshake_timeout), expected >= 2"
	log "ok: pub reason.handshake_timeout = $(stat_of pub reason.handshake_timeout)," \
		"session.timeout = $(stat_of pub session.timeout)"
	pass "a PREFACE and an HS frame sent one byte per second: both cut (HANDSHAKE_TIMEOUT) before they finished; the good peer got 40/40 during the attack"
}

case_half_open() {
	# 300 silent connections, 4 per source from 75 sources: within the
	# per-source budget (4) but over the global one (preauth_max, 256).
	# The extra ones are refused at accept (PREAUTH_LIMIT), the others cut
	# at handshake_timeout; the good peer, refused while the budget is
	# full, gets in once it frees.
	local base
	victim 25 5
	base=$(fd_count "$(victim_pid)")
	start hold python3 "$ATTACK_NET" hold 127.0.0.1 "$PORT" 300 4 30
	wait_for hold out 'hold: [0-9]+ connections open' 30
	good_peer 25
	local rc=0
	await hold 60 || rc=$?
	[ "$rc" -eq 0 ] || fail "the half-open attacker exited $rc"
	sed 's/^/    /' "$WORK/hold.out"
	grep -q 'still open: 0$' "$WORK/hold.out" ||
		fail "half-open connections were still open after 30 s"
	wait_fds_at_most $((base + 1)) 20
	expect_memory_bounded "300 half-open handshakes"
	finish_good 25
	[ "$(stat_of pub reason.preauth_limit)" -ge 40 ] ||
		fail "pub: reason.preauth_limit = $(stat_of pub reason.preauth_limit), expected >= 40 (300 over a budget of 256)"
	[ "$(stat_of pub reason.handshake_timeout)" -ge 200 ] ||
		fail "pub: reason.handshake_timeout = $(stat_of pub reason.handshake_timeout), expected >= 200"
	log "ok: pub reason.preauth_limit = $(stat_of pub reason.preauth_limit)," \
		"reason.handshake_timeout = $(stat_of pub reason.handshake_timeout)"
	pass "300 half-open handshakes from 75 sources: the global budget (256) held (PREAUTH_LIMIT), the rest cut at handshake_timeout, descriptors back to $base; the good peer then got 25/25"
}

# ---- authenticated floods (tsm_attack) -------------------------------------

case_huge_announce() {
	# After authentication: a header announcing a 4 GiB body, a fragment
	# announcing a 1 TiB message and a record announcing a 4 GiB payload
	# (each refused by the decoder, before any allocation: the session
	# ends with a protocol error); then 4 sessions announce 16 MiB on each
	# of the 8 lanes (512 MiB) and never finish: the reassembly budget
	# (256 MiB) admits half and drops the rest (QUEUE_FULL).
	attack_creds
	victim 20 4
	run_attack huge "$TSM_ATTACK" huge "127.0.0.1:$PORT" 4 "${ATTACK_CREDS[@]}"
	[ "$(grep -c 'huge: victim ended the session' "$WORK/huge.out")" -eq 3 ] ||
		fail "the victim did not end all three sessions with lying lengths"
	grep -q '4 sessions hold 32 partial messages' "$WORK/huge.out" ||
		fail "the attacker could not announce its 32 partial messages"
	expect_memory_bounded "512 MiB of announced messages"
	good_peer 20
	finish_good 20
	[ "$(stat_of pub session.protocol_error)" -ge 3 ] ||
		fail "pub: session.protocol_error = $(stat_of pub session.protocol_error), expected >= 3"
	[ "$(stat_of pub drop.queue_full)" -ge 16 ] ||
		fail "pub: drop.queue_full = $(stat_of pub drop.queue_full), expected >= 16 (the reassembly budget)"
	grep -q 'FRAME_TOO_LARGE' "$WORK/pub.err" ||
		fail "pub did not log FRAME_TOO_LARGE"
	log "ok: pub session.protocol_error = $(stat_of pub session.protocol_error)," \
		"err.protocol = $(stat_of pub err.protocol), drop.queue_full = $(stat_of pub drop.queue_full)," \
		"drop.peer_lost = $(stat_of pub drop.peer_lost)"
	pass "lying lengths after authentication refused before allocation (FRAME_TOO_LARGE); 512 MiB announced in 32 partial messages: the 256 MiB reassembly budget held (QUEUE_FULL); memory bounded; the good peer got 20/20"
}

case_sub_flood() {
	# An authenticated peer sends 3000 SUBSCRIBE frames: the victim keeps
	# at most 1024 patterns per session (TSM_SESS_MAX_PATTERNS, docs/wire.md
	# §10) and ends the session past that ("too many subscriptions from
	# peer", counted in session.protocol_error).
	attack_creds
	victim 20 4
	run_attack subs "$TSM_ATTACK" subs "127.0.0.1:$PORT" 3000 "${ATTACK_CREDS[@]}"
	grep -q 'subs: victim ended the session' "$WORK/subs.out" ||
		fail "the victim kept a session that sent 3000 subscriptions"
	grep -q 'too many subscriptions from peer' "$WORK/pub.err" ||
		fail "pub did not log the subscription cap"
	expect_memory_bounded "3000 SUBSCRIBE frames"
	good_peer 20
	finish_good 20
	[ "$(stat_of pub session.protocol_error)" -ge 1 ] ||
		fail "pub: session.protocol_error = 0 after the subscription flood"
	log "ok: pub: $(grep -m1 'too many subscriptions' "$WORK/pub.err")"
	pass "3000 SUBSCRIBE frames from an authenticated peer: session ended at the 1024-pattern cap (ENOMEM, counted); the good peer got 20/20"
}

case_meta_bomb() {
	# Ten metadata bombs within the 4096-byte limit (nesting 200 deep,
	# 4 G announced entries or bytes, 400 items, a non-string key, two
	# maps, a well-known key of the wrong type, reserved bytes): each
	# message is dropped alone (BAD_METADATA) and the session goes on;
	# then a record announcing 4097 bytes of metadata ends the session.
	attack_creds
	victim 20 4
	run_attack meta "$TSM_ATTACK" meta "127.0.0.1:$PORT" "${ATTACK_CREDS[@]}"
	grep -q 'meta: 10 bombs sent, session still open' "$WORK/meta.out" ||
		fail "the victim did not keep the session through the 10 bombs"
	grep -q 'meta-oversized: victim ended the session' "$WORK/meta.out" ||
		fail "the victim accepted meta_len 4097"
	expect_memory_bounded "metadata bombs"
	good_peer 20
	finish_good 20
	[ "$(stat_of pub drop.bad_metadata)" -eq 10 ] ||
		fail "pub: drop.bad_metadata = $(stat_of pub drop.bad_metadata), expected 10"
	[ "$(stat_of pub session.protocol_error)" -ge 1 ] ||
		fail "pub: session.protocol_error = 0 after meta_len 4097"
	log "ok: pub drop.bad_metadata = $(stat_of pub drop.bad_metadata)," \
		"session.protocol_error = $(stat_of pub session.protocol_error)"
	pass "10 metadata bombs: each message refused alone (BAD_METADATA, counted), the session kept; meta_len 4097 ended it; the good peer got 20/20"
}

# ---- a subscriber that stops reading ----------------------------------------

case_stalled_sub() {
	# Two subscribers; one is stopped (SIGSTOP: it reads nothing more, its
	# socket fills). 8000 x 16 KiB = 125 MiB go out: the stalled session's
	# queue is capped (session_queue_bytes, 64 MiB), it is marked lagging
	# and loses its own copies (QUEUE_FULL, counted); the publisher and the
	# other subscriber go on and lose nothing.
	local n=8000
	start_pub pub it/exh --count "$n" --size 16K --wait-subs 2 --timeout-ms 60000 --stats
	PORT=${URL##*:}
	good_peer "$n"
	start_sub stuck 'it/**' --count "$n" --timeout-ms 120000
	wait_for stuck out '^sub: topic=' 30
	kill -STOP "${PID_OF[stuck]}"
	log "stopped the second subscriber (SIGSTOP) after $(grep -c '^sub: topic=' "$WORK/stuck.out") messages"
	# The good subscriber gets everything while the other stays stopped.
	local t=$((SECONDS + 60))
	while alive "${PID_OF[good]}"; do
		[ "$SECONDS" -lt "$t" ] || fail "the good subscriber did not finish within 60 s"
		expect_memory_bounded "a stalled subscriber" >/dev/null
		sleep 0.2
	done
	expect_exit good 10 0
	expect_memory_bounded "125 MiB sent past a stalled subscriber"
	# The publisher's final flush waits for the stalled session (until
	# session_timeout); killing the stopped process ends it sooner.
	kill -9 "${PID_OF[stuck]}" 2>/dev/null || true
	expect_exit pub 60 0
	expect_clean_sub good "$n"
	expect_field pub published "$n"
	local lost
	lost=$(($(stat_of pub drop.queue_full) + $(stat_of pub drop.peer_lost)))
	[ "$lost" -ge 1 ] || fail "pub: the stalled subscriber's losses were not counted"
	log "ok: pub drop.queue_full = $(stat_of pub drop.queue_full), drop.peer_lost = $(stat_of pub drop.peer_lost)," \
		"peak RSS stayed under $RSS_MAX_MB MiB while it sent 125 MiB"
	pass "a subscriber stopped with SIGSTOP: its queue capped and its losses counted ($lost); the other subscriber got $n/$n verified; the publisher finished"
}

# ---- file descriptors -------------------------------------------------------

case_fd_exhaust() {
	# The victim runs with ulimit -n 32; 40 silent connections (4 per
	# source) take every descriptor it has: accept fails with EMFILE, the
	# listener pauses (accept_backoff) instead of spinning, the silent ones
	# are cut at handshake_timeout, accept resumes, and the good peer gets
	# in. Run with both engines (the EMFILE paths differ).
	local base try rc
	require_engine
	for try in 1 2 3 4 5; do
		URL="tcp://127.0.0.1:$(free_port)"
		start pub bash -c 'ulimit -n 32 && exec "$@"' _ "$TSM_BIN" pub "$URL" it/exh \
			"${PUB_CREDS[@]}" --count 25 --rate 5 --wait-subs 1 --timeout-ms 60000 --stats
		wait_listening pub && break
		rc=0
		await pub 5 || rc=$?
		grep -q ADDR_IN_USE "$WORK/pub.err" || fail "pub failed to start (exit $rc)"
	done
	PORT=${URL##*:}
	expect_engine pub
	base=$(fd_count "$(victim_pid)")
	log "victim: ulimit -n 32, $base descriptors open at start"
	start hold python3 "$ATTACK_NET" hold 127.0.0.1 "$PORT" 40 4 7
	wait_for pub err 'Too many open files' 30
	log "the victim ran out of descriptors: $(grep -m1 'Too many open files' "$WORK/pub.err")"
	expect_memory_bounded "descriptor exhaustion"
	good_peer 25
	rc=0
	await hold 60 || rc=$?
	[ "$rc" -eq 0 ] || fail "the attacker exited $rc"
	sed 's/^/    /' "$WORK/hold.out"
	finish_good 25
	[ "$(stat_of pub reason.handshake_timeout)" -ge 1 ] ||
		fail "pub: no silent connection was cut by handshake_timeout"
	# every failed accept is counted, and logged at most once a second
	# (accept_backoff retries ten times a second)
	local failed logged
	failed=$(stat_of pub transport.accept_failed)
	logged=$(grep -c 'Too many open files' "$WORK/pub.err")
	[ "$failed" -ge 1 ] || fail "pub: transport.accept_failed is 0"
	[ "$logged" -le $((1 + failed / 5)) ] ||
		fail "pub: $logged accept failure lines for $failed failures (not rate-limited)"
	log "ok: pub transport.accepts = $(stat_of pub transport.accepts)," \
		"transport.accept_failed = $failed," \
		"reason.handshake_timeout = $(stat_of pub reason.handshake_timeout)," \
		"'Too many open files' logged $logged times"
	pass "ulimit -n 32 and 40 silent connections: accept hit EMFILE and backed off, recovered once the silent ones were cut; the good peer got 25/25"
}

fn=case_${CASE//-/_}
declare -F "$fn" >/dev/null || fail "unknown case '$CASE'"
log "case $CASE (engine: $(if [ -n "${TSM_NO_URING:-}" ]; then echo epoll; else echo default; fi))"
"$fn"
