// uBPF's interpreter on the benchmark program: the same object (debug sections stripped: uBPF's loader takes at
// most 32 sections), maps resolved through its data-relocation callback, the two helpers in C (a hash table of
// MAC keys as small as ours, redirect_map recording the key), memory accesses checked by its bounds-check
// callback against the packet and the map values. The packet sits below 4 GiB (MAP_32BIT) so that xdp_md's
// 32-bit data fields can hold its address. Prints ns per frame and instructions per frame.
// Usage: ubpf_bench OBJECT FRAMES
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include "ubpf.h"

struct xdp_md { uint32_t data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };

#define SLOTS 512
struct hash_map { uint8_t keys[SLOTS][6]; uint32_t values[SLOTS]; uint8_t used[SLOTS]; };
static struct hash_map mac_to_port;
static int tx_port_marker;
static uint32_t redirect_key;
static uint8_t *packet;

static uint64_t relocate(void *user, const uint8_t *data, uint64_t size, const char *name, uint64_t offset, uint64_t symsize)
{
    if (strcmp(name, "mac_to_port") == 0) return (uint64_t)(uintptr_t)&mac_to_port;
    return (uint64_t)(uintptr_t)&tx_port_marker;
}

static uint64_t hash6(const uint8_t *k)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < 6; i++) h = (h ^ k[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

static uint64_t map_lookup_elem(uint64_t map, uint64_t key, uint64_t a, uint64_t b, uint64_t c)
{
    struct hash_map *m = (struct hash_map *)(uintptr_t)map;
    if (m != &mac_to_port) return 0;
    const uint8_t *k = (const uint8_t *)(uintptr_t)key;
    for (uint64_t i = hash6(k) & (SLOTS - 1);; i = (i + 1) & (SLOTS - 1)) {
        if (!m->used[i]) return 0;
        if (memcmp(m->keys[i], k, 6) == 0) return (uint64_t)(uintptr_t)&m->values[i];
    }
}

static uint64_t redirect_map(uint64_t map, uint64_t key, uint64_t flags, uint64_t a, uint64_t b)
{
    if (flags) return 0;
    redirect_key = (uint32_t)key;
    return 4;
}

static bool bounds(void *user, uint64_t addr, uint64_t size)
{
    uintptr_t p = (uintptr_t)packet, v = (uintptr_t)&mac_to_port;
    return (addr >= p && addr + size <= p + 2048) || (addr >= v && addr + size <= v + sizeof mac_to_port);
}

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: %s OBJECT FRAMES\n", argv[0]); return 64; }
    long frames = atol(argv[2]);
    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 1; }
    static uint8_t elf[1 << 20];
    size_t len = fread(elf, 1, sizeof elf, f);
    fclose(f);
    struct ubpf_vm *vm = ubpf_create();
    ubpf_register(vm, 1, "bpf_map_lookup_elem", map_lookup_elem);
    ubpf_register(vm, 51, "bpf_redirect_map", redirect_map);
    ubpf_register_data_relocation(vm, NULL, relocate);
    ubpf_register_data_bounds_check(vm, NULL, bounds);
    char *err = NULL;
    if (ubpf_load_elf_ex(vm, elf, len, "xdp_redirect_dmac", &err) < 0) { fprintf(stderr, "ubpf: %s\n", err); return 1; }
    packet = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    uint8_t frame[64] = {0x02, 0, 0, 0, 0, 0x10, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00};
    memcpy(packet + 256, frame, 64);
    uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x10};
    uint64_t slot = hash6(dst) & (SLOTS - 1);
    memcpy(mac_to_port.keys[slot], dst, 6);
    mac_to_port.values[slot] = 2;
    mac_to_port.used[slot] = 1;
    struct xdp_md md = {(uint32_t)(uintptr_t)(packet + 256), (uint32_t)(uintptr_t)(packet + 320), (uint32_t)(uintptr_t)(packet + 256), 1, 0, 0};
    uint64_t ret = 0, sum = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < frames; i++) {
        if (ubpf_exec(vm, &md, sizeof md, &ret) < 0) { fprintf(stderr, "ubpf_exec failed\n"); return 1; }
        sum += ret + redirect_key;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / frames;
    if (ret != 4 || redirect_key != 2) { fprintf(stderr, "unexpected result %lu key %u\n", (unsigned long)ret, redirect_key); return 1; }
    printf("ubpf_interpreter ns_per_frame %.1f check %lu\n", ns, (unsigned long)sum);
    return 0;
}
