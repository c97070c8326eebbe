// CTapShim: the parts of the OS layer Swift cannot express. Keep it tiny; everything else is Swift.
#define _GNU_SOURCE
#include "CTapShim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

// Older uapi headers lack these (the kernel then refuses them and the ring is not used).
#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

// Why this is C: ioctl(2) is variadic and `struct ifreq` keeps the name and flags in unions.
int xdpemu_tap_attach(int fd, const char *name, int vnet_hdr, char *out_name) {
    if (name != NULL && strlen(name) >= IFNAMSIZ) {
        return -EINVAL;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0);
    if (name != NULL) {
        strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    }
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        return -errno;
    }
    if (vnet_hdr) {
        int len = XDPEMU_VNET_HDR_LEN;
        if (ioctl(fd, TUNSETVNETHDRSZ, &len) < 0) {
            return -errno;
        }
        unsigned long offload = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
        if (ioctl(fd, TUNSETOFFLOAD, offload) < 0) {
            return -errno;
        }
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        return -errno;
    }
    memcpy(out_name, ifr.ifr_name, IFNAMSIZ);
    out_name[IFNAMSIZ - 1] = '\0';
    return 0;
}

struct sysctl_job {
    const char *netns_path;
    const char *sysctl_path;
    const char *value;  // NULL for a read
    char *out;
    size_t out_len;
    int result;
};

// Runs on its own thread: setns(2) changes only the calling thread's network namespace, and /proc/sys/net
// resolves against the namespace of the task that opens it, so the file opened here is the namespace's.
static void *sysctl_thread(void *arg) {
    struct sysctl_job *job = arg;
    int nsfd = open(job->netns_path, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) {
        job->result = -errno;
        return NULL;
    }
    if (setns(nsfd, CLONE_NEWNET) < 0) {
        job->result = -errno;
        close(nsfd);
        return NULL;
    }
    close(nsfd);
    char path[512];
    int n = snprintf(path, sizeof(path), "/proc/sys/%s", job->sysctl_path);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        job->result = -ENAMETOOLONG;
        return NULL;
    }
    int fd = open(path, (job->value ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        job->result = -errno;
        return NULL;
    }
    ssize_t done;
    if (job->value) {
        size_t len = strlen(job->value);
        do {
            done = write(fd, job->value, len);
        } while (done < 0 && errno == EINTR);
        job->result = done < 0 ? -errno : (done == (ssize_t)len ? 0 : -EIO);
    } else {
        do {
            done = read(fd, job->out, job->out_len - 1);
        } while (done < 0 && errno == EINTR);
        if (done < 0) {
            job->result = -errno;
        } else {
            job->out[done] = '\0';
            job->result = (int)done;
        }
    }
    close(fd);
    return NULL;
}

// Why this is C: the namespace switch must happen on an OS thread that exists only for this job and then
// dies, so no Swift executor, Dispatch queue or later code can ever run inside the other namespace.
static int run_sysctl_job(struct sysctl_job *job) {
    pthread_t thread;
    int err = pthread_create(&thread, NULL, sysctl_thread, job);
    if (err != 0) {
        return -err;
    }
    err = pthread_join(thread, NULL);
    if (err != 0) {
        return -err;
    }
    return job->result;
}

int xdpemu_write_sysctl_in_netns(const char *netns_path, const char *sysctl_path, const char *value) {
    struct sysctl_job job = {netns_path, sysctl_path, value, NULL, 0, -EINVAL};
    return run_sysctl_job(&job);
}

int xdpemu_read_sysctl_in_netns(const char *netns_path, const char *sysctl_path, char *out, size_t out_len) {
    if (out == NULL || out_len == 0) {
        return -EINVAL;
    }
    struct sysctl_job job = {netns_path, sysctl_path, NULL, out, out_len, -EINVAL};
    return run_sysctl_job(&job);
}

// Why this is C: pipe2 and posix_spawn_file_actions_addclosefrom_np are GNU extensions that Swift's Glibc
// module does not declare (it is built without _GNU_SOURCE).
int xdpemu_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC) < 0 ? -errno : 0;
}

int xdpemu_spawn_closefrom(posix_spawn_file_actions_t *actions, int low_fd) {
    return posix_spawn_file_actions_addclosefrom_np(actions, low_fd);
}

// Why this is C: io_uring_setup(2) and io_uring_enter(2) have no libc wrappers (syscall(2) is variadic), and the
// rings are memory shared with the kernel whose head and tail indices need acquire/release atomics.
//
// Used by one thread only (the live loop's): the submission tail and the completion head are ours alone.
struct xdpemu_write_ring {
    int fd;
    unsigned entries;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    void *rings;
    size_t rings_size;
    size_t sqes_size;
};

