// SPDX-License-Identifier: MIT
/*
 * kxdp: the kernel's side of the datapath differential (see compare.sh). Runs as root inside
 * the private network namespace compare.sh made.
 *
 *   kxdp update PIN KEY IFNAME [ACTION]
 *                                   put IFNAME's ifindex at KEY of the pinned devmap PIN; with
 *                                   ACTION (abort, drop or pass) also an egress program that
 *                                   returns it (value_size 8 maps; loaded here from two
 *                                   instructions, expected_attach_type BPF_XDP_DEVMAP)
 *   kxdp run PCAP IN PEER TARGET... send the generated trace into IN (from its veth peer
 *                                   PEER) and print what came out, "PORT.DIRECTION LEN HEX"
 *                                   a line, per port in arrival order; also write the trace
 *                                   to PCAP (nanosecond pcap) for `xdpemu replay`
 *   kxdp dump PCAP LABEL            print a capture's frames in the same format
 *
 * The trace: FRAMES frames (24) to destination MAC 02:00:00:00:00:KK (KK = i % 6, so a
 * program taking the key from the MAC's last byte tries keys 0...5), from
 * 02:00:00:00:00:99, EtherType 0x88b5 (local experimental), lengths 60, 300, 700, 1514 in
 * turn, a 4-byte sequence number, then filler. What comes out is captured with AF_PACKET:
 * a target TARGET's transmissions arrive at its peer TARGETp (an XDP_PASS program there lets
 * veth deliver them) and are printed as TARGET.egress; frames IN transmits (XDP_TX, or a
 * redirect back to IN) arrive at PEER: IN.egress; frames IN's program passed reach IN's
 * stack: IN.pass.
 *
 * Build: cc -O2 -Wall -o kxdp kxdp.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FRAMES 24
#define MAX_PORTS 16

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static void die(const char *what)
{
	fprintf(stderr, "kxdp: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* An egress (devmap) program that returns `action`: r0 = action; exit. */
static int load_egress(int action)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = action },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	static char log[4096];
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_XDP;
	attr.expected_attach_type = BPF_XDP_DEVMAP;
	attr.insns = (uintptr_t)insns;
	attr.insn_cnt = 2;
	attr.license = (uintptr_t)"GPL";
	attr.log_buf = (uintptr_t)log;
	attr.log_size = sizeof(log);
	attr.log_level = 1;
	int fd = (int)sys_bpf(BPF_PROG_LOAD, &attr);
	if (fd < 0) {
		fprintf(stderr, "%s", log);
		die("BPF_PROG_LOAD (egress program)");
	}
	return fd;
}

static int update(const char *pin, uint32_t key, const char *ifname, const char *action)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.pathname = (uintptr_t)pin;
	int fd = (int)sys_bpf(BPF_OBJ_GET, &attr);
	if (fd < 0)
		die(pin);
	uint32_t ifindex = if_nametoindex(ifname);
	if (!ifindex)
		die(ifname);
	uint32_t value[2] = { ifindex, 0 };
	if (action) {
		int code = !strcmp(action, "drop") ? 1 : !strcmp(action, "pass") ? 2 : 0;
		value[1] = (uint32_t)load_egress(code);
	}
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = (uint32_t)fd;
	attr.key = (uintptr_t)&key;
	attr.value = (uintptr_t)value;
	if (sys_bpf(BPF_MAP_UPDATE_ELEM, &attr) < 0)
		die("BPF_MAP_UPDATE_ELEM");
	return 0;
}

static size_t make_frame(int i, unsigned char *f)
{
	static const size_t lengths[] = { 60, 300, 700, 1514 };
	size_t len = lengths[i % 4];
	unsigned char dst[6] = { 2, 0, 0, 0, 0, (unsigned char)(i % 6) };
	unsigned char src[6] = { 2, 0, 0, 0, 0, 0x99 };
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x88;
	f[13] = 0xb5;
	uint32_t seq = htonl((uint32_t)i + 1);
	memcpy(f + 14, &seq, 4);
	for (size_t j = 18; j < len; j++)
		f[j] = (unsigned char)(i + j);
	return len;
}

static void put32(FILE *f, uint32_t v) { fwrite(&v, 4, 1, f); }
static void put16(FILE *f, uint16_t v) { fwrite(&v, 2, 1, f); }

