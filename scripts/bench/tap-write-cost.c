// tap-write-cost: the CPU a TAP write costs the writer, by write(2) and by io_uring batches, measured in
// alternating rounds in one process so that both see the same machine (live.sh's end-to-end figures swing by
// ±15% between runs on a shared VM, more than the difference looked for).
//
// Creates TAP lpw0, moves it into a namespace xdpemu-lw with 10.98.0.1/24 (via ip(8)), then in each round writes
// FRAMES 60-byte UDP frames (10.98.0.2 -> 10.98.0.1 port 9, nobody listening: the kernel runs the namespace's
// receive path and drops them, as in live.sh's UDP load) in each mode, timing the process's CPU
// (CLOCK_PROCESS_CPUTIME_ID). Modes: write = one write(2) per frame; uringN = IORING_OP_WRITE, RWF_NOWAIT,
// N per io_uring_enter, as xdpemu's TapWriteRing does. Prints per-mode medians in ns per frame and the ratio
// to write. Removes the namespace (and so the TAP) at the end.
//
//   taskset -c 0 tap-write-cost [ROUNDS [FRAMES]]        (root; defaults 15 rounds of 20000 frames)
// Build: cc -O2 -o tap-write-cost tap-write-cost.c
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/io_uring.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static struct {
    int fd;
    unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
} ring;

static void ring_setup(unsigned entries) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
              IORING_SETUP_DEFER_TASKRUN;
    p.cq_entries = 2 * entries;
    ring.fd = (int)syscall(SYS_io_uring_setup, entries, &p);
    if (ring.fd < 0) { perror("io_uring_setup"); exit(1); }
    size_t sq = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    char *b = mmap(NULL, sq > cq ? sq : cq, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring.fd,
                   IORING_OFF_SQ_RING);
    ring.sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_POPULATE, ring.fd, IORING_OFF_SQES);
    if (b == MAP_FAILED || ring.sqes == MAP_FAILED) { perror("mmap"); exit(1); }
    ring.sq_tail = (unsigned *)(b + p.sq_off.tail);
    ring.sq_mask = (unsigned *)(b + p.sq_off.ring_mask);
    ring.sq_array = (unsigned *)(b + p.sq_off.array);
    ring.cq_head = (unsigned *)(b + p.cq_off.head);
    ring.cq_tail = (unsigned *)(b + p.cq_off.tail);
    ring.cq_mask = (unsigned *)(b + p.cq_off.ring_mask);
    ring.cqes = (struct io_uring_cqe *)(b + p.cq_off.cqes);
}

// The same steps as xdpemu_write_ring_write (Sources/CTapShim/shim.c). Returns the writes that failed.
static unsigned ring_write(int fd, const struct iovec *frames, unsigned count) {
    unsigned tail = *ring.sq_tail, mask = *ring.sq_mask;
    for (unsigned i = 0; i < count; i++) {
        unsigned index = (tail + i) & mask;
        struct io_uring_sqe *sqe = &ring.sqes[index];
        memset(sqe, 0, sizeof *sqe);
        sqe->opcode = IORING_OP_WRITE;
        sqe->fd = fd;
        sqe->addr = (uint64_t)(uintptr_t)frames[i].iov_base;
        sqe->len = (uint32_t)frames[i].iov_len;
        sqe->off = (uint64_t)-1;
        sqe->rw_flags = RWF_NOWAIT;
        sqe->user_data = i;
        ring.sq_array[index] = index;
    }
    atomic_store_explicit((_Atomic unsigned *)ring.sq_tail, tail + count, memory_order_release);
    if (syscall(SYS_io_uring_enter, ring.fd, count, count, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
        perror("io_uring_enter");
        exit(1);
    }
    unsigned head = *ring.cq_head, failed = 0;
    unsigned ready = atomic_load_explicit((_Atomic unsigned *)ring.cq_tail, memory_order_acquire);
    for (; head != ready; head++) failed += ring.cqes[head & *ring.cq_mask].res <= 0;
    atomic_store_explicit((_Atomic unsigned *)ring.cq_head, head, memory_order_release);
    return failed;
}

static uint64_t cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void sh(const char *command) {
    if (system(command) != 0) { fprintf(stderr, "failed: %s\n", command); exit(1); }
}

#define MODES 4
static const char *names[MODES] = {"write", "uring4", "uring16", "uring64"};
static const unsigned batch[MODES] = {1, 4, 16, 64};

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 15;
    int frames = argc > 2 ? atoi(argv[2]) : 20000;
    if (rounds < 1 || rounds > 1000 || frames < 64) { fprintf(stderr, "usage: %s [ROUNDS [FRAMES]]\n", argv[0]); return 2; }
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    strcpy(ifr.ifr_name, "lpw0");
    if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0) { perror("TAP lpw0"); return 1; }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    sh("ip netns add xdpemu-lw && ip link set lpw0 netns xdpemu-lw"
       " && ip netns exec xdpemu-lw sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
       " && ip -n xdpemu-lw link set lpw0 address 02:00:00:00:98:01 && ip -n xdpemu-lw addr add 10.98.0.1/24 dev lpw0"
       " && ip -n xdpemu-lw link set lpw0 up && ip -n xdpemu-lw neigh add 10.98.0.2 lladdr 02:00:00:00:98:02 dev lpw0");
    ring_setup(64);
    // One frame, written over and over: Ethernet, IPv4 (checksum filled in), UDP to port 9, 18 bytes of payload.
    static unsigned char frame[60] = {
        0x02, 0, 0, 0, 0x98, 0x01, 0x02, 0, 0, 0, 0x98, 0x02, 0x08, 0x00,
        0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 98, 0, 2, 10, 98, 0, 1,
        0x30, 0x39, 0, 9, 0, 26, 0, 0,
    };
    uint32_t sum = 0;
    for (int i = 14; i < 34; i += 2) sum += (uint32_t)(frame[i] << 8 | frame[i + 1]);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    frame[24] = (unsigned char)(~sum >> 8), frame[25] = (unsigned char)~sum;
    struct iovec vectors[64];
    for (int i = 0; i < 64; i++) vectors[i] = (struct iovec){frame, sizeof frame};
    static double ns[MODES][1000];
    unsigned long long failed = 0;
    for (int r = 0; r < rounds; r++) {
        for (int m = 0; m < MODES; m++) {
            uint64_t t0 = cpu_now();
            for (int done = 0; done < frames; done += (int)batch[m]) {
                if (m == 0) failed += write(fd, frame, sizeof frame) != (ssize_t)sizeof frame;
                else failed += ring_write(fd, vectors, batch[m]);
            }
            ns[m][r] = (double)(cpu_now() - t0) / frames;
        }
    }
    close(ring.fd);
    close(fd);
    sh("ip netns del xdpemu-lw");
    printf("CPU ns per frame written to a TAP, medians of %d rounds of %d frames (failed writes: %llu)\n", rounds,
           frames, failed);
    double base = 0;
    for (int m = 0; m < MODES; m++) {
        qsort(ns[m], (size_t)rounds, sizeof(double), compare);
        double median = ns[m][rounds / 2];
        if (m == 0) base = median;
        printf("  %-8s %7.0f ns  (min %.0f, max %.0f)  %.2f of write\n", names[m], median, ns[m][0],
               ns[m][rounds - 1], median / base);
    }
    return 0;
}
