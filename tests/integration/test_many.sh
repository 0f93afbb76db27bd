#!/usr/bin/env bash
# (c) 100 000 small messages as fast as the publisher can go: none lost,
# none duplicated, none corrupted (reliable is the default QoS).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
require_engine

N=100000
start_pub pub it/many --count "$N" --size 64 --wait-subs 1 --timeout-ms 60000
start_sub sub 'it/*' --verify --quiet --count "$N" --timeout-ms 90000
expect_exit pub 100 0
expect_exit sub 100 0
expect_engine pub sub
expect_secure pub sub
expect_field pub published "$N"
expect_clean_sub sub "$N"
pass "$N x 64 B: all $N delivered once, intact ($(field pub rate) msg/s published)"
