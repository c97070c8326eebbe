// CTapShim: the parts of the OS layer Swift cannot express. Keep it tiny; everything else is Swift.
#define _GNU_SOURCE
#include "CTapShim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

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
