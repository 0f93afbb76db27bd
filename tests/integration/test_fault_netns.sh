#!/usr/bin/env bash
# Faults of a real network: two network namespaces joined by a veth pair,
# tc qdiscs and link cuts (issue 9, item 3; tests/integration/FAULTS.md).
#
#   test_fault_netns.sh CASE   CASE: loss delay dup reorder corrupt tbf htb
#                                    linkdown-short linkdown-long
#
# The publisher runs in namespace A (10.77.0.1), the subscriber in B
# (10.77.0.2), secure. Packet faults use netem on both ends of the veth;
# where the kernel has no sch_netem they use a seeded AF_PACKET forwarder
# in a middle namespace (netns_lib.sh), said in the log. Kernel TCP
# repairs packet loss, duplication, reordering and corruption, so every
# message must arrive, once, intact and in order, and no session may
# break. Exit 77 only when a namespace, a veth pair or tbf/htb cannot be
# made (not root, no iproute2, a kernel without them), with the reason.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=netns_lib.sh
. "$(dirname "$0")/netns_lib.sh"

CASE=${1:?usage: test_fault_netns.sh CASE}
TEST_NAME="netns-$CASE"
PORT=7411
URL="tcp://$ADDR_A:$PORT"
LOSS_REASONS=PEER_LOST,NO_SUBSCRIBER,DEADLINE_EXPIRED,QUEUE_FULL

# cli_pair N PUB_ARGS... -- SUB_ARGS...: tsm pub in A, tsm sub --verify in
# B; both must finish, the subscriber with N messages verified.
cli_pair() {
	local n=$1 pargs=()
	shift
	while [ "$1" != -- ]; do
		pargs+=("$1")
		shift
	done
	shift
	start pub ip netns exec "$NS_A" "$TSM_BIN" pub "$URL" f/net "${PUB_CREDS[@]}" \
		--count "$n" --wait-subs 1 --timeout-ms 30000 --stats "${pargs[@]}"
	wait_listening pub
	start sub ip netns exec "$NS_B" "$TSM_BIN" sub "$URL" 'f/**' "${SUB_CREDS[@]}" \
		--verify --quiet --count "$n" --timeout-ms 40000 --stats "$@"
	expect_exit pub 50 0
	local rc=0
	await sub 50 || rc=$?
	# A close with unread bytes (the subscriber's ACKs) resets the
	# connection and the peer loses what was still in flight: say so.
	log "kernel: TCPAbortOnData A=$(net_stat "$NS_A" netstat TcpExt TCPAbortOnData)" \
		"B=$(net_stat "$NS_B" netstat TcpExt TCPAbortOnData)" \
		"(connections reset by a close with unread data)"
	[ "$rc" -eq 0 ] || fail "sub exited $rc, expected 0"
	expect_secure pub sub
	expect_clean_sub sub "$n"
	# No session may have broken: TCP hides packet faults entirely.
	local k
	for k in session.protocol_error session.timeout reason.aead_fail \
		reason.peer_lost reason.replay drop.peer_lost; do
		[ "$(stat_of sub "$k")" -eq 0 ] || fail "sub: $k = $(stat_of sub "$k"), expected 0"
		[ "$(stat_of pub "$k")" -eq 0 ] || fail "pub: $k = $(stat_of pub "$k"), expected 0"
	done
	summary pub
	summary sub
}

# peer_pair PUB_ARGS... -- SUB_ARGS...: the strict peers, A and B.
peer_pair() {
	local pargs=()
	while [ "$1" != -- ]; do
		pargs+=("$1")
		shift
	done
	shift
	peer pub ip netns exec "$NS_A" -- pub --listen "$URL" "${PUB_CREDS[@]}" \
		"${PEER_TIMERS[@]}" "${pargs[@]}"
	wait_for pub err 'transport engine' 10
	peer sub ip netns exec "$NS_B" -- sub --connect "$URL" "${SUB_CREDS[@]}" \
		"${PEER_TIMERS[@]}" "$@"
	expect_exit pub 50 0
	expect_exit sub 50 0
	cat "$WORK/pub.out" "$WORK/sub.out"
}

