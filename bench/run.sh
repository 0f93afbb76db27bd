#!/usr/bin/env bash
# bench/run.sh - build the benchmarks, run each libtsm case right after its
# raw floor (same build, same invocation, same pinning), print one
# machine-readable "bench:" line per case and one markdown table.
#
# Absolute times on the shared VMs move by up to 40 % between runs, so
# only the ratio to a floor measured in the same run means anything
# (docs: /work/shared/performance.md). This is not a test: it exits
# non-zero only when a run fails (crash, hang, lost message, build
# error), never because a target is missed.
#
# usage: bench/run.sh [--quick] [--floor-only] [--secure] [name...]
#   names: rt rt-busy stream (default: all three)
#   --secure: mTLS + AEAD, with a throw-away PKI from tests/support/pki.sh
#   (the targets are defined for secure runs; the default is insecure)
# environment:
#   BUILD_DIR          build directory (default: <repo>/build; configured
#                      with meson if it does not exist yet)
#   BENCH_QUICK=1      same as --quick: a tenth of the iterations and a
#                      5 s budget per libtsm run
#   BENCH_ROUNDS       floor/libtsm alternations per case (3); results
#                      are medians over rounds (max: the maximum)
#   BENCH_TIMEOUT      seconds per run before it counts as hung (120)
#   BENCH_MAX_SECS     libtsm runs stop early after this many seconds and
#                      report what they measured, marked capped (20;
#                      5 with --quick)
#   BENCH_RT_SIZES     round-trip sizes in bytes ("64 1024 65536 1048576")
#   BENCH_STREAM_SIZES stream sizes in bytes ("64 65536")
#   TSM_BENCH_ARGS     extra tsm_bench arguments (--recv-spin, --secure ...)
#   TSM_NO_URING=1     passed through: libtsm then uses epoll
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
quick=${BENCH_QUICK:-0}
floor_only=0
secure=0
case_timeout=${BENCH_TIMEOUT:-120}
rounds=${BENCH_ROUNDS:-3}
rt_sizes=${BENCH_RT_SIZES:-64 1024 65536 1048576}
stream_sizes=${BENCH_STREAM_SIZES:-64 65536}
read -r -a tsm_extra <<<"${TSM_BENCH_ARGS:-}"
failed=0
raw='' tsm='' tsm_rc=0 # set by run_rounds
table=()

usage() {
	sed -n '/^# usage:/,/^# *TSM_NO_URING/s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

names=()
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--floor-only) floor_only=1 ;;
	--secure) secure=1 ;;
	-h | --help) usage ;;
	rt | rt-busy | stream) names+=("$1") ;;
	*) echo "run.sh: unknown argument '$1'" >&2; usage ;;
	esac
	shift
