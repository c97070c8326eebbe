#include <stdio.h>
#include <stdlib.h>
#include <linux/types.h>
#include "isa_ops.h"

int main(int argc, char **argv)
{
    for (int k = 1; k + 1 < argc; k += 2) {
        __u64 a = strtoull(argv[k], 0, 0), b = strtoull(argv[k + 1], 0, 0);
        volatile __u64 out[ISA_RESULTS];
        isa_compute(a, b, out);
        for (int i = 0; i < ISA_RESULTS; i++)
            printf("%llu%c", (unsigned long long)out[i], i + 1 < ISA_RESULTS ? ' ' : '\n');
    }
    return 0;
}
