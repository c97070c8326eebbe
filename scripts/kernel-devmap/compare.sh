#!/usr/bin/env bash
# Compares `xdpemu map batch` with the running kernel, script by script.
#
#   sudo scripts/kernel-devmap/compare.sh [--build] [--xdpemu PATH] [--semantics 4.18|modern] SCRIPT...
#   sudo scripts/kernel-devmap/compare.sh --semantics modern scripts/kernel-devmap/cases/*.txt
#
# Builds kbatch.c (cc -O2 -Wall) into a temporary directory, then for every script:
# creates the network namespace xdpemu-kcheck (fresh for each script, so device names
# and ifindexes start clean), runs the script through kbatch inside it and through
# xdpemu, deletes the namespace, and prints a unified diff of the two answer lists.
# Each answer is shown beside its script line ("L12: update 0 a noexist => EEXIST");
# a line that is a syntax error for one tool shows SYNTAX-ERROR. The answer of a
# `device` line without `ifindex N` is normalised to "ok <auto>" (the kernel numbers
# devices differently: lo is 1, a veth pair takes two).
#
# Script annotations (in the line's comment):
#   # options: --unprivileged    (anywhere in the file) passed to both tools
#   # profile: modern            (anywhere in the file) a case of modern kernels only:
#                                skipped with --semantics 4.18
#   # modern: ANSWER             a running modern kernel answers ANSWER because of a
#                                4.18-vs-modern change documented in KERNEL-NOTES.md
#   # version: ANSWER            same, for a 4.18-vs-modern change found in the kernel
#                                sources but not listed in KERNEL-NOTES.md
#   # 4.18: ANSWER              what the 4.18 profile (and a 4.18 kernel) answers instead
# With --semantics 4.18 (the default) every differing line is then classified: "expected
# (KERNEL-NOTES)", "expected (version, not in KERNEL-NOTES)" when the kernel gave the
# annotated answer, otherwise "SUSPICIOUS". With --semantics modern xdpemu reproduces the
# running (modern) kernel, so every differing line is "SUSPICIOUS".
# Exit code: 0 when nothing is suspicious, 1 otherwise, 2 on setup errors.
#
# Needs root (bpf(2), namespaces). --build runs `swift build` first; by default the
# existing binary .build/debug/xdpemu of the repository (or $XDPEMU) is used.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
xdpemu=${XDPEMU:-$repo/.build/debug/xdpemu}
build=0
ns=xdpemu-kcheck
semantics=4.18

while [ $# -gt 0 ]; do
    case $1 in
        --build) build=1; shift ;;
        --xdpemu) xdpemu=$2; shift 2 ;;
        --netns) ns=$2; shift 2 ;;
        --semantics) semantics=$2; shift 2 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        --) shift; break ;;
        -*) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: compare.sh [--build] [--xdpemu PATH] [--semantics 4.18|modern] SCRIPT..." >&2; exit 2; }
case $semantics in 4.18|modern) ;; *) echo "compare.sh: --semantics is 4.18 or modern" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "compare.sh: needs root (bpf, network namespaces)" >&2; exit 2; }

if [ $build = 1 ]; then
    (cd "$repo" && swift build) || echo "compare.sh: swift build failed; using the existing binary" >&2
fi
[ -x "$xdpemu" ] || { echo "compare.sh: no xdpemu binary at $xdpemu" >&2; exit 2; }

