#!/usr/bin/env bash
# The one insecure smoke test: with --insecure on both sides messages
# still flow (1 pub -> 2 subs, verified), every process says loudly that
# it runs without security, and the stat ctx.insecure is 1. Everything
# else in this directory runs secure.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
require_engine

PUB_CREDS=(--insecure)
SUB_CREDS=(--insecure)
N=500
start_pub pub it/insecure --count "$N" --size 128 --wait-subs 2 --timeout-ms 20000 --stats
for s in sub1 sub2; do
	start_sub "$s" 'it/**' --verify --quiet --count "$N" --timeout-ms 30000 --stats
done
expect_exit pub 40 0
expect_exit sub1 40 0
expect_exit sub2 40 0
expect_engine pub sub1 sub2
expect_secure pub sub1 sub2
expect_field pub published "$N"
expect_clean_sub sub1 "$N"
expect_clean_sub sub2 "$N"
for n in pub sub1 sub2; do
	[ "$(stat_of "$n" ctx.insecure)" = 1 ] || fail "$n: ctx.insecure is not 1"
	grep -q 'INSECURE mode' "$WORK/$n.err" || fail "$n: libtsm did not log INSECURE mode"
done
log "ok: each process printed the --insecure warning, libtsm logged INSECURE mode, ctx.insecure = 1"
pass "insecure smoke: 1 pub -> 2 subs, $N/$N each, verified"
