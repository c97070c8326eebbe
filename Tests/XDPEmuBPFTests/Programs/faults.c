/* Programs a verifier would refuse, each in its own section: xdpemu must abort their frames, report once per
 * instruction, and never crash. */
#include "xdpemu_bpf.h"

SEC("xdp/oob")
int xdp_oob(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    /* No check against data_end: frames shorter than 101 bytes fault. */
    return data[100] == 0xff ? XDP_DROP : XDP_PASS;
}

SEC("xdp/loop")
int xdp_loop(struct xdp_md *ctx)
{
    volatile __u64 n = 0;
    for (;;)
        n++;
    return XDP_PASS;
}

static long (*bpf_not_a_helper)(void) = (void *)1000;

SEC("xdp/helper")
int xdp_unknown_helper(struct xdp_md *ctx)
{
    if (ctx->ingress_ifindex == 2)
        return XDP_PASS;
    return bpf_not_a_helper() ? XDP_DROP : XDP_TX;
}

static __noinline int depth(int n)
{
    volatile int x = n;
    if (x <= 0)
        return 0;
    return depth(x - 1) + 1;
}

SEC("xdp/deep")
int xdp_deep(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    if ((void *)(data + 15) > (void *)(long)ctx->data_end)
        return XDP_DROP;
    /* data[14] calls deep: up to 6 nested calls fit in the 8 frames, more abort. */
    return depth(data[14]) == data[14] ? XDP_PASS : XDP_DROP;
}

const volatile __u32 limit = 5;

SEC("xdp/rodata_write")
int xdp_rodata_write(struct xdp_md *ctx)
{
    *(volatile __u32 *)&limit = 6;
    return XDP_PASS;
}
