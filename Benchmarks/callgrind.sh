#!/usr/bin/env bash
# Instructions per frame of the core datapath, counted by callgrind (user-space instructions only).
#
#   ./callgrind.sh [scenario] [frames]      defaults: redirect4-64 1000000
#
# Runs core-loop (release) under callgrind for N and 2N frames and prints (I(2N) - I(N)) / N, which cancels the
# setup; allocation calls (malloc and friends) are counted the same way. Debug info is stripped from a copy of the binary first: valgrind 3.19 cannot read Swift 6.3's DWARF
# (symbol names stay, so callgrind_annotate still attributes costs to functions). The 2N profile is kept as
# callgrind.out.<scenario> in the scratch folder for `callgrind_annotate --inclusive=yes`.
# Environment: SCRATCH (default .build) is the build folder; NO_BUILD=1 skips the build.
set -euo pipefail
cd "$(dirname "$0")"

scenario="${1:-redirect4-64}"
frames="${2:-1000000}"
scratch="${SCRATCH:-.build}"

if [[ "${NO_BUILD:-0}" != 1 ]]; then
    swift build -c release --scratch-path "$scratch" --product core-loop >&2
fi
binary="$(swift build -c release --scratch-path "$scratch" --show-bin-path)/core-loop"
stripped="$scratch/core-loop.stripped"
objcopy --strip-debug "$binary" "$stripped"

count() {  # count <frames> <output file>: total instructions of one run
    valgrind --tool=callgrind --callgrind-out-file="$2" "$stripped" "$scenario" "$1" >/dev/null 2>&1
    awk '/^summary:/ { print $2 }' "$2"
}

allocations() {  # allocations <output file>: calls of malloc, calloc, realloc and the aligned allocators
    awk '
        /^c?fn=\([0-9]+\) / { id = $1; sub(/^c?fn=/, "", id); name[id] = $2 }
        /^cfn=/ { id = $1; sub(/^cfn=/, "", id); callee = name[id] }
        /^calls=/ {
            n = $1; sub(/^calls=/, "", n)
            if (callee ~ /^(malloc|calloc|realloc|posix_memalign|aligned_alloc|memalign)$/) total += n
        }
        END { print total + 0 }' "$1"
}

one=$(count "$frames" "$scratch/callgrind.out.$scenario.1x")
two=$(count $((2 * frames)) "$scratch/callgrind.out.$scenario")
mallocs_one=$(allocations "$scratch/callgrind.out.$scenario.1x")
mallocs_two=$(allocations "$scratch/callgrind.out.$scenario")
rm -f "$scratch/callgrind.out.$scenario.1x"
per_frame=$(awk -v a="$one" -v b="$two" -v n="$frames" 'BEGIN { printf "%.1f", (b - a) / n }')
mallocs=$(awk -v a="$mallocs_one" -v b="$mallocs_two" -v n="$frames" 'BEGIN { printf "%.4f", (b - a) / n }')
echo "$scenario: $one instructions for $frames frames, $two for $((2 * frames))"
echo "allocations per frame: $mallocs ($mallocs_one and $mallocs_two in the two runs)"
echo "instructions per frame: $per_frame"
