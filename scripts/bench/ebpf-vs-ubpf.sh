#!/usr/bin/env bash
# The eBPF interpreter against uBPF's interpreter and against the built-in program, on the same redirect program
# (ebpf/xdp_redirect_dmac.c: hash-map lookup of the destination MAC, devmap redirect).
#
# Builds, in a scratch folder ($SCRATCH, default /tmp/xdpemu-ebpf-bench): the object with the toolchain's clang;
# uBPF's vm/ sources from ../shared/anchors/ubpf (as ../shared/anchors/README.md says) and ebpf/ubpf_bench.c;
# the Swift harness ebpf/ (its own package, release). Then, RUNS times each:
#   ubpf      uBPF's interpreter, one ubpf_exec per frame (bounds checks on: packet and map values)
#   ebpf      xdpemu's interpreter inside the core's poll loop (64-frame polls, devmap bulk queues, flushes)
#   alone     the same with the program run 9 times on each frame: (alone - ebpf) / 8 is one run of the
#             interpreter, helpers included, as ubpf_exec is (the poll loop's work is not in it)
#   builtin   the built-in redirect_map program (dst_mac table) in the same loop
# and prints medians, the ratios uBPF / interpreter (target >= 4), uBPF / eBPF in the poll loop and eBPF /
# built-in, and mallocs per frame of the ebpf run (scripts/bench/malloc-count.c, difference of two frame
# counts). With valgrind, also host instructions per frame of each (callgrind, difference of two frame counts):
# unlike the times, these do not depend on what else the machine runs.
# Then, with a release xdpemu ($XDPEMU, default .build/release/xdpemu; build it with `swift build -c release`),
# whole replays (--timing topspeed) of 1,000,000 such frames through the eBPF program and through the built-in
# one, with captures and without: best of RUNS CPU times (user + system) and their ratio (target <= 2).
# Usage: scripts/bench/ebpf-vs-ubpf.sh      Environment: RUNS=5 FRAMES=2000000 CLANG=/opt/swift/usr/bin/clang
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
RUNS=${RUNS:-5}
FRAMES=${FRAMES:-2000000}
CLANG=${CLANG:-/opt/swift/usr/bin/clang}
OBJCOPY=${OBJCOPY:-$(dirname "$CLANG")/llvm-objcopy}
SCRATCH=${SCRATCH:-/tmp/xdpemu-ebpf-bench}
XDPEMU=${XDPEMU:-$ROOT/.build/release/xdpemu}
UBPF=${UBPF:-$ROOT/../shared/anchors/ubpf}
mkdir -p "$SCRATCH/ubpf"

"$CLANG" -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c scripts/bench/ebpf/xdp_redirect_dmac.c -o "$SCRATCH/prog.o"
"$OBJCOPY" --strip-debug "$SCRATCH/prog.o" "$SCRATCH/prog-nodebug.o"

