#!/usr/bin/env bash
# bench/soak.sh - the soak run (issue 9 item 6): `bench/run.sh soak [MIN]`
# calls it; it also runs on its own.
#
# usage: bench/soak.sh [minutes]      (default 10; fractions allowed: 2.5)
#
# A secure publisher (tsm_soak pub, bench/soak.c) streams a mixed workload
# to four subscribers: small urgent messages (priority 0, 256 B, deadline
# 50 ms, 200/s) and large bulk ones (priority 6, 256 KiB fragmented,
# deadline 3 s, 20/s). Meanwhile, periodically:
#   - partition: the subscriber "far" sits in its own network namespace
#     behind a veth pair whose host end is set down (alternately 12 s,
#     longer than the 10 s session timeout, so the session is lost and
#     comes back, and 3 s, which TCP rides out); without netns support
#     (not root, no iproute2) "far" is killed and restarted instead;
#   - churn: the subscriber "churn" is killed with SIGKILL and restarted;
#   - certificate rotation: a new certificate for the publisher's identity
#     is issued (tests/support/pki.sh issue) and swapped in atomically;
#     the publisher re-reads it every 500 ms (security.reloads);
#   - key updates: every node lowers the AEAD usage limit to 1000 frames
#     per key (test hook), so every lane is rekeyed many times
#     (security.rekeys).
# Every SOAK_INTERVAL seconds it samples the RSS (VmRSS) and open
# descriptors (/proc/PID/fd) of the publisher and of the long-lived
# subscribers, the drops by reason (the nodes' drop.* counters) and the
# p99 latency of that interval per kind, and prints one table row. At the
# end: a verdict on RSS and descriptors (flat = the last quarter's maximum
# within 10 % plus a small slack of the first quarter's, after a warm-up
# that covers the first, long, partition: SOAK_WARMUP seconds, by default
# 10 + 12 + 2 intervals; a run must last three warm-ups),
# the integrity of what arrived (no duplicate, corrupt or out-of-order
# message), one "bench: name=soak ..." line, and exit 0 only if both hold.
#
# environment: BUILD_DIR (default <repo>/build), SOAK_INTERVAL (5 s),
#   SOAK_WARMUP (10 + 12 + 2 intervals),
#   SOAK_PARTITION_EVERY (30 s), SOAK_CHURN_EVERY (25 s),
#   SOAK_ROTATE_EVERY (20 s), SOAK_REKEY_FRAMES (1000),
#   SOAK_RSS_SLACK_MB (8), SOAK_FD_SLACK (2), KEEP_WORK=1 (keep the logs)
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
minutes=${1:-10}
interval=${SOAK_INTERVAL:-5}
part_every=${SOAK_PARTITION_EVERY:-30}
churn_every=${SOAK_CHURN_EVERY:-25}
rotate_every=${SOAK_ROTATE_EVERY:-20}
rekey=${SOAK_REKEY_FRAMES:-1000}
rss_slack=${SOAK_RSS_SLACK_MB:-8}
fd_slack=${SOAK_FD_SLACK:-2}
case $minutes in '' | *[!0-9.]*) echo "soak: minutes must be a number" >&2; exit 2 ;; esac
duration=$(awk "BEGIN { printf \"%d\", $minutes * 60 }")
# The first partition comes early and is a long one; the warm-up covers it
# (what a lost session leaves allocated is the plateau, not growth), so
# the quarters compared both hold whole cycles of events.
first_part=$((part_every / 2 < 10 ? part_every / 2 : 10))
warmup=${SOAK_WARMUP:-$((first_part + 12 + 2 * interval))}
[ "$duration" -ge $((3 * warmup)) ] || {
	echo "soak: at least $((3 * warmup)) s (three times the $warmup s warm-up) for a verdict" >&2
	exit 2
}

work=$(mktemp -d "${TMPDIR:-/tmp}/tsm-soak.XXXXXX")
declare -A pid_of=()
ns='' veth=''
say() { printf 'soak: %s\n' "$*"; }

