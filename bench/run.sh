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
#   names: rt rt-busy stream (the default: these three), and opt-in:
#   prio (P1) prio-tbf (P2) deadline (D1) fanout (S1); all = every one
#   --secure: mTLS + AEAD, with a throw-away PKI from tests/support/pki.sh
#   (the targets are defined for secure runs; the default is insecure);
#   fabric cases then also print aead_bound, the best ratio AEAD alone
#   allows on this CPU (see aead_bound below)
#   long runs (issue 9; never part of "all"), run first when asked for:
#   soak [MINUTES]  bench/soak.sh (default 10 minutes): a mixed workload
#                   with partitions, certificate rotation and key updates;
#                   RSS, descriptors, drops by reason and p99 over time;
#                   fails unless RSS and descriptors stay flat and nothing
#                   arrives twice, corrupt or out of order
#   fuzz [SECONDS]  tests/fuzz/run.sh with SECONDS per target (default
#                   300), FUZZ_TOTAL_BUDGET=0 (no overall limit) and
#                   FUZZ_SEED=0 (a fresh random seed; set FUZZ_SEED=N to
#                   replay a campaign)
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
#   BENCH_PRIO_ITERS   urgent round trips of prio and prio-tbf, over all
#                      rounds (6000)
#   BENCH_DEADLINE_SECS seconds of publishing per deadline policy, over
#                      all rounds (3)
#   BENCH_FANOUT_SUBS  subscriber counts of fanout's cost runs ("1 2 4 8")
#   BENCH_FANOUT_COUNT messages per fanout cost run, over all rounds
#                      (200000)
#   BENCH_FANOUT_ITERS messages per subscriber of fanout's stall runs,
#                      over all rounds (6000)
#   BENCH_FANOUT_STALL_SUBS subscribers of fanout's stall runs (8)
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
prio_iters=${BENCH_PRIO_ITERS:-6000}
deadline_secs=${BENCH_DEADLINE_SECS:-3}
fanout_subs=${BENCH_FANOUT_SUBS:-1 2 4 8}
fanout_count=${BENCH_FANOUT_COUNT:-200000}
fanout_iters=${BENCH_FANOUT_ITERS:-6000}
read -r -a tsm_extra <<<"${TSM_BENCH_ARGS:-}"
tsm_cred=() # --secure's credentials, for every libtsm program
exec_prefix=() # prio-tbf: runs A inside its network namespace
failed=0
raw='' tsm='' tsm_rc=0 # set by run_rounds
table=()
pki_dir='' ns_a='' ns_b=

usage() {
	sed -n '/^# usage:/,/^# *TSM_NO_URING/s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

names=()
long_runs=() soak_minutes=10 fuzz_secs=300
while [ $# -gt 0 ]; do
	case $1 in
	soak | fuzz)
		long_runs+=("$1")
		if [[ ${2:-} =~ ^[0-9]+([.][0-9]+)?$ ]]; then
			if [ "$1" = soak ]; then soak_minutes=$2; else fuzz_secs=$2; fi
			shift
		fi ;;
	--quick) quick=1 ;;
	--floor-only) floor_only=1 ;;
	--secure) secure=1 ;;
	-h | --help) usage ;;
	rt | rt-busy | stream | prio | prio-tbf | deadline | fanout | python | seal | fabric)
		names+=("$1") ;;
	all) names+=(rt rt-busy stream prio prio-tbf deadline fanout python seal fabric) ;;
	*) echo "run.sh: unknown argument '$1'" >&2; usage ;;
	esac
	shift
