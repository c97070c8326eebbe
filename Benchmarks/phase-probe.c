// How fast this VM runs simple code right now: a loop of four independent register adds and a branch, timed with
// clock_gettime. A Zen 3 core retires it in about 1.25 cycles per iteration; this VM's vCPUs take 1.3-1.4 in their
// fast phases and 1.9-2.2 in their slow ones, which change over minutes (Benchmarks/README.md, "Figures").
// Print it next to a benchmark run:  cc -O2 -o /tmp/phase-probe phase-probe.c && taskset -c 1 /tmp/phase-probe
#include <stdio.h>
#include <time.h>

int main(void) {
    const long n = 1000000000;
    // Pinned to registers: left to itself the compiler adds register moves to the loop.
    register long a __asm__("r8") = 0, b __asm__("r9") = 0, c __asm__("r10") = 0, d __asm__("r11") = 0;
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < n; i++) {
        __asm__ volatile("add $1, %0\n\tadd $1, %1\n\tadd $1, %2\n\tadd $1, %3" : "+r"(a), "+r"(b), "+r"(c), "+r"(d));
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    double seconds = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
    printf("4 independent adds + loop: %.3f ns per iteration, %.2f cycles at 3 GHz\n", seconds / n * 1e9,
           seconds / n * 3e9);
    return (a + b + c + d) == 0;
}
