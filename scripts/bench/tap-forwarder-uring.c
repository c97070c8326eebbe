// tap-forwarder-uring: tap-forwarder.c with the writes of each wake-up batched through io_uring, to measure
// whether fewer kernel crossings pay on a TAP (scripts/bench/live.sh, kinds c-uring and c-uring-rw).
//
// Same TAPs, same epoll loop, same counts on SIGINT/SIGTERM as tap-forwarder.c. Per wake-up it reads up to 64
// frames from the ready TAP, then submits one IORING_OP_WRITE per frame to the other TAP and makes a single
// io_uring_enter for all of them. The TAP fd is non-blocking and each write carries RWF_NOWAIT, so the kernel
// runs every write inline inside io_uring_enter (tun_chr_write_iter, as write(2) does) and never parks one: a
// write that would block completes with -EAGAIN, as write(2) would return. The writes are linked
// (IOSQE_IO_LINK): they run in order, and after a failed one the rest of the batch is cancelled, as a partial
// ndo_xdp_xmit stops at the first frame it cannot send.
//
//   tap-forwarder-uring [--rw] [--unlinked] [--fixed] TAP_A TAP_B
// --rw: the reads too go through the ring: each wake-up submits 64 reads in one io_uring_enter (RWF_NOWAIT: a
// read of an empty TAP completes with -EAGAIN instead of waiting), then the writes in another.
// Raw system calls, no liburing. Build: cc -O2 -o tap-forwarder-uring tap-forwarder-uring.c
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/io_uring.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BATCH 64
#define FRAME 2048

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static int open_tap(const char *name) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) { perror("open /dev/net/tun"); exit(1); }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) { perror("TUNSETIFF"); exit(1); }
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) { perror("fcntl"); exit(1); }
    return fd;
}

// The ring: submission queue (head/tail/array + SQEs), completion queue (head/tail + CQEs).
static struct {
    int fd;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    unsigned pending;  // SQEs queued, not yet submitted
} ring;

static void ring_setup(unsigned entries) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = entries * 2;
    ring.fd = (int)syscall(SYS_io_uring_setup, entries, &p);
    if (ring.fd < 0) { perror("io_uring_setup"); exit(1); }
    size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (!(p.features & IORING_FEAT_SINGLE_MMAP)) { fprintf(stderr, "no IORING_FEAT_SINGLE_MMAP\n"); exit(1); }
    size_t size = sq_size > cq_size ? sq_size : cq_size;
    char *sq = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring.fd, IORING_OFF_SQ_RING);
    if (sq == MAP_FAILED) { perror("mmap sq"); exit(1); }
    ring.sq_head = (unsigned *)(sq + p.sq_off.head);
    ring.sq_tail = (unsigned *)(sq + p.sq_off.tail);
    ring.sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    ring.sq_array = (unsigned *)(sq + p.sq_off.array);
    ring.cq_head = (unsigned *)(sq + p.cq_off.head);
    ring.cq_tail = (unsigned *)(sq + p.cq_off.tail);
    ring.cq_mask = (unsigned *)(sq + p.cq_off.ring_mask);
    ring.cqes = (struct io_uring_cqe *)(sq + p.cq_off.cqes);
    ring.sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_POPULATE, ring.fd, IORING_OFF_SQES);
    if (ring.sqes == MAP_FAILED) { perror("mmap sqes"); exit(1); }
}

static unsigned char ring_flags;

static void ring_queue(int op, int fd, void *buf, unsigned len, unsigned long long data, int link) {
    unsigned tail = *ring.sq_tail + ring.pending;  // only this thread writes the tail
    unsigned index = tail & *ring.sq_mask;
    struct io_uring_sqe *sqe = &ring.sqes[index];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = (unsigned char)op;
    sqe->fd = fd;
    sqe->addr = (unsigned long long)(uintptr_t)buf;
    sqe->len = len;
    sqe->off = (unsigned long long)-1;  // current position: a TAP has none
    sqe->rw_flags = RWF_NOWAIT;
    sqe->flags = (unsigned char)(ring_flags | (link ? IOSQE_IO_LINK : 0));
    sqe->user_data = data;
    ring.sq_array[index] = index;
    ring.pending++;
}

