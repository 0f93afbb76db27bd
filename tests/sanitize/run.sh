#!/usr/bin/env bash
#
# tests/sanitize/run.sh - the whole test suite under AddressSanitizer,
# UndefinedBehaviorSanitizer and LeakSanitizer.
#
# Configures build-asan/ (ignored by git, like every /build*/) with
# -Db_sanitize=address,undefined -Db_lundef=false, builds it, runs every
# meson test (unit and integration) with leak detection on and every report
# fatal, then the Python binding tests with the sanitizer runtime preloaded
# into the interpreter (leak detection off there: CPython itself does not
# free everything at exit). Reports go to build-asan/sanitizer-logs/ rather
# than to stderr, so that one from a child process whose exit status a test
# ignores is still seen; each distinct report is listed at the end with the
# first libtsm frame (file:line) and counts as a failure. Leaks inside
# third-party libraries that libtsm cannot free are suppressed, each with
# its reason, in tests/sanitize/lsan.supp (never a libtsm frame there).
#
# Usage: tests/sanitize/run.sh
# Every program is linked against the shared sanitizer runtime (clang:
# -shared-libasan), so that the runtime can also be preloaded into Python:
# for the tests that start python3 themselves, build-asan/sanitize-bin/
# python3 (first in PATH) does that.
#
# Environment: SAN_CC (default clang-14; gcc works too, but GCC's UBSan
# ignores log_path, so its reports are then taken from the test logs),
# SAN_BUILD (default build-asan), SAN_NO_PYTHON=1 to skip the Python tests,
# SAN_KEEP_GOING=1 to let UBSan report and go on (to list every finding
# at once; ASan always stops at its first).
# Last line: "N passed, N failed" (tests plus distinct sanitizer reports).
# Exit status: 0 clean, 1 a test failed, a report was written or the build
# failed, 2 the compiler or its sanitizer runtime is missing.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
# shellcheck source=../support/results.sh
. tests/support/results.sh

BUILD=${SAN_BUILD:-build-asan}
LOGS=$PWD/$BUILD/sanitizer-logs
START=$SECONDS
PASSED=0 FAILED=0 SKIPPED=0 REPORTS=0 STATUS=0
CC_NAME='' RT_PRELOAD='' LINK_ARGS=''

say() { printf 'sanitize: %s\n' "$*"; }

finish() {
	trap - EXIT
	[ "$REPORTS" -eq 0 ] || STATUS=1
	say "tests: $PASSED passed, $((FAILED)) failed, $SKIPPED skipped;" \
		"distinct sanitizer reports: $REPORTS; $((SECONDS - START)) s"
	printf '%d passed, %d failed\n' "$PASSED" "$((FAILED + REPORTS))"
	exit "$STATUS"
}

# ---- toolchain ----------------------------------------------------------------

pick_cc() {
	local cc
	for cc in "${SAN_CC:-}" clang-14 clang gcc; do
		[ -n "$cc" ] && command -v "$cc" >/dev/null && { printf '%s\n' "$cc"; return 0; }
	done
	return 1
}

# A runtime for the Python interpreter, and link flags that make every
# executable use that same shared runtime.
runtime_setup() {
	local dir
	if "$CC_NAME" --version 2>/dev/null | grep -q clang; then
		RT_PRELOAD=$("$CC_NAME" -print-file-name=libclang_rt.asan-x86_64.so)
		dir=$(dirname "$RT_PRELOAD")
		LINK_ARGS="-shared-libasan -Wl,-rpath,$dir"
	else
		RT_PRELOAD="$("$CC_NAME" -print-file-name=libasan.so) $("$CC_NAME" -print-file-name=libubsan.so)"
	fi
}

# Compiles and runs a small program that must be reported, as proof that
# the runtime exists and that reports reach the log directory.
probe() {
	local dir rc=0
	dir=$(mktemp -d)
	printf '%s\n' '#include <stdlib.h>' \
		'int main(int argc, char **argv) { (void)argv; char *p = malloc(4);' \
		'  p[argc + 3] = 1; free(p); return 0; }' >"$dir/p.c"
	# shellcheck disable=SC2086 # LINK_ARGS is a list of flags
	if ! "$CC_NAME" -g -fsanitize=address,undefined $LINK_ARGS "$dir/p.c" \
		-o "$dir/p" >"$dir/log" 2>&1; then
		say "$CC_NAME cannot build with -fsanitize=address,undefined:"
		sed 's/^/    /' "$dir/log"
		say "install the sanitizer runtime (gcc: libasan8 libubsan1; clang-14: libclang-rt-14-dev)"
		rm -rf "$dir"
		exit 2
	fi
	ASAN_OPTIONS=log_path="$dir/report" "$dir/p" >/dev/null 2>&1 && rc=1
	if [ "$rc" -ne 0 ] || ! grep -qs heap-buffer-overflow "$dir"/report.*; then
		say "the $CC_NAME sanitizer runtime does not report a planted overflow"
		rm -rf "$dir"
		exit 2
	fi
	rm -rf "$dir"
}

