#!/usr/bin/env bash
# (d) One 16 MiB message (the default size limit, inclusive) arrives whole
# and intact: fragmentation and reassembly keep every byte.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
require_engine

SIZE=$((16 * 1024 * 1024))
start_pub pub it/large --count 1 --size "$SIZE" --wait-subs 1 --timeout-ms 30000
start_sub sub it/large --verify --quiet --count 1 --timeout-ms 40000
expect_exit pub 50 0
expect_exit sub 50 0
expect_engine pub sub
expect_secure pub sub
expect_field pub published 1
expect_clean_sub sub 1
expect_field sub bytes "$SIZE"
pass "one $SIZE-byte message delivered with every byte checked (FNV-1a)"
