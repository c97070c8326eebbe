#ifndef XDPEMU_CTAPSHIM_H
#define XDPEMU_CTAPSHIM_H

// The few Linux calls XDPEmuOS cannot make from Swift: ioctl(2) is variadic (Swift cannot call it) and
// `struct ifreq` is a union-of-unions; the network-namespace sysctl helper needs a throwaway OS thread
// that no Swift executor ever runs on. Every function returns a non-negative value on success and
// -errno on failure, so no caller ever reads `errno` across a Swift call boundary.

#include <errno.h>
#include <spawn.h>
#include <stddef.h>
// Not C code, only declarations: Swift's Glibc module does not export these Linux-only headers, so
// XDPEmuOS sees epoll, eventfd, timerfd and signalfd through this module.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

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

// Why these are C: glibc's read(2) and write(2) are thread-cancellation points. In a process with more than one
// thread (xdpemu's runtime has a few) every call switches asynchronous cancellation on and off around the system
// call, about 30 instructions a forwarder pays per frame and per direction; xdpemu never cancels a thread. Swift
// cannot issue a system call itself. Static inline, so the compiler inlines them into the Swift caller.

/// A three-argument system call, bare: no cancellation point, no errno. Returns the result or -errno.
static inline long xdpemu_syscall3(long number, long a1, long a2, long a3) {
#if defined(__x86_64__)
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "0"(number), "D"(a1), "S"(a2), "d"(a3) : "rcx", "r11", "memory");
    return ret;
#else
    long ret = syscall(number, a1, a2, a3);
    return ret < 0 ? -errno : ret;
#endif
}

/// read(2) as a bare system call, no cancellation point. Returns the byte count or -errno.
static inline long xdpemu_read(int fd, void *buf, size_t len) {
    return xdpemu_syscall3(SYS_read, fd, (long)buf, (long)len);
}

/// write(2) as a bare system call, no cancellation point. Returns the byte count or -errno.
static inline long xdpemu_write(int fd, const void *buf, size_t len) {
    return xdpemu_syscall3(SYS_write, fd, (long)buf, (long)len);
}

/// An io_uring that only writes batches of frames to TAPs (one io_uring_enter per batch). Opaque.
struct xdpemu_write_ring;

/// io_uring_setup(entries) with IORING_SETUP_SUBMIT_ALL|IORING_SETUP_CQSIZE (2 x entries), plus
/// IORING_SETUP_SINGLE_ISSUER|IORING_SETUP_DEFER_TASKRUN where the kernel has them (6.1), then mmap of the rings.
/// Needs IORING_FEAT_SINGLE_MMAP and IORING_FEAT_NODROP (5.5). On success stores the ring in `*out` and returns
/// 0; else -errno (-ENOSYS: no io_uring; -EPERM: kernel.io_uring_disabled; -EOPNOTSUPP: a feature is missing).
int xdpemu_write_ring_open(unsigned entries, struct xdpemu_write_ring **out);

/// The ring's fd (for tests and diagnostics).
int xdpemu_write_ring_fd(const struct xdpemu_write_ring *ring);

/// The number of submission entries: the largest batch `xdpemu_write_ring_write` takes.
unsigned xdpemu_write_ring_entries(const struct xdpemu_write_ring *ring);

/// Writes `count` frames (`frames[i]`, one frame each) to `fd` in order: one IORING_OP_WRITE per frame with
/// RWF_NOWAIT, all submitted by one io_uring_enter that also waits for their completions. On a non-blocking fd
/// the kernel runs each write inline, in submission order, as write(2) would; a write that would block completes
/// with -EAGAIN instead of being parked. Each write runs whatever happened to the ones before it (no links).
/// `results[i]` receives what write(2) would have returned for frame i: the byte count, or -errno.
/// `count` must not exceed the ring's entries. Returns 0, or -errno if io_uring_enter itself failed (then no
/// result is valid and the ring must not be used again).
int xdpemu_write_ring_write(struct xdpemu_write_ring *ring, int fd, const struct iovec *frames, unsigned count,
                            int *results);

/// Unmaps the rings and closes the ring's fd. NULL is ignored.
void xdpemu_write_ring_close(struct xdpemu_write_ring *ring);

#ifdef __cplusplus
}
#endif

#endif