# Evidence that the network really misbehaved (not only that we asked).
show_qdisc() {
	if [ "$FAULT_MECH" = netem ]; then
		tc -s -n "$NS_A" qdisc show dev tfa | sed 's/^/  A: /'
		tc -s -n "$NS_B" qdisc show dev tfb | sed 's/^/  B: /'
	else
		log "forwarder: $(cat "$WORK/fwd.stats")"
	fi
}

# Retransmitted segments in A and B together (TCP repaired something).
retrans() {
	echo $(( $(net_stat "$NS_A" snmp Tcp RetransSegs) + $(net_stat "$NS_B" snmp Tcp RetransSegs) ))
}

case "$CASE" in
loss)
	ns_faulty "loss 3%" "--loss 0.03 --seed 51"
	cli_pair 4000 --size 1000 --rate 2000 --
	show_qdisc
	r=$(retrans)
	[ "$r" -gt 0 ] || fail "no TCP retransmission: was anything lost?"
	pass "3% packet loss both ways ($FAULT_MECH): 4000/4000 verified, $r TCP" \
		"retransmissions, no session break"
	;;
delay)
	# Deadlines well above the path's delay: everything arrives, in time.
	ns_faulty "delay 15ms 10ms" "--delay-ms 15 --jitter-ms 10 --seed 52"
	peer_pair --count 3000 --rate 1500 --size 800 --big-every 100 --big-size 100000 \
		--budget-us 2000000 --tail-ms 200 \
		-- --until-seq 2999 --idle-ms 3000 --late-slack-ms 5
	show_qdisc
	peer_check --all --no-breaks
	v=$(sed -nE 's/.*max ([0-9.]+) ms.*/\1/p' "$WORK/check.out")
	pass "delay 15 ms +- 10 ms both ways ($FAULT_MECH): 3000/3000 once, intact," \
		"in order, none after its deadline (max age at hand-over ${v:-?} ms)"
	;;
dup)
	ns_faulty "duplicate 5%" "--dup 0.05 --seed 53"
	cli_pair 4000 --size 1000 --rate 2000 --
	show_qdisc
	[ "$FAULT_MECH" = netem ] || [ "$(fwd_count dup)" -gt 0 ] || fail "no packet duplicated"
	pass "5% duplicated packets both ways ($FAULT_MECH): 4000/4000 verified once"
	;;
reorder)
	# Mixed priorities: the order checked is per lane.
	ns_faulty "delay 4ms reorder 70% 50%" "--reorder 0.3 --reorder-ms 4 --seed 54"
	cli_pair 4000 --size 1000 --rate 2000 --priority mixed --
	show_qdisc
	o=$(( $(net_stat "$NS_A" netstat TcpExt TCPOFOQueue) +
	      $(net_stat "$NS_B" netstat TcpExt TCPOFOQueue) ))
	[ "$o" -gt 0 ] || fail "TCP queued no out-of-order segment: was anything reordered?"
	pass "reordered packets both ways ($FAULT_MECH): 4000/4000 verified, order" \
		"per lane kept, $o segments out of order at TCP"
	;;
corrupt)
	ns_faulty "corrupt 3%" "--corrupt 0.03 --seed 55"
	cli_pair 4000 --size 1000 --rate 2000 --
	show_qdisc
	c=0
	for n in "$NS_A" "$NS_B"; do
		c=$(( c + $(net_stat "$n" snmp Tcp InCsumErrors) +
		      $(net_stat "$n" netstat IpExt InCsumErrors) +
		      $(net_stat "$n" snmp Ip InHdrErrors) + $(net_stat "$n" snmp Ip InAddrErrors) ))
	done
	[ "$c" -gt 0 ] || fail "no checksum error counted: was anything corrupted?"
	pass "3% corrupted packets both ways ($FAULT_MECH): $c refused by checksums," \
		"4000/4000 verified, no session break"
	;;
tbf)
	ns_pair
	err=$(tc -n "$NS_A" qdisc add dev tfa root tbf rate 40mbit burst 32kb latency 100ms 2>&1) ||
		skip "tc tbf refused: $err"
	t0=$SECONDS
	cli_pair 3000 --size 5000 --
	el=$((SECONDS - t0))
	tc -s -n "$NS_A" qdisc show dev tfa | sed 's/^/  A: /'
	# 15 MB at 40 Mbit/s is 3 s: the shaper was in the path.
	[ "$el" -ge 2 ] || fail "15 MB went through a 40 Mbit/s tbf in ${el}s: not shaped?"
	pass "tbf 40 Mbit/s: 15 MB in ${el}s, back-pressure and no loss: 3000/3000 verified"
	;;
