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

# No credentials, no --insecure and no TSM_PKI_DIR (lib.sh unsets it).
run_tsm nocred_pub 2 pub "$URL" it/x --count 1
expect_err nocred_pub NO_CREDENTIALS
expect_err nocred_pub --insecure
expect_err nocred_pub 'tsm pki init DIR'
expect_err nocred_pub '--pki DIR --name pub'
run_tsm nocred_sub 2 sub "$URL" 'it/**' --count 1 --timeout-ms 100
expect_err nocred_sub NO_CREDENTIALS
expect_err nocred_sub '--pki DIR --name sub'
log "ok: without credentials, pub and sub exit 2 naming NO_CREDENTIALS, 'tsm pki init DIR', --pki/--name and --insecure"

# Half the credentials: libtsm names what is missing.
run_tsm halfcred 2 pub "$URL" it/x --cert "$PKI/a-pub.chain.pem" --count 1
expect_err halfcred NO_CREDENTIALS
expect_err halfcred key_file
run_tsm mixed 2 pub "$URL" it/x --insecure "${PUB_CREDS[@]}" --count 1
expect_err mixed 'cannot be combined'
run_tsm nopkicert 2 pub "$URL" it/x --pki "$WORK/nowhere" --name pub --count 1
expect_err nopkicert 'tsm pki issue'
run_tsm expectlisten 2 pub "$URL" it/x "${PUB_CREDS[@]}" --expect spiffe://td-a.test/sub
expect_err expectlisten 'dials none'
run_tsm badexpect 2 sub "$URL" 'it/**' "${PUB_CREDS[@]}" --expect 'spiffe://TD/x' --timeout-ms 100
expect_err badexpect BAD_URL
run_tsm badpolicy 2 pub "$URL" it/x "${PUB_CREDS[@]}" --policy /dev/null --count 1
expect_err badpolicy 'no rules'
log "ok: half the credentials, --insecure with credentials, a --pki without the"
log "    named certificate, --expect on a listener, a bad --expect pattern and an"
log "    empty policy all exit 2 and say why"

run_tsm badtopic 2 pub "$URL" 'it//x' "${PUB_CREDS[@]}" --count 1
expect_err badtopic BAD_TOPIC
expect_engine badtopic
expect_secure badtopic
run_tsm wildtopic 2 pub "$URL" 'it/*' "${PUB_CREDS[@]}" --count 1
expect_err wildtopic BAD_TOPIC
run_tsm badpattern 2 sub "$URL" 'it/**/x' "${SUB_CREDS[@]}" --count 1 --timeout-ms 100
expect_err badpattern BAD_PATTERN
log "ok: bad topics exit 2 with BAD_TOPIC, a bad pattern with BAD_PATTERN"

run_tsm badurl 2 sub 'tcp://127.0.0.1:notaport' 'it/**' "${SUB_CREDS[@]}" --timeout-ms 100
expect_err badurl BAD_URL
run_tsm noargs 2 pub
run_tsm badprio 2 pub "$URL" it/x "${PUB_CREDS[@]}" --priority 8
run_tsm smallsize 2 pub "$URL" it/x "${PUB_CREDS[@]}" --size 8
run_tsm badcmd 2 frobnicate
run_tsm help 0 --help
run_tsm pubhelp 0 pub --help
run_tsm subhelp 0 sub --help
grep -q -- '--wait-subs' "$WORK/pubhelp.out" || fail "pub --help lacks --wait-subs"
grep -q -- '--verify' "$WORK/subhelp.out" || fail "sub --help lacks --verify"
grep -q -- '--pki DIR' "$WORK/subhelp.out" || fail "sub --help lacks --pki"
grep -q -- '--expect' "$WORK/pubhelp.out" || fail "pub --help lacks --expect"
log "ok: bad URL (BAD_URL), usage errors exit 2; --help exits 0"

# Nobody publishes: the subscriber must time out and fail, not hang.
run_tsm lonely 1 sub "$URL" 'it/**' "${SUB_CREDS[@]}" --verify --count 1 --timeout-ms 300
expect_field lonely received 0
expect_engine lonely
pass "usage and config errors exit 2 with their names; a starved sub exits 1"
