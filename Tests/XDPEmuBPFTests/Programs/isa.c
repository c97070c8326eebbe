#include "xdpemu_bpf.h"
#include "isa_ops.h"

struct results { __u64 v[ISA_RESULTS]; };

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, struct results);
} results SEC(".maps");

/* Frame: 14 bytes of Ethernet, then a (8 bytes), b (8 bytes), then the result slot (1 byte). */
SEC("xdp")
int xdp_isa(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    if (data + 31 > data_end)
        return XDP_DROP;
    __u64 a = *(__u64 *)(data + 14);
    __u64 b = *(__u64 *)(data + 22);
    __u32 slot = *(__u8 *)(data + 30);
    struct results *r = bpf_map_lookup_elem(&results, &slot);
    if (!r)
        return XDP_ABORTED;
    isa_compute(a, b, r->v);
    return XDP_PASS;
}
