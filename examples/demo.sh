#!/usr/bin/env bash
#
# examples/demo.sh - the README's first command, secure throughout (mutual
# TLS 1.3 with SPIFFE identities, a policy, every frame sealed with
# AES-256-GCM), over TCP on loopback with the io_uring engine:
#   part 1: the streaming inference pipeline of examples/pipeline (a C
#           producer, a Python stage, a C consumer with a live status
#           line): expired frames are dropped, not inferred late, and
#           urgent control messages stay fast next to the bulk frames;
#           DEMO_PIPELINE_SECS sets its length (0 skips it);
#   part 2: one publisher and two subscribers, every message checked.
#
# On a fresh Debian 12 machine (as root) it installs the packages it
# needs (only those missing), configures build/ if needed and builds the
# tsm tool. It makes a throw-away development PKI with `tsm pki init`
# (removed at exit), gives each process its own identity, and has the
# subscribers insist on the publisher's. Then every message is checked by
# both subscribers (checksum, duplicates, order per priority lane) and the
# last line says what was published, delivered and lost. Exit status: 0
# only if nothing was lost, every check passed and every process ran
# secure. DEMO_COUNT sets the number of messages, DEMO_BUILD the build
# directory (default build/).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${DEMO_BUILD:-build}
TSM=$BUILD/examples/tsm
COUNT=${DEMO_COUNT:-24}
PKGS=(build-essential pkg-config meson ninja-build libfabric-dev liburing-dev
      libmsgpack-dev libssl-dev check python3 python3-pytest iproute2)

say() { printf 'demo: %s\n' "$*"; }

install_packages() {
	local p missing=()
	command -v dpkg-query >/dev/null || return 0
	for p in "${PKGS[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q '^install ok installed$' || missing+=("$p")
	done
	[ "${#missing[@]}" -gt 0 ] || return 0
	if [ "$(id -u)" -ne 0 ]; then
		say "missing packages: ${missing[*]}"
		say "run this script as root, or first: sudo apt-get install -y ${missing[*]}"
		exit 2
	fi
	say "installing ${missing[*]}"
	timeout 900 apt-get update
	DEBIAN_FRONTEND=noninteractive timeout 1800 apt-get install -y "${missing[@]}"
}

