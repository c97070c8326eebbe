// An LD_PRELOAD allocation counter for the benchmark: counts malloc, calloc, realloc and the aligned allocators,
// and prints `allocations N` on stderr when the process exits. Run a command on two trace sizes and divide the
// difference by the difference in frames to get allocations per frame.
// Build: cc -O2 -shared -fPIC -o malloc-count.so malloc-count.c

#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static unsigned long count;

void *malloc(size_t size) {
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size) {
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    return __libc_realloc(p, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    return __libc_memalign(alignment, size);
}

void *memalign(size_t alignment, size_t size) {
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
    void *p = __libc_memalign(alignment, size);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

__attribute__((destructor)) static void report(void) {
    fprintf(stderr, "allocations %lu\n", __atomic_load_n(&count, __ATOMIC_RELAXED));
}
