#!/usr/bin/env bash
#
# tests/fuzz/build.sh - build the libFuzzer targets of tests/fuzz with
# clang-14, ASan and UBSan, outside the meson build (which it never
# touches).
#
# The library sources listed in libtsm/meson.build (with the stub where a
# feature has one: no target needs io_uring or libfabric) are compiled once with
# coverage instrumentation into build-fuzz/libtsm_fuzz.a; each fuzz_*.c is
# then linked against it, so a target only pulls the objects it uses.
# UBSan does not recover: every report aborts, and libFuzzer saves the
# input like any crash.
#
# Usage: tests/fuzz/build.sh [--seeds] [--no-lib] [TARGET...]
#   --seeds   also rebuild the checked-in seed corpora with gen_seeds.c
#   --no-lib  reuse build-fuzz/libtsm_fuzz.a (editing a target only)
#   TARGET    build only these (default: all of them)
# Environment: FUZZ_OUT (default <repo>/build-fuzz), FUZZ_CC (default
# clang-14, else clang), FUZZ_JOBS (default: CPU count).
# Exit status: 0 built, 1 a compile or link failed, 2 clang-14 or its
# libFuzzer/sanitizer runtime is missing.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${FUZZ_OUT:-$ROOT/build-fuzz}
JOBS=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
TARGETS=(fuzz_frame fuzz_meta fuzz_topic fuzz_spiffe fuzz_policy fuzz_fsm
         fuzz_reasm fuzz_advert fuzz_planted)

say() { printf 'fuzz/build.sh: %s\n' "$*"; }

pick_cc() {
	local cc
	for cc in "${FUZZ_CC:-}" clang-14 clang; do
		[ -n "$cc" ] && command -v "$cc" >/dev/null && { printf '%s\n' "$cc"; return 0; }
	done
	return 1
}

CC=$(pick_cc) || {
	say "clang-14 not found: install the Debian packages clang-14 and libclang-rt-14-dev"
	exit 2
}

SAN=("-fsanitize=address,undefined" -fno-sanitize-recover=all)
BASE=(-std=c11 -D_GNU_SOURCE -DTSM_BUILDING -g -O1 -fno-omit-frame-pointer
      "${SAN[@]}" -I"$OUT/gen" -I"$ROOT/libtsm/include" -I"$ROOT/libtsm/src"
      -I"$ROOT")

# The runtime check: libFuzzer and the sanitizers must link, not just parse.
probe_runtime() {
	local dir
	dir=$(mktemp -d)
	printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
		>"$dir/p.c"
	if ! "$CC" -fsanitize=fuzzer,address,undefined "$dir/p.c" -o "$dir/p" \
		>"$dir/log" 2>&1; then
		say "$CC cannot link a libFuzzer + ASan + UBSan program:"
		sed 's/^/    /' "$dir/log" >&2
		say "install the Debian package libclang-rt-14-dev"
		rm -rf "$dir"
		exit 2
	fi
	rm -rf "$dir"
}

lib_libs() {
	if pkg-config --exists msgpack openssl 2>/dev/null; then
		pkg-config --libs msgpack openssl
	else
		printf '%s\n' '-lmsgpackc -lssl -lcrypto'
	fi
}

# Every source libtsm/meson.build names, where a feature has a stub
# (house style: features select whole files, `uring_*.c` or a stub) only
# the stub: no target needs io_uring or libfabric, and they stay optional.
lib_sources() {
	local all stubdirs
	all=$(grep -o "'src/[^']*\.c'" "$ROOT/libtsm/meson.build" | tr -d "'" | sort -u)
	stubdirs=$(printf '%s\n' "$all" | grep '_stub\.c$' | xargs -r -n1 dirname)
	printf '%s\n' "$all" | while read -r src; do
		case "$src" in *_stub.c) printf '%s\n' "$src"; continue ;; esac
		printf '%s\n' "$stubdirs" | grep -qxF "$(dirname "$src")" ||
			printf '%s\n' "$src"
	done
	# The discovery plane is part of the library too (libtsm/meson.build
	# adds brokerless/meson.build's disc_src).
	grep -o "'[a-z_]*\.c'" "$ROOT/brokerless/meson.build" | tr -d "'" |
		sed 's|^|../brokerless/|'
}

