#!/usr/bin/env bash
# (a) One publisher, two subscribers as separate processes: both receive
# every message, intact, once, in order per lane.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
require_engine

N=2000
start_pub pub it/fanout --count "$N" --size 256 --wait-subs 2 --timeout-ms 20000
for s in sub1 sub2; do
	start_sub "$s" 'it/**' --verify --quiet --count "$N" --timeout-ms 30000
done
expect_exit pub 40 0
expect_exit sub1 40 0
expect_exit sub2 40 0
expect_engine pub sub1 sub2
expect_secure pub sub1 sub2
expect_field pub published "$N"
expect_clean_sub sub1 "$N"
expect_clean_sub sub2 "$N"
pass "1 pub -> 2 subs over $URL: each got $N/$N, checksums ok, no dup, no gap, lane order kept"
