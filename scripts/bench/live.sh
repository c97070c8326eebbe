#!/usr/bin/env bash
# Live TAP forwarding: xdpemu against a plain C epoll forwarder (tap-forwarder.c) between the same two hosts.
#
# For each forwarder, in turns, RUNS times:
#   udp  small UDP frames (udp-blast.c: 18-byte payloads, 60-byte frames) from host 1 to host 2 for UDP_SECONDS;
#        CPU ns per forwarded frame = (utime+stime of the forwarder during the load) / frames it wrote.
#   tcp  iperf3 from host 1 to host 2 for TCP_SECONDS: Gbit/s received and the forwarder's CPU share.
# Forwarders: c (plain TAPs), xdpemu (--no-capture), xdpemu+cap (captures on, udp only), xdpemu-vnet
# (`"vnet_hdr": true` on both ports, TSO super-frames), all with one worker. The forwarder runs on CPU 0, the load
# on CPU 1. Scaling over workers (udp only): c-bidir, xdpemu-1w-bidir and xdpemu-2w-bidir (`--workers 2`) run
# unpinned, with a load in each direction at once (each port's TAP then has its own worker to read it).
# Prints a table of medians and the ratios xdpemu/c (CPU per frame) and xdpemu-vnet/c (TCP throughput).
#
# Usage (root): scripts/bench/live.sh     Environment: RUNS=3 UDP_SECONDS=5 TCP_SECONDS=5 (0: no TCP runs)
#   STRACE=1: count the forwarder's system calls per frame during the UDP load (strace -c; it slows the
#   forwarder, so the CPU figures of such a run mean nothing). KINDS="c xdpemu" limits the forwarders.
#   PERF_DIR=dir: sample the forwarder during each UDP load (perf record -e cpu-clock) into
#   dir/perf.<kind>.<run>.data, for `perf report -i ...` (needs perf; sampling adds a little CPU).
#   XDPEMU=.build-lp/release/xdpemu (build it with `swift build -c release` first)
# Creates only namespaces xdpemu-lp1/xdpemu-lp2 and TAPs lpa0/lpa1 (10.99.0.1/24, 10.99.0.2/24); removes them
# at the end, also on failure or Ctrl-C.
set -u

if [[ $(id -u) -ne 0 ]]; then
    echo "live.sh: needs root (TAPs and network namespaces); nothing done"
    exit 0
fi

cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
UDP_SECONDS=${UDP_SECONDS:-5}
TCP_SECONDS=${TCP_SECONDS:-5}
XDPEMU=${XDPEMU:-.build-lp/release/xdpemu}
NS1=xdpemu-lp1 NS2=xdpemu-lp2 TAP1=lpa0 TAP2=lpa1 IP1=10.99.0.1 IP2=10.99.0.2
WORK=$(mktemp -d /tmp/xdpemu-live-bench.XXXXXX)
FWD_PID=
TICK=$(getconf CLK_TCK)

for tool in iperf3 taskset cc python3 ip; do
    command -v $tool >/dev/null || { echo "live.sh: $tool is missing"; exit 1; }
done
[[ -x $XDPEMU ]] || { echo "live.sh: $XDPEMU not found (swift build -c release --scratch-path ...)"; exit 1; }

