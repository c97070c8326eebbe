#define _GNU_SOURCE
#include "CBenchShim.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <unistd.h>

int bench_set_timer_slack(unsigned long nanoseconds) {
    return prctl(PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0);
}

int bench_enter_netns(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno;
    }
    int failed = setns(fd, CLONE_NEWNET) != 0 ? errno : 0;
    close(fd);
    return failed;
}

int bench_pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
}

struct bench_udp_sender {
    int fd;
    unsigned batch;
    struct sockaddr_in address;
    struct iovec vector;
    struct mmsghdr *messages;
    unsigned char *payload;
};

bench_udp_sender *bench_udp_sender_open(const char *netns_path, const char *ipv4, int port, unsigned payload,
                                        unsigned batch) {
    int entered = bench_enter_netns(netns_path);
    if (entered != 0) {
        errno = entered;
        return NULL;
    }
    bench_udp_sender *sender = calloc(1, sizeof *sender);
    if (sender == NULL) {
        return NULL;
    }
    sender->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sender->messages = calloc(batch, sizeof *sender->messages);
    sender->payload = malloc(payload);
    if (sender->fd < 0 || sender->messages == NULL || sender->payload == NULL
        || inet_pton(AF_INET, ipv4, &sender->address.sin_addr) != 1) {
        int saved = errno;
        bench_udp_sender_close(sender);
        errno = saved == 0 ? EINVAL : saved;
        return NULL;
    }
    memset(sender->payload, 0x5a, payload);
    sender->batch = batch;
    sender->address.sin_family = AF_INET;
    sender->address.sin_port = htons((uint16_t)port);
    sender->vector.iov_base = sender->payload;
    sender->vector.iov_len = payload;
    for (unsigned i = 0; i < batch; i++) {
        sender->messages[i].msg_hdr.msg_name = &sender->address;
        sender->messages[i].msg_hdr.msg_namelen = sizeof sender->address;
        sender->messages[i].msg_hdr.msg_iov = &sender->vector;
        sender->messages[i].msg_hdr.msg_iovlen = 1;
    }
    return sender;
}

int bench_udp_sender_send(bench_udp_sender *sender) {
    int sent = sendmmsg(sender->fd, sender->messages, sender->batch, 0);
    return sent >= 0 ? sent : -errno;
}

void bench_udp_sender_close(bench_udp_sender *sender) {
    if (sender->fd >= 0) {
        close(sender->fd);
    }
    free(sender->messages);
    free(sender->payload);
    free(sender);
}
