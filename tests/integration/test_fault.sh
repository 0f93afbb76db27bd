#!/usr/bin/env bash
# Fault injection through the TSM_FAULT decorator of the I/O engine
# (issue 9, item 3; cases and oracles in tests/integration/FAULTS.md).
#
#   test_fault.sh CASE     CASE: delay-cli deadline loss corrupt dup reorder
#                                mixed-epoll partition-short partition-long
#
# Real processes over TCP on loopback, secure (mutual TLS, sealed frames:
# corruption must meet the AEAD). delay-cli uses `tsm pub/sub --verify`;
# the others the strict peer (test_fault_peer) and its message-by-message
# check (netns_lib.sh). Faults on a byte stream that lose, corrupt,
# duplicate or reorder bytes break the session: the oracle is then that
# nothing bad is delivered, every message is delivered once or dropped with
# a reason the application is told (none vanishes: session/resume.c keeps
# what was in flight), each break is detected and counted, and the session
# comes back.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=netns_lib.sh
. "$(dirname "$0")/netns_lib.sh"

CASE=${1:?usage: test_fault.sh CASE}
TEST_NAME="fault-$CASE"
# Reasons a reliable message may be dropped for across a lost session
# (session/resume.h); anything else, or a silent loss, fails the check.
LOSS_REASONS=PEER_LOST,NO_SUBSCRIBER,DEADLINE_EXPIRED,QUEUE_FULL

# pair PUB_ENV SUB_ENV PUB_ARGS... -- SUB_ARGS...: strict peers over
# loopback, each with its own environment (TSM_FAULT, TSM_NO_URING).
pair() {
	local penv=$1 senv=$2 pargs=()
	shift 2
	while [ "$1" != -- ]; do
		pargs+=("$1")
		shift
	done
	shift
	URL="tcp://127.0.0.1:$(free_port)"
	# shellcheck disable=SC2086 # VAR=VALUE words for env
	peer pub env $penv -- pub --listen "$URL" "${PUB_CREDS[@]}" "${PEER_TIMERS[@]}" \
		"${pargs[@]}"
	wait_for pub err 'transport engine' 10
	# shellcheck disable=SC2086
	peer sub env $senv -- sub --connect "$URL" "${SUB_CREDS[@]}" "${PEER_TIMERS[@]}" "$@"
	expect_exit pub 40 0
	expect_exit sub 40 0
	cat "$WORK/pub.out" "$WORK/sub.out"
}

expect_fault_on() {
	local n
	for n in "$@"; do
		grep -q 'FAULT INJECTION ON' "$WORK/$n.err" ||
			fail "$n did not log 'FAULT INJECTION ON' (WARN) at open"
		grep -Eq 'transport engine: [a-z_]+\+fault$' "$WORK/$n.err" ||
			fail "$n's engine name does not show the decorator"
	done
}

# Sessions broke and the breaks were seen by the library's own checks.
expect_detected() {
	local k sum=0 v
	for k in reason.aead_fail reason.replay session.protocol_error err.out_of_state \
		reason.peer_lost; do
		v=$(counter "$k" sub)
		sum=$((sum + ${v:-0}))
	done
	[ "$sum" -gt 0 ] || fail "no session break was detected and counted on the subscriber"
}

# A byte-stream fault of one kind on the publisher's sends, from 0.5 s
# to 3 s; 6000 messages over 4 s, every 50th one 150 kB (3 fragments).
stream_fault() {
	local kind=$1 seed=$2 stat=$3
	pair "TSM_FAULT=seed=$seed,$kind=0.02,from=500ms,until=3000ms" "" \
		--count 6000 --rate 1500 --size 300 --big-every 50 --big-size 150000 \
		--tail-ms 300 -- --until-seq 5999 --idle-ms 3000 --duration-ms 30000
	expect_fault_on pub
	peer_check --all --allow "$LOSS_REASONS" --min-breaks 1 --settle-ms 800 \
		--min-after 300
	expect_counter_positive "$stat" pub
	expect_detected
	pass "$kind=2% on the publisher's sends: $(check_field breaks) session breaks," \
		"each detected and counted; nothing duplicated, corrupted, partial," \
		"out of order or late; every message delivered or dropped with a" \
		"reason; the session came back"
}

