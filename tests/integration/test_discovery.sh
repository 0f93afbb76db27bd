#!/usr/bin/env bash
# Discovery across hosts (issue 7): four nodes in four network namespaces
# joined by a bridge, each knowing only the seed, which is neither a
# publisher nor a subscriber. Secure throughout (mutual TLS, SPIFFE IDs,
# per-topic policy). Checks, in order:
#  1. the subscriber finds the publisher through the seed and gets every
#     message, verified, across a partition shorter than the session
#     timeout (TCP repairs it; nothing lost, nothing twice);
#  2. an outsider the policy allows nothing on it/** learns nothing about
#     the publisher or the subscriber from the seed (ACL-filtered gossip);
#  3. the seed is killed (SIGKILL) and restarted, and a new publisher that
#     only knows the seed is found by the subscriber through it;
#  4. a partition longer than the session timeout: the session is lost
#     and counted, then comes back with the subscription, and every
#     message of the reliable topic arrives once (those in flight and
#     those published during the partition are kept and sent again);
#  5. `tsm peers` through the seed lists the publisher and subscriber;
#  6. with multicast beacons (opt-in), a node that knows no seed at all
#     finds a publisher.
# Skips (77) only where network namespaces cannot be made, and says why.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

P=tsmd$$
NET=10.203.$(($$ % 200 + 20))
NS=("${P}b" "${P}1" "${P}2" "${P}3" "${P}4")

netns_cleanup() {
	local rc=$? n
	for n in "${NAMES[@]}"; do
		kill -9 "${PID_OF[$n]}" 2>/dev/null || true
	done
	for n in "${NS[@]}"; do
		ip netns del "$n" 2>/dev/null || true
	done
	return "$rc"
}
trap 'netns_cleanup; cleanup' EXIT

skip() {
	log "SKIP: $*"
	exit 77
}

[ "$(id -u)" -eq 0 ] || skip "needs root to create network namespaces"
command -v ip >/dev/null || skip "iproute2 (ip) is not installed"
ip netns add "${NS[0]}" 2>/dev/null ||
	skip "cannot create a network namespace here (ip netns add failed)"
ip -n "${NS[0]}" link add br0 type bridge 2>/dev/null ||
	skip "cannot create a bridge in a namespace"
ip -n "${NS[0]}" link set br0 up
for i in 1 2 3 4; do
	ip netns add "${NS[$i]}"
	ip link add "v$P$i" netns "${NS[$i]}" type veth peer name "b$i" \
		netns "${NS[0]}"
	ip -n "${NS[$i]}" link set "v$P$i" name eth0
	ip -n "${NS[$i]}" addr add "$NET.$i/24" dev eth0
	ip -n "${NS[$i]}" link set eth0 up
	ip -n "${NS[$i]}" link set lo up
	ip -n "${NS[0]}" link set "b$i" master br0
	ip -n "${NS[0]}" link set "b$i" up
done
log "4 namespaces on a bridge: seed $NET.1, pub $NET.2, sub $NET.3, node 4 $NET.4"

for who in seed pub2 watch other; do
	"$SUPPORT/pki.sh" "$PKI" issue "a-$who" "spiffe://td-a.test/$who" 3600 \
		>/dev/null || fail "cannot issue a-$who"
done
# Publishers publish it/**, subscribers and the watcher subscribe it/**;
# the seed relays it/** adverts, so it holds a right there (subscribe: it
# never subscribes, so no data goes to it); "other" has none on it/**.
write_policy "$POLICY" \
	'allow publish spiffe://td-a.test/pub it/**' \
	'allow publish spiffe://td-a.test/pub2 it/**' \
	'allow subscribe spiffe://td-a.test/sub it/**' \
	'allow subscribe spiffe://td-a.test/watch it/**' \
	'allow subscribe spiffe://td-a.test/seed it/**' \
	'allow subscribe spiffe://td-a.test/other other/**'

