/* A program in a section named as before libbpf 1.0 ("xdp_" and a name): counts frames in an array whose name
 * is longer than the kernel's 15 bytes, and drops them. */
#include "xdpemu_bpf.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} frames_seen_by_the_legacy_program SEC(".maps");

SEC("xdp_drop_and_count")
int xdp_legacy(struct xdp_md *ctx)
{
    __u32 key = 0;
    __u64 *count = bpf_map_lookup_elem(&frames_seen_by_the_legacy_program, &key);
    if (count)
        __sync_fetch_and_add(count, 1);
    return XDP_DROP;
}