int xdpemu_write_ring_open(unsigned entries, struct xdpemu_write_ring **out) {
    struct io_uring_params p;
    unsigned flags[2] = {
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE,
    };
    int fd = -1;
    for (int i = 0; i < 2 && fd < 0; i++) {
        memset(&p, 0, sizeof(p));
        p.flags = flags[i];
        p.cq_entries = 2 * entries;
        fd = (int)syscall(SYS_io_uring_setup, entries, &p);
        if (fd < 0 && errno != EINVAL) {
            return -errno;
        }
    }
    if (fd < 0) {
        return -errno;
    }
    if (!(p.features & IORING_FEAT_SINGLE_MMAP) || !(p.features & IORING_FEAT_NODROP)) {
        close(fd);
        return -EOPNOTSUPP;
    }
    struct xdpemu_write_ring *ring = calloc(1, sizeof(*ring));
    if (ring == NULL) {
        close(fd);
        return -ENOMEM;
    }
    size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    ring->rings_size = sq_size > cq_size ? sq_size : cq_size;
    ring->rings = mmap(NULL, ring->rings_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                       IORING_OFF_SQ_RING);
    if (ring->rings == MAP_FAILED) {
        int err = errno;
        free(ring);
        close(fd);
        return -err;
    }
    ring->sqes_size = p.sq_entries * sizeof(struct io_uring_sqe);
    ring->sqes = mmap(NULL, ring->sqes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (ring->sqes == MAP_FAILED) {
        int err = errno;
        munmap(ring->rings, ring->rings_size);
        free(ring);
        close(fd);
        return -err;
    }
    char *base = ring->rings;
    ring->fd = fd;
    ring->entries = p.sq_entries;
    ring->sq_head = (unsigned *)(base + p.sq_off.head);
    ring->sq_tail = (unsigned *)(base + p.sq_off.tail);
    ring->sq_mask = (unsigned *)(base + p.sq_off.ring_mask);
    ring->sq_array = (unsigned *)(base + p.sq_off.array);
    ring->cq_head = (unsigned *)(base + p.cq_off.head);
    ring->cq_tail = (unsigned *)(base + p.cq_off.tail);
    ring->cq_mask = (unsigned *)(base + p.cq_off.ring_mask);
    ring->cqes = (struct io_uring_cqe *)(base + p.cq_off.cqes);
    *out = ring;
    return 0;
}

int xdpemu_write_ring_fd(const struct xdpemu_write_ring *ring) { return ring->fd; }

unsigned xdpemu_write_ring_entries(const struct xdpemu_write_ring *ring) { return ring->entries; }

int xdpemu_write_ring_write(struct xdpemu_write_ring *ring, int fd, const struct iovec *frames, unsigned count,
                            int *results) {
    if (count == 0) {
        return 0;
    }
    if (count > ring->entries) {
        return -EINVAL;
    }
    // Every batch is reaped completely before the next is queued, so the submission ring is empty here.
    unsigned tail = *ring->sq_tail;
    unsigned mask = *ring->sq_mask;
    for (unsigned i = 0; i < count; i++) {
        unsigned index = (tail + i) & mask;
        struct io_uring_sqe *sqe = &ring->sqes[index];
        memset(sqe, 0, sizeof(*sqe));
        sqe->opcode = IORING_OP_WRITE;
        sqe->fd = fd;
        sqe->addr = (uint64_t)(uintptr_t)frames[i].iov_base;
        sqe->len = (uint32_t)frames[i].iov_len;
        sqe->off = (uint64_t)-1;  // the file position, which a TAP ignores
        sqe->rw_flags = RWF_NOWAIT;
        sqe->user_data = i;
        ring->sq_array[index] = index;
    }
    atomic_store_explicit((_Atomic unsigned *)ring->sq_tail, tail + count, memory_order_release);
    unsigned submit = count, reaped = 0;
    while (reaped < count) {
        long r = syscall(SYS_io_uring_enter, ring->fd, submit, count - reaped, IORING_ENTER_GETEVENTS, NULL, 0);
        if (r < 0 && errno != EINTR) {
            return -errno;
        }
        if (r >= 0) {
            submit -= (unsigned)r < submit ? (unsigned)r : submit;
        }
        unsigned head = *ring->cq_head;
        unsigned ready = atomic_load_explicit((_Atomic unsigned *)ring->cq_tail, memory_order_acquire);
        for (; head != ready; head++) {
            const struct io_uring_cqe *cqe = &ring->cqes[head & *ring->cq_mask];
            if (cqe->user_data < count) {
                results[cqe->user_data] = cqe->res;
                reaped++;
            }
        }
        atomic_store_explicit((_Atomic unsigned *)ring->cq_head, head, memory_order_release);
    }
    return 0;
}

void xdpemu_write_ring_close(struct xdpemu_write_ring *ring) {
    if (ring == NULL) {
        return;
    }
    munmap(ring->sqes, ring->sqes_size);
    munmap(ring->rings, ring->rings_size);
    close(ring->fd);
    free(ring);
}