SEED="tcp://$NET.1:7000#spiffe://td-a.test/seed"
TUNE=(--gossip-ms 200 --session-timeout-ms 2000 --peer-timeout-ms 6000)
# Backgrounded by start(), this runs in a subshell: exec, so that the pid
# start() records is tsm's own (ip netns exec execs it too).
in_ns() { local n=$1; shift; exec ip netns exec "${NS[$n]}" "$@"; }
in_ns_run() { local n=$1; shift; ip netns exec "${NS[$n]}" "$@"; }
node() { creds "$1"; printf '%s\n' "${CREDS[@]}"; }
mapfile -t C_SEED < <(node a-seed)
mapfile -t C_PUB < <(node a-pub)
mapfile -t C_PUB2 < <(node a-pub2)
mapfile -t C_SUB < <(node a-sub)
mapfile -t C_WATCH < <(node a-watch)
mapfile -t C_OTHER < <(node a-other)

start_seed() {
	start "$1" in_ns 1 "$TSM_BIN" peers --listen "tcp://$NET.1:7000" \
		--watch 1000 "${TUNE[@]}" "${C_SEED[@]}"
	wait_for "$1" err 'transport engine' 10
}

# count_ok NAME TOPIC: verified messages of TOPIC that NAME printed.
count_ok() {
	grep -c "^sub: topic=$2 .* ok\$" "$WORK/$1.out" || true
}

# await_count NAME TOPIC N WHAT: waits up to 15 s for N verified messages
# of TOPIC, fails with WHAT otherwise; sets got.
await_count() {
	local deadline=$((SECONDS + 15))
	while [ "$(count_ok "$1" "$2")" -lt "$3" ] && [ $SECONDS -lt $deadline ]; do
		sleep 0.2
	done
	got=$(count_ok "$1" "$2")
	[ "$got" -eq "$3" ] || fail "$1 got $got of $3 $2 messages$4"
}

start_seed seed
start sub in_ns 3 "$TSM_BIN" sub --seed "$SEED" 'it/**' --verify --count 0 \
	"${TUNE[@]}" "${C_SUB[@]}"
N1=200
start pub in_ns 2 "$TSM_BIN" pub --listen tcp://0.0.0.0:7001 --seed "$SEED" \
	it/one --count "$N1" --rate 50 --wait-subs 1 --timeout-ms 30000 \
	"${TUNE[@]}" "${C_PUB[@]}" --stats

# 1. Found through the seed; a 1 s partition (< 2 s session timeout).
wait_for sub out '^sub: topic=it/one .* seq=20 ok' 20
in_ns_run 2 ip link set eth0 down
sleep 1
in_ns_run 2 ip link set eth0 up
log "partitioned the publisher for 1 s (session timeout 2 s)"
expect_exit pub 40 0
await_count sub it/one "$N1" ""
[ "$(stat_of pub session.timeout)" -eq 0 ] ||
	fail "the short partition cost a session (session.timeout > 0)"
log "1. sub found the publisher via the seed: $got/$N1 verified across a 1 s partition"

# 2. The outsider learns nothing of it/** (and is told about the seed only).
start other in_ns 4 "$TSM_BIN" peers "$SEED" --wait-ms 2500 "${TUNE[@]}" \
	"${C_OTHER[@]}"
expect_exit other 20 0
if grep -qE 'pub=[1-9]|sub=[1-9]' "$WORK/other.out"; then
	fail "an identity with no right on it/** was told of its adverts"
fi
grep -qE 'identity=spiffe://td-a.test/(sub|pub) ' "$WORK/other.out" &&
	fail "the outsider learnt of the publisher or the subscriber"
log "2. outsider: $(grep '^peers:' "$WORK/other.out")"

