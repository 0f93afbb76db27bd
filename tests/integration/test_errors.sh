#!/usr/bin/env bash
# Configuration errors exit 2 with a message naming the error and saying
# what to do; a subscriber that gets nothing exits 1. These are the paths a
# user meets first, so their wording is part of the contract.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
require_engine

URL="tcp://127.0.0.1:$(free_port)"

# run_tsm NAME WANT_RC CMD...: run tsm in the foreground with a deadline.
run_tsm() {
	local name=$1 want=$2
	shift 2
	start "$name" "$TSM_BIN" "$@"
	expect_exit "$name" 20 "$want"
}

expect_err() {
	grep -q -- "$2" "$WORK/$1.err" ||
		fail "$1: stderr lacks '$2': $(cat "$WORK/$1.err")"
}

run_tsm nocred_pub 2 pub "$URL" it/x --count 1
expect_err nocred_pub NO_CREDENTIALS
expect_err nocred_pub --insecure
run_tsm nocred_sub 2 sub "$URL" 'it/**' --count 1 --timeout-ms 100
expect_err nocred_sub NO_CREDENTIALS
log "ok: without --insecure, pub and sub exit 2 naming NO_CREDENTIALS and --insecure"

run_tsm badtopic 2 pub "$URL" 'it//x' --insecure --count 1
expect_err badtopic BAD_TOPIC
expect_engine badtopic
run_tsm wildtopic 2 pub "$URL" 'it/*' --insecure --count 1
expect_err wildtopic BAD_TOPIC
run_tsm badpattern 2 sub "$URL" 'it/**/x' --insecure --count 1 --timeout-ms 100
expect_err badpattern BAD_PATTERN
log "ok: bad topics exit 2 with BAD_TOPIC, a bad pattern with BAD_PATTERN"

run_tsm badurl 2 sub 'tcp://127.0.0.1:notaport' 'it/**' --insecure --timeout-ms 100
expect_err badurl BAD_URL
run_tsm noargs 2 pub
run_tsm badprio 2 pub "$URL" it/x --insecure --priority 8
run_tsm smallsize 2 pub "$URL" it/x --insecure --size 8
run_tsm badcmd 2 frobnicate
run_tsm help 0 --help
run_tsm pubhelp 0 pub --help
run_tsm subhelp 0 sub --help
grep -q -- '--wait-subs' "$WORK/pubhelp.out" || fail "pub --help lacks --wait-subs"
grep -q -- '--verify' "$WORK/subhelp.out" || fail "sub --help lacks --verify"
log "ok: bad URL (BAD_URL), usage errors exit 2; --help exits 0"

# Nobody publishes: the subscriber must time out and fail, not hang.
run_tsm lonely 1 sub "$URL" 'it/**' --insecure --verify --count 1 --timeout-ms 300
expect_field lonely received 0
expect_engine lonely
pass "usage and config errors exit 2 with their names; a starved sub exits 1"
