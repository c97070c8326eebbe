/* Counts frames per CPU (a per-CPU array) and in one shared hash element, and records the CPU each port's
 * program last ran on: for the tests of several CPUs and workers. */
#include "xdpemu_bpf.h"

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} per_cpu_frames SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u64);
} shared_counts SEC(".maps");

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
    __u32 zero = 0;
    __u64 *mine = bpf_map_lookup_elem(&per_cpu_frames, &zero);
    if (mine)
        *mine += 1;
    /* Not atomic on purpose: a read, an add and a write, which only one program at a time keeps exact. */
    __u64 *total = bpf_map_lookup_elem(&shared_counts, &zero);
    if (total) {
        *total += 1;
    } else {
        __u64 one = 1;
        bpf_map_update_elem(&shared_counts, &zero, &one, 0);
    }
    __u32 port = ctx->ingress_ifindex;
    __u64 cpu = bpf_get_smp_processor_id();
    bpf_map_update_elem(&shared_counts, &port, &cpu, 0);
    return XDP_DROP;
}
