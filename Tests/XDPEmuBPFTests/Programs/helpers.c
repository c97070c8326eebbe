/* One program per helper family; each writes what it saw into `results` (slot = section's own index) so the
 * test can compare with expected values. */
#include "xdpemu_bpf.h"
#include <linux/if_ether.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 32);
    __type(key, __u32);
    __type(value, __s64);
} results SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u32);
} small_hash SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u32);
} lru SEC(".maps");

struct ipv4_lpm_key { __u32 prefixlen; __u32 addr; };

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 16);
    __type(key, struct ipv4_lpm_key);
    __type(value, __u32);
    __uint(map_flags, BPF_F_NO_PREALLOC);
} routes SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} per_cpu SEC(".maps");

const volatile __u32 vlan_target = 3;

static __always_inline void put(__u32 slot, __s64 value)
{
    __s64 *r = bpf_map_lookup_elem(&results, &slot);
    if (r)
        *r = value;
}

/* VLAN pop: an 802.1Q frame loses its tag (adjust_head) and is redirected to `vlan_target`. */
SEC("xdp/vlan")
int xdp_vlan_pop(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    if (data + 18 > data_end)
        return XDP_DROP;
    if (*(__u16 *)(data + 12) != __builtin_bswap16(0x8100))
        return XDP_PASS;
    unsigned char macs[12];
    __builtin_memcpy(macs, data, 12);
    if (bpf_xdp_adjust_head(ctx, 4))
        return XDP_ABORTED;
    data = (void *)(long)ctx->data;
    data_end = (void *)(long)ctx->data_end;
    if (data + 12 > data_end)
        return XDP_ABORTED;
    __builtin_memcpy(data, macs, 12);
    return bpf_redirect(vlan_target, 0);
}

/* Trims every frame to 64 bytes and sends it back. */
SEC("xdp/trim")
int xdp_trim(struct xdp_md *ctx)
{
    int len = ctx->data_end - ctx->data;
    put(0, len);
    put(1, bpf_xdp_get_buff_len(ctx));
    if (len > 64 && bpf_xdp_adjust_tail(ctx, 64 - len))
        return XDP_ABORTED;
    put(2, bpf_xdp_adjust_tail(ctx, 100)); /* growing is EINVAL in 4.18 */
    return XDP_TX;
}

/* Metadata, load/store bytes, csum_diff, time and randomness, printk. */
SEC("xdp/misc")
int xdp_misc(struct xdp_md *ctx)
{
    put(3, bpf_xdp_adjust_meta(ctx, -8));
    void *data = (void *)(long)ctx->data;
    void *meta = (void *)(long)ctx->data_meta;
    if (meta + 8 > data)
        return XDP_ABORTED;
    *(__u64 *)meta = 0x1122334455667788ULL;
    put(4, *(__u32 *)meta);
    put(5, bpf_xdp_adjust_meta(ctx, -6)); /* not a multiple of 4: EACCES */
    put(6, bpf_xdp_adjust_meta(ctx, 8));
    __u8 buf[4];
    put(7, bpf_xdp_load_bytes(ctx, 6, buf, 4));
    put(8, buf[0] | buf[1] << 8 | buf[2] << 16 | (__u32)buf[3] << 24);
    __u8 mark[2] = {0xab, 0xcd};
    put(9, bpf_xdp_store_bytes(ctx, 0, mark, 2));
    put(10, bpf_xdp_load_bytes(ctx, 10000, buf, 4));
    __be32 from[2] = {0x01020304, 0x05060708};
    __be32 to[2] = {0x11121314, 0x15161718};
    put(11, bpf_csum_diff(from, 8, to, 8, 0));
    put(12, bpf_csum_diff(from, 3, to, 8, 0));
    put(13, bpf_ktime_get_ns());
    put(14, bpf_get_smp_processor_id());
    put(15, bpf_get_prandom_u32() != bpf_get_prandom_u32());
    bpf_printk("misc len %d ifindex %u", (int)(ctx->data_end - ctx->data), ctx->ingress_ifindex);
    return XDP_PASS;
}

/* Update flags and errnos of a full hash, LRU eviction, LPM lookups, per-CPU values. */
SEC("xdp/maps")
int xdp_maps(struct xdp_md *ctx)
{
    __u32 k1 = 1, k2 = 2, k3 = 3, v = 10;
    put(16, bpf_map_update_elem(&small_hash, &k1, &v, BPF_NOEXIST));
    put(17, bpf_map_update_elem(&small_hash, &k1, &v, BPF_NOEXIST)); /* EEXIST */
    put(18, bpf_map_update_elem(&small_hash, &k3, &v, BPF_EXIST));   /* ENOENT */
    put(19, bpf_map_update_elem(&small_hash, &k2, &v, BPF_ANY));
    put(20, bpf_map_update_elem(&small_hash, &k3, &v, BPF_ANY));     /* E2BIG: full */
    put(21, bpf_map_update_elem(&small_hash, &k3, &v, 7));           /* EINVAL */
    put(22, bpf_map_delete_elem(&small_hash, &k3));                  /* ENOENT */
    put(23, bpf_map_delete_elem(&small_hash, &k1));
    bpf_map_update_elem(&lru, &k1, &v, BPF_ANY);
    bpf_map_update_elem(&lru, &k2, &v, BPF_ANY);
    bpf_map_lookup_elem(&lru, &k1);                                   /* k2 is now the least recent */
    put(24, bpf_map_update_elem(&lru, &k3, &v, BPF_ANY));
    put(25, bpf_map_lookup_elem(&lru, &k2) == 0);
    struct ipv4_lpm_key key = {32, __builtin_bswap32(0x0a010203)};
    __u32 *hop = bpf_map_lookup_elem(&routes, &key);
    put(26, hop ? *hop : -1);
    key.addr = __builtin_bswap32(0x0b000001);
    hop = bpf_map_lookup_elem(&routes, &key);
    put(27, hop ? *hop : -1);
    __u64 one = 1;
    __u64 *count = bpf_map_lookup_elem(&per_cpu, &k1);
    if (count)
        *count += 1;
    else
        bpf_map_update_elem(&per_cpu, &k1, &one, BPF_NOEXIST);
    return XDP_DROP;
}

/* Routes the IPv4 destination with bpf_fib_lookup: on success the MACs are rewritten and the frame redirected. */
SEC("xdp/fib")
int xdp_fib(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    if (data + 34 > data_end)
        return XDP_DROP;
    struct bpf_fib_lookup params = {};
    params.family = 2;
    params.ipv4_dst = *(__u32 *)(data + 30);
    params.ifindex = ctx->ingress_ifindex;
    long ret = bpf_fib_lookup(ctx, &params, sizeof params, 0);
    __u32 slot = 28 + (*(__u8 *)(data + 33) & 3);
    put(slot, ret * 1000 + params.ifindex);
    if (ret != 0)
        return XDP_PASS;
    __builtin_memcpy(data, params.dmac, 6);
    __builtin_memcpy(data + 6, params.smac, 6);
    return bpf_redirect(params.ifindex, 0);
}
