/* Programs whose every effect shows in the frame they send back (XDP_TX), so the kernel's result can be compared
 * with xdpemu's byte for byte: attached natively to a veth in a private namespace, and replayed. */
#include "xdpemu_bpf.h"
#include "isa_ops.h"

/* Pops an 802.1Q tag, trims frames longer than 100 bytes to 100, swaps the MACs, sends the frame back. */
SEC("xdp")
int xdp_tx_edit(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    if (data + 18 > data_end)
        return XDP_DROP;
    unsigned char macs[12];
    __builtin_memcpy(macs, data, 12);
    if (*(__u16 *)(data + 12) == __builtin_bswap16(0x8100)) {
        if (bpf_xdp_adjust_head(ctx, 4))
            return XDP_ABORTED;
    }
    data = (void *)(long)ctx->data;
    data_end = (void *)(long)ctx->data_end;
    long len = data_end - data;
    if (len > 100 && bpf_xdp_adjust_tail(ctx, (int)(100 - len)))
        return XDP_ABORTED;
    data = (void *)(long)ctx->data;
    data_end = (void *)(long)ctx->data_end;
    if (data + 12 > data_end)
        return XDP_ABORTED;
    __builtin_memcpy(data, macs + 6, 6);
    __builtin_memcpy(data + 6, macs, 6);
    return XDP_TX;
}

/* The ISA test of isa.c, its results written into the frame (after 31 bytes: MACs, type, a, b, slot). */
SEC("xdp")
int xdp_tx_isa(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    if (data + 32 + ISA_RESULTS * 8 > data_end)
        return XDP_DROP;
    __u64 a = *(__u64 *)(data + 14);
    __u64 b = *(__u64 *)(data + 22);
    __u64 out[ISA_RESULTS];
    isa_compute(a, b, out);
    __builtin_memcpy(data + 32, out, sizeof out);
    unsigned char macs[12];
    __builtin_memcpy(macs, data, 12);
    __builtin_memcpy(data, macs + 6, 6);
    __builtin_memcpy(data + 6, macs, 6);
    return XDP_TX;
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
    return XDP_PASS;
}
