#!/usr/bin/env bash
# The example programs and the inference pipeline, run for real against a
# development PKI made by `tsm pki init`: each must do what it says.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
bin=$(dirname "$TSM_BIN")
lib=$(cd "$bin/../libtsm" && pwd)
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$tmp"/*.log; do echo "--- $f"; cat "$f"; done; exit 1; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$TSM_BIN" pki init "$tmp/pki" >/dev/null
pki=$tmp/pki

"$bin/reqrep" "$pki" >"$tmp/reqrep.log" 2>&1 || fail "reqrep"
grep -q 'reqrep: 5 of 5 answered correctly' "$tmp/reqrep.log" || fail "reqrep output"
echo "ok: request/reply answered 5 of 5"

"$bin/deadline" "$pki" >"$tmp/deadline.log" 2>&1 || fail "deadline"
grep -qE 'deadline: delivered=[1-9][0-9]* dropped=[1-9][0-9]* late=0' "$tmp/deadline.log" ||
	fail "deadline output"
echo "ok: deadline demo delivered some, dropped the expired ones, none late"

url=tcp://127.0.0.1:$(port)
"$bin/hello_pub" "$pki" "$url" 3 >"$tmp/hello_pub.log" 2>&1 &
pids+=($!)
"$bin/hello_sub" "$pki" "$url" 3 >"$tmp/hello_sub.log" 2>&1 || fail "hello_sub"
[ "$(grep -c '^hello/world: hello ' "$tmp/hello_sub.log")" -eq 3 ] || fail "hello_sub output"
echo "ok: hello publisher -> subscriber, 3 messages, peer identity checked"

# The pipeline: C producer -> Python stage -> C consumer, 4 seconds.
p1=tcp://127.0.0.1:$(port)
p2=tcp://127.0.0.1:$(port)
"$bin/producer" "$pki" "$p1" 4 >"$tmp/producer.log" 2>&1 &
pids+=($!)
LD_LIBRARY_PATH=$lib TSM_LIBRARY=$lib/libtsm.so PYTHONPATH=$src/bindings/python \
	python3 "$src/examples/pipeline/stage.py" "$pki" "$p1" "$p2" 6 >"$tmp/stage.log" 2>&1 &
pids+=($!)
"$bin/consumer" "$pki" "$p1" "$p2" 6 >"$tmp/consumer.log" 2>&1 || fail "consumer"
wait "${pids[1]}" || fail "producer"
wait "${pids[2]}" || fail "stage"
grep -qE '^producer: frames=[1-9]' "$tmp/producer.log" || fail "producer output"
grep -qE '^stage: inferred=[1-9]' "$tmp/stage.log" || fail "stage output"
grep -qE '^consumer: final results=[1-9][0-9]* .* control=[1-9]' "$tmp/consumer.log" ||
	fail "consumer output"
echo "ok: pipeline: $(cat "$tmp/producer.log") | $(cat "$tmp/stage.log") | $(tail -n 1 "$tmp/consumer.log")"

# tsm stat: per-topic, per-lane statistics of what arrives.
url=tcp://127.0.0.1:$(port)
"$TSM_BIN" pub "$url" demo/x --pki "$pki" --name pub --count 200 --rate 400 \
	--priority mixed --deadline-us 500000 --wait-subs 1 >"$tmp/statpub.log" 2>&1 &
pids+=($!)
"$TSM_BIN" stat "$url" 'demo/**' --pki "$pki" --name sub --seconds 3 \
	--interval-ms 1000 >"$tmp/stat.log" 2>"$tmp/stat.err" || fail "tsm stat"
grep -q '^topic .*lat_p99' "$tmp/stat.log" || fail "tsm stat header"
total=$(awk '$1 == "demo/x" { last[$2] = $3 } END { s = 0; for (l in last) s += last[l]; print s }' \
	"$tmp/stat.log")
[ "$total" -eq 200 ] || fail "tsm stat counted $total of 200 deliveries"
echo "ok: tsm stat showed all 200 deliveries across 8 lanes with latency percentiles"