(cd "$SCRATCH/ubpf" && printf '#define UBPF_HAS_ELF_H 1\n' > ubpf_config.h &&
    for f in "$UBPF"/vm/*.c; do gcc -O2 -I. -I"$UBPF/vm" -I"$UBPF/vm/inc" -c "$f" -o "$(basename "$f" .c).o"; done &&
    ar rcs libubpf.a ./*.o)
gcc -O2 -I"$UBPF/vm/inc" -I"$SCRATCH/ubpf" scripts/bench/ebpf/ubpf_bench.c "$SCRATCH/ubpf/libubpf.a" -lm -o "$SCRATCH/ubpf_bench"
cc -O2 -shared -fPIC -o "$SCRATCH/malloc-count.so" scripts/bench/malloc-count.c
swift build -c release --package-path scripts/bench/ebpf --scratch-path "$SCRATCH/swift" 2>&1 | tail -1
BENCH=$SCRATCH/swift/release/ebpf-bench

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
: > "$SCRATCH/ubpf.txt"; : > "$SCRATCH/ebpf.txt"; : > "$SCRATCH/alone.txt"; : > "$SCRATCH/builtin.txt"
for _ in $(seq "$RUNS"); do
    "$SCRATCH/ubpf_bench" "$SCRATCH/prog-nodebug.o" "$FRAMES" | awk '{print $3}' >> "$SCRATCH/ubpf.txt"
    "$BENCH" "$SCRATCH/prog.o" "$FRAMES" ebpf | tee "$SCRATCH/ebpf-line.txt" | awk '{print $3}' >> "$SCRATCH/ebpf.txt"
    "$BENCH" "$SCRATCH/prog.o" "$FRAMES" ebpf-alone | awk '{print $3}' >> "$SCRATCH/alone.txt"
    "$BENCH" "$SCRATCH/prog.o" "$FRAMES" builtin | awk '{print $3}' >> "$SCRATCH/builtin.txt"
done
U=$(median < "$SCRATCH/ubpf.txt"); E=$(median < "$SCRATCH/ebpf.txt"); B=$(median < "$SCRATCH/builtin.txt")
A=$(median < "$SCRATCH/alone.txt"); ONE=$(awk -v a="$A" -v e="$E" 'BEGIN {printf "%.1f", (a - e) / 8}')
INSNS=$(awk '{print $5}' "$SCRATCH/ebpf-line.txt")
count() { LD_PRELOAD="$SCRATCH/malloc-count.so" "$BENCH" "$SCRATCH/prog.o" "$1" ebpf 2>&1 >/dev/null | awk '/allocations/ {print $2}'; }
A1=$(count 64000); A2=$(count 640000)
echo "program: hash lookup of the destination MAC, devmap redirect; $INSNS instructions per frame; $FRAMES frames, median of $RUNS"
printf '%-40s %10s\n' "" "ns/frame"
printf '%-40s %10.1f\n' "uBPF interpreter (ubpf_exec)" "$U"
printf '%-40s %10.1f\n' "xdpemu interpreter (one run)" "$ONE"
printf '%-40s %10.1f\n' "xdpemu eBPF in the poll loop" "$E"
printf '%-40s %10.1f\n' "xdpemu built-in redirect_map, poll loop" "$B"
awk -v u="$U" -v o="$ONE" -v e="$E" -v b="$B" 'BEGIN {printf "uBPF / xdpemu interpreter: %.2fx (target >= 4)   uBPF / xdpemu eBPF in the poll loop: %.2fx   eBPF / built-in in the poll loop: %.2fx\n", u / o, u / e, e / b}'
awk -v a1="$A1" -v a2="$A2" 'BEGIN {printf "mallocs per frame (eBPF run): %.4f\n", (a2 - a1) / 576000}'
if command -v valgrind > /dev/null; then
    # instructions COMMAND... (FRAMES stands for the frame count)
    instructions() {
        local a b
        a=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "${@/FRAMES/100000}" 2>&1 | awk '/Collected/ {print $4}')
        b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "${@/FRAMES/200000}" 2>&1 | awk '/Collected/ {print $4}')
        echo $(((b - a) / 100000))
    }
    IU=$(instructions "$SCRATCH/ubpf_bench" "$SCRATCH/prog-nodebug.o" FRAMES)
    IE=$(instructions "$BENCH" "$SCRATCH/prog.o" FRAMES ebpf)
    IA=$(instructions "$BENCH" "$SCRATCH/prog.o" FRAMES ebpf-alone)
    IB=$(instructions "$BENCH" "$SCRATCH/prog.o" FRAMES builtin)
    IO=$(((IA - IE) / 8))
    printf 'host instructions per frame (callgrind): uBPF %s, xdpemu interpreter %s, eBPF in the poll loop %s, built-in %s\n' \
        "$IU" "$IO" "$IE" "$IB"
    awk -v u="$IU" -v o="$IO" -v e="$IE" 'BEGIN {printf "uBPF / xdpemu interpreter: %.2fx (target >= 4)   uBPF / xdpemu eBPF in the poll loop: %.2fx\n", u / o, u / e}'
fi

if [[ -x "$XDPEMU" ]]; then
    python3 - "$SCRATCH" <<'PY'
import struct, sys
d = sys.argv[1]
frame = bytes.fromhex("020000000010" "020000000001") + b"\x08\x00" + bytes(50)
with open(f"{d}/replay.pcap", "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    f.write((struct.pack("<IIII", 1, 0, 64, 64) + frame) * 1000000)
devmap = '{"name": "tx_port", "type": "devmap", "max_entries": 4, "entries": {"0": "p2", "1": "p3", "2": "p4", "3": "p5"}}'
hashmap = '{"name": "mac_to_port", "type": "hash", "max_entries": 256, "entries": [{"key": "02:00:00:00:00:10", "value": 2}]}'
programs = {
    "ebpf": ('{"type": "ebpf", "object": "prog.o"}', devmap + ", " + hashmap),
    "builtin": ('{"type": "redirect_map", "map": "tx_port", "key": {"kind": "dst_mac", '
                '"table": {"02:00:00:00:00:10": 2}, "miss": "pass"}}', devmap),
}
for kind, (program, maps) in programs.items():
    for capture in ("on", "off"):
        c = "" if capture == "on" else ', "capture": {"ingress": false, "egress": false}'
        ports = f'{{"name": "p1", "program": {program}{c}}}' + "".join(f', {{"name": "p{i}"{c}}}' for i in range(2, 6))
        with open(f"{d}/{kind}-{capture}.json", "w") as f:
            f.write(f'{{"name": "bench", "ports": [{ports}], "maps": [{maps}]}}')
PY
    best() {
        local b=999 t
        for _ in $(seq "$RUNS"); do
            t=$( { /usr/bin/time -f "%U %S" "$XDPEMU" replay "$SCRATCH/$1.json" --in "p1=$SCRATCH/replay.pcap" \
                --out "$SCRATCH/out-$1" --timing topspeed --quiet; } 2>&1 | tail -1 | awk '{print $1 + $2}')
            b=$(awk -v a="$t" -v b="$b" 'BEGIN {print (a < b) ? a : b}')
        done
        echo "$b"
    }
    for capture in on off; do
        RB=$(best "builtin-$capture"); RE=$(best "ebpf-$capture")
        awk -v b="$RB" -v e="$RE" -v c="$capture" 'BEGIN {printf "replay of 1,000,000 frames, captures %s: built-in %.2f s CPU, eBPF %.2f s CPU: %.2fx (target <= 2)\n", c, b, e, e / b}'
    done
fi
