#ifndef XDPEMU_CTAPSHIM_H
#define XDPEMU_CTAPSHIM_H

// The few Linux calls XDPEmuOS cannot make from Swift: ioctl(2) is variadic (Swift cannot call it) and
// `struct ifreq` is a union-of-unions; the network-namespace sysctl helper needs a throwaway OS thread
// that no Swift executor ever runs on. Every function returns a non-negative value on success and
// -errno on failure, so no caller ever reads `errno` across a Swift call boundary.

#include <spawn.h>
#include <stddef.h>
// Not C code, only declarations: Swift's Glibc module does not export these Linux-only headers, so
// XDPEmuOS sees epoll, eventfd, timerfd and signalfd through this module.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#ifdef __cplusplus
extern "C" {
#endif

/// IFNAMSIZ from <linux/if.h>: 16 bytes including the terminating NUL.
#define XDPEMU_IFNAMSIZ 16

/// Size in bytes of `struct virtio_net_hdr` as set by TUNSETVNETHDRSZ when `vnet_hdr` is requested.
#define XDPEMU_VNET_HDR_LEN 12

/// Turns an open /dev/net/tun fd into a TAP interface.
///
/// ioctl(TUNSETIFF, IFF_TAP|IFF_NO_PI [|IFF_VNET_HDR]); with `vnet_hdr` also ioctl(TUNSETVNETHDRSZ, 12) and
/// ioctl(TUNSETOFFLOAD, TUN_F_CSUM|TUN_F_TSO4|TUN_F_TSO6|TUN_F_TSO_ECN); finally fcntl(F_SETFL, O_NONBLOCK).
///
/// `name` may be NULL or "" to let the kernel pick "tapN". `out_name` must hold XDPEMU_IFNAMSIZ bytes and
/// receives the kernel-assigned name. Returns 0 or -errno; the caller owns (and on error closes) `fd`.
int xdpemu_tap_attach(int fd, const char *name, int vnet_hdr, char *out_name);

/// Writes `value` to `/proc/sys/<sysctl_path>` as seen from the network namespace bound at `netns_path`
/// (for example "/run/netns/hostA"), without changing the namespace of the calling thread.
///
/// Runs pthread_create; on the new thread open(netns_path), setns(fd, CLONE_NEWNET), open("/proc/sys/...",
/// O_WRONLY), write; then pthread_join. Returns 0 or -errno.
int xdpemu_write_sysctl_in_netns(const char *netns_path, const char *sysctl_path, const char *value);

/// Reads `/proc/sys/<sysctl_path>` as seen from the network namespace bound at `netns_path` into `out`
/// (NUL-terminated, at most `out_len - 1` bytes). Same thread dance as xdpemu_write_sysctl_in_netns.
/// Returns the number of bytes read or -errno.
int xdpemu_read_sysctl_in_netns(const char *netns_path, const char *sysctl_path, char *out, size_t out_len);

/// pipe2(fds, O_CLOEXEC). Returns 0 or -errno.
int xdpemu_pipe_cloexec(int fds[2]);

/// posix_spawn_file_actions_addclosefrom_np(actions, low_fd): the child closes every fd >= low_fd.
/// Returns 0 or an error number.
int xdpemu_spawn_closefrom(posix_spawn_file_actions_t *actions, int low_fd);

#ifdef __cplusplus
}
#endif

#endif