htb)
	ns_pair
	err=$( { tc -n "$NS_A" qdisc add dev tfa root handle 1: htb default 20 &&
	         tc -n "$NS_A" class add dev tfa parent 1: classid 1:1 htb rate 60mbit &&
	         tc -n "$NS_A" class add dev tfa parent 1:1 classid 1:10 htb rate 40mbit \
	            ceil 60mbit prio 0 &&
	         tc -n "$NS_A" class add dev tfa parent 1:1 classid 1:20 htb rate 20mbit \
	            ceil 30mbit prio 1; } 2>&1) || skip "tc htb refused: $err"
	t0=$SECONDS
	cli_pair 3000 --size 4000 --priority mixed --
	el=$((SECONDS - t0))
	tc -s -n "$NS_A" class show dev tfa | sed 's/^/  A: /'
	[ "$el" -ge 2 ] || fail "12 MB through a 30 Mbit/s htb class in ${el}s: not shaped?"
	pass "htb (default class 30 Mbit/s ceiling): 12 MB in ${el}s, 3000/3000" \
		"verified, order per lane kept"
	;;
linkdown-short)
	# 1.5 s without a link, session_timeout 10 s (the tool's default).
	ns_pair
	start pub ip netns exec "$NS_A" "$TSM_BIN" pub "$URL" f/net "${PUB_CREDS[@]}" \
		--count 4000 --size 500 --rate 1000 --wait-subs 1 --timeout-ms 30000 --stats
	wait_listening pub
	start sub ip netns exec "$NS_B" "$TSM_BIN" sub "$URL" 'f/**' "${SUB_CREDS[@]}" \
		--verify --quiet --count 4000 --timeout-ms 40000 --stats
	wait_for pub err 'waiting up to' 10
	sleep 1.2
	ip -n "$NS_A" link set dev tfa down
	log "link down"
	sleep 1.5
	ip -n "$NS_A" link set dev tfa up
	log "link up"
	expect_exit pub 50 0
	expect_exit sub 50 0
	expect_clean_sub sub 4000
	for k in session.timeout reason.peer_lost drop.peer_lost; do
		[ "$(stat_of sub "$k")" -eq 0 ] || fail "sub: $k = $(stat_of sub "$k"), expected 0"
		[ "$(stat_of pub "$k")" -eq 0 ] || fail "pub: $k = $(stat_of pub "$k"), expected 0"
	done
	pass "link down 1.5 s < session_timeout: 4000/4000 verified, no session lost"
	;;
linkdown-long)
	# 2.5 s without a link, session_timeout 1.5 s: both ends lose the
	# session (PEER_LOST), resume keeps the reliable messages, the dialer
	# comes back once the link is.
	ns_pair
	peer pub ip netns exec "$NS_A" -- pub --listen "$URL" "${PUB_CREDS[@]}" \
		"${PEER_TIMERS[@]}" --count 6000 --rate 1000 --size 500 --tail-ms 300
	wait_for pub err 'transport engine' 10
	peer sub ip netns exec "$NS_B" -- sub --connect "$URL" "${SUB_CREDS[@]}" \
		"${PEER_TIMERS[@]}" --until-seq 5999 --idle-ms 5000
	sleep 1.5
	ip -n "$NS_A" link set dev tfa down
	log "link down"
	sleep 2.5
	ip -n "$NS_A" link set dev tfa up
	log "link up"
	expect_exit pub 50 0
	expect_exit sub 50 0
	cat "$WORK/pub.out" "$WORK/sub.out"
	peer_check --all --allow "$LOSS_REASONS" --min-breaks 1 --settle-ms 1500 \
		--min-after 300
	v=$(( $(counter reason.peer_lost pub) + $(counter reason.peer_lost sub) ))
	[ "$v" -gt 0 ] || fail "no PEER_LOST counted for a cut longer than session_timeout"
	pass "link down 2.5 s > session_timeout: PEER_LOST counted ($v)," \
		"$(check_field received) delivered once, $(check_field dropped) dropped" \
		"with a reason, none lost silently; the session came back"
	;;
*)
	fail "unknown case '$CASE'"
	;;
esac