done
[ ${#names[@]} -eq 0 ] && [ ${#long_runs[@]} -eq 0 ] && names=(rt rt-busy stream)
if [ "$quick" = 1 ]; then
	max_secs=${BENCH_MAX_SECS:-5}
else
	max_secs=${BENCH_MAX_SECS:-20}
fi
case $rounds in
'' | *[!0-9]* | 0) echo "run.sh: BENCH_ROUNDS must be >= 1" >&2; usage ;;
esac

# ---- cleanup ----

# netns_teardown: remove prio-tbf's namespaces (and so its veth pair).
netns_teardown() {
	[ -n "$ns_a" ] && ip netns del "$ns_a" 2>/dev/null
	[ -n "$ns_b" ] && ip netns del "$ns_b" 2>/dev/null
	ns_a='' ns_b=''
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	netns_teardown
	[ -n "$pki_dir" ] && rm -rf "$pki_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- long runs: soak and fuzz (issue 9) ----

# soak_case: bench/soak.sh prints its table, verdict and "bench:" line.
soak_case() {
	echo "# soak: bench/soak.sh $soak_minutes (build $build_dir)"
	BUILD_DIR=$build_dir bash "$root/bench/soak.sh" "$soak_minutes"
}

# fuzz_case: a fuzz campaign of every target (tests/fuzz/README.md), its
# output as it goes, then one "bench:" line from its summary.
fuzz_case() {
	local log rc=0 line
	log=$(mktemp "${TMPDIR:-/tmp}/tsm-fuzz.XXXXXX")
	echo "# fuzz: tests/fuzz/run.sh $fuzz_secs s per target," \
		"FUZZ_TOTAL_BUDGET=0, FUZZ_SEED=${FUZZ_SEED:-0} (0 = random)"
	FUZZ_TOTAL_BUDGET=0 FUZZ_SEED=${FUZZ_SEED:-0} \
		bash "$root/tests/fuzz/run.sh" "$fuzz_secs" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	echo "bench: name=fuzz secs_per_target=$fuzz_secs" \
		"passed=${line%% passed*} failed=$(sed -E 's/.*passed, ([0-9]+) failed.*/\1/' <<<"${line:-x passed, x failed}")" \
		"status=$([ "$rc" = 0 ] && echo ok || echo failed)"
	rm -f "$log"
	return "$rc"
}

if [ ${#long_runs[@]} -gt 0 ]; then
	for name in "${long_runs[@]}"; do
		case $name in
		soak) soak_case || failed=1 ;;
		fuzz) fuzz_case || failed=1 ;;
		esac
	done
	[ ${#names[@]} -gt 0 ] || exit "$failed"
fi

# ---- credentials ----

# secure_setup: a test PKI and a policy letting the two benchmark
# identities publish and subscribe bench/**; sets the libtsm programs'
# flags (tsm_bench's too).
secure_setup() {
	pki_dir=$(mktemp -d "${TMPDIR:-/tmp}/tsm-bench-pki.XXXXXX") || return 1
	"$root/tests/support/pki.sh" "$pki_dir" >/dev/null || return 1
	printf '%s\n' "allow publish spiffe://td-a.test/* bench/**" \
		"allow subscribe spiffe://td-a.test/* bench/**" \
		>"$pki_dir/bench.policy"
	tsm_cred=(--secure --trust "td-a.test=$pki_dir/bundle-a.pem"
		--policy "$pki_dir/bench.policy"
		--cert "$pki_dir/a-pub.chain.pem" --key "$pki_dir/a-pub.key"
		--cert-b "$pki_dir/a-sub.chain.pem" --key-b "$pki_dir/a-sub.key")
	tsm_extra+=("${tsm_cred[@]}")
}

if [ "$secure" = 1 ] && [ "$floor_only" = 0 ] && ! secure_setup; then
	echo "run.sh: cannot make the test PKI for --secure" >&2
	exit 1
fi

# ---- build ----

# The raw floors must build; a libtsm program may not while the library
# is unfinished, and then only its runs fail.
build() {
	local t
	if [ ! -f "$build_dir/build.ninja" ]; then
		meson setup "$build_dir" "$root" >&2 || return 1
	fi
	ninja -C "$build_dir" bench/raw_tcp bench/raw_prio bench/raw_fanout \
		>&2 || return 1
	[ "$floor_only" = 1 ] && return 0
	for t in tsm_bench tsm_prio tsm_deadline tsm_fanout; do
		if ninja -C "$build_dir" "bench/$t" >&2; then
			tsm_built_list+="$t "
		else
			echo "run.sh: $t does not build; its libtsm runs will fail" >&2
		fi
	done
	case $tsm_built_list in *" tsm_bench "*) tsm_built=1 ;; esac
}

tsm_built=0
tsm_built_list=' '
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
# stderr goes straight through so a failure explains itself. A failed
# run returns 1 but still prints the line it may have printed, so that a
# case can show what was measured before the failure.
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
	if [ $rc -ne 0 ]; then
		printf '%s\n' "$out" | grep "^$tag: "
		return 1
	fi
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

# Keys that combine sums (counts), takes the maximum or the minimum of.
sum_keys='iters|count|received|queue_full|sent|urgent_sent|urgent_lost'
sum_keys+='|urgent_gaps|stale|bulk_msgs|bulk_gaps|bad|published|refused_full'
sum_keys+='|refused_expired|delivered|late|late_at_call|late_e2e|expired'
sum_keys+='|expired_a|expired_b|other_drops|unaccounted|outcomes|exp_[a-z]+'
sum_keys+='|dups|gaps|drops|drops_stalled|drops_a|drops_pub|received_min'
max_keys='max_us|capped|late_max_us|late_e2e_max_us'
min_keys='slack_min_us'

# combine LINE...: one line out of several rounds' lines of one kind:
# per key the median, except the maxima and minima above, the counts
# (the sum), and words such as transport=io_uring (the first).
combine() {
	printf '%s\n' "$@" | awk -v sum_re="^($sum_keys)\$" \
		-v max_re="^($max_keys)\$" -v min_re="^($min_keys)\$" '
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
				keys[++nk] = k; vals[k] = v; mx[k] = v; mn[k] = v
				sum[k] = 0
			} else {
				vals[k] = vals[k] " " v
				if (v + 0 > mx[k] + 0) mx[k] = v
				if (v + 0 < mn[k] + 0) mn[k] = v
			}
			sum[k] += v
		}
	}
	END {
		line = tag
		for (i = 1; i <= nk; i++) {
			k = keys[i]
			if (k ~ sum_re) v = sum[k]
			else if (k ~ max_re) v = mx[k]
			else if (k ~ min_re) v = mn[k]
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

# ---- prio, prio-tbf, deadline, fanout ----

# built PROG: 0 if the libtsm program PROG built.
built() {
	case $tsm_built_list in *" $1 "*) return 0 ;; esac
	return 1
}

# run_prog TAG PROG ARGS...: one run of a floor (TAG raw) or libtsm
# (TAG tsm) program of the cases below, inside exec_prefix (prio-tbf's
# namespace) when set; prints its line. Returns 0, 1 (failed) or 2 (a
# libtsm run skipped by --floor-only).
run_prog() {
	local tag=$1 prog=$2
	shift 2
	if [ "$tag" = tsm ]; then
		[ "$floor_only" = 1 ] && return 2
		if ! built "$prog"; then
			echo "run.sh: not run ($prog did not build): $*" >&2
			return 1
		fi
		set -- "$@" "${tsm_cred[@]}"
	fi
	run_one "$tag" "${exec_prefix[@]}" "$build_dir/bench/$prog" "$@"
}

# per_round TOTAL: a round's share of TOTAL (at least 1).
per_round() {
	local n=$1
	[ "$quick" = 1 ] && n=$((n / 10))
	n=$(((n + rounds - 1) / rounds))
	[ "$n" -lt 1 ] && n=1
	echo "$n"
}

# is_num V: 0 if V is a number (not NA, not empty).
is_num() {
	[[ $1 =~ ^-?[0-9]+(\.[0-9]+)?$ ]]
}

# ratio_of A B: A / B with two decimals, NA unless both are numbers and
# B is not 0.
ratio_of() {
	if is_num "$1" && is_num "$2" && awk "BEGIN { exit !($2 != 0) }"; then
		calc "$1 / $2"
	else
		echo NA
	fi
}

# all_met VERDICT...: met if every one is met, missed if any is missed,
# - when none applies.
all_met() {
	local v out=-
	for v in "$@"; do
		case $v in
		missed) echo missed; return ;;
		met) out=met ;;
		esac
	done
	echo "$out"
}

