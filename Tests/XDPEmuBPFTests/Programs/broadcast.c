/* Every frame to every port of the devmap but the one it came in on (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS,
 * Linux 5.14): the modern profile's flood; under 4.18 the helper returns XDP_ABORTED. */
#include "xdpemu_bpf.h"

struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u32);
} every_port_of_the_lab SEC(".maps");

SEC("xdp")
int xdp_broadcast(struct xdp_md *ctx)
{
    return bpf_redirect_map(&every_port_of_the_lab, 0, BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS);
}