# 3. Kill the seed, restart it; a new publisher found through it.
kill -9 "${PID_OF[seed]}"
await seed 5 || true
start_seed seed2
N2=100
start pub2 in_ns 4 "$TSM_BIN" pub --listen tcp://0.0.0.0:7002 --seed "$SEED" \
	it/two --count "$N2" --rate 100 --wait-subs 1 --timeout-ms 30000 \
	"${TUNE[@]}" "${C_PUB2[@]}"
expect_exit pub2 40 0
await_count sub it/two "$N2" ""
log "3. seed killed and restarted; new publisher found through it: $got/$N2"

# 4. A partition longer than the session timeout.
N3=400
start pub3 in_ns 2 "$TSM_BIN" pub --listen tcp://0.0.0.0:7003 --seed "$SEED" \
	it/three --count "$N3" --rate 40 --wait-subs 1 --timeout-ms 30000 \
	"${TUNE[@]}" "${C_PUB[@]}" --stats
wait_for sub out '^sub: topic=it/three .* seq=20 ok' 20
in_ns_run 3 ip link set eth0 down
sleep 4
in_ns_run 3 ip link set eth0 up
log "partitioned the subscriber for 4 s (session timeout 2 s)"
expect_exit pub3 60 0
wait_for sub out "^sub: topic=it/three .* seq=$((N3 - 1)) ok" 20
lost=$(stat_of pub3 reason.peer_lost)
[ "$lost" -gt 0 ] || fail "the long partition did not count the session as lost"
await_count sub it/three "$N3" " across the long partition"
replayed=$(stat_of pub3 resume.replayed)
[ "$replayed" -gt 0 ] || fail "nothing was sent again after the heal (resume.replayed = 0)"
log "4. session lost (reason.peer_lost=$lost), resumed after the heal ($replayed sent again): $got/$N3 verified, once each"

# 5. tsm peers through the restarted seed.
start watch in_ns 4 "$TSM_BIN" peers "$SEED" --count 2 --wait-ms 8000 \
	"${TUNE[@]}" "${C_WATCH[@]}"
expect_exit watch 20 0
grep -q 'identity=spiffe://td-a.test/sub ' "$WORK/watch.out" ||
	fail "tsm peers did not list the subscriber"
grep -q 'identity=spiffe://td-a.test/seed state=connected' "$WORK/watch.out" ||
	fail "tsm peers did not show the seed connected"
log "5. $(grep '^peers:' "$WORK/watch.out")"

# 6. Multicast beacons (opt-in): a node with no seed at all hears one.
BEACON=239.255.77.$(($$ % 200 + 20)):7677
start bpub in_ns 2 "$TSM_BIN" pub --listen "tcp://$NET.2:7004" \
	--beacon "$BEACON" it/beacon --count 1 --wait-subs 1 --timeout-ms 30000 \
	"${TUNE[@]}" "${C_PUB[@]}"
start bwatch in_ns 4 "$TSM_BIN" peers --listen "tcp://$NET.4:7005" \
	--beacon "$BEACON" --count 1 --wait-ms 10000 "${TUNE[@]}" "${C_WATCH[@]}"
expect_exit bwatch 20 0
grep -q 'identity=spiffe://td-a.test/pub state=connected' "$WORK/bwatch.out" ||
	fail "the beacon did not lead to the publisher"
kill -9 "${PID_OF[bpub]}" 2>/dev/null || true
await bpub 5 || true
log "6. beacon only (no seed): $(grep '^peers:' "$WORK/bwatch.out")"

kill -TERM "${PID_OF[sub]}"
await sub 10 || true
line=$(summary sub)
for k in dup corrupt order_errors gaps prio_mismatch; do
	v=$(sed -nE "s/.* $k=([0-9]+).*/\1/p" <<<"$line")
	[ "$v" = 0 ] || fail "sub: $k=$v ($line)"
done
grep -q 'security: mutual TLS 1.3' "$WORK/sub.err" || fail "sub was not secure"
pass "discovery over 4 namespaces: seed-only joins, ACL-filtered gossip, seed restart, short and long partitions"
