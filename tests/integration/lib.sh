# shellcheck shell=bash
#
# tests/integration/lib.sh - helpers for the integration tests, which run
# the real `tsm` tool as separate processes over TCP on loopback.
#
# Every child is recorded and killed (by pid) when the test exits, every
# wait has a deadline, and on failure the children's logs are printed so
# that `meson test --print-errorlogs` shows what happened. Environment:
#   TSM_BIN            path of the tsm binary (set by meson.build)
#   TSM_EXPECT_ENGINE  io_uring or epoll: the engine tsm must report
#                      ("any" for tests that do not care)
#   TSM_NO_URING=1     set by meson for the epoll variant of every test
#   KEEP_WORK=1        keep $WORK (logs, PKI) after the test, for debugging
# Exit 77 means "skipped" to meson.
#
# Security: tests run secure. Sourcing this file makes the test PKI of
# tests/support/pki.sh in $WORK/pki (under a second) and a policy letting
# td-a.test publish and subscribe to everything; start_pub and start_sub
# pass PUB_CREDS / SUB_CREDS (a-pub, and a-sub expecting a-pub's
# identity). A test may set those arrays to other credentials, or to
# (--insecure).

set -euo pipefail

: "${TSM_BIN:?TSM_BIN must name the tsm binary (meson sets it)}"
TEST_NAME=$(basename "$0" .sh)
ENGINE=${TSM_EXPECT_ENGINE:-io_uring}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tsm-it-${TEST_NAME}.XXXXXX")
SUPPORT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../support" && pwd)
declare -A PID_OF=()
NAMES=()
# The tests choose their credentials; the user's defaults must not leak in.
unset TSM_PKI_DIR TSM_NAME

log() { printf '%s[%s]: %s\n' "$TEST_NAME" "$ENGINE" "$*"; }

# Dumps every child's output; called on failure only.
dump_logs() {
	local n
	for n in "${NAMES[@]}"; do
		for f in "$WORK/$n.out" "$WORK/$n.err"; do
			[ -s "$f" ] || continue
			printf -- '---- %s (last 40 lines) ----\n' "${f##*/}" >&2
			tail -n 40 "$f" >&2
		done
	done
}

cleanup() {
	local rc=$? n
	trap - EXIT
	for n in "${NAMES[@]}"; do
		kill -9 "${PID_OF[$n]}" 2>/dev/null || true
	done
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
		log "FAILED (exit $rc); logs follow"
		dump_logs
	fi
	[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
	log "FAIL: $*" >&2
	exit 1
}

# The io_uring variant must see io_uring unless the kernel or a seccomp
# filter refuses it; then it is skipped (not passed), and says why.
uring_usable() {
	python3 - <<'PY'
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)  # struct io_uring_params
fd = libc.syscall(425, 1, params)          # io_uring_setup, all arches
sys.exit(0 if fd >= 0 else 1)
PY
}

