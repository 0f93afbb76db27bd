#!/usr/bin/env bash
#
# tests/fuzz/run.sh - build the libFuzzer targets (build.sh) and run each
# for a while on a fresh copy of its seed corpus, then prove on the
# planted-bug target that a crash is caught and reported.
#
# Usage: tests/fuzz/run.sh [SECONDS-PER-TARGET]   (default 20)
#
# Targets run side by side, one per CPU. The whole script aims to finish
# within FUZZ_TOTAL_BUDGET seconds (default 180, build included): if the
# requested time per target does not fit, it is reduced and the time used
# is printed. FUZZ_TOTAL_BUDGET=0 turns the limit off for long campaigns.
# Each run uses -max_total_time, -rss_limit_mb=2048 and -timeout=5; its
# log, grown corpus and crash inputs stay in build-fuzz/work/<target>/.
# FUZZ_SEED (default 1) fixes libFuzzer's random seed so that the short
# runs of the test suite explore the same inputs every time and a failure
# reproduces; FUZZ_SEED=0 asks for a fresh random seed (long campaigns).
#
# Output: one line per target (PASS/FAIL, executions, coverage; for a
# failure the reason and the saved crash input), then "N passed, N failed".
# fuzz_planted passes when it FAILS as expected. Exit status: 0 all passed,
# 1 a target failed or did not build, 2 clang-14 or its runtime is missing.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${FUZZ_OUT:-$ROOT/build-fuzz}
TARGETS=(fuzz_frame fuzz_meta fuzz_topic fuzz_spiffe fuzz_policy fuzz_fsm
         fuzz_reasm fuzz_advert)
PLANTED=fuzz_planted
PLANTED_SECS=30 # it is found in about a second; this is only a ceiling
START=$SECONDS
PASSED=0 FAILED=0

say() { printf 'fuzz: %s\n' "$*"; }

finish() {
	printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
	[ "$FAILED" -eq 0 ]
	exit $?
}

# The seconds per target asked for, or exit 2 for a bad argument.
check_secs() {
	case "$1" in
	'' | *[!0-9]*) say "usage: $0 [SECONDS-PER-TARGET]" >&2; exit 2 ;;
	esac
	[ "$1" -ge 1 ] || { say "SECONDS-PER-TARGET must be at least 1" >&2; exit 2; }
}