cleanup() {
    if [[ -n $FWD_PID ]] && kill -0 "$FWD_PID" 2>/dev/null; then
        kill -INT "$FWD_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$FWD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$FWD_PID" 2>/dev/null
    fi
    FWD_PID=
    for ns in $NS1 $NS2; do
        for pid in $(ip netns pids $ns 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    done
    ip netns del $NS1 2>/dev/null
    ip netns del $NS2 2>/dev/null
    ip link del $TAP1 2>/dev/null
    ip link del $TAP2 2>/dev/null
    true
}
trap 'cleanup; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

cc -O2 -o "$WORK/tap-forwarder" scripts/bench/tap-forwarder.c || exit 1
cc -O2 -o "$WORK/udp-blast" scripts/bench/udp-blast.c || exit 1
cc -O2 -o "$WORK/tap-forwarder-uring" scripts/bench/tap-forwarder-uring.c || exit 1

# The topology: two hosts behind ports lpa0/lpa1, redirected to each other through a devmap.
topology() {  # $1 = true|false (vnet_hdr)
    cat <<JSON
{
  "name": "lp-bench", "semantics": "4.18",
  "ports": [
    {"name": "$TAP1", "vnet_hdr": $1,
     "host": {"namespace": "$NS1", "interface": "$TAP1", "mac": "02:00:00:00:99:01", "ipv4": ["$IP1/24"]},
     "program": {"type": "redirect_map", "map": "fwd", "key": {"kind": "constant", "value": 0}}},
    {"name": "$TAP2", "vnet_hdr": $1,
     "host": {"namespace": "$NS2", "interface": "$TAP2", "mac": "02:00:00:00:99:02", "ipv4": ["$IP2/24"]},
     "program": {"type": "redirect_map", "map": "fwd", "key": {"kind": "constant", "value": 1}}}
  ],
  "maps": [{"name": "fwd", "type": "devmap", "max_entries": 2, "entries": {"0": "$TAP2", "1": "$TAP1"}}]
}
JSON
}
topology false >"$WORK/plain.json"
topology true >"$WORK/vnet.json"

wait_for() {  # $1 = file, $2 = pattern: up to 60 s
    for _ in $(seq 600); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$FWD_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# The CPUs forwarder $1 may run on: CPU 0, or every CPU for the -bidir kinds.
cpus_of() { [[ $1 == *-bidir ]] && echo "0-$(($(nproc) - 1))" || echo 0; }

# Starts forwarder $1 (c, xdpemu, xdpemu+cap, xdpemu-vnet) on CPU 0 with both hosts configured.
start() {
    local kind=$1
    : >"$WORK/out"
    case $kind in
    c | c-bidir | c-uring*)
        # c-uring, c-uring-rw, c-uring-unlinked-fixed...: tap-forwarder-uring with the options named.
        local forwarder=("$WORK/tap-forwarder") option
        if [[ $kind == c-uring* ]]; then
            forwarder=("$WORK/tap-forwarder-uring")
            for option in $(tr - ' ' <<<"${kind#c-uring}"); do forwarder+=("--$option"); done
        fi
        taskset -c "$(cpus_of "$kind")" "${forwarder[@]}" $TAP1 $TAP2 >"$WORK/out" 2>"$WORK/err" &
        FWD_PID=$!
        wait_for "$WORK/out" ready || { echo "tap-forwarder failed: $(cat "$WORK/err")"; return 1; }
        local i=0
        for pair in "$NS1 $TAP1 $IP1" "$NS2 $TAP2 $IP2"; do
            set -- $pair
            ip netns add "$1" || return 1
            ip link set "$2" netns "$1" || return 1
            ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
            ip -n "$1" link set "$2" address 02:00:00:00:99:0$((++i))
            ip -n "$1" addr add "$3/24" dev "$2"
            ip -n "$1" link set lo up
            ip -n "$1" link set "$2" up || return 1
        done
        ;;
    xdpemu | xdpemu+cap | xdpemu-vnet | xdpemu-write | xdpemu-1w-bidir | xdpemu-2w-bidir)
        local args=(--no-capture --workers 1) topo=$WORK/plain.json
        [[ $kind == xdpemu-2w-bidir ]] && args=(--no-capture --workers 2)
        [[ $kind == xdpemu+cap ]] && args=(--capture "$WORK/capture" --workers 1)
        [[ $kind == xdpemu-write ]] && args+=(--no-io-uring)
        [[ $kind == xdpemu-vnet ]] && topo=$WORK/vnet.json
        rm -rf "$WORK/capture" "$WORK/stats.json"
        taskset -c "$(cpus_of "$kind")" "$XDPEMU" run "$topo" "${args[@]}" --stats "$WORK/stats.json" --state-dir "$WORK/state" \
            >"$WORK/out" 2>"$WORK/err" &
        FWD_PID=$!
        wait_for "$WORK/out" "is live" || { echo "xdpemu failed: $(cat "$WORK/err")"; return 1; }
        ;;
    esac
    ip netns exec $NS1 ping -c 1 -W 2 $IP2 >/dev/null || { echo "$kind: no ping through"; return 1; }
}

