# shellcheck shell=bash
#
# tests/integration/netns_lib.sh - helpers for the fault-injection tests
# (test_fault.sh, test_fault_netns.sh; tests/integration/FAULTS.md).
# Source it after lib.sh.
#
# The strict peer: test_fault_peer (tests/unit/test_fault_peer.c, path in
# TSM_FAULT_PEER) publishes and subscribes like `tsm pub/sub` but records
# every message id, every reported drop and every session close, and its
# `check` command proves message by message that nothing was delivered
# twice, corrupted, partial, out of order or late, that everything else
# was dropped with a reason (--all; without it a message lost in flight
# may be attributed to a session break instead), and that the session came
# back. TFP_VERBOSE=1 gives the peers' debug log.
#
# Namespaces: ns_pair makes two network namespaces joined by a veth pair
# (A = 10.77.0.1, B = 10.77.0.2). ns_faulty makes the same two joined
# through packet faults: netem on both ends of the veth when the kernel
# has sch_netem; otherwise a third namespace M in the middle where a
# seeded Python forwarder (AF_PACKET, offloads off so that every frame is
# one wire packet) loses, delays, duplicates, reorders and corrupts
# packets like netem. Both are real kernel TCP paths. Everything is torn
# down at exit; a test skips (77) only when a namespace, a veth pair or a
# required qdisc cannot be made, and says why.

: "${TSM_FAULT_PEER:?TSM_FAULT_PEER must name test_fault_peer (meson sets it)}"
FPEER=$TSM_FAULT_PEER
NS_A='' NS_B='' NS_M=''
ADDR_A=10.77.0.1
ADDR_B=10.77.0.2
FAULT_MECH=''

# Common timers of the strict peers: short, so breaks heal within a test.
# shellcheck disable=SC2034 # used by the scripts that source this file
PEER_TIMERS=(${TFP_VERBOSE:+-v} --session-timeout-ms 1500 --handshake-timeout-ms 1000
             --reconnect-max-ms 200)

ns_teardown() {
	local n p=${PID_OF[fwd]:-}
	if [ -n "$p" ]; then # quietly, before lib.sh's kill -9
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	fi
	for n in "$NS_A" "$NS_B" "$NS_M"; do
		[ -z "$n" ] || ip netns del "$n" 2>/dev/null || true
	done
	NS_A='' NS_B='' NS_M=''
}

# Namespaces go first, then lib.sh's cleanup (children, logs, exit code;
# it reads the status from $?). Not under errexit: `(exit 1)` would end
# the trap before cleanup.
trap 'rc=$?; set +e; ns_teardown; (exit "$rc"); cleanup' EXIT

skip() {
	log "SKIP: $*"
	exit 77
}

ns_need_root() {
	[ "$(id -u)" -eq 0 ] || skip "not root: network namespaces need CAP_SYS_ADMIN"
	command -v ip >/dev/null || skip "no 'ip' (iproute2)"
	command -v tc >/dev/null || skip "no 'tc' (iproute2)"
}

# ns_new VAR: a fresh namespace, unique to this test process.
ns_new() {
	local name="tsmf$$${1,,}" err
	err=$(ip netns add "$name" 2>&1) || skip "cannot create a network namespace: $err"
	ip -n "$name" link set dev lo up
	printf -v "$1" '%s' "$name"
}

# ns_link NS1 IF1 NS2 IF2: a veth pair between two namespaces, up.
ns_link() {
	local err
	err=$(ip link add "$2" netns "$1" type veth peer name "$4" netns "$3" 2>&1) ||
		skip "cannot create a veth pair: $err"
	ip -n "$1" link set dev "$2" up
	ip -n "$3" link set dev "$4" up
}

# ns_pair: A <-veth-> B.
ns_pair() {
	ns_need_root
	ns_new NS_A
	ns_new NS_B
	ns_link "$NS_A" tfa "$NS_B" tfb
	ip -n "$NS_A" addr add "$ADDR_A/24" dev tfa
	ip -n "$NS_B" addr add "$ADDR_B/24" dev tfb
	ns_wait_path
}

# Waits until A reaches B (the veth's carrier and neighbour discovery).
ns_wait_path() {
	local _
	for _ in $(seq 1 50); do
		ip netns exec "$NS_A" bash -c "echo x >/dev/udp/$ADDR_B/9" 2>/dev/null || true
		ip -n "$NS_A" neigh show "$ADDR_B" | grep -Eq 'REACHABLE|STALE|DELAY' && return 0
		sleep 0.05
	done
	log "note: no neighbour entry for $ADDR_B yet; going on"
}

# netem_probe: can this kernel make a netem qdisc? (in NS_A on tfa)
netem_probe() {
	local err
	if err=$(tc -n "$NS_A" qdisc add dev tfa root netem delay 1ms 2>&1); then
		tc -n "$NS_A" qdisc del dev tfa root
		return 0
	fi
	NETEM_WHY=$err
	return 1
}

