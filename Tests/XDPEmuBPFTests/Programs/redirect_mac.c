/* The tutorial's redirect: the source MAC picks a devmap key through a hash map; frames are counted per key in
 * an array and per CPU. Unknown MACs pass. */
#include "xdpemu_bpf.h"
#include <linux/if_ether.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, unsigned char[ETH_ALEN]);
    __type(value, __u32);
} mac_to_port SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u32);
} tx_port SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} redirect_counts_per_port SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} total SEC(".maps");

__u64 misses = 0;

SEC("xdp")
int xdp_redirect_mac(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    __u32 zero = 0;
    __u64 *t = bpf_map_lookup_elem(&total, &zero);
    if (t)
        *t += 1;
    __u32 *port = bpf_map_lookup_elem(&mac_to_port, eth->h_source);
    if (!port) {
        __sync_fetch_and_add(&misses, 1);
        return XDP_PASS;
    }
    __u64 *c = bpf_map_lookup_elem(&redirect_counts_per_port, port);
    if (c)
        __sync_fetch_and_add(c, 1);
    return bpf_redirect_map(&tx_port, *port, 0);
}
