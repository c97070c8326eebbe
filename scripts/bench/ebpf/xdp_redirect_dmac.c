/* The benchmark program: the tutorial's redirect, a hash-map lookup of the destination MAC giving a devmap key,
 * then bpf_redirect_map. No global data, so uBPF's loader takes it too. */
#include <linux/bpf.h>
#include <linux/if_ether.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 256);
    __type(key, unsigned char[ETH_ALEN]);
    __type(value, __u32);
} mac_to_port SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u32);
} tx_port SEC(".maps");

SEC("xdp")
int xdp_redirect_dmac(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    if (eth->h_proto != __builtin_bswap16(ETH_P_IP) && eth->h_proto != __builtin_bswap16(ETH_P_IPV6))
        return XDP_PASS;
    __u32 *port = bpf_map_lookup_elem(&mac_to_port, eth->h_dest);
    if (!port)
        return XDP_PASS;
    return bpf_redirect_map(&tx_port, *port, 0);
}

char _license[] SEC("license") = "GPL";
