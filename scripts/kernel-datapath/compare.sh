#!/usr/bin/env bash
# The datapath differential: each case of cases.txt runs through the running kernel and
# through `xdpemu replay`, and the frames that come out must be the same, port by port, byte
# for byte, in order.
#
#   sudo scripts/kernel-datapath/compare.sh [--xdpemu PATH] [--semantics modern|4.18] [CASE...]
#
# Kernel side, per case, in a fresh network namespace (unique name, deleted afterwards):
# veth pairs in0/in0p, t1/t1p ... t4/t4p (t3 down, t4 with MTU 500), IPv6 off so that
# nothing but the trace moves; xdp_redirect.bpf.c compiled for the case (clang -O2 -g -target
# bpf) and attached natively to in0 (`ip link set in0 xdpdrv obj`), an XDP_PASS program on
# every peer (veth drops redirected frames otherwise), the pinned devmap filled by `kxdp
# update`, the trace sent into in0p with AF_PACKET and what comes out captured (kxdp run).
# Emulator side: the same ports, map and program as a topology, replayed on the same trace.
# With --semantics 4.18 only the cases marked "same" run (those where the profiles agree).
# Exit code: 0 all identical, 1 some case differs, 2 setup problem (no root, no clang).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
xdpemu=${XDPEMU:-$repo/.build/debug/xdpemu}
clang=${CLANG:-/opt/swift/usr/bin/clang}
semantics=modern
while [ $# -gt 0 ]; do
    case $1 in
        --xdpemu) xdpemu=$2; shift 2 ;;
        --semantics) semantics=$2; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        -*) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "compare.sh: needs root (network namespaces, bpf)" >&2; exit 2; }
[ -x "$clang" ] || { echo "compare.sh: no clang at $clang (set CLANG)" >&2; exit 2; }
[ -x "$xdpemu" ] || { echo "compare.sh: no xdpemu binary at $xdpemu" >&2; exit 2; }
case $semantics in 4.18|modern) ;; *) echo "compare.sh: --semantics is 4.18 or modern" >&2; exit 2 ;; esac

work=$(mktemp -d /tmp/xdpemu-kdatapath.XXXXXX)
ns=xdpemu-kdp-$$
cleanup() { ip netns del "$ns" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
cc -O2 -Wall -o "$work/kxdp" "$here/kxdp.c" || { echo "compare.sh: cannot build kxdp" >&2; exit 2; }
bpf() { "$clang" -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu "$@" -c "$here/xdp_redirect.bpf.c"; }
bpf -DPASS_ONLY -o "$work/pass.o" || { echo "compare.sh: cannot compile the BPF program" >&2; exit 2; }

ports="in0 t1 t2 t3 t4"
differs=0
ran=0
while read -r name map key flags entries same; do
    case $name in ''|'#'*) continue ;; esac
    if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then continue; fi
    if [ "$semantics" = 4.18 ] && [ "$same" != same ]; then continue; fi
    dir=$work/$name
    mkdir -p "$dir/out"
    defs="-DFLAGS=${flags}ULL"
    if [ "$key" = dst ]; then defs="$defs -DKEY_FROM_DST_MAC"; else defs="$defs -DKEY=$key"; fi
    [ "$map" = devmap_hash ] && defs="$defs -DHASH"
    case $entries in */*) defs="$defs -DVALUE8" ;; esac
    bpf $defs -o "$dir/redirect.o" || { echo "== $name: cannot compile" >&2; differs=1; continue; }

    # The kernel.
    fills=""
    for e in ${entries//,/ }; do
        port=${e#*:}
        fills="$fills \"\$kxdp\" update /sys/fs/bpf/tc/globals/kxdp_map ${e%%:*} ${port%%/*} $([ "$port" != "${port#*/}" ] && echo "${port#*/}") &&"
    done
    ip netns add "$ns" || { echo "compare.sh: cannot create namespace $ns" >&2; exit 2; }
    kxdp=$work/kxdp dir=$dir pass=$work/pass.o ip netns exec "$ns" sh -c "
        set -e
        sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        mount -t bpf bpf /sys/fs/bpf
        for d in $ports; do ip link add \$d type veth peer name \${d}p; done
        ip link set t4 mtu 500
        for d in $ports; do
            ip link set \${d}p xdpdrv obj \"\$pass\" sec xdp
            ip link set \${d}p up
            [ \$d = t3 ] || ip link set \$d up
        done
        ip link set in0 xdpdrv obj \"\$dir/redirect.o\" sec xdp
        $fills true
        \"\$kxdp\" run \"\$dir/trace.pcap\" in0 in0p t1 t2 t3 t4 > \"\$dir/kernel.txt\"
    " 2>"$dir/kernel.err"
    krc=$?
    ip netns del "$ns"
    if [ $krc != 0 ]; then echo "== $name: kernel side failed: $(tr '\n' ' ' < "$dir/kernel.err")"; differs=1; continue; fi

    # The emulator.
    if [ "$key" = dst ]; then
        selector='{"kind": "dst_mac", "miss": "drop", "table": {"02:00:00:00:00:00": 0, "02:00:00:00:00:01": 1, "02:00:00:00:00:02": 2, "02:00:00:00:00:03": 3, "02:00:00:00:00:04": 4, "02:00:00:00:00:05": 5}}'
    else
        selector="{\"kind\": \"constant\", \"value\": $key}"
    fi
    list=""
    for e in ${entries//,/ }; do
        port=${e#*:}
        program=""
        [ "$port" != "${port#*/}" ] && program=", \"program\": {\"type\": \"${port#*/}\"}"
        list="$list{\"key\": ${e%%:*}, \"port\": \"${port%%/*}\"$program}, "
    done
    cat > "$dir/topology.json" <<JSON
{
    "name": "kdp-$name", "semantics": "$semantics",
    "ports": [
        {"name": "in0", "program": {"type": "redirect_map", "map": "m", "key": $selector, "flags": $flags}},
        {"name": "t1"}, {"name": "t2"}, {"name": "t3", "up": false}, {"name": "t4", "mtu": 500}
    ],
    "maps": [{"name": "m", "type": "$map", "max_entries": 8, "entries": [${list%, }]}]
}
JSON
    if ! "$xdpemu" replay "$dir/topology.json" --in "in0=$dir/trace.pcap" --out "$dir/out" --quiet 2>"$dir/x.err"; then
        echo "== $name: xdpemu failed: $(tr '\n' ' ' < "$dir/x.err")"; differs=1; continue
    fi
    {
        "$work/kxdp" dump "$dir/out/in0.pass.pcap" in0.pass
        "$work/kxdp" dump "$dir/out/in0.egress.pcap" in0.egress
        for t in t1 t2 t3 t4; do "$work/kxdp" dump "$dir/out/$t.egress.pcap" "$t.egress"; done
    } > "$dir/xdpemu.txt"

    ran=$((ran + 1))
    summary=$(awk '{ n[$1]++ } END { for (p in n) printf "%s %d, ", p, n[p] }' "$dir/kernel.txt" | sort)
    if cmp -s "$dir/kernel.txt" "$dir/xdpemu.txt"; then
        echo "== $name: identical (${summary%, })"
    else
        differs=1
        echo "== $name: differs"
        diff <(cut -c1-60 "$dir/xdpemu.txt") <(cut -c1-60 "$dir/kernel.txt") | head -20
    fi
done < "$here/cases.txt"
echo "$ran cases compared (semantics $semantics, kernel $(uname -r))"
exit $differs
