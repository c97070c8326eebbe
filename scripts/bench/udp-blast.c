// udp-blast: the small-frame load for scripts/bench/live.sh. Sends 18-byte UDP payloads (64-byte Ethernet
// frames with FCS; 60 bytes on a TAP) to DEST:9 with sendmmsg, 64 per call, for SECONDS, then prints how many
// it sent. Run it inside the sending namespace. Unconnected, so the receiver's ICMP port-unreachable replies
// (rate-limited by the kernel) do not fail the sends.
//
//   udp-blast DEST SECONDS
// Build: cc -O2 -o udp-blast udp-blast.c
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s DEST SECONDS\n", argv[0]); return 2; }
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(9) };
    if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) { fprintf(stderr, "bad address %s\n", argv[1]); return 2; }
    double seconds = atof(argv[2]);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) { perror("socket"); return 1; }
    static char payload[18] = "xdpemu-udp-blast!";
    struct iovec iov = { .iov_base = payload, .iov_len = sizeof payload };
    struct mmsghdr msgs[BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) { msgs[i].msg_hdr.msg_iov = &iov; msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &to; msgs[i].msg_hdr.msg_namelen = sizeof to; }
    unsigned long long sent = 0, failed = 0;
    double end = now() + seconds;
    while (now() < end) {
        for (int k = 0; k < 16; k++) {
            int n = sendmmsg(s, msgs, BATCH, 0);
            if (n > 0) sent += (unsigned long long)n;
            else failed++;  // ENOBUFS/ECONNREFUSED etc.: keep going
        }
    }
    printf("sent %llu failed_calls %llu\n", sent, failed);
    return 0;
}
