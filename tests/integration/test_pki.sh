#!/usr/bin/env bash
# `tsm pki init|issue` and the --pki/--name shorthand: the files it makes
# (names, modes, X.509-SVID extensions checked with the openssl CLI), that
# it refuses to overwrite a PKI, that pub and sub run secure with --pki and
# with TSM_PKI_DIR, that `issue` adds a working identity, and that two
# development PKIs do not trust each other even with the same trust domain.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

D=$WORK/dev
T=$TSM_BIN

run_tsm() {
	local name=$1 want=$2
	shift 2
	start "$name" "$@"
	expect_exit "$name" 60 "$want"
}

expect_in() {
	grep -q -- "$3" "$WORK/$1.$2" || fail "$1: $2 lacks '$3': $(cat "$WORK/$1.$2")"
}

# ext FILE NAME: the text of one extension of the first certificate.
ext() {
	openssl x509 -in "$1" -noout -ext "$2" 2>/dev/null
}

check_files() {
	local f mode
	for f in ca.crt ca.key int.crt int.key trust.pem policy.txt \
		pub.crt pub.key sub.crt sub.key stage.crt stage.key \
		consumer.crt consumer.key producer.crt producer.key; do
		[ -s "$D/$f" ] || fail "tsm pki init did not make $f"
	done
	for f in ca.key int.key pub.key sub.key; do
		mode=$(stat -c %a "$D/$f")
		[ "$mode" = 600 ] || fail "$f has mode $mode, expected 600"
	done
	grep -qx '# trust-domain: dev.local' "$D/trust.pem" || fail "trust.pem has no trust-domain label"
	grep -q '^allow publish  *spiffe://dev.local/\*\* \*\*$' "$D/policy.txt" || fail "policy.txt: no publish rule"
	grep -q '^allow subscribe  *spiffe://dev.local/\*\* \*\*$' "$D/policy.txt" || fail "policy.txt: no subscribe rule"
	[ "$(grep -c 'BEGIN CERTIFICATE' "$D/pub.crt")" = 2 ] || fail "pub.crt is not leaf + intermediate"
	log "ok: files made; keys 0600; trust.pem labelled; policy allows dev.local; pub.crt = leaf + intermediate"
}

check_svid() {
	local out
	out=$(ext "$D/pub.crt" subjectAltName)
	[ "$(grep -o 'URI:' <<<"$out" | wc -l)" = 1 ] || fail "pub.crt: not exactly one URI SAN: $out"
	grep -q 'URI:spiffe://dev.local/pub$' <<<"$out" || fail "pub.crt: SAN is $out"
	out=$(ext "$D/pub.crt" basicConstraints)
	grep -q 'critical' <<<"$out" || fail "pub.crt: basicConstraints not critical: $out"
	grep -q 'CA:FALSE' <<<"$out" || fail "pub.crt: basicConstraints $out"
	out=$(ext "$D/pub.crt" keyUsage)
	grep -q 'critical' <<<"$out" || fail "pub.crt: keyUsage not critical: $out"
	grep -q 'Digital Signature$' <<<"$out" || fail "pub.crt: keyUsage $out"
	out=$(ext "$D/pub.crt" extendedKeyUsage)
	grep -q 'TLS Web Client Authentication, TLS Web Server Authentication' <<<"$out" ||
		fail "pub.crt: EKU $out"
	openssl pkey -in "$D/pub.key" -noout -text | grep -q 'prime256v1\|P-256' || fail "pub.key is not EC P-256"
	out=$(ext "$D/int.crt" basicConstraints)
	grep -q 'CA:TRUE, pathlen:0' <<<"$out" || fail "int.crt: basicConstraints $out"
	ext "$D/int.crt" subjectAltName | grep -q 'URI:spiffe://dev.local$' || fail "int.crt: no URI SAN spiffe://dev.local"
	ext "$D/ca.crt" subjectAltName | grep -q 'URI:spiffe://dev.local$' || fail "ca.crt: no URI SAN spiffe://dev.local"
	openssl verify -CAfile "$D/ca.crt" -untrusted "$D/int.crt" "$D/pub.crt" >/dev/null ||
		fail "pub.crt does not verify against ca.crt through int.crt"
	log "ok: pub.crt is an X.509-SVID (one URI SAN spiffe://dev.local/pub, CA:FALSE critical," \
		"digitalSignature critical, EKU client+server, P-256) and verifies; int is CA pathlen 0"
}