cleanup() {
	local n
	for n in "${!pid_of[@]}"; do
		kill -CONT "${pid_of[$n]}" 2>/dev/null
		kill -9 "${pid_of[$n]}" 2>/dev/null
	done
	[ -n "$ns" ] && ip netns del "$ns" 2>/dev/null
	[ -n "$veth" ] && ip link del "$veth" 2>/dev/null
	if [ -n "${KEEP_WORK:-}" ]; then say "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build, PKI ----
if [ ! -f "$build_dir/build.ninja" ]; then
	meson setup "$build_dir" "$root" >&2 || exit 1
fi
ninja -C "$build_dir" bench/tsm_soak >&2 || { say "tsm_soak does not build"; exit 1; }
bin=$build_dir/bench/tsm_soak
pki=$("$root/tests/support/pki.sh" "$work/pki") || { say "pki.sh failed"; exit 1; }
printf '%s\n' 'allow publish spiffe://td-a.test/** soak/**' \
	'allow subscribe spiffe://td-a.test/** soak/**' >"$work/policy.txt"
trust="td-a.test=$pki/bundle-a.pem"
cp "$pki/a-pub.chain.pem" "$work/pub.pem"
cp "$pki/a-pub.key" "$work/pub.key"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# ---- network namespace for the partitioned subscriber ----
far_ip=127.0.0.1 far_exec=()
netns_setup() {
	local x=$(($$ % 200 + 20))
	command -v ip >/dev/null && [ "$(id -u)" = 0 ] || return 1
	ns=tsm-soak-$$
	veth=tsk$$h
	ip netns add "$ns" 2>/dev/null || { ns=''; return 1; }
	ip link add "$veth" type veth peer name tsk$$n 2>/dev/null || return 1
	ip link set tsk$$n netns "$ns" &&
		ip addr add "10.213.$x.1/24" dev "$veth" &&
		ip link set "$veth" up &&
		ip netns exec "$ns" ip addr add "10.213.$x.2/24" dev tsk$$n &&
		ip netns exec "$ns" ip link set tsk$$n up &&
		ip netns exec "$ns" ip link set lo up || return 1
	far_ip=10.213.$x.1
	far_exec=(ip netns exec "$ns")
}
if netns_setup; then
	partition=netns
	say "partitions: subscriber 'far' in netns $ns, link $veth set down and up"
else
	partition=restart
	[ -n "$ns" ] && ip netns del "$ns" 2>/dev/null
	ns='' veth=''
	say "partitions: no network namespaces here (root and iproute2 needed): 'far' is killed and restarted instead"
fi

common=(--trust "$trust" --policy "$work/policy.txt" --interval-ms $((interval * 1000))
	--rekey-frames "$rekey")
start_node() { # NAME ARGS...
	local n=$1
	shift
	"$@" >>"$work/$n.out" 2>>"$work/$n.err" &
	pid_of[$n]=$!
}
listen=(--listen "tcp://127.0.0.1:$port")
[ "$far_ip" != 127.0.0.1 ] && listen+=(--listen "tcp://$far_ip:$port")
start_node pub "$bin" pub --name pub --cert "$work/pub.pem" --key "$work/pub.key" \
	"${common[@]}" "${listen[@]}"
start_sub() { # NAME URL-HOST [exec prefix...]
	local n=$1 host=$2
	shift 2
	start_node "$n" "$@" "$bin" sub --name "$n" --cert "$pki/a-sub.chain.pem" \
		--key "$pki/a-sub.key" "${common[@]}" \
		--connect "tcp://$host:$port#spiffe://td-a.test/pub"
}
sleep 0.5
start_sub a 127.0.0.1
start_sub b 127.0.0.1
start_sub far "$far_ip" "${far_exec[@]}"
start_sub churn 127.0.0.1

# ---- sampling ----
kb() { sed -nE "s/^$2:[[:space:]]+([0-9]+) kB/\\1/p" "/proc/$1/status" 2>/dev/null; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
last() { grep '^soak-stat' "$work/$1.out" 2>/dev/null | tail -n 1; }
val() { local v=" $1 "; v=${v#* "$2"=}; [ "$v" = " $1 " ] && { echo 0; return; }; echo "${v%% *}"; }
# Counters of restarted subscribers start again from 0: what their earlier
# lives last reported is carried, so that the sums only grow.
declare -A carry=()
carry_counters() { # NAME: before NAME is restarted
	local k l
	l=$(last "$1")
	for k in delivered drop.deadline_expired drop.queue_full drop.peer_lost; do
		carry[$k]=$(( ${carry[$k]:-0} + $(val "$l" "$k") ))
	done
	: >"$work/$1.out.new" && cat "$work/$1.out" >>"$work/$1.lives" && mv "$work/$1.out.new" "$work/$1.out"
}
sum_subs() { # KEY: over every subscriber's latest line, plus carried
	local n s=${carry[$1]:-0} v
	for n in a b far churn; do
		v=$(val "$(last "$n")" "$1")
		s=$(awk "BEGIN { printf \"%d\", $s + ${v:-0} }")
	done
	echo "$s"
}
max_subs() {
	local n m=0 v
	for n in a b far churn; do
		v=$(val "$(last "$n")" "$1")
		m=$(awk "BEGIN { print ($m > ${v:-0}) ? $m : ${v:-0} }")
	done
	echo "$m"
}

samples=$work/samples.tsv
printf 't\tpub_rss\tpub_fd\tsub_rss\tsub_fd\n' >"$samples"
hdr=$(printf '%6s %8s %6s %8s %6s %5s %9s %7s %7s %7s %6s %9s %9s %6s %7s  %s' \
	t pub_rssM pub_fd subs_rssM sub_fd sess delivered dl_exp q_full p_lost other \
	p99_urg_ms p99_blk_ms rekeys reloads event)
say "running for $duration s: sample every $interval s; partition ($partition) every $part_every s," \
	"churn every $churn_every s, certificate rotation every $rotate_every s, rekey every $rekey frames"
echo "$hdr"

events=''
gen=0
part_until=0 part_long=1
t0=$SECONDS
next_sample=$((t0 + interval)) next_part=$((t0 + first_part))
next_churn=$((t0 + churn_every)) next_rotate=$((t0 + rotate_every))
end=$((t0 + duration))

rotate() {
	gen=$((gen + 1))
	"$root/tests/support/pki.sh" "$work/pki" issue "soak-pub-$gen" spiffe://td-a.test/pub 3600 \
		>/dev/null 2>&1 || { events+="rotate-FAILED "; return; }
	cp "$pki/soak-pub-$gen.key" "$work/pub.key.new" && mv "$work/pub.key.new" "$work/pub.key"
	cp "$pki/soak-pub-$gen.chain.pem" "$work/pub.pem.new" && mv "$work/pub.pem.new" "$work/pub.pem"
	events+="cert-rotated "
}

part_start() {
	local secs=12
	[ "$part_long" = 1 ] || secs=3
	part_long=$((1 - part_long))
	if [ "$partition" = netns ]; then
		ip link set "$veth" down
		part_until=$((SECONDS + secs))
		events+="partition-${secs}s "
	else
		kill -9 "${pid_of[far]}" 2>/dev/null
		wait "${pid_of[far]}" 2>/dev/null
		carry_counters far
		start_sub far "$far_ip"
		events+="far-restarted "
	fi
}

while [ "$SECONDS" -lt "$end" ]; do
	now=$SECONDS
	if [ "$part_until" -gt 0 ] && [ "$now" -ge "$part_until" ]; then
		ip link set "$veth" up
		part_until=0
		events+="healed "
	fi
	if [ "$now" -ge "$next_part" ] && [ "$part_until" = 0 ]; then
		part_start
		next_part=$((now + part_every))
	fi
	if [ "$now" -ge "$next_churn" ]; then
		kill -9 "${pid_of[churn]}" 2>/dev/null
		wait "${pid_of[churn]}" 2>/dev/null
		carry_counters churn
		start_sub churn 127.0.0.1
		events+="churn-killed+restarted "
		next_churn=$((now + churn_every))
	fi
	if [ "$now" -ge "$next_rotate" ]; then
		rotate
		next_rotate=$((now + rotate_every))
	fi
	for n in pub a b; do
		kill -0 "${pid_of[$n]}" 2>/dev/null || { say "node $n died: $(tail -n 5 "$work/$n.err")"; exit 1; }
	done
	if [ "$now" -ge "$next_sample" ]; then
		next_sample=$((next_sample + interval))
		p=${pid_of[pub]}
		prss=$(kb "$p" VmRSS) pfd=$(fds "$p")
		srss=0 sfd=0
		for n in a b; do
			v=$(kb "${pid_of[$n]}" VmRSS)
			[ "${v:-0}" -gt "$srss" ] && srss=$v
			v=$(fds "${pid_of[$n]}")
			[ "$v" -gt "$sfd" ] && sfd=$v
		done
		pl=$(last pub)
		printf '%d\t%d\t%d\t%d\t%d\n' $((now - t0)) "$prss" "$pfd" "$srss" "$sfd" >>"$samples"
		drops_other=$(($(val "$pl" drop.closed) + $(val "$pl" drop.bad_metadata) + \
			$(val "$pl" drop.unknown_topic)))
		printf '%6d %8.1f %6d %8.1f %6d %5d %9d %7d %7d %7d %6d %9.2f %9.2f %6d %7d  %s\n' \
			$((now - t0)) "$(awk "BEGIN { print $prss / 1024 }")" "$pfd" \
			"$(awk "BEGIN { print $srss / 1024 }")" "$sfd" \
			"$(val "$pl" ctx.sessions)" "$(sum_subs delivered)" \
			$(($(val "$pl" drop.deadline_expired) + $(sum_subs drop.deadline_expired))) \
			$(($(val "$pl" drop.queue_full) + $(sum_subs drop.queue_full))) \
			$(($(val "$pl" drop.peer_lost) + $(sum_subs drop.peer_lost))) \
			"$drops_other" "$(max_subs p99_urgent_ms)" "$(max_subs p99_bulk_ms)" \
			"$(val "$pl" security.rekeys)" "$(val "$pl" security.reloads)" "${events:--}"
		events=''
	fi
	sleep 0.2
done
[ "$part_until" -gt 0 ] && ip link set "$veth" up

# ---- the end: stop the nodes (their last lines), then judge ----
for n in pub a b far churn; do kill -TERM "${pid_of[$n]}" 2>/dev/null; done
for n in pub a b far churn; do wait "${pid_of[$n]}" 2>/dev/null; unset "pid_of[$n]"; done

integrity_bad=0
for n in a b far churn; do
	l=$(last "$n")
	for k in dup corrupt order; do
		v=$(val "$l" "$k")
		[ "${v:-0}" = 0 ] || { say "INTEGRITY: subscriber $n: $k=$v"; integrity_bad=1; }
	done
done
# Churn's counters restart with it: its earlier lives are checked too.
if cat "$work"/*.lives 2>/dev/null | grep -E '^soak-stat' | grep -Eq ' (dup|corrupt|order)=[1-9]'; then
	say "INTEGRITY: a restarted subscriber saw a duplicate, corrupt or out-of-order message"
	integrity_bad=1
fi

verdict=$(awk -v rs="$rss_slack" -v fs="$fd_slack" -v wu="$warmup" -F'\t' '
	NR == 1 { next }
	{ n++; t[n] = $1; pr[n] = $2; pf[n] = $3; sr[n] = $4; sf[n] = $5; if ($1 <= wu) w = n }
	function qmax(a, from, to,   i, m) { m = 0; for (i = from; i <= to; i++) if (a[i] > m) m = a[i]; return m }
	END {
		if (w < 1) w = 1                        # warm-up samples skipped
		if (n - w < 4) { print "TOO-SHORT samples=" n " warmup=" w; exit }
		m = n - w; q = int(m / 4); if (q < 1) q = 1
		f1 = w + 1; f2 = w + q; l1 = n - q + 1; l2 = n
		ok = 1
		split("pub_rss pub_fd sub_rss sub_fd", name, " ")
		for (k = 1; k <= 4; k++) {
			if (k == 1) { a1 = qmax(pr, f1, f2); a4 = qmax(pr, l1, l2); sl = rs * 1024 }
			if (k == 2) { a1 = qmax(pf, f1, f2); a4 = qmax(pf, l1, l2); sl = fs }
			if (k == 3) { a1 = qmax(sr, f1, f2); a4 = qmax(sr, l1, l2); sl = rs * 1024 }
			if (k == 4) { a1 = qmax(sf, f1, f2); a4 = qmax(sf, l1, l2); sl = fs }
			lim = a1 * 1.10 + sl
			flat = a4 <= lim
			if (!flat) ok = 0
			unit = (k % 2) ? 1024 : 1
			out = out sprintf(" %s_first=%g %s_last=%g %s_limit=%g %s=%s", name[k], a1 / unit,
			                  name[k], a4 / unit, name[k], lim / unit, name[k], flat ? "flat" : "GROWING")
		}
		printf "%s samples=%d warmup=%d quarter=%d%s\n", ok ? "FLAT" : "GROWING", n, w, q, out
	}' "$samples")

pl=$(grep '^soak-stat' "$work/pub.out" | tail -n 1)
echo
say "RSS in MiB, descriptors by count; pub = the publisher, subs = max of the long-lived subscribers a and b;"
say "drops summed over all nodes (dl_exp = deadline expired, q_full = queue full, p_lost = peer lost);"
say "p99 = worst subscriber's p99 publish-to-receive latency of the interval."
say "verdict: $verdict"
say "integrity: $([ "$integrity_bad" = 0 ] && echo ok || echo FAILED) (dup, corrupt, order over every subscriber)"
status=ok
case $verdict in FLAT*) ;; *) status=failed ;; esac
[ "$integrity_bad" = 0 ] || status=failed
echo "bench: name=soak minutes=$minutes partition=$partition ${verdict#* }" \
	"urgent_published=$(val "$pl" urgent_published) bulk_published=$(val "$pl" bulk_published)" \
	"rekeys=$(val "$pl" security.rekeys) reloads=$(val "$pl" security.reloads)" \
	"established=$(val "$pl" session.established) integrity=$([ "$integrity_bad" = 0 ] && echo ok || echo failed)" \
	"verdict=$(cut -d' ' -f1 <<<"$verdict") status=$status"
[ "$status" = ok ]