// Submits what is queued and waits until `wait` completions are posted.
static void ring_enter(unsigned wait) {
    atomic_store_explicit((_Atomic unsigned *)ring.sq_tail, *ring.sq_tail + ring.pending, memory_order_release);
    unsigned submit = ring.pending;
    ring.pending = 0;
    for (;;) {
        long r = syscall(SYS_io_uring_enter, ring.fd, submit, wait, wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
        if (r >= 0) return;
        if (errno != EINTR) { perror("io_uring_enter"); exit(1); }
        submit = 0;
    }
}

// Takes one completion, if there is one.
static int ring_reap(struct io_uring_cqe *out) {
    unsigned head = *ring.cq_head;
    if (head == atomic_load_explicit((_Atomic unsigned *)ring.cq_tail, memory_order_acquire)) return 0;
    *out = ring.cqes[head & *ring.cq_mask];
    atomic_store_explicit((_Atomic unsigned *)ring.cq_head, head + 1, memory_order_release);
    return 1;
}

int main(int argc, char **argv) {
    int rw = 0, unlinked = 0, fixed = 0, a = 1;
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (strcmp(argv[a], "--rw") == 0) rw = 1;
        else if (strcmp(argv[a], "--unlinked") == 0) unlinked = 1;
        else if (strcmp(argv[a], "--fixed") == 0) fixed = 1;
        else break;
    }
    if (argc - a != 2) {
        fprintf(stderr, "usage: %s [--rw] [--unlinked] [--fixed] TAP_A TAP_B\n", argv[0]);
        return 2;
    }
    int fd[2] = { open_tap(argv[a]), open_tap(argv[a + 1]) };
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    ring_setup(2 * BATCH);
    int rfd[2] = { fd[0], fd[1] };
    if (fixed) {
        if (syscall(SYS_io_uring_register, ring.fd, IORING_REGISTER_FILES, fd, 2) < 0) {
            perror("IORING_REGISTER_FILES");
            return 1;
        }
        rfd[0] = 0, rfd[1] = 1;
        ring_flags = IOSQE_FIXED_FILE;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < 2; i++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &ev) < 0) { perror("epoll_ctl"); return 1; }
    }
    static unsigned char buf[BATCH][FRAME];
    static ssize_t len[BATCH];
    unsigned long long nread[2] = {0, 0}, nwritten[2] = {0, 0}, nfailed[2] = {0, 0};
    printf("ready\n");
    fflush(stdout);
    struct epoll_event events[4];
    while (!stop) {
        int n = epoll_wait(ep, events, 4, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            return 1;
        }
        for (int e = 0; e < n; e++) {
            int from = (int)events[e].data.u32, to = 1 - from;
            int got = 0;
            if (rw) {
                // 64 reads in one enter, run inline in submission order; a read that found the TAP empty
                // completes with -EAGAIN, and a later one may still get a frame that arrived meanwhile.
                for (int i = 0; i < BATCH; i++) ring_queue(IORING_OP_READ, rfd[from], buf[i], FRAME, (unsigned)i, 0);
                ring_enter(BATCH);
                static ssize_t res[BATCH];
                struct io_uring_cqe cqe;
                while (ring_reap(&cqe)) res[cqe.user_data] = cqe.res;
                for (int i = 0; i < BATCH; i++) {
                    if (res[i] <= 0) continue;
                    if (got != i) memcpy(buf[got], buf[i], (size_t)res[i]);
                    len[got++] = res[i];
                }
            } else {
                while (got < BATCH) {
                    ssize_t r = read(fd[from], buf[got], FRAME);
                    if (r <= 0) break;
                    len[got++] = r;
                }
            }
            nread[from] += (unsigned long long)got;
            if (got == 0) continue;
            for (int i = 0; i < got; i++)
                ring_queue(IORING_OP_WRITE, rfd[to], buf[i], (unsigned)len[i], (unsigned)i, !unlinked && i + 1 < got);
            ring_enter((unsigned)got);
            struct io_uring_cqe cqe;
            while (ring_reap(&cqe)) {
                if (cqe.res == len[cqe.user_data]) nwritten[to]++;
                else nfailed[to]++;
            }
        }
    }
    printf("read %llu %llu written %llu %llu failed %llu %llu\n", nread[0], nread[1], nwritten[0], nwritten[1],
           nfailed[0], nfailed[1]);
    return 0;
}
