#!/usr/bin/env bash
# (b) Priorities 0..7 interleaved (--priority mixed): every lane arrives
# complete and, within each lane, in publication order. Lanes may overtake
# each other (strict priority), which is why order is checked per lane.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
require_engine

PER_LANE=1000
N=$((PER_LANE * 8))
start_pub pub it/lanes --count "$N" --size 512 --priority mixed --wait-subs 2 --timeout-ms 20000
for s in sub1 sub2; do
	start_sub "$s" it/lanes --verify --quiet --count "$N" --timeout-ms 40000
done
expect_exit pub 50 0
expect_exit sub1 50 0
expect_exit sub2 50 0
expect_engine pub sub1 sub2
expect_secure pub sub1 sub2
want_lanes=$(seq 0 7 | sed "s/\$/:$PER_LANE/" | paste -sd,)
for s in sub1 sub2; do
	expect_clean_sub "$s" "$N"
	expect_field "$s" lanes "$want_lanes"
done
pass "8 lanes x $PER_LANE messages to 2 subs: lanes=$want_lanes, per-lane order kept, priority carried"