require_engine() {
	if [ "$ENGINE" = io_uring ] && [ -z "${TSM_NO_URING:-}" ] && ! uring_usable; then
		log "SKIP: io_uring_setup is refused on this machine (kernel or seccomp);"
		log "      the epoll variant of this test still runs"
		exit 77
	fi
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start NAME CMD...: run CMD in the background, output in $WORK/NAME.{out,err}.
start() {
	local name=$1
	shift
	"$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
	PID_OF[$name]=$!
	NAMES+=("$name")
}

# A zombie still answers kill -0, so look at the process state instead.
alive() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

# await NAME SECS: wait for NAME's exit status; past SECS kill it, return 124.
await() {
	local name=$1 secs=$2 pid=${PID_OF[$1]} rc=0
	local deadline=$((SECONDS + secs))
	while alive "$pid"; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			log "TIMEOUT: $name still running after ${secs}s; killing it" >&2
			kill -9 "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
			return 124
		fi
		sleep 0.05
	done
	wait "$pid" || rc=$?
	return "$rc"
}

# expect_exit NAME SECS WANT: await NAME and check its exit status.
expect_exit() {
	local rc=0
	await "$1" "$2" || rc=$?
	[ "$rc" -eq "$3" ] || fail "$1 exited $rc, expected $3"
}

# wait_for NAME STREAM REGEX SECS: until NAME's out/err matches REGEX.
wait_for() {
	local f="$WORK/$1.$2" deadline=$((SECONDS + $4))
	until grep -Eq -- "$3" "$f" 2>/dev/null; do
		[ "$SECONDS" -lt "$deadline" ] || fail "$1 did not print /$3/ within $4s"
		alive "${PID_OF[$1]}" || grep -Eq -- "$3" "$f" ||
			fail "$1 exited before printing /$3/"
		sleep 0.05
	done
}

# start_pub NAME TOPIC ARGS...: a publisher listening on a free port; sets
# URL. A port taken between picking and binding is retried, not failed.
start_pub() {
	local name=$1 topic=$2 try rc
	shift 2
	for try in 1 2 3 4 5; do
		URL="tcp://127.0.0.1:$(free_port)"
		start "$name" "$TSM_BIN" pub "$URL" "$topic" "${PUB_CREDS[@]}" "$@"
		if wait_listening "$name"; then
			return 0
		fi
		rc=0
		await "$name" 5 || rc=$?
		grep -q ADDR_IN_USE "$WORK/$name.err" ||
			fail "$name failed to start (exit $rc)"
		log "port of $URL was taken meanwhile (try $try); picking another"
	done
	fail "no free port after 5 tries"
}

wait_listening() {
	local f="$WORK/$1.err" deadline=$((SECONDS + 10))
	while ! grep -q 'listening on' "$f" 2>/dev/null; do
		alive "${PID_OF[$1]}" || return 1
		[ "$SECONDS" -lt "$deadline" ] || fail "$1 not listening after 10s"
		sleep 0.05
	done
}

start_sub() {
	local name=$1 pattern=$2
	shift 2
	start "$name" "$TSM_BIN" sub "$URL" "$pattern" "${SUB_CREDS[@]}" "$@"
}

# summary NAME: the summary line ("pub: published=..." / "sub: received=...").
summary() {
	grep -E '^(pub: published|sub: received)=' "$WORK/$1.out" | tail -n 1 ||
		fail "$1 printed no summary line"
}

# field NAME KEY: KEY's value in NAME's summary line.
field() {
	local line
	line=$(summary "$1")
	sed -nE "s/.*[ :]$2=([^ ]*).*/\\1/p" <<<"$line"
}

expect_field() {
	local got
	got=$(field "$1" "$2")
	[ "$got" = "$3" ] || fail "$1: $2=$got, expected $3 (summary: $(summary "$1"))"
}

# expect_clean_sub NAME N: N messages arrived, every check passed.
expect_clean_sub() {
	local k
	expect_field "$1" received "$2"
	for k in dup corrupt order_errors gaps prio_mismatch; do
		expect_field "$1" "$k" 0
	done
	expect_field "$1" verify on
}

# expect_engine NAME...: each child must report the engine under test, so
# a silent fallback (or a missing report) fails the test.
expect_engine() {
	local n
	for n in "$@"; do
		grep -q "transport engine: $ENGINE\$" "$WORK/$n.err" ||
			fail "$n did not report 'transport engine: $ENGINE' (got: $(grep -h 'transport engine' "$WORK/$n.err" || echo nothing))"
	done
}

# expect_secure NAME...: each child ran with mutual TLS (and said so), or,
# when the test chose --insecure, printed the warning.
expect_secure() {
	local n want='security: mutual TLS 1.3'
	[ "${PUB_CREDS[0]}" != --insecure ] || want='WARNING: --insecure'
	for n in "$@"; do
		grep -q -- "$want" "$WORK/$n.err" ||
			fail "$n did not print '$want'"
	done
}

# stat_of NAME COUNTER: the value of COUNTER in NAME's --stats output.
stat_of() {
	local v
	v=$(sed -nE "s/^tsm [a-z]+: stat $2 = ([0-9]+)\$/\1/p" "$WORK/$1.err" | tail -n 1)
	[ -n "$v" ] || fail "$1 printed no 'stat $2' (was --stats given?)"
	printf '%s\n' "$v"
}

# expect_stat_positive NAME COUNTER: COUNTER > 0 in NAME's --stats output.
expect_stat_positive() {
	local v
	v=$(stat_of "$1" "$2")
	[ "$v" -gt 0 ] || fail "$1: $2 = $v, expected > 0"
}

# write_policy FILE RULE...: one rule a line.
write_policy() {
	local f=$1
	shift
	printf '%s\n' "# written by $TEST_NAME" "$@" >"$f"
}

# creds LEAF [TRUST [POLICY]]: CREDS=(flags for a peer holding the test
# PKI's leaf LEAF); the trust default is td-a.test's bundle.
creds() {
	CREDS=(--cert "$PKI/$1.chain.pem" --key "$PKI/$1.key"
	       --trust "${2:-$TRUST_A}" --policy "${3:-$POLICY}")
}

pki_setup() {
	PKI=$("$SUPPORT/pki.sh" "$WORK/pki") || fail "tests/support/pki.sh failed"
	TRUST_A="td-a.test=$PKI/bundle-a.pem"
	# shellcheck disable=SC2034 # for the tests that source this file
	TRUST_AB="td-a.test=$PKI/bundle-a.pem,td-b.test=$PKI/bundle-b.pem"
	POLICY=$WORK/policy.txt
	write_policy "$POLICY" 'allow publish spiffe://td-a.test/** **' \
		'allow subscribe spiffe://td-a.test/** **'
	creds a-pub
	PUB_CREDS=("${CREDS[@]}")
	creds a-sub
	SUB_CREDS=("${CREDS[@]}" --expect spiffe://td-a.test/pub)
}

pass() {
	if [ "${PUB_CREDS[0]}" = --insecure ]; then
		log "PASS: $* [INSECURE: no TLS]"
	else
		log "PASS: $* [mutual TLS 1.3, SPIFFE IDs, sealed frames]"
	fi
}

pki_setup
