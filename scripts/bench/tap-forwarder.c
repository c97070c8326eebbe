// tap-forwarder: the baseline for scripts/bench/live.sh. A plain single-threaded forwarder between two TAPs,
// as in PERF-NOTES (live TAP section): IFF_TAP|IFF_NO_PI, non-blocking, one level-triggered epoll, and on each
// wake-up up to 64 reads from the ready TAP, then each frame written to the other TAP. Nothing else: it creates
// the two TAPs, prints "ready" and forwards until SIGINT/SIGTERM, then prints its counts on stdout:
//   read A B  written A B  failed A B
// (frames read from each TAP, frames written to each TAP, writes that failed). The TAPs vanish with the process.
//
//   tap-forwarder TAP_A TAP_B
// Build: cc -O2 -o tap-forwarder tap-forwarder.c
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
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

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s TAP_A TAP_B\n", argv[0]); return 2; }
    int fd[2] = { open_tap(argv[1]), open_tap(argv[2]) };
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;  // no SA_RESTART: epoll_wait returns EINTR
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
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
            while (got < BATCH) {
                ssize_t r = read(fd[from], buf[got], FRAME);
                if (r <= 0) break;
                len[got++] = r;
            }
            nread[from] += (unsigned long long)got;
            for (int i = 0; i < got; i++) {
                if (write(fd[to], buf[i], (size_t)len[i]) == len[i]) nwritten[to]++;
                else nfailed[to]++;
            }
        }
    }
    printf("read %llu %llu written %llu %llu failed %llu %llu\n", nread[0], nread[1], nwritten[0], nwritten[1],
           nfailed[0], nfailed[1]);
    return 0;
}