done
[ ${#names[@]} -eq 0 ] && names=(rt rt-busy stream)
if [ "$quick" = 1 ]; then
	max_secs=${BENCH_MAX_SECS:-5}
else
	max_secs=${BENCH_MAX_SECS:-20}
fi
case $rounds in
'' | *[!0-9]* | 0) echo "run.sh: BENCH_ROUNDS must be >= 1" >&2; usage ;;
esac

# ---- credentials ----

# secure_setup: a test PKI and a policy letting the two benchmark
# identities publish and subscribe bench/**; appends tsm_bench's flags.
secure_setup() {
	pki_dir=$(mktemp -d "${TMPDIR:-/tmp}/tsm-bench-pki.XXXXXX") || return 1
	trap 'rm -rf "$pki_dir"' EXIT
	"$root/tests/support/pki.sh" "$pki_dir" >/dev/null || return 1
	printf '%s\n' "allow publish spiffe://td-a.test/* bench/**" \
		"allow subscribe spiffe://td-a.test/* bench/**" \
		>"$pki_dir/bench.policy"
	tsm_extra+=(--secure --trust "td-a.test=$pki_dir/bundle-a.pem"
		--policy "$pki_dir/bench.policy"
		--cert "$pki_dir/a-pub.chain.pem" --key "$pki_dir/a-pub.key"
		--cert-b "$pki_dir/a-sub.chain.pem" --key-b "$pki_dir/a-sub.key")
}

if [ "$secure" = 1 ] && [ "$floor_only" = 0 ] && ! secure_setup; then
	echo "run.sh: cannot make the test PKI for --secure" >&2
	exit 1
fi

# ---- build ----

# raw_tcp must build; tsm_bench may not while the library is unfinished,
# and then only the libtsm runs fail.
build() {
	if [ ! -f "$build_dir/build.ninja" ]; then
		meson setup "$build_dir" "$root" >&2 || return 1
	fi
	ninja -C "$build_dir" bench/raw_tcp >&2 || return 1
	tsm_built=1
	if [ "$floor_only" = 0 ] && ! ninja -C "$build_dir" bench/tsm_bench >&2; then
		echo "run.sh: tsm_bench does not build; libtsm runs will fail" >&2
		tsm_built=0
	fi
}

tsm_built=0
if ! build; then
	echo "run.sh: build failed" >&2
	exit 1
fi
raw_bin=$build_dir/bench/raw_tcp
tsm_bin=$build_dir/bench/tsm_bench

# ---- helpers ----

# field LINE KEY: the value of KEY=value in LINE, or nothing.
field() {
	local v=" $1 "
	v=${v#* "$2"=}
	[ "$v" = " $1 " ] && return 0
	printf '%s' "${v%% *}"
}

# field_or LINE KEY: as field, "-" when KEY is absent.
field_or() {
	local v
	v=$(field "$1" "$2")
	printf '%s' "${v:--}"
}

# compact TARGET: the target as one token ("L1<=1.2"), "-" for none.
compact() {
	local t=${1// /}
	printf '%s' "${t:--}"
}

# calc EXPR: floating-point arithmetic, two decimals.
calc() {
	awk "BEGIN { printf \"%.2f\", $1 }"
}

# Round-trip iterations per round: in all, enough samples for a p99.9,
# bounded in time.
rt_iters() {
	local n=2000
	[ "$1" -le 1024 ] && n=50000
	[ "$1" -gt 1024 ] && [ "$1" -le 65536 ] && n=20000
	[ "$quick" = 1 ] && n=$((n / 10))
	echo $(((n + rounds - 1) / rounds))
}

# Stream length per round: in all about 3.2 GB of payload, at most 5 M
# messages.
stream_count() {
	local n=$((3276800000 / $1))
	[ "$n" -gt 5000000 ] && n=5000000
	[ "$quick" = 1 ] && n=$((n / 10))
	echo $(((n + rounds - 1) / rounds))
}

# run_one TAG CMD...: run with a time limit; print its "TAG:" line.
# stderr goes straight through so a failure explains itself.
run_one() {
	local tag=$1 out rc
	shift
	out=$(timeout -k 5 "$case_timeout" "$@")
	rc=$?
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		echo "run.sh: TIMEOUT after ${case_timeout}s: $*" >&2
	elif [ $rc -ne 0 ]; then
		echo "run.sh: FAILED (exit $rc): $*" >&2
	fi
	[ $rc -eq 0 ] || return 1
	printf '%s\n' "$out" | grep "^$tag: "
}

run_tsm() {
	if [ "$floor_only" = 1 ]; then
		return 2
	fi
	if [ "$tsm_built" = 0 ]; then
		echo "run.sh: not run (tsm_bench did not build): $*" >&2
		return 1
	fi
	run_one tsm "$tsm_bin" "$@" --max-secs "$(calc "$max_secs / $rounds")" \
		"${tsm_extra[@]}"
}

# combine LINE...: one line out of several rounds' lines of one kind:
# per key the median, except max_us and capped (the maximum), the counts
# (the sum), and words such as transport=io_uring (the first).
combine() {
	printf '%s\n' "$@" | awk '
	function median(k,   a, n, i, j, t) {
		n = split(vals[k], a, " ")
		for (i = 2; i <= n; i++)
			for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) {
				t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
			}
		if (n % 2)
			return a[(n + 1) / 2]
		if (a[n / 2] == a[n / 2 + 1])
			return a[n / 2] # keeps an integer an integer
		return sprintf("%.2f", (a[n / 2] + a[n / 2 + 1]) / 2)
	}
	{
		tag = $1
		for (i = 2; i <= NF; i++) {
			eq = index($i, "=")
			k = substr($i, 1, eq - 1); v = substr($i, eq + 1)
			if (!(k in vals)) {
				keys[++nk] = k; vals[k] = v; mx[k] = v; sum[k] = 0
			} else {
				vals[k] = vals[k] " " v
				if (v + 0 > mx[k] + 0) mx[k] = v
			}
			sum[k] += v
		}
	}
	END {
		line = tag
		for (i = 1; i <= nk; i++) {
			k = keys[i]
			if (k ~ /^(iters|count|received|queue_full)$/) v = sum[k]
			else if (k ~ /^(max_us|capped)$/) v = mx[k]
			else if (k ~ /^(secure|transport)$/) { split(vals[k], w, " "); v = w[1] }
			else if (vals[k] ~ /^[0-9. ]+$/) v = median(k)
			else { split(vals[k], w, " "); v = w[1] }
			line = line " " k "=" v
		}
		print line
	}'
}

# run_rounds ARGS...: BENCH_ROUNDS times the floor and then libtsm with
# ARGS, alternating, so that both see the same moments of a shared VM.
# Sets raw and tsm to the combined lines, and tsm_rc: 0 (all ran), 1 (a
# libtsm run failed; no more are tried), 2 (not run). Returns 1 when a
# floor failed.
run_rounds() {
	local r out raws=() tsms=()
	tsm_rc=0
	for ((r = 0; r < rounds; r++)); do
		out=$(run_one raw "$raw_bin" "$@") || return 1
		raws+=("$out")
		out=$(run_tsm "$@")
		tsm_rc=$?
		case $tsm_rc in
		0) tsms+=("$out") ;;
		2) ;;
		*) break ;;
		esac
	done
	raw=$(combine "${raws[@]}")
	tsm=''
	[ "$tsm_rc" = 0 ] && tsm=$(combine "${tsms[@]}")
	return 0
}

