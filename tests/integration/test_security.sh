#!/usr/bin/env bash
# Security between real processes (security.md "What the tests must show"):
# test_security.sh CASE runs one case; meson.build lists them all.
#
# A refusal case starts a publisher (listens, TLS server) and a subscriber
# (dials, TLS client) and checks, on the REFUSING side, the log line
# "refusing peer: REASON" and the counter reason.<reason> > 0 in its
# --stats; on the refused side the REJECT's reason ("rejected us:
# REASON"); and that no topic data crossed: the publisher never saw a
# subscriber (published=0, exit 1 on --wait-subs) and the subscriber
# received 0 and exited 1 on its --count/--timeout-ms. Where a case is about
# one ingredient (a CRL, a policy line), a control run shows that the same
# pair is accepted without it. One engine is enough here: the checks are
# above the transport. No timing assertion: every wait is bounded, and a
# refusal is looked for in the logs before any exit status is judged.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

CASE=${1:?usage: test_security.sh CASE (see meson.build)}
WAIT_MS=5000 # how long a refused peer keeps trying before it gives up

lower() { tr '[:upper:]' '[:lower:]' <<<"$1"; }

# refused TAG REFUSER REASON: PUB_CREDS vs SUB_CREDS must be refused by
# REFUSER (pub or sub) with REASON, and no data may cross.
refused() {
	local tag=$1 who=$2 reason=$3 pub=pub$1 sub=sub$1 other counter
	counter=reason.$(lower "$reason")
	other=$([ "$who" = pub ] && echo "$sub" || echo "$pub")
	start_pub "$pub" it/sec --count 5 --wait-subs 1 --timeout-ms "$WAIT_MS" --stats
	start_sub "$sub" 'it/**' --verify --count 1 --timeout-ms "$WAIT_MS" --stats
	wait_for "${who}$tag" err "refusing peer: $reason" 30
	expect_exit "$sub" 30 1
	expect_exit "$pub" 30 1
	expect_field "$sub" received 0
	expect_field "$pub" published 0
	expect_stat_positive "${who}$tag" "$counter"
	[ "$(stat_of "$pub" session.established)" = 0 ] ||
		fail "$pub: a session was established"
	if [ "$reason" != INSECURE_MISMATCH ]; then
		grep -q "rejected us: $reason" "$WORK/$other.err" ||
			fail "$other did not receive a REJECT with $reason"
	fi
	log "ok: $who refused with $reason ($counter = $(stat_of "${who}$tag" "$counter"));" \
		"no session, published=0, received=0, sub exit 1"
}

# accepted TAG [N]: PUB_CREDS vs SUB_CREDS exchange N verified messages.
accepted() {
	local tag=$1 n=${2:-20}
	start_pub "pub$tag" it/sec --count "$n" --wait-subs 1 --timeout-ms 20000 --stats
	start_sub "sub$tag" 'it/**' --verify --quiet --count "$n" --timeout-ms 30000 --stats
	expect_exit "pub$tag" 40 0
	expect_exit "sub$tag" 40 0
	expect_clean_sub "sub$tag" "$n"
	log "ok: control: the same pair is accepted and $n/$n messages arrive verified"
}