static void write_trace(const char *path)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		die(path);
	put32(f, 0xa1b23c4d); /* nanosecond pcap, little endian (host order on x86_64) */
	put16(f, 2);
	put16(f, 4);
	put32(f, 0);
	put32(f, 0);
	put32(f, 65535);
	put32(f, 1);
	unsigned char frame[1514];
	for (int i = 0; i < FRAMES; i++) {
		size_t len = make_frame(i, frame);
		put32(f, 1700000000u);
		put32(f, (uint32_t)i * 1000000u); /* 1 ms apart */
		put32(f, (uint32_t)len);
		put32(f, (uint32_t)len);
		fwrite(frame, 1, len, f);
	}
	fclose(f);
}

static void print_frame(const char *label, const unsigned char *f, size_t len)
{
	printf("%s %zu ", label, len);
	for (size_t i = 0; i < len; i++)
		printf("%02x", f[i]);
	printf("\n");
}

static int packet_socket(const char *ifname)
{
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
	if (fd < 0)
		die("socket(AF_PACKET)");
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				   .sll_ifindex = (int)if_nametoindex(ifname) };
	if (!sll.sll_ifindex)
		die(ifname);
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		die("bind");
	return fd;
}

struct capture {
	int fd;
	char label[64];
};

static int run(int argc, char **argv)
{
	const char *pcap = argv[0], *in = argv[1], *peer = argv[2];
	struct capture caps[MAX_PORTS];
	int ncaps = 0;
	write_trace(pcap);
	/* what IN passes, what arrives at PEER (IN's transmissions), what each target sends */
	caps[ncaps].fd = packet_socket(in);
	snprintf(caps[ncaps++].label, 64, "%s.pass", in);
	caps[ncaps].fd = packet_socket(peer);
	snprintf(caps[ncaps++].label, 64, "%s.egress", in);
	for (int i = 3; i < argc && ncaps < MAX_PORTS; i++) {
		char peer_name[IF_NAMESIZE + 2];
		snprintf(peer_name, sizeof(peer_name), "%sp", argv[i]);
		caps[ncaps].fd = packet_socket(peer_name);
		snprintf(caps[ncaps++].label, 64, "%s.egress", argv[i]);
	}
	int tx = packet_socket(peer);
	unsigned char frame[2048];
	for (int i = 0; i < FRAMES; i++) {
		size_t len = make_frame(i, frame);
		if (send(tx, frame, len, 0) != (ssize_t)len)
			die("send");
		struct timespec ms = { 0, 2000000 };
		nanosleep(&ms, NULL);
	}
	struct timespec settle = { 0, 300000000 };
	nanosleep(&settle, NULL);
	for (int c = 0; c < ncaps; c++) {
		for (;;) {
			struct sockaddr_ll from;
			socklen_t fromlen = sizeof(from);
			ssize_t n = recvfrom(caps[c].fd, frame, sizeof(frame), 0, (struct sockaddr *)&from, &fromlen);
			if (n < 0)
				break;
			/* only frames the device received (not what was sent from it), and only the trace's */
			if (from.sll_pkttype == PACKET_OUTGOING || n < 14 || frame[12] != 0x88 || frame[13] != 0xb5)
				continue;
			print_frame(caps[c].label, frame, (size_t)n);
		}
	}
	return 0;
}

static int dump(const char *path, const char *label)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die(path);
	unsigned char header[24], rec[16], frame[65536];
	if (fread(header, 1, 24, f) != 24) {
		fclose(f);
		return 0;
	}
	while (fread(rec, 1, 16, f) == 16) {
		uint32_t caplen;
		memcpy(&caplen, rec + 8, 4);
		if (caplen > sizeof(frame) || fread(frame, 1, caplen, f) != caplen)
			break;
		print_frame(label, frame, caplen);
	}
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	if ((argc == 5 || argc == 6) && !strcmp(argv[1], "update"))
		return update(argv[2], (uint32_t)strtoul(argv[3], NULL, 0), argv[4], argc == 6 ? argv[5] : NULL);
	if (argc >= 5 && !strcmp(argv[1], "run"))
		return run(argc - 2, argv + 2);
	if (argc == 4 && !strcmp(argv[1], "dump"))
		return dump(argv[2], argv[3]);
	fprintf(stderr, "usage: kxdp update PIN KEY IFNAME | run PCAP IN PEER TARGET... | dump PCAP LABEL\n");
	return 64;
}
