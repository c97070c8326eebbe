/* Tail calls through a prog_array: IPv4 goes on in xdp_ipv4 (drops), IPv6 finds its slot empty and the entry
 * program goes on (passes), anything else goes to xdp_loop, which tail-calls itself until the 33 a frame may
 * make are used up, then sends the frame back. `hits` counts the runs of each program. */
#include <linux/if_ether.h>
#include "xdpemu_bpf.h"

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u32);
} jump_table SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} hits SEC(".maps");

static __always_inline void count(__u32 key)
{
    __u64 *value = bpf_map_lookup_elem(&hits, &key);
    if (value)
        __sync_fetch_and_add(value, 1);
}

SEC("xdp")
int xdp_entry(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    count(0);
    if (eth->h_proto == __builtin_bswap16(ETH_P_IP))
        bpf_tail_call(ctx, &jump_table, 0);
    else if (eth->h_proto == __builtin_bswap16(ETH_P_IPV6))
        bpf_tail_call(ctx, &jump_table, 1);
    else
        bpf_tail_call(ctx, &jump_table, 2);
    return XDP_PASS;
}

SEC("xdp")
int xdp_ipv4(struct xdp_md *ctx)
{
    count(1);
    return XDP_DROP;
}

SEC("xdp")
int xdp_loop(struct xdp_md *ctx)
{
    count(2);
    bpf_tail_call(ctx, &jump_table, 2);
    return XDP_TX;
}