# netns_setup: two network namespaces joined by a veth pair, with a
# 1 Gbit/s tbf on A's side (A sends the bulk); sets ns_a, ns_b, tbf_addr
# (A's address). Returns 1 with netns_reason set when it cannot.
netns_setup() {
	local sub=$(($$ % 250)) va=tsmb$$a vb=tsmb$$b err
	if [ "$(id -u)" != 0 ]; then
		netns_reason=not_root
		return 1
	fi
	if ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
		netns_reason=no_iproute2
		return 1
	fi
	ns_a=tsm-bench-$$-a ns_b=tsm-bench-$$-b
	tbf_addr=10.213.$sub.1
	if ! err=$({ ip netns add "$ns_a" && ip netns add "$ns_b" &&
		ip link add "$va" type veth peer name "$vb" &&
		ip link set "$va" netns "$ns_a" &&
		ip link set "$vb" netns "$ns_b" &&
		ip -n "$ns_a" addr add "$tbf_addr/30" dev "$va" &&
		ip -n "$ns_b" addr add "10.213.$sub.2/30" dev "$vb" &&
		ip -n "$ns_a" link set lo up && ip -n "$ns_b" link set lo up &&
		ip -n "$ns_a" link set "$va" up &&
		ip -n "$ns_b" link set "$vb" up &&
		ip netns exec "$ns_a" tc qdisc add dev "$va" root tbf \
			rate 1gbit burst 64kb latency 10ms; } 2>&1); then
		netns_reason=$(printf '%s' "${err:-failed}" | head -n 1 | tr -c 'A-Za-z0-9.:\n' _)
		netns_teardown
		return 1
	fi
}