# ---- build --------------------------------------------------------------------

configure() {
	local opts=("-Db_sanitize=address,undefined" -Db_lundef=false
	            -Dtests=enabled -Dexamples=enabled -Dbench=disabled
	            "-Dc_args=-fno-omit-frame-pointer")
	[ -z "$LINK_ARGS" ] || opts+=("-Dc_link_args=$LINK_ARGS")
	# A build dir made with another compiler cannot be reconfigured.
	if [ -f "$BUILD/meson-private/coredata.dat" ] &&
		[ "$(cat "$BUILD/.sanitize-cc" 2>/dev/null)" = "$CC_NAME" ]; then
		timeout 300 meson setup --reconfigure "$BUILD" "${opts[@]}" >"$BUILD.setup.log" 2>&1
	else
		rm -rf "$BUILD"
		CC=$CC_NAME timeout 300 meson setup "$BUILD" "${opts[@]}" >"$BUILD.setup.log" 2>&1
	fi || { cat "$BUILD.setup.log"; rm -f "$BUILD.setup.log"; return 1; }
	mv "$BUILD.setup.log" "$BUILD/sanitize-setup.log"
	printf '%s\n' "$CC_NAME" >"$BUILD/.sanitize-cc"
}

build() {
	say "building $BUILD/ with $CC_NAME ($("$CC_NAME" --version | head -n 1))"
	configure || { say "meson setup failed"; return 1; }
	timeout 1800 ninja -C "$BUILD" >"$BUILD/sanitize-build.log" 2>&1 || {
		tail -n 40 "$BUILD/sanitize-build.log"
		say "build failed (full log: $BUILD/sanitize-build.log)"
		return 1
	}
}

# ---- tests --------------------------------------------------------------------

# python3 for test scripts: the sanitizer runtime must come first in a
# process that loads libtsm.so, and CPython's own leaks are not ours.
python_wrapper() {
	local real dir="$PWD/$BUILD/sanitize-bin"
	real=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || return 0
	mkdir -p "$dir"
	cat >"$dir/python3" <<EOF
#!/bin/sh
# Written by tests/sanitize/run.sh: $real with the sanitizer runtime.
LD_PRELOAD="$RT_PRELOAD\${LD_PRELOAD:+ \$LD_PRELOAD}" \\
ASAN_OPTIONS="\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}detect_leaks=0" exec "$real" "\$@"
EOF
	chmod +x "$dir/python3"
	PATH="$dir:$PATH"
}

san_env() {
	local strip="strip_path_prefix=$PWD/"
	export ASAN_OPTIONS="detect_leaks=${1:-1}:abort_on_error=1:log_path=$LOGS/asan:$strip"
	local halt=1
	[ -z "${SAN_KEEP_GOING:-}" ] || halt=0
	export UBSAN_OPTIONS="halt_on_error=$halt:print_stacktrace=1:abort_on_error=1:log_path=$LOGS/ubsan:$strip"
	local supp="$PWD/tests/sanitize/lsan.supp" # third-party leaks only
	export LSAN_OPTIONS="$strip:print_suppressions=0"
	[ ! -f "$supp" ] || LSAN_OPTIONS="$LSAN_OPTIONS:suppressions=$supp"
}

run_meson_tests() {
	local rc=0 p f s
	rm -f "$BUILD/meson-logs/testlog.json"
	say "meson tests (unit + integration), timeouts x4"
	(san_env 1; timeout -k 30 3600 meson test -C "$BUILD" --print-errorlogs \
		--timeout-multiplier 4) >"$BUILD/sanitize-meson.log" 2>&1 || rc=$?
	awk '/^Summary of Failures/ { exit } /^ *[0-9]+\/[0-9]+ / && !/ (OK|SKIP) /' \
		"$BUILD/sanitize-meson.log"
	meson_counts "$BUILD/meson-logs/testlog.json" 60 >"$BUILD/sanitize-counts.txt"
	tail -n +2 "$BUILD/sanitize-counts.txt" # why each failed test failed
	read -r p f s < "$BUILD/sanitize-counts.txt" || true
	PASSED=$((PASSED + ${p:-0})) FAILED=$((FAILED + ${f:-0})) SKIPPED=$((SKIPPED + ${s:-0}))
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		say "meson test ran past its limit and was stopped"
		FAILED=$((FAILED + 1))
	fi
	say "meson: ${p:-0} passed, ${f:-0} failed, ${s:-0} skipped (log: $BUILD/sanitize-meson.log)"
	[ "$rc" -eq 0 ] || STATUS=1
}

