# tests/support/results.sh - sourced by tests/run.sh and
# tests/sanitize/run.sh: counting meson's and pytest's results the same
# way in both. The caller keeps PASSED, FAILED and SKIPPED.

# meson_counts LOG [TAIL]: "PASSED FAILED SKIPPED" on the first line, then
# (TAIL > 0) the end of each failed test's output (tests/support/testlog.py).
meson_counts() {
	python3 "$(dirname "${BASH_SOURCE[0]}")/testlog.py" "$@"
}

# A Python that can import pytest: Debian's python3 normally; the first
# python3 on PATH may be another interpreter without it.
find_pytest_python() {
	local py
	for py in python3 /usr/bin/python3; do
		if command -v "$py" >/dev/null && "$py" -c 'import pytest' 2>/dev/null; then
			printf '%s\n' "$py"
			return 0
		fi
	done
	return 1
}

# Adds pytest's own summary ("N passed, N failed, N skipped, N xfailed")
# in the output file $1 to the totals.
count_pytest() {
	local line n word
	line=$(grep -E '^[0-9]+ (passed|failed|skipped|error)' "$1" | tail -n 1) || return 0
	for word in passed failed skipped error errors; do
		n=$(printf '%s\n' "$line" | grep -oE "[0-9]+ $word" | grep -oE '^[0-9]+' || true)
		[ -n "$n" ] || continue
		case "$word" in
		passed) PASSED=$((PASSED + n)) ;;
		skipped) SKIPPED=$((SKIPPED + n)) ;;
		*) FAILED=$((FAILED + n)) ;;
		esac
	done
}