# target NAME SIZE: "id op limit" for the scenario, or nothing.
target() {
	case $1:$2 in
	rt:64) echo "L1 <= 1.2" ;;
	rt-busy:64) echo "L1s <= 1.15" ;;
	rt:1048576 | rt-busy:1048576) echo "L4 <= 1.2" ;;
	stream:64) echo "T1 >= 0.4" ;;
	stream:65536) echo "T2 >= 0.9" ;;
	esac
}

# verdict RATIO "id op limit": met / missed / - .
verdict() {
	local id op lim
	read -r id op lim <<<"$2"
	if [ -z "$id" ] || [ "$1" = NA ]; then
		echo "-"
	elif awk "BEGIN { exit !($1 $op $lim) }"; then
		echo met
	else
		echo missed
	fi
}

# engine TSM_LINE: what ran, for the table ("io_uring, insecure").
engine() {
	local e
	e=$(field "$1" transport)
	if [ "$(field "$1" secure)" = 0 ]; then
		e="$e, insecure"
	else
		e="$e, mTLS+AEAD"
	fi
	printf '%s' "$e"
}

# status_of RC: a libtsm run's status; a failure makes the run fail.
status_of() {
	case $1 in
	0) status=ok ;;
	2) status=skipped ;;
	*) status=failed; failed=1 ;;
	esac
}

# ---- cases ----