# Offloads off (ethtool ioctls; no ethtool binary needed): TSO/GSO/GRO
# would hand the forwarder 64 KiB super-frames, and checksum offload would
# leave TCP checksums to be filled in later. One Python for every
# namespace (setns): NS:IF[,IF]... arguments.
ns_offloads_off() {
	python3 - "$@" <<'PY'
import ctypes, fcntl, os, socket, struct, sys
SIOCETHTOOL, CLONE_NEWNET = 0x8946, 0x40000000
CMDS = (0x17, 0x15, 0x19, 0x1f, 0x24, 0x2c)  # tx/rx csum, sg, tso, gso, gro
libc = ctypes.CDLL(None, use_errno=True)
for arg in sys.argv[1:]:
    ns, ifs = arg.split(":")
    fd = os.open("/var/run/netns/" + ns, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        sys.exit("setns %s: errno %d" % (ns, ctypes.get_errno()))
    os.close(fd)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for ifname in ifs.split(","):
        for cmd in CMDS:
            val = ctypes.create_string_buffer(struct.pack("II", cmd, 0))
            ifr = struct.pack("16sP", ifname.encode(), ctypes.addressof(val))
            try:
                fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr + b"\0" * (40 - len(ifr)))
            except OSError:
                pass  # fixed off already
    s.close()
PY
}

