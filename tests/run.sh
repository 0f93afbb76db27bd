#!/usr/bin/env bash
#
# tests/run.sh - run every test: the README's test command and the only
# thing .ci/run calls.
#
# On a fresh Debian 12 machine it installs what is missing, configures
# build/ with -Dwerror=true, builds, runs all meson suites (unit,
# integration, ...) and then the Python binding tests if there are any.
# Every phase has a time limit so that nothing can hang CI. The last line
# is always "N passed, N failed, N skipped" for the meson tests; the exit
# status is non-zero if anything failed, timed out or did not build.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build
# shellcheck source=support/results.sh
. tests/support/results.sh
PKGS=(build-essential pkg-config meson ninja-build libfabric-dev liburing-dev
      libmsgpack-dev libssl-dev check python3 python3-pytest iproute2
      clang-14 libclang-rt-14-dev)
STATUS=0
PASSED=0 FAILED=0 SKIPPED=0

say() { printf 'run.sh: %s\n' "$*"; }

# Always end with the summary line, whatever happened before.
finish() {
	local rc=$?
	trap - EXIT
	[ "$rc" -eq 0 ] || STATUS=1
	if [ "$STATUS" -ne 0 ] && [ "$PASSED$FAILED" = 00 ]; then
		FAILED=1 # nothing ran: count the broken phase as one failure
	fi
	printf '%d passed, %d failed, %d skipped\n' "$PASSED" "$FAILED" "$SKIPPED"
	exit "$STATUS"
}
trap finish EXIT

missing_packages() {
	local p
	for p in "${PKGS[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q '^install ok installed$' || printf '%s\n' "$p"
	done
}

# apt-get runs only when something is missing, and only once.
install_packages() {
	local missing sudo=()
	if ! command -v dpkg-query >/dev/null; then
		say "not a Debian system: install these yourself if the build fails: ${PKGS[*]}"
		return 0
	fi
	mapfile -t missing < <(missing_packages)
	[ "${#missing[@]}" -gt 0 ] || return 0
	say "installing missing packages: ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || {
			say "need root to install them: run as root, or: apt-get install -y ${missing[*]}"
			return 2
		}
		sudo=(sudo)
	fi
	timeout 900 "${sudo[@]}" apt-get update
	DEBIAN_FRONTEND=noninteractive timeout 1800 "${sudo[@]}" \
		apt-get install -y --no-install-recommends "${missing[@]}"
}

# Reconfigure an existing build/ so -Dwerror=true always applies; a build/
# that is not a meson build directory is replaced.
configure() {
	local opts=(-Dwerror=true -Dtests=enabled)
	if [ -f "$BUILD/meson-private/coredata.dat" ]; then
		timeout 300 meson setup --reconfigure "$BUILD" "${opts[@]}"
	else
		[ ! -e "$BUILD" ] || say "$BUILD/ is not a meson build directory: recreating it"
		rm -rf "$BUILD"
		timeout 300 meson setup "$BUILD" "${opts[@]}"
	fi
}

run_meson_tests() {
	local rc=0
	rm -f "$BUILD/meson-logs/testlog.json"
	timeout -k 30 3000 meson test -C "$BUILD" --print-errorlogs || rc=$?
	read -r PASSED FAILED SKIPPED < <(meson_counts "$BUILD/meson-logs/testlog.json") || true
	PASSED=${PASSED:-0} FAILED=${FAILED:-0} SKIPPED=${SKIPPED:-0}
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		say "meson test ran past its 3000 s limit and was stopped"
		FAILED=$((FAILED + 1))
	fi
	[ "$rc" -eq 0 ] || { say "meson test failed (exit $rc)"; STATUS=1; }
}

run_python_tests() {
	local dir=bindings/python/tests py rc=0 has_tests
	[ -d "$dir" ] || { say "no $dir: no Python tests to run"; return 0; }
	has_tests=$(find "$dir" -name 'test_*.py' -o -name '*_test.py' | head -n 1)
	py=$(find_pytest_python) || { say "pytest not found (python3-pytest)"; STATUS=1; return 0; }
	# The bindings load the library just built, not an installed one.
	LD_LIBRARY_PATH="$PWD/$BUILD/libtsm${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
	PYTHONPATH="$PWD/bindings/python${PYTHONPATH:+:$PYTHONPATH}" \
	TSM_LIBRARY="$PWD/$BUILD/libtsm/libtsm.so" TSM_BIN="$PWD/$BUILD/examples/tsm" \
		timeout -k 30 900 "$py" -m pytest -q "$dir" 2>&1 | tee "$BUILD/pytest.log" ||
		rc=${PIPESTATUS[0]}
	count_pytest "$BUILD/pytest.log"
	if [ "$rc" -eq 5 ] && [ -z "$has_tests" ]; then
		say "python: $dir has no test files (pytest exit 5): nothing to run"
	elif [ "$rc" -ne 0 ]; then
		say "python tests FAILED (pytest exit $rc)"
		STATUS=1
	fi
}

# count_plain LOG: adds a script's closing "N passed, N failed" line.
count_plain() {
	local line p f
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1) || return 0
	p=${line%% passed*}
	f=${line#*passed, }
	f=${f%% failed*}
	PASSED=$((PASSED + p))
	FAILED=$((FAILED + f))
}

# Robustness (issue 9): libFuzzer smoke of every parser (20 s budget per
# target, under 2 minutes in all) and the whole meson suite under ASan,
# UBSan and LSan. TSM_QUICK_TESTS=1 skips both (a quick local run).
run_robustness() {
	local rc=0
	[ "${TSM_QUICK_TESTS:-0}" = 1 ] && { say "TSM_QUICK_TESTS=1: no fuzz or sanitizer runs"; return 0; }
	say "fuzz smoke: tests/fuzz/run.sh"
	FUZZ_TOTAL_BUDGET=${FUZZ_TOTAL_BUDGET:-110} timeout -k 30 600 \
		bash tests/fuzz/run.sh 20 2>&1 | tee "$BUILD/fuzz.log" || rc=1
	count_plain "$BUILD/fuzz.log"
	[ "$rc" -eq 0 ] || { say "fuzz FAILED"; STATUS=1; }
	rc=0
	say "sanitizers: tests/sanitize/run.sh (ASan + UBSan + LSan)"
	SAN_NO_PYTHON=1 timeout -k 30 1500 bash tests/sanitize/run.sh 2>&1 |
		tee "$BUILD/sanitize.log" || rc=1
	local before=$FAILED
	count_plain "$BUILD/sanitize.log"
	[ "$rc" -eq 0 ] || { say "sanitizer run FAILED"; STATUS=1
		[ "$FAILED" -gt "$before" ] || FAILED=$((FAILED + 1)); }
}

main() {
	install_packages
	configure
	timeout 1800 ninja -C "$BUILD"
	run_meson_tests
	run_python_tests
	run_robustness
}

main
