// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel side of the datapath differential (compare.sh): bpf_redirect_map into a devmap
 * (or devmap_hash), the key fixed (KEY) or taken from the last byte of the destination MAC
 * (KEY_FROM_DST_MAC), with FLAGS passed unchanged. compare.sh compiles one object per case:
 *   clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -DKEY=1 -DFLAGS=0 ... -c
 * No libbpf headers needed: the few definitions are below. The map is pinned by name
 * (LIBBPF_PIN_BY_NAME) so that kxdp can fill it after `ip link set ... xdpdrv obj`.
 * VALUE8 gives the map value_size 8 (ifindex and an egress program's fd). PASS_ONLY builds the XDP_PASS program the targets' veth peers need to receive redirected
 * frames.
 */
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;

#ifndef PASS_ONLY
#ifdef HASH
#define MAP_TYPE BPF_MAP_TYPE_DEVMAP_HASH
#else
#define MAP_TYPE BPF_MAP_TYPE_DEVMAP
#endif

struct {
	__uint(type, MAP_TYPE);
	__uint(max_entries, 8);
	__type(key, __u32);
#ifdef VALUE8
	__type(value, struct bpf_devmap_val); /* ifindex and an egress program */
#else
	__type(value, __u32);
#endif
	__uint(pinning, 1); /* LIBBPF_PIN_BY_NAME */
} kxdp_map SEC(".maps");

SEC("xdp")
int redirect(struct xdp_md *ctx)
{
#ifdef KEY_FROM_DST_MAC
	unsigned char *data = (unsigned char *)(long)ctx->data;
	unsigned char *end = (unsigned char *)(long)ctx->data_end;
	if (data + 6 > end)
		return XDP_DROP;
	__u32 key = data[5];
#else
	__u32 key = KEY;
#endif
	return bpf_redirect_map(&kxdp_map, key, FLAGS);
}
#else
SEC("xdp")
int pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
#endif

char _license[] SEC("license") = "GPL";