gen_version_h() {
	local v major minor patch
	v=$(grep -m1 -oE "version: *'[0-9]+\.[0-9]+\.[0-9]+'" "$ROOT/meson.build" |
		grep -oE '[0-9]+\.[0-9]+\.[0-9]+')
	IFS=. read -r major minor patch <<<"$v"
	mkdir -p "$OUT/gen/tsm"
	sed -e "s/@MAJOR@/$major/" -e "s/@MINOR@/$minor/" -e "s/@PATCH@/$patch/" \
		-e "s/@VERSION@/$v/" "$ROOT/libtsm/include/tsm/version.h.in" \
		>"$OUT/gen/tsm/version.h"
}

# One clang per library source, JOBS at a time; the library's own warnings
# are the main build's business (-w), not this one's.
compile_one() {
	"$CC" "${BASE[@]}" -fsanitize=fuzzer-no-link -w -c "$1" -o "$2"
}

build_lib() {
	local src obj pids=() n=0 rc=0 objs=()
	mkdir -p "$OUT/obj"
	rm -f "$OUT"/obj/*.o "$OUT/libtsm_fuzz.a"
	while read -r src; do
		obj="$OUT/obj/$(printf '%s' "$src" | tr / _ | sed 's/\.c$/.o/')"
		objs+=("$obj")
		compile_one "$ROOT/libtsm/$src" "$obj" &
		pids+=($!)
		n=$((n + 1))
		if [ "$n" -ge "$JOBS" ]; then
			wait "${pids[0]}" || rc=1
			pids=("${pids[@]:1}")
			n=$((n - 1))
		fi
	done < <(lib_sources)
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	[ "$rc" -eq 0 ] || { say "library sources failed to compile"; return 1; }
	ar rcs "$OUT/libtsm_fuzz.a" "${objs[@]}"
}

build_target() {
	local t=$1 libs
	read -r -a libs <<<"$(lib_libs)"
	"$CC" "${BASE[@]}" -fsanitize=fuzzer -Wall -Wextra -Werror \
		-Wstrict-prototypes -Wmissing-prototypes -I"$HERE" \
		"$HERE/$t.c" "$OUT/libtsm_fuzz.a" "${libs[@]}" -lpthread -o "$OUT/$t"
}

build_seeds() {
	local libs
	read -r -a libs <<<"$(lib_libs)"
	"$CC" -std=c11 -D_GNU_SOURCE -g -Wall -Wextra -Werror -I"$OUT/gen" \
		-I"$ROOT/libtsm/include" -I"$ROOT/libtsm/src" -I"$HERE" \
		"$HERE/gen_seeds.c" "$ROOT/libtsm/src/wire/cursor.c" \
		"$ROOT/libtsm/src/wire/frame.c" "$ROOT/libtsm/src/wire/meta.c" \
		"$ROOT/libtsm/src/core/err.c" "${libs[@]}" -o "$OUT/gen_seeds"
	rm -rf "$HERE/corpus"
	"$OUT/gen_seeds" "$HERE/corpus"
	say "seed corpora written to $HERE/corpus"
}

main() {
	local t rc=0 start=$SECONDS seeds=0 lib=1 want=()
	for t in "$@"; do
		case "$t" in
		--seeds) seeds=1 ;;
		--no-lib) lib=0 ;;
		-*) say "unknown option $t"; return 1 ;;
		*) want+=("$t") ;;
		esac
	done
	[ "${#want[@]}" -gt 0 ] || want=("${TARGETS[@]}")
	probe_runtime
	mkdir -p "$OUT"
	gen_version_h
	say "compiler: $("$CC" --version | head -n 1); output: $OUT"
	if [ "$lib" -eq 1 ] || [ ! -f "$OUT/libtsm_fuzz.a" ]; then
		build_lib
	fi
	for t in "${want[@]}"; do
		build_target "$t" || { say "$t failed to build"; rc=1; }
	done
	if [ "$seeds" -eq 1 ]; then
		build_seeds || rc=1
	fi
	say "built ${#want[@]} target(s) in $((SECONDS - start)) s"
	return "$rc"
}

main "$@"