# Python under the sanitizer runtime: only if loading libtsm that way works.
run_python_tests() {
	local dir=bindings/python/tests py rc=0 lib="$PWD/$BUILD/libtsm/libtsm.so"
	if [ -n "${SAN_NO_PYTHON:-}" ] || [ ! -d "$dir" ]; then
		local why="SAN_NO_PYTHON is set"
		[ -d "$dir" ] || why="no $dir"
		say "Python tests skipped ($why)"
		return 0
	fi
	py=$(find_pytest_python) || { say "Python tests skipped: no python3 with pytest"; return 0; }
	if ! (san_env 0; LD_PRELOAD="$RT_PRELOAD" "$py" -c \
		"import ctypes, sys; ctypes.CDLL(sys.argv[1])" "$lib") >"$BUILD/sanitize-py-probe.log" 2>&1; then
		say "Python tests SKIPPED: $py cannot load the sanitized libtsm with LD_PRELOAD=$RT_PRELOAD:"
		sed 's/^/    /' "$BUILD/sanitize-py-probe.log" | head -n 5
		return 0
	fi
	say "Python tests ($py, LD_PRELOAD of the sanitizer runtime, leak detection off)"
	(san_env 0
	 export LD_PRELOAD="$RT_PRELOAD" PYTHONPATH="$PWD/bindings/python${PYTHONPATH:+:$PYTHONPATH}"
	 export LD_LIBRARY_PATH="$PWD/$BUILD/libtsm${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	 export TSM_LIBRARY="$lib" TSM_BIN="$PWD/$BUILD/examples/tsm"
	 timeout -k 30 1800 "$py" -m pytest -q -p no:cacheprovider "$dir") \
		>"$BUILD/sanitize-pytest.log" 2>&1 || rc=$?
	tail -n 3 "$BUILD/sanitize-pytest.log"
	count_pytest "$BUILD/sanitize-pytest.log"
	[ "$rc" -eq 0 ] || { say "Python tests FAILED (pytest exit $rc; log: $BUILD/sanitize-pytest.log)"; STATUS=1; }
}

# ---- reports ------------------------------------------------------------------

# "headline | first frame in our sources" for one report file; long
# numbers (addresses, values) are masked so that repeats compare equal.
summarize() {
	local head frame
	head=$(grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$1" |
		sed -E 's/^==[0-9]+==//; s/ \(pc .*//')
	frame=$(grep -E '^ +#[0-9]+ ' "$1" |
		grep -E '(^| |/)(libtsm|examples|brokerless|tests)/[^ ]+:[0-9]+' | head -n 1 |
		sed -E 's/^ +#[0-9]+ 0x[0-9a-f]+ in //; s#[^ ]*\.\./##')
	printf '%s | %s\n' "${head:-$(head -n 1 "$1")}" "${frame:-no libtsm frame}" |
		sed -E 's/0x[0-9a-f]+/0x?/g; s/[0-9]{4,}/N/g'
}

# Reports that reached a test's stderr instead of a file (GCC's UBSan).
stderr_reports() {
	cat "$BUILD/meson-logs/testlog.txt" "$BUILD/sanitize-pytest.log" 2>/dev/null |
		grep -E '^[^ ]+:[0-9]+:[0-9]+: runtime error:' |
		sed -E 's/[0-9]{4,}/N/g; s/$/ | (from a test log)/' || true
}

scan_reports() {
	local f sums
	shopt -s nullglob
	local files=("$LOGS"/*)
	shopt -u nullglob
	# A file without an error line holds only statistics: not a report.
	sums=$({ for f in "${files[@]}"; do
			! grep -qE 'ERROR: |runtime error:' "$f" || summarize "$f"
		done; stderr_reports; } |
		sort | uniq -c | sort -rn)
	REPORTS=$(printf '%s\n' "$sums" | grep -c . || true)
	[ "$REPORTS" -gt 0 ] || { say "no sanitizer reports"; return 0; }
	say "SANITIZER REPORTS: $REPORTS distinct (times seen | what | first frame of ours):"
	printf '%s\n' "$sums" | sed 's/^/    /'
	[ "${#files[@]}" -eq 0 ] || say "full reports: $LOGS/"
}

# One run per build directory at a time: a second would rebuild and delete
# the logs under the first. The lock lives outside the directory, which a
# compiler change deletes.
lock_build() {
	local lock
	command -v flock >/dev/null || return 0
	lock="${TMPDIR:-/tmp}/tsm-sanitize-$(printf '%s' "$PWD/$BUILD" | cksum | cut -d' ' -f1).lock"
	exec 9>"$lock"
	flock -n 9 && return 0
	say "another run is using $BUILD/: waiting for it (up to 1 h)"
	flock -w 3600 9 || { say "gave up waiting for $BUILD/"; exit 1; }
}

main() {
	trap finish EXIT
	lock_build
	CC_NAME=$(pick_cc) || { say "no C compiler (clang-14 or gcc) found"; trap - EXIT; exit 2; }
	runtime_setup
	(probe) || { rc=$?; trap - EXIT; exit "$rc"; }
	build || { STATUS=1; FAILED=$((FAILED + 1)); return; }
	rm -rf "$LOGS"
	mkdir -p "$LOGS"
	python_wrapper
	run_meson_tests
	run_python_tests
	scan_reports
}

main
finish