# prio_rounds ARGS...: rounds of naive floor, split floor, libtsm; sets
# raw, naive, tsm (combined lines; tsm includes a failed run's line) and
# tsm_rc. Returns 1 when a floor failed.
prio_rounds() {
	local r out raws=() naives=() tsms=()
	tsm_rc=0
	for ((r = 0; r < rounds; r++)); do
		out=$(run_prog raw raw_prio --naive "$@") || return 1
		naives+=("$out")
		out=$(run_prog raw raw_prio "$@") || return 1
		raws+=("$out")
		out=$(run_prog tsm tsm_prio "$@")
		tsm_rc=$?
		[ -n "$out" ] && tsms+=("$out")
		[ "$tsm_rc" = 0 ] || break
	done
	raw=$(combine "${raws[@]}")
	naive=$(combine "${naives[@]}")
	tsm=''
	[ ${#tsms[@]} -gt 0 ] && tsm=$(combine "${tsms[@]}")
	return 0
}

# prio_case NAME: P1 on loopback (prio) or P2 through tbf (prio-tbf).
prio_case() {
	local name=$1 iters id=P1 lim=1.2 size=64/1048576 status eng=-
	local p50=NA p99=NA bulk=NA lost=NA r50 r99 rb v50 v99 vb vl verdict
	local t50 t99 tb tl args
	iters=$(per_round "$prio_iters")
	args=(--iters "$iters" --warmup "$(((iters + 9) / 10))"
		--max-secs "$(calc "$max_secs / $rounds")")
	if [ "$name" = prio-tbf ]; then
		id=P2 lim=1.3
		if ! netns_setup; then
			echo "bench: name=prio-tbf skipped reason=$netns_reason"
			table+=("| prio-tbf | $size | - | skipped ($netns_reason) | - | - | - | - |")
			return
		fi
		args+=(--addr "$tbf_addr" --netns-b "$ns_b")
		exec_prefix=(ip netns exec "$ns_a")
	fi
	prio_rounds "${args[@]}"
	local floor_rc=$?
	exec_prefix=()
	[ "$name" = prio-tbf ] && netns_teardown
	if [ $floor_rc -ne 0 ]; then
		failed=1
		echo "bench: name=$name size=$size status=floor-failed"
		table+=("| $name | $size | - | not run | failed | NA | - | - |")
		return
	fi
	status_of "$tsm_rc"
	if [ -n "$tsm" ]; then
		p50=$(field "$tsm" p50_us) p99=$(field "$tsm" p99_us)
		[ "$(field "$tsm" iters)" = 0 ] && p50=NA p99=NA # no sample
		bulk=$(field "$tsm" bulk_mb_per_s)
		lost=$(field "$tsm" urgent_lost)
		eng=$(engine "$tsm")
		[ "$(field "$tsm" capped)" = 1 ] && eng="$eng, capped"
	fi
	r50=$(ratio_of "$p50" "$(field "$raw" p50_us)")
	r99=$(ratio_of "$p99" "$(field "$raw" p99_us)")
	rb=$(ratio_of "$bulk" "$(field "$raw" bulk_mb_per_s)")
	t50="$id <= $lim" tl="$id == 0" t99='' tb=''
	[ "$id" = P1 ] && t99="P1 <= 1.5" tb="P1 >= 0.7"
	v50=$(verdict "$r50" "$t50") v99=$(verdict "$r99" "$t99")
	vb=$(verdict "$rb" "$tb") vl=$(verdict "$lost" "$tl")
	verdict=$(all_met "$v50" "$v99" "$vb" "$vl")
	echo "bench: name=$name size=64 bulk_size=1048576 p50_us=$p50" \
		"p99_us=$p99 floor_p50_us=$(field "$raw" p50_us) ratio=$r50" \
		"target=$(compact "$t50") verdict=$verdict" \
		"floor_p99_us=$(field "$raw" p99_us) p99_ratio=$r99" \
		"p99_target=$(compact "$t99") bulk_mb_per_s=$bulk" \
		"floor_bulk_mb_per_s=$(field "$raw" bulk_mb_per_s)" \
		"bulk_ratio=$rb bulk_target=$(compact "$tb")" \
		"urgent_sent=$(field_or "$tsm" urgent_sent) urgent_lost=$lost" \
		"urgent_missing_at_b=$(field_or "$tsm" urgent_gaps)" \
		"bulk_missing_at_b=$(field_or "$tsm" bulk_gaps)" \
		"p999_us=$(field_or "$tsm" p999_us) max_us=$(field_or "$tsm" max_us)" \
		"samples=$(field_or "$tsm" iters) capped=$(field_or "$tsm" capped)" \
		"latency=round-trip transport=$(field_or "$tsm" transport)" \
		"secure=$(field_or "$tsm" secure) status=$status"
	echo "bench: name=$name-naive size=64 bulk_size=1048576" \
		"p50_us=$(field "$naive" p50_us) p99_us=$(field "$naive" p99_us)" \
		"floor_p50_us=$(field "$raw" p50_us)" \
		"ratio=$(ratio_of "$(field "$naive" p50_us)" "$(field "$raw" p50_us)")" \
		"target=- verdict=- bulk_mb_per_s=$(field "$naive" bulk_mb_per_s)" \
		"max_us=$(field "$naive" max_us) samples=$(field "$naive" iters)" \
		"note=raw_tcp_one_connection status=ok"
	local lat flat
	lat="$p50 / $p99 / $(field_or "$tsm" p999_us) / $(field_or "$tsm" max_us)"
	flat="$(field "$raw" p50_us) / $(field "$raw" p99_us) /"
	flat+=" $(field "$raw" p999_us) / $(field "$raw" max_us)"
	[ "$status" = ok ] || lat="$status: $lat"
	[ -n "$tsm" ] || lat=$status
	table+=("| $name urgent p50 | $size | $eng | $lat | $flat | $r50 | ${t50} | $v50 |")
	table+=("| $name urgent p99 | $size | $eng | $p99 | $(field "$raw" p99_us) | $r99 | ${t99:--} | $v99 |")
	table+=("| $name bulk MB/s | $size | $eng | $bulk | $(field "$raw" bulk_mb_per_s) | $rb | ${tb:--} | $vb |")
	table+=("| $name urgent lost (no echo in 2 s) | $size | $eng | $lost of $(field_or "$tsm" urgent_sent) ($(field_or "$tsm" urgent_gaps) urgent, $(field_or "$tsm" bulk_gaps) bulk missing at B) | 0 | - | $tl | $vl |")
	table+=("| $name naive (raw, one connection) | $size | raw TCP | $(field "$naive" p50_us) / $(field "$naive" p99_us) / $(field "$naive" p999_us) / $(field "$naive" max_us), $(field "$naive" bulk_mb_per_s) MB/s | $flat | $(ratio_of "$(field "$naive" p50_us)" "$(field "$raw" p50_us)") | - | - |")
}

# deadline_case POLICY: D1 with the subscriber's back-pressure POLICY.
deadline_case() {
	local policy=$1 secs r out tsms=() status rc=0 eng=-
	local late=NA unacc=NA drops=NA outcomes=NA vl vu vo verdict
	secs=$(calc "$deadline_secs / $rounds")
	[ "$quick" = 1 ] && secs=$(calc "$secs / 2")
	for ((r = 0; r < rounds; r++)); do
		out=$(run_prog tsm tsm_deadline --backpressure "$policy" \
			--secs "$secs")
		rc=$?
		[ -n "$out" ] && tsms+=("$out")
		[ "$rc" = 0 ] || break
	done
	status_of "$rc"
	tsm=''
	[ ${#tsms[@]} -gt 0 ] && tsm=$(combine "${tsms[@]}")
	if [ -n "$tsm" ]; then
		late=$(field "$tsm" late) unacc=$(field "$tsm" unaccounted)
		outcomes=$(field "$tsm" outcomes)
		drops=$(($(field "$tsm" expired) + $(field "$tsm" queue_full) +
			$(field "$tsm" other_drops)))
		eng=$(engine "$tsm")
	fi
	vl=$(verdict "$late" "D1 == 0") vu=$(verdict "$unacc" "D1 == 0")
	vo=$(verdict "$(ratio_of "$outcomes" "$drops")" "D1 == 1")
	[ "$drops" = 0 ] && [ "$outcomes" = 0 ] && vo=met
	verdict=$(all_met "$vl" "$vu" "$vo")
	echo "bench: name=deadline policy=$policy size=65536" \
		"budget_us=$(field_or "$tsm" budget_us)" \
		"published=$(field_or "$tsm" published)" \
		"delivered=$(field_or "$tsm" delivered) late=$late" \
		"floor_p50_us=0 ratio=- target=D1:late=0,unaccounted=0" \
		"verdict=$verdict late_at_call=$(field_or "$tsm" late_at_call)" \
		"late_max_us=$(field_or "$tsm" late_max_us)" \
		"expired=$(field_or "$tsm" expired)" \
		"expired_a=$(field_or "$tsm" expired_a)" \
		"expired_b=$(field_or "$tsm" expired_b)" \
		"queue_full=$(field_or "$tsm" queue_full)" \
		"other_drops=$(field_or "$tsm" other_drops) unaccounted=$unacc" \
		"outcomes=$outcomes late_e2e=$(field_or "$tsm" late_e2e)" \
		"late_e2e_max_us=$(field_or "$tsm" late_e2e_max_us)" \
		"exp_sendq=$(field_or "$tsm" exp_sendq)" \
		"exp_reasm=$(field_or "$tsm" exp_reasm)" \
		"exp_subq=$(field_or "$tsm" exp_subq)" \
		"exp_handover=$(field_or "$tsm" exp_handover)" \
		"transport=$(field_or "$tsm" transport)" \
		"secure=$(field_or "$tsm" secure) status=$status"
	local name="deadline $policy"
	table+=("| $name: late (local clock) | 65536 | $eng | $late of $(field_or "$tsm" delivered) delivered (worst $(field_or "$tsm" late_max_us) µs; $(field_or "$tsm" late_at_call) already expired at the call) | - | - | D1 == 0 | $vl |")
	table+=("| $name: unaccounted | 65536 | $eng | $unacc of $(field_or "$tsm" published) published ($(field_or "$tsm" expired) expired, $(field_or "$tsm" queue_full) queue full, $(field_or "$tsm" other_drops) other) | - | - | D1 == 0 | $vu |")
	table+=("| $name: outcomes / drops | 65536 | $eng | $outcomes / $drops | - | - | D1 == 1 | $vo |")
	table+=("| $name: late vs publisher's clock | 65536 | $eng | $(field_or "$tsm" late_e2e) (worst $(field_or "$tsm" late_e2e_max_us) µs) | - | - | - | - |")
}

# fanout_rounds ARGS...: rounds of the raw and the libtsm fanout with
# ARGS; sets raw, tsm, tsm_rc like prio_rounds. Returns 1 when a floor
# failed.
fanout_rounds() {
	local r out raws=() tsms=()
	tsm_rc=0
	for ((r = 0; r < rounds; r++)); do
		out=$(run_prog raw raw_fanout "$@") || return 1
		raws+=("$out")
		out=$(run_prog tsm tsm_fanout "$@")
		tsm_rc=$?
		[ -n "$out" ] && tsms+=("$out")
		[ "$tsm_rc" = 0 ] || break
	done
	raw=$(combine "${raws[@]}")
	tsm=''
	[ ${#tsms[@]} -gt 0 ] && tsm=$(combine "${tsms[@]}")
	return 0
}

# fanout_cost N COUNT: S1's publisher cost with N subscribers; growth is
# relative to the first subscriber count (base_n; base_cpu its cost).
fanout_cost() {
	local n=$1 cpu=NA fcpu growth=NA limit tgt status eng=- ratio v
	if ! fanout_rounds cost --subs "$n" --count "$2"; then
		failed=1
		echo "bench: name=fanout subs=$n status=floor-failed"
		table+=("| fanout cost, $n subs | 64 | - | not run | failed | NA | - | - |")
		return
	fi
	status_of "$tsm_rc"
	fcpu=$(field "$raw" cpu_ns_per_msg)
	[ -n "$tsm" ] && cpu=$(field "$tsm" cpu_ns_per_msg) eng=$(engine "$tsm")
	[ "$status" = ok ] || cpu=NA
	[ "$n" = "$base_n" ] && is_num "$cpu" && base_cpu=$cpu
	[ -n "$base_cpu" ] && growth=$(ratio_of "$cpu" "$base_cpu")
	limit=$(calc "$n / $base_n")
	tgt="S1 <= $limit"
	ratio=$(ratio_of "$cpu" "$fcpu")
	v=$(verdict "$growth" "$tgt")
	echo "bench: name=fanout subs=$n size=64 cpu_ns_per_msg=$cpu" \
		"floor_cpu_ns_per_msg=$fcpu ratio=$ratio growth=$growth" \
		"growth_base_subs=$base_n target=$(compact "$tgt")" \
		"verdict=$v msgs_per_s=$(field_or "$tsm" msgs_per_s)" \
		"floor_msgs_per_s=$(field "$raw" msgs_per_s)" \
		"sent=$(field_or "$tsm" sent) capped=$(field_or "$tsm" capped)" \
		"transport=$(field_or "$tsm" transport)" \
		"secure=$(field_or "$tsm" secure) status=$status"
	table+=("| fanout cost, $n subs (growth vs $base_n) | 64 | $eng | $cpu ns/msg, $(field_or "$tsm" msgs_per_s) msg/s; growth $growth | $fcpu ns/msg, $(field "$raw" msgs_per_s) msg/s | $ratio | $tgt | $v |")
}

# fanout_stall N: the others' p99 with subscriber 0 stalled vs not.
fanout_stall() {
	local n=$1 iters args raw0 tsm0 st0 st1 ratio=NA fratio v eng=-
	iters=$(per_round "$fanout_iters")
	args=(lat --subs "$n" --iters "$iters" --warmup "$(((iters + 9) / 10))"
		--max-secs "$(calc "$max_secs / $rounds")")
	if ! fanout_rounds "${args[@]}"; then
		failed=1
		echo "bench: name=fanout-stall subs=$n status=floor-failed"
		table+=("| fanout stall, $n subs | 64 | - | not run | failed | NA | - | - |")
		return
	fi
	raw0=$raw tsm0=$tsm st0=$tsm_rc
	if ! fanout_rounds "${args[@]}" --stalled; then
		failed=1
		echo "bench: name=fanout-stall subs=$n status=floor-failed"
		table+=("| fanout stall, $n subs | 64 | - | not run | failed | NA | - | - |")
		return
	fi
	st1=$tsm_rc
	[ "$st0" = 0 ] && st0=$st1
	status_of "$st0"
	if [ "$status" = ok ] && [ "$(field "$tsm" iters)" != 0 ] &&
		[ "$(field "$tsm0" iters)" != 0 ]; then
		ratio=$(ratio_of "$(field "$tsm" p99_us)" "$(field "$tsm0" p99_us)")
		eng=$(engine "$tsm")
	fi
	fratio=$(ratio_of "$(field "$raw" p99_us)" "$(field "$raw0" p99_us)")
	v=$(verdict "$ratio" "S1 <= 1.1")
	echo "bench: name=fanout-stall subs=$n size=64" \
		"p99_us=$(field_or "$tsm" p99_us)" \
		"p99_base_us=$(field_or "$tsm0" p99_us)" \
		"floor_p99_us=$(field "$raw" p99_us)" \
		"floor_p99_base_us=$(field "$raw0" p99_us) ratio=$ratio" \
		"target=S1<=1.1 verdict=$v floor_ratio=$fratio" \
		"p50_us=$(field_or "$tsm" p50_us)" \
		"p50_base_us=$(field_or "$tsm0" p50_us)" \
		"drops_stalled=$(field_or "$tsm" drops_stalled)" \
		"floor_drops_stalled=$(field "$raw" drops_stalled)" \
		"samples=$(field_or "$tsm" iters) latency=one-way" \
		"transport=$(field_or "$tsm" transport)" \
		"secure=$(field_or "$tsm" secure) status=$status"
	table+=("| fanout stall, $n subs: others' p99 (µs) stalled / not | 64 | $eng | $(field_or "$tsm" p99_us) / $(field_or "$tsm0" p99_us) (p50 $(field_or "$tsm" p50_us) / $(field_or "$tsm0" p50_us)) | $(field "$raw" p99_us) / $(field "$raw0" p99_us) (ratio $fratio) | $ratio | S1 <= 1.1 | $v |")
}

fanout_case() {
	local n count
	read -r base_n _ <<<"$fanout_subs"
	base_cpu=''
	count=$(per_round "$fanout_count")
	for n in $fanout_subs; do
		fanout_cost "$n" "$count"
	done
	fanout_stall "${BENCH_FANOUT_STALL_SUBS:-8}"
}

# ---- python: the same cases through the Python package, beside C ----

# python_case: a 64 B round trip and a 64 KiB stream in Python and in C
# (tsm_bench), in one run; the difference is the Python overhead.
python_case() {
	local lib=$PWD/$build_dir/libtsm py c pyline cline over
	py=$(command -v python3)
	local -a env=(env "LD_LIBRARY_PATH=$lib" "TSM_LIBRARY=$lib/libtsm.so"
		"PYTHONPATH=$PWD/bindings/python")
	cline=$(timeout "$case_timeout" "$build_dir/bench/tsm_bench" rt --size 64 \
		--iters 3000 --warmup 300 2>/dev/null | grep '^tsm:' | tail -n 1) || cline=
	pyline=$(timeout "$case_timeout" "${env[@]}" "$py" bench/py_bench.py rt \
		--size 64 --iters 3000 2>/dev/null | grep '^py:' | tail -n 1) || pyline=
	if [ -z "$cline" ] || [ -z "$pyline" ]; then
		failed=1
		echo "bench: name=python-rt status=failed"
		return
	fi
	c=$(field "$cline" p50_us)
	py=$(field "$pyline" p50_us)
	over=$(calc "($py - $c) / 2")
	echo "bench: name=python-rt size=64 p50_us=$py c_p50_us=$c" \
		"ratio=$(calc "$py / $c") overhead_us_per_msg=$over" \
		"note=two_python_processes_vs_two_c_processes"
	table+=("| python rt p50 | 64 | io_uring, insecure | $py | C: $c | $(calc "$py / $c") | - | overhead $over µs/msg |")
	cline=$(timeout "$case_timeout" "$build_dir/bench/tsm_bench" stream \
		--size 65536 --count 3000 2>/dev/null | grep '^tsm:' | tail -n 1) || cline=
	pyline=$(timeout "$case_timeout" "${env[@]}" "$(command -v python3)" \
		bench/py_bench.py stream --size 65536 --count 3000 2>/dev/null |
		grep '^py:' | tail -n 1) || pyline=
	if [ -z "$cline" ] || [ -z "$pyline" ]; then
		failed=1
		return
	fi
	echo "bench: name=python-stream size=65536 mb_per_s=$(field "$pyline" mb_per_s)" \
		"c_mb_per_s=$(field "$cline" mb_per_s)" \
		"ratio=$(calc "$(field "$pyline" mb_per_s) / $(field "$cline" mb_per_s)")"
	table+=("| python stream MB/s | 65536 | io_uring, insecure | $(field "$pyline" mb_per_s) | C: $(field "$cline" mb_per_s) | $(calc "$(field "$pyline" mb_per_s) / $(field "$cline" mb_per_s)") | - | - |")
}

# ---- fabric: libtsm over libfabric beside raw fi_tsend/fi_trecv ----

# fabric_median V...: the median of the numbers given.
fabric_median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# fabric_one PROVIDER URL_TEMPLATE SIZE ITERS TARGET: busy-poll round
# trips through libtsm and through the raw floor, same provider,
# alternating BENCH_ROUNDS times (each with its share of the iterations
# after a warm-up of a tenth as many, as raw_fabric takes, but at least
# 200: libtsm has buffers and caches to warm, the floor one buffer); the
# p50s are medians over the rounds. --secure (or TSM_BENCH_ARGS) reaches
# tsm_bench; the floor is plaintext either way.
# aead_bound SIZE FLOOR_US: with --secure, the lowest ratio a round trip
# of SIZE bytes can reach on this CPU when AES-256-GCM sealing and opening
# (each twice per round trip; bench/seal_cost in this run) come on top of
# the floor and nothing else does: (floor + AEAD) / floor. Up to 64 KiB a
# frame is sealed, sent and opened in turn; above, at the 64 KiB rate,
# sealing and opening are taken as perfectly overlapped (fragments in a
# pipeline), so it stays a true lower bound. Nothing without --secure.
aead_bound() {
	local size=$1 floor=$2 log="$build_dir/seal-bound.log"
	[ "$secure" = 1 ] || return 0
	[ -s "$log" ] || "$build_dir/bench/seal_cost" >"$log" 2>/dev/null || return 0
	awk -v size="$size" -v floor="$floor" '
		/cipher=aes-256-gcm/ {
			for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
			if (f["size"] + 0 >= size && (best == "" || f["size"] + 0 < best)) {
				best = f["size"] + 0; ns = f["seal_ns"] + f["open_ns"]
			}
			if (f["size"] + 0 == 65536) gbps = f["gb_per_s"] + 0
		}
		END {
			if (best != "") us = 2 * ns / 1000
			else if (gbps > 0) us = 2 * size / (gbps * 1000)
			else exit
			printf "%.2f", (floor + us) / floor
		}' "$log"
}

fabric_one() {
	local prov=$1 url=$2 size=$3 iters=$4 tgt=$5 tline rline t r ratio n bound
	local ts=() rs=() p99s=() transport=''
	n=$(((iters + rounds - 1) / rounds))
	for _ in $(seq "$rounds"); do
		rline=$(timeout "$case_timeout" "$build_dir/bench/raw_fabric" "$prov" \
			"$size" "$n" 2>/dev/null | grep '^raw_fabric:') || rline=
		tline=$(timeout "$case_timeout" "$build_dir/bench/tsm_bench" rt --busy \
			--size "$size" --iters "$n" --warmup $((n / 10 + 10 > 200 ? n / 10 + 10 : 200)) \
			--url "$url" "${tsm_extra[@]}" 2>/dev/null |
			grep '^tsm:' | tail -n 1) || tline=
		if [ -z "$rline" ] || [ -z "$tline" ]; then
			failed=1
			echo "bench: name=fabric provider=$prov size=$size status=failed" \
				"raw=$([ -n "$rline" ] && echo ok || echo failed)" \
				"libtsm=$([ -n "$tline" ] && echo ok || echo failed)"
			return
		fi
		ts+=("$(field "$tline" p50_us)")
		p99s+=("$(field "$tline" p99_us)")
		rs+=("$(field "$rline" p50_us)")
		transport=$(field "$tline" transport)
	done
	t=$(fabric_median "${ts[@]}")
	r=$(fabric_median "${rs[@]}")
	ratio=$(calc "$t / $r")
	bound=$(aead_bound "$size" "$r")
	echo "bench: name=fabric provider=$prov size=$size p50_us=$t" \
		"p99_us=$(fabric_median "${p99s[@]}") floor_p50_us=$r ratio=$ratio" \
		"target=$(compact "$tgt") verdict=$(verdict "$ratio" "$tgt")" \
		"transport=$transport mode=busy secure=$secure rounds=$rounds" \
		"iters=$((n * rounds))${bound:+ aead_bound=$bound}"
	table+=("| fabric rt $prov | $size | busy$([ "$secure" = 1 ] && echo ', secure') | $t | $r | $ratio | $tgt${bound:+ (AEAD alone: >= $bound)} | $(verdict "$ratio" "$tgt") |")
}

fabric_case() {
	if [ ! -x "$build_dir/bench/raw_fabric" ]; then
		echo "bench: name=fabric skipped reason=libtsm_built_without_libfabric"
		return
	fi
	fabric_one "tcp;ofi_rxm" "ofi+tcp://127.0.0.1:%d" 64 3000 "L2 <= 1.15"
	fabric_one "shm" "ofi+shm://tsmb%d" 64 3000 "L3 <= 1.5"
	fabric_one "tcp;ofi_rxm" "ofi+tcp://127.0.0.1:%d" 1048576 200 "L4 <= 1.2"
	fabric_one "shm" "ofi+shm://tsmb%d" 1048576 200 "L4 <= 1.2"
}

# ---- seal: what AEAD costs per frame (issue 4) ----

seal_case() {
	local line
	if ! "$build_dir/bench/seal_cost" >"$build_dir/seal.log" 2>&1; then
		failed=1
		echo "bench: name=seal status=failed"
		return
	fi
	while read -r line; do
		echo "bench: name=seal ${line#seal: }"
		table+=("| seal $(field "$line" cipher) | $(field "$line" size) | - |\
 seal $(field "$line" seal_ns) ns, open $(field "$line" open_ns) ns |\
 - | - | - | $(field "$line" gb_per_s) GB/s |")
	done <"$build_dir/seal.log"
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
	prio | prio-tbf) prio_case "$name" ;;
	deadline) for p in block drop_oldest; do deadline_case "$p"; done ;;
	fanout) fanout_case ;;
	python) python_case ;;
	seal) seal_case ;;
	fabric) fabric_case ;;
	esac
done

echo
echo "Round trips in µs (p50 / p99 / p99.9 / max); streams in messages/s" \
	"and MB/s; each the median over $rounds alternating rounds (max: the" \
	"maximum). ratio = libtsm / floor (round trips: lower is better;" \
	"streams: higher is better)."
case " ${names[*]} " in
*" prio"* | *" deadline "* | *" fanout "*)
	echo
	echo "prio/prio-tbf: urgent 64 B round trips (A -> B -> A, closed loop" \
		"at up to 1 kHz) while 1 MiB bulk floods A -> B; the floor is raw" \
		"TCP with two connections, naive raw TCP with one. deadline: counts" \
		"summed over rounds; late = handed over after tsm_msg_deadline" \
		"(B's clock). fanout: publisher CPU ns per message (growth vs the" \
		"first subscriber count, target <= linear); stall: pooled one-way" \
		"latency of subscribers 1..N-1 with subscriber 0 stalled / not." ;;
esac
echo
echo "| case | size (B) | engine | libtsm | raw floor | ratio | target | verdict |"
echo "|---|---:|---|---|---|---:|---|---|"
printf '%s\n' "${table[@]}"
exit $failed