# Stops the forwarder; FRAMES = the frames it wrote to the TAPs.
stop() {
    kill -INT "$FWD_PID"
    wait "$FWD_PID" 2>/dev/null
    FWD_PID=
    if [[ -s $WORK/stats.json ]]; then
        FRAMES=$(python3 -c 'import json,sys; print(sum(p["tx"] for p in json.load(open(sys.argv[1]))["ports"]))' \
            "$WORK/stats.json")
        rm -f "$WORK/stats.json"
    else
        FRAMES=$(awk '$1 == "read" { print $5 + $6 }' "$WORK/out")
    fi
    cleanup
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
user_ticks() { awk '{ print $14 }' "/proc/$1/stat"; }
# Voluntary context switches: how often the forwarder slept in epoll_wait.
sleeps() { awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$1/status"; }

# udp KIND: RESULT = "kpps ns_per_frame user_ns_per_frame"
udp() {
    RESULT="- -"
    start "$1" || { cleanup; return; }
    local t0 t1 u0 u1 s0 s1
    t0=$(cpu_ticks "$FWD_PID") u0=$(user_ticks "$FWD_PID") s0=$(sleeps "$FWD_PID")
    local tracer= sampler=
    if [[ -n ${PERF_DIR:-} ]]; then
        mkdir -p "$PERF_DIR"
        perf record -q -e cpu-clock -F 4000 -p "$FWD_PID" -o "$PERF_DIR/perf.$1.$run.data" 2>/dev/null &
        sampler=$!
        sleep 0.3
    fi
    if [[ -n ${STRACE:-} ]]; then
        strace -c -f -p "$FWD_PID" -o "$WORK/strace" 2>/dev/null &
        tracer=$!
        sleep 0.5
    fi
    if [[ $1 == *-bidir ]]; then
        ip netns exec $NS2 "$WORK/udp-blast" $IP1 "$UDP_SECONDS" >"$WORK/blast2" &
        local back=$!
        ip netns exec $NS1 "$WORK/udp-blast" $IP2 "$UDP_SECONDS" >"$WORK/blast"
        wait $back
    else
        ip netns exec $NS1 taskset -c 1 "$WORK/udp-blast" $IP2 "$UDP_SECONDS" >"$WORK/blast"
    fi
    sleep 0.2
    t1=$(cpu_ticks "$FWD_PID") u1=$(user_ticks "$FWD_PID") s1=$(sleeps "$FWD_PID")
    if [[ -n $tracer ]]; then kill -INT $tracer; wait $tracer; fi
    if [[ -n $sampler ]]; then kill -INT $sampler; wait $sampler; fi
    stop
    if [[ -n $tracer ]]; then
        echo "  $1: system calls during the load (strace -c), $FRAMES frames forwarded:" >&2
        sed -n '1,/^-.*-$/d; /^-.*-$/q; p' "$WORK/strace" | awk -v f="$FRAMES" \
            '{ printf "    %-16s %10d calls  %.2f per frame\n", $NF, $4, $4 / (f > 0 ? f : 1) }' >&2
    fi
    echo "  $1: udp-blast $(cat "$WORK/blast"), forwarded $FRAMES, forwarder CPU $((t1 - t0)) ticks, slept $((s1 - s0)) times" >&2
    RESULT=$(python3 -c "t=($t1-$t0)*1e9/$TICK; u=($u1-$u0)*1e9/$TICK; f=max(${FRAMES:-0},1)
print('%.0f %.0f %.0f' % (f/$UDP_SECONDS/1e3, t/f, u/f))")
}

# tcp KIND: RESULT = "gbit_per_s cpu_percent"
tcp() {
    RESULT="- -"
    start "$1" || { cleanup; return; }
    ip netns exec $NS2 taskset -c 1 iperf3 -s -1 -B $IP2 >/dev/null 2>&1 &
    sleep 0.5
    local t0 t1 gbps
    t0=$(cpu_ticks "$FWD_PID")
    ip netns exec $NS1 taskset -c 1 iperf3 -c $IP2 -t "$TCP_SECONDS" -J >"$WORK/iperf.json" 2>/dev/null
    t1=$(cpu_ticks "$FWD_PID")
    gbps=$(python3 -c 'import json,sys
try: print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))
except Exception: print("-")' "$WORK/iperf.json")
    stop
    RESULT=$(python3 -c "print('$gbps %.0f' % (($t1-$t0)*100.0/$TICK/$TCP_SECONDS))")
}

declare -A RESULTS
for run in $(seq "$RUNS"); do
    for kind in ${KINDS:-c xdpemu xdpemu+cap xdpemu-vnet}; do
        udp $kind; RESULTS[$kind,udp]+="$RESULT;"
        echo "run $run $kind udp: kpps ns/frame user-ns/frame = $RESULT" >&2
    done
    for kind in ${KINDS:-c xdpemu xdpemu-vnet}; do
        [[ $kind == xdpemu+cap || -n ${STRACE:-} || $TCP_SECONDS == 0 ]] && continue
        tcp $kind; RESULTS[$kind,tcp]+="$RESULT;"
        echo "run $run $kind tcp: Gbit/s cpu% = $RESULT" >&2
    done
done

python3 - "$RUNS" <<PY
import statistics
raw = {$(for k in "${!RESULTS[@]}"; do printf '"%s": "%s", ' "$k" "${RESULTS[$k]}"; done)}
def med(key, i):
    vals = [float(r.split()[i]) for r in raw.get(key, "").split(";") if r and r.split()[i] != "-"]
    return statistics.median(vals) if vals else float("nan")
print("medians of %s runs (forwarder on CPU 0, load on CPU 1)" % __import__("sys").argv[1])
print("| forwarder | UDP kpps | CPU ns/frame | of which user | TCP Gbit/s | forwarder CPU % during TCP |")
print("|---|---|---|---|---|---|")
for k in ["c"] + sorted({key.split(",")[0] for key in raw if key.startswith("c-")}) + ["xdpemu", "xdpemu-write", "xdpemu+cap", "xdpemu-vnet", "xdpemu-1w-bidir", "xdpemu-2w-bidir"]:
    if k + ",udp" not in raw: continue
    tcp = "| %.2f | %.0f |" % (med(k + ",tcp", 0), med(k + ",tcp", 1)) if k + ",tcp" in raw else "| — | — |"
    print("| %s | %.0f | %.0f | %.0f %s" % (k, med(k + ",udp", 0), med(k + ",udp", 1), med(k + ",udp", 2), tcp))
for k in sorted({key.split(",")[0] for key in raw if key.startswith("c-")}):
    if k + ",udp" in raw: print("ratio CPU ns/frame %s / c: %.2f" % (k, med(k + ",udp", 1) / med("c,udp", 1)))
if "xdpemu-write,udp" in raw:
    print("ratio CPU ns/frame xdpemu-write / c: %.2f" % (med("xdpemu-write,udp", 1) / med("c,udp", 1)))
if "xdpemu,udp" in raw and "c,udp" in raw:
    print("ratio CPU ns/frame xdpemu / c: %.2f (target <= 1)" % (med("xdpemu,udp", 1) / med("c,udp", 1)))
if "xdpemu-2w-bidir,udp" in raw and "xdpemu-1w-bidir,udp" in raw:
    print("ratio UDP kpps, both directions, 2 workers / 1 worker: %.2f" % (med("xdpemu-2w-bidir,udp", 0) / med("xdpemu-1w-bidir,udp", 0)))
if "xdpemu-vnet,tcp" in raw and "c,tcp" in raw:
    print("ratio TCP Gbit/s xdpemu-vnet / c: %.2f (target >= 4)" % (med("xdpemu-vnet,tcp", 0) / med("c,tcp", 0)))
PY