build() {
	if [ ! -f "$BUILD/build.ninja" ]; then
		timeout 300 meson setup "$BUILD"
	fi
	# Only what the demo runs: the library, the tool, the pipeline.
	timeout 1200 ninja -C "$BUILD" examples/tsm examples/producer examples/consumer
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tsm-demo.XXXXXX")
PKI=$TMP/pki
TD=demo.local
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT

# run_bg TAG CMD...: CMD in the background, its output shown live with a
# tag and kept in $TMP/TAG.log; `timeout` bounds every process.
run_bg() {
	local tag=$1
	shift
	timeout -k 5 60 "$@" > >(tee "$TMP/$tag.log" | sed -u "s/^/  [$tag] /") 2>&1 &
	PIDS+=($!)
}

# num TAG KEY: KEY's value in TAG's summary line ("sub: received=..."),
# or -1 when the process printed no summary (it crashed or hung).
num() {
	local v
	v=$(grep -E '^(pub|sub): (published|received)=' "$TMP/$1.log" | tail -n 1 |
		sed -nE "s/.*[ :]$2=([0-9]+).*/\\1/p") || true
	printf '%s\n' "${v:--1}"
}

# make_pki: a development PKI for the three identities, in $TMP/pki.
make_pki() {
	local names=pub,sub-a,sub-b,producer,stage,consumer
	say "making a development PKI: $TSM pki init $PKI --trust-domain $TD --names $names"
	"$TSM" pki init "$PKI" --trust-domain "$TD" --names "$names" >"$TMP/pki.log" ||
		{ cat "$TMP/pki.log"; say "FAILED: tsm pki init"; exit 1; }
	sed -n 's/^  \(.*\)/  [pki] \1/p' "$TMP/pki.log" | grep -v 'tsm \(pub\|sub\)'
}

# secure_count: how many of the three processes said they ran with mutual TLS.
secure_count() {
	grep -l 'security: mutual TLS 1.3' "$TMP/pub.log" "$TMP/sub-a.log" "$TMP/sub-b.log" |
		wc -l
}

# pipeline: the inference pipeline of examples/pipeline, as three
# processes: a C producer (256 KiB frames, priority 5, 50 ms deadline, and
# priority-0 control messages), a Python stage that is too slow every
# tenth frame, and a C consumer printing a live status line.
pipeline() {
	local secs=${DEMO_PIPELINE_SECS:-8} p1 p2 lib rc=0
	[ "$secs" -gt 0 ] || return 0
	p1="tcp://127.0.0.1:$(free_port)"
	p2="tcp://127.0.0.1:$(free_port)"
	lib=$PWD/$BUILD/libtsm
	say "part 1: inference pipeline for ${secs}s: producer ($p1) -> Python stage ($p2) -> consumer"
	say "  the stage is slow every 10th frame: frames that would be late expire in its"
	say "  queue and are dropped (counted), never inferred late; control messages"
	say "  (priority 0) share the producer's session with the 256 KiB frames"
	"$BUILD/examples/producer" "$PKI" "$p1" "$secs" >"$TMP/producer.log" 2>&1 &
	PIDS+=($!)
	LD_LIBRARY_PATH=$lib TSM_LIBRARY=$lib/libtsm.so PYTHONPATH=$PWD/bindings/python \
		python3 examples/pipeline/stage.py "$PKI" "$p1" "$p2" "$((secs + 2))" \
		>"$TMP/stage.log" 2>&1 &
	PIDS+=($!)
	"$BUILD/examples/consumer" "$PKI" "$p1" "$p2" "$((secs + 2))" | sed 's/^/  /' || rc=1
	wait "${PIDS[-1]}" || rc=1
	wait "${PIDS[-2]}" || rc=1
	sed 's/^/  /' "$TMP/producer.log" "$TMP/stage.log"
	PIDS=()
	[ "$rc" -eq 0 ] || { say "FAILED: the pipeline (see above)"; exit 1; }
	say "part 2: one publisher -> two subscribers, every message checked"
}

main() {
	local url rc_pub=0 rc_a=0 rc_b=0 published a b lost bad k status security
	local expect=spiffe://$TD/pub
	install_packages
	build
	make_pki
	pipeline
	url="tcp://127.0.0.1:$(free_port)"
	say "security: mutual TLS 1.3, SPIFFE IDs spiffe://$TD/{pub,sub-a,sub-b}," \
		"policy $PKI/policy.txt, AES-256-GCM sealed frames"
	say "publisher listens on $url; two subscribers dial it and accept only $expect;" \
		"$COUNT messages, priorities 0..7"
	run_bg pub "$TSM" pub "$url" demo/tokens --pki "$PKI" --name pub --count "$COUNT" \
		--size 128 --priority mixed --rate 50 --wait-subs 2 --timeout-ms 20000
	run_bg sub-a "$TSM" sub "$url" 'demo/**' --pki "$PKI" --name sub-a --expect "$expect" \
		--verify --count "$COUNT" --timeout-ms 40000
	run_bg sub-b "$TSM" sub "$url" 'demo/*' --pki "$PKI" --name sub-b --expect "$expect" \
		--verify --count "$COUNT" --timeout-ms 40000
	wait "${PIDS[0]}" || rc_pub=$?
	wait "${PIDS[1]}" || rc_a=$?
	wait "${PIDS[2]}" || rc_b=$?
	sleep 0.2 # let the output filters drain

	published=$(num pub published)
	a=$(num sub-a received)
	b=$(num sub-b received)
	# A process without a summary line delivered nothing we can vouch for.
	[ "$published" -ge 0 ] || published=0
	[ "$a" -ge 0 ] || a=0
	[ "$b" -ge 0 ] || b=0
	lost=$((2 * published - a - b))
	bad=0
	for k in dup corrupt order_errors; do
		[ "$(num sub-a "$k")" -eq 0 ] || bad=$((bad + 1))
		[ "$(num sub-b "$k")" -eq 0 ] || bad=$((bad + 1))
	done
	say "engine=$(sed -n 's/.*transport engine: //p' "$TMP/pub.log" | head -n 1)" \
		"exit codes: pub=$rc_pub sub-a=$rc_a sub-b=$rc_b"
	status=0
	security=mTLS+AES-256-GCM
	if [ "$(secure_count)" -ne 3 ]; then
		security=NOT-CONFIRMED
		status=1
		say "FAILED: not every process reported mutual TLS"
	fi
	if [ "$lost" -ne 0 ] || [ "$bad" -ne 0 ] || [ "$published" -ne "$COUNT" ] ||
	   [ $((rc_pub + rc_a + rc_b)) -ne 0 ]; then
		say "FAILED: a process failed, a message was lost or a check failed (see above)"
		status=1
	fi
	say "published=$published delivered=$((a + b)) lost=$lost" \
		"failed_checks=$bad security=$security"
	return "$status"
}

main