# The time per target that fits the budget, given what the build took.
fit_secs() {
	local want=$1 jobs=$2 budget=${FUZZ_TOTAL_BUDGET:-180} rounds left per
	rounds=$(((${#TARGETS[@]} + jobs - 1) / jobs))
	[ "$budget" -gt 0 ] || { printf '%s\n' "$want"; return; }
	left=$((budget - (SECONDS - START) - 15)) # 15: planted run and slack
	per=$((left / rounds))
	[ "$per" -ge 5 ] || per=5
	[ "$per" -lt "$want" ] || per=$want
	printf '%s\n' "$per"
}

# Runs target $1 for $2 seconds in build-fuzz/work/$1; writes rc there.
run_one() {
	local t=$1 secs=$2 w="$OUT/work/$1" rc=0
	rm -rf "$w"
	mkdir -p "$w/corpus" "$w/artifacts"
	cp "$HERE/corpus/$t/"* "$w/corpus/"
	(cd "$w" && timeout -k 10 $((secs + 120)) "$OUT/$t" \
		-max_total_time="$secs" -rss_limit_mb=2048 -timeout=5 \
		-seed="${FUZZ_SEED:-1}" \
		-print_final_stats=1 -artifact_prefix="$w/artifacts/" \
		"$w/corpus" >"$w/log" 2>&1) || rc=$?
	printf '%s\n' "$rc" >"$w/rc"
}

# The first line of the log that says what went wrong.
why() {
	grep -m1 -E 'FUZZ_CHECK|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|out-of-memory' \
		"$1" | sed -E 's/^==[0-9]+==//; s/^ +//' | cut -c1-240
}

crash_input() {
	grep -m1 -o 'Test unit written to .*' "$1" | sed 's/^Test unit written to //'
}

stats() {
	local log=$1 runs cov
	runs=$(grep -m1 -oE 'stat::number_of_executed_units: [0-9]+' "$log" |
		grep -oE '[0-9]+$')
	cov=$(grep -E '#[0-9]+.*cov: ' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+' |
		grep -oE '[0-9]+')
	printf '%s runs, cov %s' "${runs:-?}" "${cov:-?}"
}

report() {
	local t=$1 secs=$2 w="$OUT/work/$1" rc
	rc=$(cat "$w/rc" 2>/dev/null || echo 99)
	if [ "$rc" -eq 0 ]; then
		printf 'PASS %-13s %3s s  %s\n' "$t" "$secs" "$(stats "$w/log")"
		PASSED=$((PASSED + 1))
		return
	fi
	printf 'FAIL %-13s %3s s  exit %s: %s\n' "$t" "$secs" "$rc" "$(why "$w/log")"
	printf '     crash input: %s\n     log: %s\n' "$(crash_input "$w/log")" "$w/log"
	FAILED=$((FAILED + 1))
}

# The planted overread must be found, saved, and crash again on replay.
planted() {
	local w="$OUT/work/$PLANTED" t0=$SECONDS input kind
	run_one "$PLANTED" "$PLANTED_SECS"
	input=$(crash_input "$w/log")
	kind=$(grep -m1 -oE 'AddressSanitizer: [a-z-]+' "$w/log")
	if [ "$(cat "$w/rc")" -ne 0 ] && [ -n "$input" ] && [ -f "$input" ] &&
		[ "$kind" = "AddressSanitizer: heap-buffer-overflow" ] &&
		! "$OUT/$PLANTED" "$input" >"$w/replay.log" 2>&1; then
		printf 'PASS %-13s %3s s  expected failure caught: %s, input %s\n' \
			"$PLANTED" "$((SECONDS - t0))" "$kind" "$input"
		PASSED=$((PASSED + 1))
		return
	fi
	printf 'FAIL %-13s %3s s  the planted bug was NOT reported (exit %s, %s): the harness is broken\n' \
		"$PLANTED" "$((SECONDS - t0))" "$(cat "$w/rc")" "${kind:-no ASan report}"
	printf '     log: %s\n' "$w/log"
	FAILED=$((FAILED + 1))
}

# One run per output directory at a time: a second would rebuild the
# targets and wipe the work directories under the first.
lock_out() {
	local lock
	command -v flock >/dev/null || return 0
	lock="${TMPDIR:-/tmp}/tsm-fuzz-$(printf '%s' "$OUT" | cksum | cut -d' ' -f1).lock"
	exec 9>"$lock"
	flock -n 9 && return 0
	say "another run is using $OUT: waiting for it (up to 1 h)"
	flock -w 3600 9 || { say "gave up waiting for $OUT"; exit 1; }
}

main() {
	local want=${1:-20} secs jobs rc=0 t running=0
	check_secs "$want"
	lock_out
	"$HERE/build.sh" || rc=$?
	if [ "$rc" -eq 2 ]; then
		say "cannot fuzz without clang-14 and libclang-rt-14-dev"
		exit 2
	fi
	if [ "$rc" -ne 0 ]; then
		say "build failed"
		FAILED=1
		finish
	fi
	jobs=$(nproc 2>/dev/null || echo 1)
	[ "$jobs" -le "${#TARGETS[@]}" ] || jobs=${#TARGETS[@]}
	secs=$(fit_secs "$want" "$jobs")
	if [ "$secs" -lt "$want" ]; then
		say "$want s per target does not fit ${FUZZ_TOTAL_BUDGET:-180} s in all: using $secs s"
	fi
	say "${#TARGETS[@]} targets, $secs s each, $jobs at a time; then $PLANTED"
	for t in "${TARGETS[@]}"; do
		if [ "$running" -ge "$jobs" ]; then
			wait -n
			running=$((running - 1))
		fi
		run_one "$t" "$secs" &
		running=$((running + 1))
	done
	wait
	for t in "${TARGETS[@]}"; do
		report "$t" "$secs"
	done
	planted
	say "total $((SECONDS - START)) s"
	finish
}

main "$@"