# Make, check, refuse to overwrite, replace with --force.
run_tsm init 0 "$T" pki init "$D"
expect_in init out 'tsm sub tcp://'
expect_in init out "--pki $D --name pub"
check_files
check_svid
root=$(sha256sum <"$D/ca.crt")
run_tsm again 2 "$T" pki init "$D"
expect_in again err 'refusing to overwrite'
[ "$(sha256sum <"$D/ca.crt")" = "$root" ] || fail "a refused init changed ca.crt"
run_tsm badtd 2 "$T" pki init "$WORK/x" --trust-domain Upper.Case
run_tsm badname 2 "$T" pki init "$WORK/x" --names pub,ca
[ ! -e "$WORK/x/ca.key" ] || fail "a refused init left files behind"
log "ok: a second init refuses (exit 2) and changes nothing; a bad trust domain or name exits 2"

# Secure pub -> sub with the shorthand; the sub takes its PKI from
# TSM_PKI_DIR and its name from the command (sub).
PORT=$(free_port)
URL="tcp://127.0.0.1:$PORT"
start pub "$T" pub "$URL" it/pki --pki "$D" --name pub --count 20 --wait-subs 1 --timeout-ms 20000
TSM_PKI_DIR=$D start sub "$T" sub "$URL" 'it/**' --expect spiffe://dev.local/pub \
	--verify --quiet --count 20 --timeout-ms 30000
expect_exit pub 40 0
expect_exit sub 40 0
expect_clean_sub sub 20
expect_in sub err 'identity spiffe://dev.local/sub'
expect_in sub err 'from TSM_PKI_DIR'
log "ok: --pki/--name and TSM_PKI_DIR (name defaulting to 'sub'): 20/20 verified over mutual TLS"

# issue: a new identity, refused twice without --force.
run_tsm issue 0 "$T" pki issue "$D" worker
ext "$D/worker.crt" subjectAltName | grep -q 'URI:spiffe://dev.local/worker$' || fail "worker.crt: bad SAN"
run_tsm issue2 2 "$T" pki issue "$D" worker
PORT=$(free_port)
URL="tcp://127.0.0.1:$PORT"
start pub2 "$T" pub "$URL" it/pki --pki "$D" --name pub --count 5 --wait-subs 1 --timeout-ms 20000
start sub2 "$T" sub "$URL" 'it/**' --pki "$D" --name worker --verify --quiet --count 5 --timeout-ms 30000
expect_exit pub2 40 0
expect_exit sub2 40 0
expect_clean_sub sub2 5
log "ok: 'tsm pki issue DIR worker' made spiffe://dev.local/worker, which works at once; re-issue needs --force"

# Another development PKI with the same trust domain is another root.
run_tsm init_other 0 "$T" pki init "$WORK/other" --names sub
PORT=$(free_port)
URL="tcp://127.0.0.1:$PORT"
start pub3 "$T" pub "$URL" it/pki --pki "$D" --name pub --count 5 --wait-subs 1 --timeout-ms 5000
start sub3 "$T" sub "$URL" 'it/**' --pki "$WORK/other" --name sub --count 1 --timeout-ms 5000 --stats
# The dialer judges the listener's certificate first (TLS 1.3 order).
wait_for sub3 err 'refusing peer: UNKNOWN_CA' 30
expect_exit pub3 30 1
expect_exit sub3 30 1
expect_field sub3 received 0
expect_field pub3 published 0
expect_stat_positive sub3 reason.unknown_ca
log "ok: two 'tsm pki init' PKIs with the same trust domain do not trust each other: UNKNOWN_CA"
pass "tsm pki init/issue make working X.509-SVIDs; --pki/--name and TSM_PKI_DIR run secure"