# The seeded packet forwarder (netem's faults, for kernels without netem).
write_forwarder() {
	cat >"$WORK/pktfault.py" <<'PY'
"""Forward every Ethernet frame between two interfaces, with netem-like
faults on IPv4 frames: loss, delay + jitter, duplication, reordering
(a packet held back by --reorder-ms while later ones pass) and corruption
(one random bit after the Ethernet header: the IP or TCP checksum then
refuses the packet, as netem corrupt does). Seeded: --seed. Counters are
written to --stats every 100 ms."""
import argparse, heapq, os, random, select, socket, time

p = argparse.ArgumentParser()
p.add_argument("a"); p.add_argument("b")
for k in ("loss", "dup", "corrupt", "reorder"):
    p.add_argument("--" + k, type=float, default=0.0)
for k in ("delay-ms", "jitter-ms", "reorder-ms"):
    p.add_argument("--" + k, type=float, default=0.0)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--stats", required=True)
o = p.parse_args()
rng = random.Random(o.seed)
PACKET_OUTGOING = 4
socks = []
for name in (o.a, o.b):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((name, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.setblocking(False)
    socks.append(s)
other = {socks[0]: socks[1], socks[1]: socks[0]}
cnt = dict(frames=0, ipv4=0, lost=0, dup=0, corrupted=0, reordered=0, delayed=0)
heap, order = [], 0

def emit(out, data):
    try:
        out.send(data)
    except OSError:
        cnt["lost"] += 1  # a full transmit queue: the wire dropped it

def schedule(out, data, at):
    global order
    order += 1
    heapq.heappush(heap, (at, order, out, data))

last = 0.0
while True:
    now = time.monotonic()
    while heap and heap[0][0] <= now:
        _, _, out, data = heapq.heappop(heap)
        emit(out, data)
    if now - last > 0.1:
        with open(o.stats + ".tmp", "w") as f:
            f.write(" ".join("%s=%d" % kv for kv in cnt.items()) + "\n")
        os.replace(o.stats + ".tmp", o.stats)
        last = now
    timeout = max(0.0, heap[0][0] - now) if heap else 0.1
    r, _, _ = select.select(socks, [], [], min(timeout, 0.1))
    for s in r:
        for _ in range(64):
            try:
                data, addr = s.recvfrom(65535)
            except BlockingIOError:
                break
            if addr[2] == PACKET_OUTGOING:
                continue
            cnt["frames"] += 1
            out = other[s]
            if len(data) < 34 or data[12:14] != b"\x08\x00":
                emit(out, data)  # ARP and the like pass untouched
                continue
            cnt["ipv4"] += 1
            if rng.random() < o.loss:
                cnt["lost"] += 1
                continue
            if rng.random() < o.corrupt:
                b = bytearray(data)
                bit = rng.randrange(14 * 8, len(b) * 8)
                b[bit // 8] ^= 1 << (bit % 8)
                data = bytes(b)
                cnt["corrupted"] += 1
            copies = 2 if rng.random() < o.dup else 1
            cnt["dup"] += copies - 1
            at = time.monotonic()
            if o.delay_ms or o.jitter_ms:
                d = o.delay_ms + rng.uniform(-o.jitter_ms, o.jitter_ms)
                at += max(0.0, d) / 1000.0
                cnt["delayed"] += 1
            if rng.random() < o.reorder:
                at += o.reorder_ms / 1000.0
                cnt["reordered"] += 1
            for _ in range(copies):
                if at <= time.monotonic():
                    emit(out, data)
                else:
                    schedule(out, data, at)
PY
}

# ns_faulty NETEM_ARGS FORWARDER_ARGS: A and B joined through packet
# faults in both directions; sets FAULT_MECH (netem or forwarder).
ns_faulty() {
	local netem=$1 fwd=$2
	ns_need_root
	ns_new NS_A
	ns_new NS_B
	ns_link "$NS_A" tfa "$NS_B" tfb
	if netem_probe; then
		ip -n "$NS_A" addr add "$ADDR_A/24" dev tfa
		ip -n "$NS_B" addr add "$ADDR_B/24" dev tfb
		# shellcheck disable=SC2086 # netem takes a word list
		tc -n "$NS_A" qdisc add dev tfa root netem $netem || skip "tc netem $netem refused"
		# shellcheck disable=SC2086
		tc -n "$NS_B" qdisc add dev tfb root netem $netem || skip "tc netem $netem refused"
		FAULT_MECH=netem
		log "packet faults: tc netem $netem (both directions)"
	else
		log "packet faults: this kernel has no sch_netem ($(printf '%s' "$NETEM_WHY" | head -n 1));"
		log "  using the seeded AF_PACKET forwarder in a middle namespace instead: $fwd"
		ip -n "$NS_A" link del dev tfa
		ns_new NS_M
		ns_link "$NS_A" tfa "$NS_M" tma
		ns_link "$NS_B" tfb "$NS_M" tmb
		ip -n "$NS_A" addr add "$ADDR_A/24" dev tfa
		ip -n "$NS_B" addr add "$ADDR_B/24" dev tfb
		ns_offloads_off "$NS_A:tfa" "$NS_B:tfb" "$NS_M:tma,tmb" ||
			fail "cannot turn the veth offloads off"
		write_forwarder
		# shellcheck disable=SC2086 # the forwarder takes a word list
		start fwd ip netns exec "$NS_M" python3 "$WORK/pktfault.py" tma tmb $fwd \
			--stats "$WORK/fwd.stats"
		local _
		for _ in $(seq 1 50); do
			[ -s "$WORK/fwd.stats" ] && break
			sleep 0.1
		done
		[ -s "$WORK/fwd.stats" ] || fail "the packet forwarder did not start"
		FAULT_MECH=forwarder
	fi
	ns_wait_path
}

# fwd_count KEY: a counter of the forwarder (0 with netem).
fwd_count() {
	[ "$FAULT_MECH" = forwarder ] || { echo 0; return; }
	sed -nE "s/.*(^| )$1=([0-9]+).*/\\2/p" "$WORK/fwd.stats"
}

# net_stat NS FILE SECTION KEY: a counter of /proc/net/FILE (snmp,
# netstat) in NS, e.g. net_stat "$NS_A" snmp Tcp RetransSegs.
net_stat() {
	ip netns exec "$1" cat "/proc/net/$2" | awk -v sec="$3:" -v k="$4" '
		$1 == sec {
			if (!seen) { n = split($0, h); seen = 1; next }
			split($0, v)
			for (i = 2; i <= n; i++) if (h[i] == k) { print v[i]; found = 1 }
		}
		END { if (!found) print 0 }'
}

# ---- the strict peer ---------------------------------------------------------

# peer NAME PREFIX... -- ARGS...: run test_fault_peer (PREFIX: e.g. `ip
# netns exec NS` or `env TSM_FAULT=...`), its record in $WORK/NAME.rec.
peer() {
	local name=$1 pre=()
	shift
	while [ "$1" != -- ]; do
		pre+=("$1")
		shift
	done
	shift
	start "$name" "${pre[@]}" "$FPEER" "$@" --out "$WORK/$name.rec"
}

# peer_check ARGS...: runs the checker on pub.rec and sub.rec.
peer_check() {
	local rc=0
	"$FPEER" check "$WORK/pub.rec" "$WORK/sub.rec" "$@" >"$WORK/check.out" 2>&1 || rc=$?
	sed 's/^/  /' "$WORK/check.out"
	[ "$rc" -eq 0 ] || fail "the message-by-message check failed (above)"
}

# counter NAME SIDE: a counter the checker printed (SIDE pub or sub).
counter() {
	sed -nE "s/^check: counter $1 pub=([0-9]+) sub=([0-9]+)\$/\\1 \\2/p" "$WORK/check.out" |
		awk -v side="$2" '{ print (side == "pub") ? $1 : $2 }'
}

expect_counter_positive() {
	local v
	v=$(counter "$1" "$2")
	[ "${v:-0}" -gt 0 ] || fail "$2: $1 = ${v:-0}, expected > 0 (was the fault injected?)"
}

# summary_of NAME KEY: from the checker's summary line.
check_field() {
	sed -nE "s/^check: published=.* $1=([0-9]+).*/\\1/p" "$WORK/check.out"
}