work=$(mktemp -d /tmp/xdpemu-kcheck.XXXXXX)
created=0   # the namespace is deleted on exit only when this run created it
cleanup() {
    [ $created = 1 ] && ip netns del "$ns" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cc -O2 -Wall -o "$work/kbatch" "$here/kbatch.c" || { echo "compare.sh: cannot build kbatch" >&2; exit 2; }

if ip netns list | grep -qw "^$ns"; then
    echo "compare.sh: namespace $ns already exists (another run?); use --netns NAME" >&2
    exit 2
fi

# merge SCRIPT ANSWERS ERRORS: one line per operation, "L<n>: <op> => <answer>".
merge() {
    awk -v ans="$2" -v err="$3" '
        BEGIN {
            while ((getline l < err) > 0)
                if (l ~ /^error: line [0-9]+:/) { split(l, parts, /[ :]+/); bad[parts[3]] = 1 }
        }
        {
            code = $0; sub(/#.*/, "", code); gsub(/[ \t\r]+/, " ", code)
            sub(/^ /, "", code); sub(/ $/, "", code)
            if (code == "") next
            if (NR in bad) a = "SYNTAX-ERROR"
            else if ((getline a < ans) <= 0) a = "(no answer)"
            if (code ~ /^device / && code !~ / ifindex / && a ~ /^ok [0-9]+$/) a = "ok <auto>"
            printf "L%d: %s => %s\n", NR, code, a
        }
        END { while ((getline a < ans) > 0) printf "extra answer: %s\n", a }' "$1"
}

# classify SCRIPT XDPEMU-MERGED KERNEL-MERGED: one line per differing operation.
classify() {
    awk -v xf="$2" -v kf="$3" -v semantics="$semantics" '
        function answer(l) { sub(/^.* => /, "", l); return l }
        function lineno(l) { sub(/^L/, "", l); sub(/:.*/, "", l); return l }
        BEGIN {
            while ((getline l < xf) > 0) if (l ~ /^L/) x[lineno(l)] = answer(l)
            while ((getline l < kf) > 0) if (l ~ /^L/) k[lineno(l)] = answer(l)
        }
        (NR in x) && x[NR] != k[NR] {
            op = $0; sub(/[ \t]*#.*/, "", op); sub(/^[ \t]+/, "", op)
            want = ""; kind = ""
            if (semantics == "modern") {
                # the modern profile must give the answer of the running kernel on every line
            } else if (match($0, /# *modern:[^#(]*/)) {
                want = substr($0, RSTART, RLENGTH); sub(/^# *modern: */, "", want); kind = "expected (KERNEL-NOTES)"
            } else if (match($0, /# *version:[^#(]*/)) {
                want = substr($0, RSTART, RLENGTH); sub(/^# *version: */, "", want); kind = "expected (version, not in KERNEL-NOTES)"
            }
            sub(/[ \t]+$/, "", want)
            verdict = (want != "" && k[NR] == want) ? kind : "SUSPICIOUS"
            printf "  %-40s L%d: %s | xdpemu %s | kernel %s\n", verdict, NR, op, x[NR], k[NR]
        }' "$1"
}

suspicious=0
for script in "$@"; do
    name=$(basename "$script")
    if [ ! -r "$script" ]; then echo "== $name: cannot read $script" >&2; suspicious=1; continue; fi
    opts=$(sed -n 's/.*#[[:space:]]*options:[[:space:]]*\(--[a-z-]*\).*/\1/p' "$script" | head -n 1)
    if [ "$semantics" = 4.18 ] && grep -q '#[[:space:]]*profile:[[:space:]]*modern' "$script"; then
        echo "== $name: skipped (a modern-only case; run with --semantics modern)"
        continue
    fi

    ip netns add "$ns" || { echo "compare.sh: cannot create namespace $ns" >&2; exit 2; }
    created=1
    ip netns exec "$ns" "$work/kbatch" $opts "$script" >"$work/k.out" 2>"$work/k.err"
    krc=$?
    ip netns del "$ns" && created=0
    "$xdpemu" map batch --semantics "$semantics" $opts "$script" >"$work/x.out" 2>"$work/x.err"
    xrc=$?

    merge "$script" "$work/x.out" "$work/x.err" >"$work/x.txt"
    merge "$script" "$work/k.out" "$work/k.err" >"$work/k.txt"
    ops=$(grep -c '^L' "$work/k.txt")
    if cmp -s "$work/x.txt" "$work/k.txt"; then
        echo "== $name: identical ($ops operations)"
    else
        echo "== $name: differs"
        diff -u --label "xdpemu/$name" --label "kernel-$(uname -r)/$name" "$work/x.txt" "$work/k.txt"
        classify "$script" "$work/x.txt" "$work/k.txt" | tee "$work/c.txt"
        grep -q SUSPICIOUS "$work/c.txt" && suspicious=1
    fi
    for t in x k; do
        rc=$([ $t = x ] && echo $xrc || echo $krc)
        if [ -s "$work/$t.err" ] || [ "$rc" != 0 ]; then
            echo "  ($([ $t = x ] && echo xdpemu || echo kbatch) exit $rc) $(head -c 400 "$work/$t.err" | tr '\n' ' ')"
        fi
    done
done
exit $suspicious