# as_sub LEAF [TRUST [POLICY]]: SUB_CREDS for LEAF, expecting a-pub.
as_sub() {
	creds "$@"
	SUB_CREDS=("${CREDS[@]}" --expect spiffe://td-a.test/pub)
}

as_pub() {
	creds "$@"
	PUB_CREDS=("${CREDS[@]}")
}

# ---- authentication: the dialer's certificate, judged by the publisher ----

case_unknown_ca() {
	as_sub b-pub "$TRUST_AB"
	refused 1 pub UNKNOWN_CA
	pass "a td-b.test certificate against a td-a.test-only trust bundle: UNKNOWN_CA on the publisher"
}

case_unknown_ca_dialer() {
	# The other direction: the listener's certificate, judged by the dialer.
	as_pub b-pub "$TRUST_AB"
	creds a-sub
	SUB_CREDS=("${CREDS[@]}")
	refused 1 sub UNKNOWN_CA
	pass "a td-b.test listener against a td-a.test-only dialer: UNKNOWN_CA on the subscriber"
}

case_forged_td() {
	# b-forged-a: signed by td-b.test's CA, claims spiffe://td-a.test/pub.
	# Both bundles are trusted, each for its own trust domain only.
	as_pub a-pub "$TRUST_AB"
	as_sub b-forged-a "$TRUST_AB"
	refused 1 pub UNKNOWN_CA
	grep -q "belongs to trust domain 'td-b.test', not 'td-a.test'" "$WORK/pub1.err" ||
		fail "pub1 did not name the trust domain mismatch"
	pass "td-b.test's CA vouching for a td-a.test identity: UNKNOWN_CA (per-trust-domain bundles)"
}

case_self_signed() {
	as_sub a-self-signed
	refused 1 pub UNKNOWN_CA
	pass "a self-signed SVID-shaped certificate: UNKNOWN_CA"
}

case_expired() {
	as_sub a-expired
	refused 1 pub CERT_EXPIRED
	pass "an expired certificate (2020-2021): CERT_EXPIRED on the publisher"
}

case_not_yet_valid() {
	as_sub a-notyet
	refused 1 pub CERT_NOT_YET_VALID
	pass "a certificate valid from 2090: CERT_NOT_YET_VALID on the publisher"
}

case_revoked() {
	as_sub a-revoked
	PUB_CREDS+=(--crl "$PKI/crl-a.pem")
	refused 1 pub CERT_REVOKED
	as_pub a-pub
	PUB_CREDS+=(--crl "$PKI/crl-a-empty.pem")
	accepted 2
	pass "a-revoked with the CRLs listing it: CERT_REVOKED; with CRLs that do not list it: accepted"
}

case_crl_stale() {
	PUB_CREDS+=(--crl "$PKI/crl-a-stale.pem")
	refused 1 pub CRL_UNAVAILABLE
	pass "a good peer, but the intermediate's CRL is past its nextUpdate: CRL_UNAVAILABLE (fail-closed)"
}

case_crl_soft_fail() {
	PUB_CREDS+=(--crl "$PKI/crl-a-stale.pem" --crl-soft-fail)
	accepted 1
	[ "$(stat_of pub1 reason.crl_unavailable)" = 0 ] ||
		fail "pub1 counted crl_unavailable although soft-fail let the peer in"
	# Soft-fail covers unknown revocation only: a listed certificate is
	# still refused.
	as_pub a-pub
	PUB_CREDS+=(--crl "$PKI/crl-a.pem" --crl-soft-fail)
	as_sub a-revoked
	refused 2 pub CERT_REVOKED
	pass "stale CRL with --crl-soft-fail: accepted; a revoked certificate with soft-fail: still CERT_REVOKED"
}

# ---- identity and authorisation ----

case_peer_id_mismatch() {
	# A man in the middle with a valid certificate of another identity
	# (a-sub2) listens where the subscriber expects spiffe://td-a.test/pub.
	as_pub a-sub2
	refused 1 sub PEER_ID_MISMATCH
	grep -q "expected 'spiffe://td-a.test/pub'" "$WORK/sub1.err" ||
		fail "sub1 did not name the identity it expected"
	pass "MITM with a valid a-sub2 certificate against --expect spiffe://td-a.test/pub: PEER_ID_MISMATCH on the dialer"
}

case_authz_identity() {
	# The policy knows spiffe://td-a.test/sub, not sub2.
	write_policy "$WORK/narrow.txt" \
		'allow publish   spiffe://td-a.test/pub **' \
		'allow subscribe spiffe://td-a.test/sub **'
	as_pub a-pub "$TRUST_A" "$WORK/narrow.txt"
	as_sub a-sub2 "$TRUST_A" "$WORK/narrow.txt"
	refused 1 pub AUTHZ_DENIED
	as_sub a-sub "$TRUST_A" "$WORK/narrow.txt"
	accepted 2
	pass "an identity the policy does not name: AUTHZ_DENIED at the handshake; the named one: accepted"
}

# The publisher's log counts established sessions at -v.
established() {
	grep -c 'established$' "$WORK/pub.err" || true
}

case_authz_topic() {
	# sub may subscribe to other/** only; sub2 to it/**. Two forbidden
	# subscribers connect first: bad1 asks for it/** (refused when it
	# subscribes), bad2 for ** (recorded, since other/** is in it, but the
	# topic it/sec is refused to it when routes are computed). Then the
	# allowed one connects; the publisher must send to it only.
	local n=50 t
	write_policy "$WORK/topics.txt" \
		'allow publish   spiffe://td-a.test/pub  **' \
		'allow subscribe spiffe://td-a.test/sub  other/**' \
		'allow subscribe spiffe://td-a.test/sub2 it/**'
	as_pub a-pub "$TRUST_A" "$WORK/topics.txt"
	as_sub a-sub "$TRUST_A" "$WORK/topics.txt"
	start_pub pub it/sec --count "$n" --wait-subs 1 --timeout-ms 30000 --stats -v
	start_sub bad1 'it/**' --verify --count 1 --timeout-ms 15000 --stats
	# The first AUTHZ_DENIED is always logged (later ones are rate-limited).
	wait_for pub err 'AUTHZ_DENIED: .*subscription refused by policy' 30
	start_sub bad2 '**' --verify --count 1 --timeout-ms 15000 --stats
	t=$((SECONDS + 30))
	until [ "$(established)" -ge 2 ]; do
		[ "$SECONDS" -lt "$t" ] || fail "the two forbidden subscribers did not get sessions"
		sleep 0.05
	done
	log "both forbidden subscribers have sessions; bad1's it/** was refused"
	as_sub a-sub2 "$TRUST_A" "$WORK/topics.txt"
	start_sub good 'it/**' --verify --quiet --count "$n" --timeout-ms 30000 --stats
	expect_exit pub 40 0
	if ! alive "${PID_OF[bad1]}" || ! alive "${PID_OF[bad2]}"; then
		fail "a forbidden subscriber ended before the publisher finished: inconclusive"
	fi
	expect_exit good 40 0
	expect_clean_sub good "$n"
	expect_exit bad1 40 1
	expect_exit bad2 40 1
	expect_field bad1 received 0
	expect_field bad2 received 0
	# One for bad1's subscription, at least one for it/sec refused to bad2.
	[ "$(stat_of pub reason.authz_denied)" -ge 2 ] ||
		fail "pub: reason.authz_denied = $(stat_of pub reason.authz_denied), expected >= 2"
	[ "$(stat_of pub tx.msgs)" = "$n" ] ||
		fail "pub sent $(stat_of pub tx.msgs) messages to sessions, expected $n (the allowed subscriber's)"
	log "ok: pub reason.authz_denied = $(stat_of pub reason.authz_denied), tx.msgs = $n (only to sub2)"
	pass "forbidden topic: the publisher sent nothing to the two subscribers allowed only other/** (0 received each); the allowed one got $n/$n"
}

case_insecure_mismatch() {
	SUB_CREDS=(--insecure)
	refused 1 pub INSECURE_MISMATCH
	grep -q 'refusing peer: INSECURE_MISMATCH' "$WORK/sub1.err" ||
		fail "the insecure subscriber did not refuse the secure publisher too"
	pass "a peer without a certificate (--insecure) against a secure one: INSECURE_MISMATCH, both sides refuse"
}

# ---- rotation: files re-read while sessions are live ----

# live_refusal REASON SWAP...: a stream flows from pub to sub; then SWAP
# (a command) replaces a file of the publisher atomically; the publisher
# must close the live session with REASON and admit no new one.
live_refusal() {
	local reason=$1 counter
	shift
	counter=reason.$(lower "$reason")
	start_pub pub it/sec --count 1000000 --rate 100 --wait-subs 1 --timeout-ms 20000 --stats
	start_sub sub 'it/**' --count 1000000 --timeout-ms 120000 --stats
	wait_for sub out '^sub: topic=' 30
	log "messages flow; now: $*"
	"$@"
	wait_for pub err "refusing peer: $reason \(credentials or policy changed\)" 30
	kill -TERM "${PID_OF[sub]}" "${PID_OF[pub]}"
	expect_exit sub 30 1
	expect_exit pub 30 1
	expect_stat_positive pub security.reloads
	expect_stat_positive pub "$counter"
	[ "$(stat_of pub session.established)" = 1 ] ||
		fail "pub: session.established = $(stat_of pub session.established): a new session was admitted after the change"
	[ "$(field sub received)" -gt 0 ] || fail "sub received nothing before the change"
	log "ok: live session closed with $reason after the reload ($counter = $(stat_of pub "$counter")," \
		"security.reloads = $(stat_of pub security.reloads)); no new session; sub had $(field sub received) messages"
}

# swap SRC DST: replace DST atomically, as docs/security.md tells operators.
swap() {
	cp "$1" "$2.new"
	mv "$2.new" "$2"
}

case_reload_policy() {
	cp "$POLICY" "$WORK/live.txt"
	write_policy "$WORK/without-sub.txt" 'allow publish spiffe://td-a.test/pub **'
	as_pub a-pub "$TRUST_A" "$WORK/live.txt"
	live_refusal AUTHZ_DENIED swap "$WORK/without-sub.txt" "$WORK/live.txt"
	pass "policy replaced under a live session: the subscriber's session closed (AUTHZ_DENIED), no new one admitted"
}

case_reload_crl() {
	cp "$PKI/crl-a-empty.pem" "$WORK/crl.pem"
	as_sub a-revoked
	PUB_CREDS+=(--crl "$WORK/crl.pem")
	live_refusal CERT_REVOKED swap "$PKI/crl-a.pem" "$WORK/crl.pem"
	pass "a CRL revoking the live peer replaced the old one: session closed (CERT_REVOKED), no new one admitted"
}

# ---- SVID leaf rules: our own certificate ----

case_svid_malformed() {
	local leaf
	for leaf in a-wrong-eku a-ca-leaf a-bad-spiffe a-two-uris a-no-uri; do
		creds "$leaf"
		start "pub-$leaf" "$TSM_BIN" pub "tcp://127.0.0.1:$(free_port)" it/x \
			"${CREDS[@]}" --count 1
		expect_exit "pub-$leaf" 20 2
		grep -q 'SPIFFE_MALFORMED' "$WORK/pub-$leaf.err" ||
			fail "pub-$leaf: stderr does not name SPIFFE_MALFORMED"
		if grep -q 'listening on' "$WORK/pub-$leaf.err"; then
			fail "pub-$leaf listened although its certificate is not an SVID"
		fi
		log "ok: $leaf: exit 2, SPIFFE_MALFORMED: $(grep -o 'X.509-SVID[^:]*: [^;]*' "$WORK/pub-$leaf.err" | head -n 1)"
	done
	creds a-two-uris
	start sub-two-uris "$TSM_BIN" sub "tcp://127.0.0.1:$(free_port)" 'it/**' \
		"${CREDS[@]}" --count 1 --timeout-ms 100
	expect_exit sub-two-uris 20 2
	grep -q 'SPIFFE_MALFORMED' "$WORK/sub-two-uris.err" || fail "sub did not name SPIFFE_MALFORMED"
	pass "wrong EKU, CA leaf, uppercase trust domain, two URIs, no URI: tsm refuses to start (exit 2, SPIFFE_MALFORMED)"
}

# ---- pre-authentication: garbage and budgets ----

# garbage HOST PORT: connects once per payload, sends it and waits (bounded)
# for the listener to close; prints one line per payload.
garbage() {
	python3 - "$1" "$2" <<'PY'
import os, socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
def hdr(magic=0x4D54, ver=1, typ=1, body_len=0):
    return struct.pack('<HBBBBH', magic, ver, typ, 0, 0, 0) + bytes(28) + struct.pack('<I', body_len)
payloads = {
    'random 64 KiB': os.urandom(65536),
    'zeros': bytes(4096),
    'http': b'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
    'raw TLS ClientHello start': bytes.fromhex('160301020001') + os.urandom(300),
    'lying length 4 GiB': hdr(body_len=0xFFFFFFFF) + os.urandom(1024),
    'wrong version': hdr(ver=9, body_len=32) + bytes(32),
    'unknown type': hdr(typ=42, body_len=32) + bytes(32),
    'HS before PREFACE': hdr(typ=3, body_len=64) + os.urandom(64),
    'truncated header': hdr()[:20],
}
for name, data in payloads.items():
    s = socket.create_connection((host, port), timeout=5)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = 0
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += len(b)
        print(f'garbage: {name}: listener closed the connection (it sent {got} bytes)')
    except socket.timeout:
        print(f'garbage: {name}: still open after 5 s')
    except OSError as e:
        print(f'garbage: {name}: {e.strerror or e}')
    finally:
        s.close()
PY
}

case_garbage() {
	local port out
	start_pub pub it/sec --count 20 --wait-subs 1 --timeout-ms 30000 --stats
	port=${URL##*:}
	out=$(garbage 127.0.0.1 "$port") || fail "the garbage sender failed: $out"
	printf '%s\n' "$out" | while IFS= read -r line; do log "$line"; done
	alive "${PID_OF[pub]}" || fail "the publisher died on garbage"
	start_sub sub 'it/**' --verify --quiet --count 20 --timeout-ms 30000 --stats
	expect_exit pub 40 0
	expect_exit sub 40 0
	expect_clean_sub sub 20
	log "ok: after the garbage: pub session.protocol_error = $(stat_of pub session.protocol_error)," \
		"err.protocol = $(stat_of pub err.protocol), session.rejected = $(stat_of pub session.rejected)"
	pass "9 kinds of garbage on the listener; it stayed up and then served a good peer 20/20"
}

# hold HOST PORT N READY RELEASE: N idle connections from HOST until the
# file RELEASE exists (at most 60 s); writes READY once they are opened.
hold() {
	exec python3 - "$@" <<'PY'
import os, socket, sys, time
src, port, n, ready, release = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
socks = []
for _ in range(n):
    s = socket.socket()
    s.bind((src, 0))
    s.connect(('127.0.0.1', port))
    socks.append(s)
open(ready, 'w').close()
end = time.time() + 60
while not os.path.exists(release) and time.time() < end:
    time.sleep(0.05)
PY
}

case_preauth_limit() {
	# 8 silent connections from 127.0.0.2 (the default budget is 4 pending
	# handshakes per source): the extra ones are refused at accept. A good
	# peer from 127.0.0.1 is served meanwhile.
	local port
	start_pub pub it/sec --count 20 --wait-subs 1 --timeout-ms 30000 --stats
	port=${URL##*:}
	hold 127.0.0.2 "$port" 8 "$WORK/held" "$WORK/release" &
	PID_OF[hold]=$!
	NAMES+=(hold)
	wait_for pub err 'PREAUTH_LIMIT' 30
	log "the publisher refused silent connections beyond the per-source budget"
	start_sub sub 'it/**' --verify --quiet --count 20 --timeout-ms 30000 --stats
	expect_exit pub 40 0
	expect_exit sub 40 0
	: >"$WORK/release"
	expect_clean_sub sub 20
	expect_stat_positive pub reason.preauth_limit
	log "ok: pub reason.preauth_limit = $(stat_of pub reason.preauth_limit)," \
		"reason.handshake_timeout = $(stat_of pub reason.handshake_timeout)"
	pass "8 idle connections from one source: the ones over budget refused (PREAUTH_LIMIT); a peer from another source got 20/20"
}

fn=case_${CASE//-/_}
declare -F "$fn" >/dev/null || fail "unknown case '$CASE'"
log "case $CASE (engine: $(if [ -n "${TSM_NO_URING:-}" ]; then echo epoll; else echo default; fi))"
"$fn"