case "$CASE" in
delay-cli)
	# tsm pub / tsm sub --verify, both decorated: delay and jitter only.
	export TSM_FAULT="seed=11,delay_us=3000,jitter_us=2000"
	start_pub pub f/cli --count 3000 --size 1500 --wait-subs 1 --timeout-ms 20000 --stats
	start_sub sub 'f/**' --verify --quiet --count 3000 --timeout-ms 30000 --stats
	unset TSM_FAULT
	expect_exit pub 40 0
	expect_exit sub 40 0
	expect_fault_on pub sub
	expect_clean_sub sub 3000
	expect_stat_positive pub fault.delayed
	expect_stat_positive sub fault.delayed
	for k in fault.lost fault.corrupted fault.duplicated fault.reordered \
		session.protocol_error session.timeout reason.aead_fail drop.peer_lost; do
		[ "$(stat_of sub "$k")" -eq 0 ] || fail "sub: $k = $(stat_of sub "$k"), expected 0"
		[ "$(stat_of pub "$k")" -eq 0 ] || fail "pub: $k = $(stat_of pub "$k"), expected 0"
	done
	pass "delay 3 ms +- 2 ms both ways: 3000/3000 verified, no session break"
	;;
deadline)
	# Sends delayed 15-25 ms with 16 KiB in flight at most: the
	# publisher's lane queue grows and 15 ms budgets expire there.
	pair "TSM_FAULT=seed=12,delay_us=20000,jitter_us=5000,hold_kb=16" "" \
		--count 3000 --rate 3000 --size 1000 --budget-us 15000 --tail-ms 200 \
		-- --until-seq 2999 --idle-ms 2000 --late-slack-ms 5 --e2e-budget-us 15000
	expect_fault_on pub
	peer_check --all --allow DEADLINE_EXPIRED --no-breaks --min-received 50
	expect_counter_positive drop.deadline_expired pub
	expect_counter_positive fault.delayed pub
	pass "$(check_field received) delivered within their deadlines," \
		"$(check_field dropped) expired and dropped with DEADLINE_EXPIRED," \
		"none late, none lost without a reason"
	;;
loss) stream_fault loss 13 fault.lost ;;
corrupt) stream_fault corrupt 14 fault.corrupted ;;
dup) stream_fault dup 15 fault.duplicated ;;
reorder) stream_fault reorder 16 fault.reordered ;;
mixed-epoll)
	# Every fault, both directions, all eight lanes, the epoll engine.
	spec="loss=0.004,corrupt=0.004,dup=0.004,reorder=0.004,delay_us=500,jitter_us=400"
	spec="$spec,from=500ms,until=3000ms"
	pair "TSM_NO_URING=1 TSM_FAULT=seed=21,$spec" "TSM_NO_URING=1 TSM_FAULT=seed=22,$spec" \
		--count 6000 --rate 1500 --size 300 --big-every 50 --big-size 150000 --mixed \
		--tail-ms 300 -- --until-seq 5999 --idle-ms 3000 --duration-ms 30000
	expect_fault_on pub sub
	grep -q 'transport engine: epoll+fault' "$WORK/pub.err" || fail "pub did not run epoll+fault"
	peer_check --all --allow "$LOSS_REASONS" --min-breaks 1 --settle-ms 800 \
		--min-after 300
	expect_detected
	pass "all faults both ways on epoll, 8 lanes: $(check_field breaks) breaks," \
		"nothing bad delivered, order per lane kept, everything accounted, back"
	;;
partition-short)
	# 700 ms of nothing in either direction, session_timeout 2.5 s.
	pair "" "TSM_FAULT=seed=31,partition=700ms@1500ms" \
		--session-timeout-ms 2500 --count 4000 --rate 1000 --size 300 \
		--budget-us 3000000 --tail-ms 200 \
		-- --session-timeout-ms 2500 --until-seq 3999 --idle-ms 3000
	expect_fault_on sub
	peer_check --all --no-breaks
	[ "$(counter fault.partitions sub)" -eq 1 ] || fail "expected one partition"
	expect_counter_positive fault.partition_held sub
	pass "700 ms partition < session_timeout: $(check_field received)/4000 delivered," \
		"no session break, no drop, none late"
	;;
partition-long)
	# 2 s of nothing, session_timeout 0.8 s: both ends give up (PEER_LOST),
	# the dialer comes back after the partition.
	pair "" "TSM_FAULT=seed=41,partition=2000ms@1200ms" \
		--session-timeout-ms 800 --count 6000 --rate 1000 --size 300 --tail-ms 200 \
		-- --session-timeout-ms 800 --until-seq 5999 --idle-ms 4000
	expect_fault_on sub
	peer_check --all --allow "$LOSS_REASONS" --min-breaks 1 --settle-ms 1200 \
		--min-after 500
	[ "$(counter fault.partitions sub)" -eq 1 ] || fail "expected one partition"
	v=$(( $(counter reason.peer_lost pub) + $(counter reason.peer_lost sub) ))
	[ "$v" -gt 0 ] || fail "no PEER_LOST counted for a partition longer than session_timeout"
	pass "2 s partition > session_timeout: PEER_LOST counted ($v)," \
		"$(check_field received) delivered once, $(check_field dropped) dropped" \
		"with a reason, none lost silently; the session came back"
	;;
*)
	fail "unknown case '$CASE'"
	;;
esac
