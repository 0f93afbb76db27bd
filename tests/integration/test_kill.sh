#!/usr/bin/env bash
# (e) A subscriber killed with SIGKILL in the middle of a stream does not
# disturb the other one (it still gets everything) nor the publisher (it
# finishes and flushes in time).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
require_engine

N=20000
RATE=5000   # about 4 s of traffic, so the kill lands mid-stream
start_pub pub it/kill --count "$N" --size 256 --rate "$RATE" --wait-subs 2 --timeout-ms 20000
start_sub keep it/kill --verify --quiet --count "$N" --timeout-ms 40000
# The victim prints one line per message so we know it is receiving.
start_sub victim it/kill --verify --count "$N" --timeout-ms 40000

wait_for victim out '^sub: topic=' 20
sleep 0.5
got=$(grep -c '^sub: topic=' "$WORK/victim.out" || true)
kill -9 "${PID_OF[victim]}"
rc=0
await victim 5 || rc=$?
[ "$rc" -eq 137 ] || fail "victim exited $rc, expected 137 (SIGKILL)"
if [ "$got" -le 0 ] || [ "$got" -ge "$N" ]; then
	fail "victim had $got messages when killed: not mid-stream"
fi
log "killed the victim subscriber after $got of $N messages"

expect_exit pub 40 0
expect_exit keep 40 0
expect_engine pub keep victim
expect_secure pub keep victim
expect_field pub published "$N"
expect_clean_sub keep "$N"
pass "victim killed at $got/$N; survivor got $N/$N verified; publisher finished (exit 0)"
