#ifndef CBENCHSHIM_H
#define CBENCHSHIM_H

/// prctl(PR_SET_TIMERSLACK, ns): the map-update thread sleeps ~5 µs between updates, which the default 50 µs
/// timer slack would stretch. C because prctl is variadic and Swift does not import it.
int bench_set_timer_slack(unsigned long nanoseconds);

/// Moves the calling thread into the network namespace bound at `path` (/run/netns/NAME): open(2) + setns(2,
/// CLONE_NEWNET). Returns 0 or an errno. C because Glibc's Swift module does not import setns (a _GNU_SOURCE call).
int bench_enter_netns(const char *path);

/// sched_setaffinity(0, {cpu}): pins the calling thread to one CPU. Returns 0 or an errno. C for the CPU_SET macros.
int bench_pin_to_cpu(int cpu);

/// A UDP sender for the live benchmark: a socket made after entering the network namespace at `netns_path`, and a
/// batch of `batch` datagrams of `payload` bytes to `ipv4`:`port`. C because Glibc's Swift module imports neither
/// setns nor sendmmsg/struct mmsghdr (_GNU_SOURCE). NULL on failure with errno set.
typedef struct bench_udp_sender bench_udp_sender;
bench_udp_sender *bench_udp_sender_open(const char *netns_path, const char *ipv4, int port, unsigned payload,
                                        unsigned batch);
/// One sendmmsg of the batch (the socket is not connected, so ICMP errors coming back do not fail it): the number
/// of datagrams sent, or -errno.
int bench_udp_sender_send(bench_udp_sender *sender);
void bench_udp_sender_close(bench_udp_sender *sender);

#endif