# rt_case NAME SIZE [--busy]
rt_case() {
	local name=$1 size=$2 iters warm ratio=NA tgt status
	local p50=NA p99=NA p999=NA max=NA eng=-
	shift 2
	iters=$(rt_iters "$size")
	warm=$((iters / 10))
	set -- rt "$@" --size "$size" --iters "$iters" --warmup "$warm"
	if ! run_rounds "$@"; then
		failed=1
		echo "bench: name=$name size=$size status=floor-failed"
		table+=("| $name | $size | - | not run | failed | NA | - | - |")
		return
	fi
	status_of "$tsm_rc"
	if [ "$status" = ok ]; then
		p50=$(field "$tsm" p50_us) p99=$(field "$tsm" p99_us)
		p999=$(field "$tsm" p999_us) max=$(field "$tsm" max_us)
		eng=$(engine "$tsm")
		ratio=$(calc "$p50 / $(field "$raw" p50_us)")
		[ "$(field "$tsm" capped)" = 1 ] && eng="$eng, capped"
	fi
	tgt=$(target "$name" "$size")
	echo "bench: name=$name size=$size p50_us=$p50 p99_us=$p99" \
		"floor_p50_us=$(field "$raw" p50_us) ratio=$ratio" \
		"target=$(compact "$tgt") verdict=$(verdict "$ratio" "$tgt")" \
		"p999_us=$p999 max_us=$max floor_p99_us=$(field "$raw" p99_us)" \
		"samples=$(field_or "$tsm" iters) capped=$(field_or "$tsm" capped)" \
		"transport=$(field_or "$tsm" transport) secure=$(field_or "$tsm" secure)" \
		"status=$status"
	local got="$p50 / $p99 / $p999 / $max"
	[ "$status" = ok ] || got=$status
	table+=("| $name | $size | $eng | $got |\
 $(field "$raw" p50_us) / $(field "$raw" p99_us) / $(field "$raw" p999_us)\
 / $(field "$raw" max_us) | $ratio | ${tgt:--} | $(verdict "$ratio" "$tgt") |")
}

stream_case() {
	local size=$1 count ratio=NA tgt status
	local mps=NA mbps=NA eng=-
	count=$(stream_count "$size")
	set -- stream --size "$size" --count "$count"
	if ! run_rounds "$@"; then
		failed=1
		echo "bench: name=stream size=$size status=floor-failed"
		table+=("| stream | $size | - | not run | failed | NA | - | - |")
		return
	fi
	status_of "$tsm_rc"
	if [ "$status" = ok ]; then
		mps=$(field "$tsm" msgs_per_s) mbps=$(field "$tsm" mb_per_s)
		eng=$(engine "$tsm")
		ratio=$(calc "$mps / $(field "$raw" msgs_per_s)")
		[ "$(field "$tsm" capped)" = 1 ] && eng="$eng, capped"
	fi
	tgt=$(target stream "$size")
	echo "bench: name=stream size=$size msgs_per_s=$mps mb_per_s=$mbps" \
		"floor_msgs_per_s=$(field "$raw" msgs_per_s) ratio=$ratio" \
		"target=$(compact "$tgt") verdict=$(verdict "$ratio" "$tgt")" \
		"floor_mb_per_s=$(field "$raw" mb_per_s) count=$((count * rounds))" \
		"received=$(field_or "$tsm" received) capped=$(field_or "$tsm" capped)" \
		"transport=$(field_or "$tsm" transport) secure=$(field_or "$tsm" secure)" \
		"status=$status"
	local got="$mps msg/s, $mbps MB/s"
	[ "$status" = ok ] || got=$status
	table+=("| stream | $size | $eng | $got |\
 $(field "$raw" msgs_per_s) msg/s, $(field "$raw" mb_per_s) MB/s |\
 $ratio | ${tgt:--} | $(verdict "$ratio" "$tgt") |")
}

# ---- main ----

echo "# libtsm bench: $(uname -r), $(nproc) CPUs, build $build_dir," \
	"quick=$quick, rounds=$rounds, secure=$secure," \
	"TSM_NO_URING=${TSM_NO_URING:-unset}"
for name in "${names[@]}"; do
	case $name in
	rt) for s in $rt_sizes; do rt_case rt "$s"; done ;;
	rt-busy) for s in $rt_sizes; do rt_case rt-busy "$s" --busy; done ;;
	stream) for s in $stream_sizes; do stream_case "$s"; done ;;
	esac
done

echo
echo "Round trips in µs (p50 / p99 / p99.9 / max); streams in messages/s" \
	"and MB/s; each the median over $rounds alternating rounds (max: the" \
	"maximum). ratio = libtsm / floor (round trips: lower is better;" \
	"streams: higher is better)."
echo
echo "| case | size (B) | engine | libtsm | raw floor | ratio | target | verdict |"
echo "|---|---:|---|---|---|---:|---|---|"
printf '%s\n' "${table[@]}"
exit $failed
