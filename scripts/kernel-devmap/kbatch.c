// SPDX-License-Identifier: MIT
/*
 * kbatch: the kernel's answers to an `xdpemu map batch` script.
 *
 * Reads the same operation syntax as `xdpemu map batch FILE|-` and performs every
 * operation against the running kernel: devmap operations with the bpf(2) syscall,
 * devices as real network devices created and deleted over rtnetlink. Prints one
 * answer per operation ("ok ..." or the errno name). Meant to run as root inside a
 * network namespace of its own (see compare.sh): devices are created in the current
 * namespace and ifindexes are resolved there.
 *
 *   device NAME [ifindex N] [mtu N] [down] [noxmit]   -> ok IFINDEX | ERRNO
 *       a veth (it has ndo_xdp_xmit; the peer gets a high ifindex and the name
 *       kbpN); "noxmit" makes an ifb instead (no ndo_xdp_xmit; bridge, then veth,
 *       if ifb is not available)
 *   create devmap|devmap_hash MAX [key_size N] [value_size N] [flags N] -> ok | ERRNO
 *   update KEY DEVICE [any|noexist|exist|N]   (DEVICE: declared name or ifindex)
 *   delete KEY | lookup KEY (-> ok NAME, plus " progid=N" for value_size 8) | next KEY|none (-> ok NEXT)
 *   unregister DEVICE                         (RTM_DELLINK)
 *
 * Operations before a successful create use fd -1, so the kernel answers EBADF.
 * --unprivileged drops CAP_NET_ADMIN and CAP_SYS_ADMIN from the effective set around
 * BPF_MAP_CREATE. A create that would make the kernel allocate more than 1 GiB (and
 * less than the machine's RAM) is not attempted: it answers SKIPPED.
 * A syntax error prints "error: line N: ..." on stderr, no answer; exit code 2.
 *
 * Build: cc -O2 -Wall -o kbatch kbatch.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

/* BPF_MAP_TYPE_DEVMAP_HASH (5.4+); by number so old headers still build */
#define BPF_MAP_TYPE_DEVMAP_HASH_VALUE 25

/* ---------- errno names ---------- */

static const char *errno_name(int e)
{
	static char buf[32];
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case E2BIG: return "E2BIG";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case ENOSPC: return "ENOSPC";
	case ERANGE: return "ERANGE";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EOVERFLOW: return "EOVERFLOW";
	case ENETDOWN: return "ENETDOWN";
	case EMSGSIZE: return "EMSGSIZE";
	}
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

/* ---------- script state ---------- */

#define MAX_DEVICES 4096
struct device {
	char name[IFNAMSIZ];
	uint32_t ifindex;	/* as created; kept after unregister (stale ifindex) */
};
static struct device devices[MAX_DEVICES];
static int ndevices;
static int map_fd = -1;
static uint32_t map_value_size;	/* of the map map_fd refers to: 8 adds the program id to lookups */
static int unprivileged;
static unsigned peer_counter;
static int line_no;
static int syntax_errors;

static void syntax(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "error: line %d: ", line_no);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	syntax_errors++;
}

/* Decimal or 0x hex, whole word, fits in 64 bits. */
static int parse_number(const char *s, uint64_t *out)
{
	int base = 10;
	uint64_t v = 0;
	if ((s[0] == '0') && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!*s)
		return 0;
	for (; *s; s++) {
		int d;
		if (*s >= '0' && *s <= '9') d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f') d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F') d = *s - 'A' + 10;
		else return 0;
		if (v > (UINT64_MAX - d) / base)
			return 0;
		v = v * base + d;
	}
	*out = v;
	return 1;
}

static int parse_u32(const char *s, uint32_t *out)
{
	uint64_t v;
	if (!parse_number(s, &v) || v > UINT32_MAX)
		return 0;
	*out = (uint32_t)v;
	return 1;
}

static struct device *find_device(const char *name)
{
	for (int i = ndevices - 1; i >= 0; i--)
		if (!strcmp(devices[i].name, name))
			return &devices[i];
	return NULL;
}

/* DEVICE argument: a number is an ifindex, otherwise a declared name. */
static int resolve_device(const char *text, uint32_t *ifindex)
{
	uint64_t v;
	if (parse_number(text, &v)) {
		if (v > UINT32_MAX) {
			syntax("ifindex must be a number 0...4294967295");
			return 0;
		}
		*ifindex = (uint32_t)v;
		return 1;
	}
	struct device *d = find_device(text);
	if (!d) {
		syntax("unknown device '%s' (declare it with 'device %s')", text, text);
		return 0;
	}
	*ifindex = d->ifindex;
	return 1;
}

/* "ok NAME", then " progid=N" for a map with value_size 8 (ifindex + program) */
static void print_value(const uint32_t *value)
{
	char name[IF_NAMESIZE];
	uint32_t ifindex = value[0];
	int found = 0;
	for (int i = ndevices - 1; i >= 0 && !found; i--)
		if (devices[i].ifindex == ifindex) {
			printf("ok %s", devices[i].name);
			found = 1;
		}
	if (!found && if_indextoname(ifindex, name))
		printf("ok %s", name);
	else if (!found)
		printf("ok %u", ifindex);
	if (map_value_size == 8)
		printf(" progid=%u", value[1]);
	printf("\n");
}

/* ---------- rtnetlink ---------- */

/* A request: nlmsghdr, ifinfomsg, attributes (one buffer, so attributes may follow freely). */
struct nlreq {
	union {
		struct nlmsghdr nh;
		char buf[2048];
	};
};

static struct ifinfomsg *req_ifi(struct nlreq *req)
{
	return NLMSG_DATA(&req->nh);
}

static struct rtattr *nla_put(struct nlmsghdr *nh, int type, const void *data, int len)
{
	char *base = (char *)nh;
	struct rtattr *rta = (struct rtattr *)(base + NLMSG_ALIGN(nh->nlmsg_len));
	rta->rta_type = type;
	rta->rta_len = RTA_LENGTH(len);
	if (len)
		memcpy(base + NLMSG_ALIGN(nh->nlmsg_len) + RTA_LENGTH(0), data, len);
	nh->nlmsg_len = NLMSG_ALIGN(nh->nlmsg_len) + RTA_ALIGN(rta->rta_len);
	return rta;
}

static struct rtattr *nla_nest(struct nlmsghdr *nh, int type)
{
	return nla_put(nh, type, NULL, 0);
}

static void nla_nest_end(struct nlmsghdr *nh, struct rtattr *nest)
{
	nest->rta_len = (char *)nh + nh->nlmsg_len - (char *)nest;
}

/* Sends one request, waits for the ack: 0 or a positive errno. */
static int rtnl_talk(struct nlmsghdr *nh)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return errno;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	nh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	nh->nlmsg_seq = 1;
	int err = 0;
	if (sendto(fd, nh, nh->nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = errno;
		goto out;
	}
	for (;;) {
		char buf[8192];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = errno;
			goto out;
		}
		for (struct nlmsghdr *r = (struct nlmsghdr *)buf; NLMSG_OK(r, n); r = NLMSG_NEXT(r, n)) {
			if (r->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(r);
				err = -e->error;
				goto out;
			}
		}
	}
out:
	close(fd);
	return err;
}

static int link_add(const char *name, const char *kind, uint32_t ifindex, int have_mtu,
		    uint32_t mtu, int up)
{
	struct nlreq req;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
	req.nh.nlmsg_type = RTM_NEWLINK;
	req.nh.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	req_ifi(&req)->ifi_family = AF_UNSPEC;
	req_ifi(&req)->ifi_index = (int)ifindex;
	req_ifi(&req)->ifi_flags = up ? IFF_UP : 0;
	req_ifi(&req)->ifi_change = IFF_UP;
	nla_put(&req.nh, IFLA_IFNAME, name, strlen(name) + 1);
	if (have_mtu)
		nla_put(&req.nh, IFLA_MTU, &mtu, sizeof(mtu));
	struct rtattr *linkinfo = nla_nest(&req.nh, IFLA_LINKINFO);
	nla_put(&req.nh, IFLA_INFO_KIND, kind, strlen(kind));
	if (!strcmp(kind, "veth")) {
		char peer[IFNAMSIZ];
		unsigned n = ++peer_counter;
		snprintf(peer, sizeof(peer), "kbp%u", n);
		struct rtattr *data = nla_nest(&req.nh, IFLA_INFO_DATA);
		struct rtattr *p = nla_nest(&req.nh, VETH_INFO_PEER);
		struct ifinfomsg pifi = { .ifi_family = AF_UNSPEC, .ifi_index = (int)(1000000 + n) };
		/* the peer's ifinfomsg sits right after the nested header */
		memcpy(req.buf + ((char *)p - req.buf) + RTA_LENGTH(0), &pifi, sizeof(pifi));
		req.nh.nlmsg_len += NLMSG_ALIGN(sizeof(pifi));
		nla_put(&req.nh, IFLA_IFNAME, peer, strlen(peer) + 1);
		nla_nest_end(&req.nh, p);
		nla_nest_end(&req.nh, data);
	}
	nla_nest_end(&req.nh, linkinfo);
	return rtnl_talk(&req.nh);
}

static int link_del(uint32_t ifindex)
{
	struct nlreq req;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
	req.nh.nlmsg_type = RTM_DELLINK;
	req_ifi(&req)->ifi_family = AF_UNSPEC;
	req_ifi(&req)->ifi_index = (int)ifindex;
	if (ifindex > INT32_MAX || ifindex == 0)
		return ENODEV;
	return rtnl_talk(&req.nh);
}

/* ---------- capabilities (for --unprivileged) ---------- */

/*
 * Modern kernels let CAP_SYS_ADMIN stand in for CAP_NET_ADMIN (bpf_token_capable), so
 * both leave the effective set; CAP_BPF stays, so kernel.unprivileged_bpf_disabled does
 * not refuse the call before the devmap's own CAP_NET_ADMIN check.
 */
static int set_net_admin(int on)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];
	uint32_t mask = (1u << CAP_NET_ADMIN) | (1u << CAP_SYS_ADMIN);
	if (syscall(SYS_capget, &hdr, data))
		return -1;
	if (on)
		data[0].effective |= mask & data[0].permitted;
	else
		data[0].effective &= ~mask;
	return (int)syscall(SYS_capset, &hdr, data);
}

/*
 * Safety: a modern kernel allocates max_entries pointers up front with no size limit of
 * its own. Creates whose array is larger than ALLOC_LIMIT but could fit in RAM are not
 * sent (answer SKIPPED); larger than RAM, vmalloc refuses at once (ENOMEM) and the call
 * is made.
 */
#define ALLOC_LIMIT (1ull << 30)
static int too_big_to_try(uint32_t type, uint32_t max_entries)
{
	uint64_t bytes = (uint64_t)max_entries * 8, total_kb = 0;
	if (type == BPF_MAP_TYPE_DEVMAP_HASH_VALUE) {
		/* over 2^31 entries the kernel refuses (EINVAL) before allocating; else one
		 * hlist head per bucket, roundup_pow_of_two(max_entries) of them */
		if (max_entries > (1u << 31))
			return 0;
		uint64_t buckets = 1;
		while (buckets < max_entries)
			buckets <<= 1;
		bytes = buckets * 8;
	}
	char line[256];
	if (bytes <= ALLOC_LIMIT)
		return 0;
	FILE *f = fopen("/proc/meminfo", "r");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "MemTotal: %" SCNu64 " kB", &total_kb) == 1)
				break;
		fclose(f);
	}
	return !total_kb || bytes <= total_kb * 1024;
}

/* ---------- bpf ---------- */

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static void answer(long rc)
{
	if (rc < 0)
		printf("%s\n", errno_name(errno));
	else
		printf("ok\n");
}

/* ---------- operations ---------- */

static void op_device(char **w, int n)
{
	if (n < 2) {
		syntax("device needs a NAME");
		return;
	}
	const char *name = w[1];
	uint64_t v;
	if (parse_number(name, &v) || !strncmp(name, "0x", 2)) {
		syntax("device name '%s' must not be a number", name);
		return;
	}
	uint32_t ifindex = 0, mtu = 1500;
	int have_mtu = 0, up = 1, xmit = 1;
	for (int i = 2; i < n;) {
		if (!strcmp(w[i], "ifindex") || !strcmp(w[i], "mtu")) {
			if (i + 1 >= n || !parse_number(w[i + 1], &v) || v > INT32_MAX) {
				syntax("%s needs a number 1...2147483647", w[i]);
				return;
			}
			if (!strcmp(w[i], "ifindex")) {
				if (v == 0) {
					syntax("ifindex must be at least 1");
					return;
				}
				ifindex = (uint32_t)v;
			} else {
				mtu = (uint32_t)v;
				have_mtu = 1;
			}
			i += 2;
		} else if (!strcmp(w[i], "down")) {
			up = 0;
			i++;
		} else if (!strcmp(w[i], "noxmit")) {
			xmit = 0;
			i++;
		} else {
			syntax("unknown device option '%s'", w[i]);
			return;
		}
	}
	if (strlen(name) >= IFNAMSIZ) {
		printf("%s\n", errno_name(ENAMETOOLONG));
		return;
	}
	static const char *xmit_kinds[] = { "veth", NULL };
	static const char *noxmit_kinds[] = { "ifb", "bridge", "veth", NULL };
	const char **kinds = xmit ? xmit_kinds : noxmit_kinds;
	int err = EOPNOTSUPP;
	for (int k = 0; kinds[k]; k++) {
		err = link_add(name, kinds[k], ifindex, have_mtu, mtu, up);
		if (err != EOPNOTSUPP)
			break;
	}
	if (err) {
		printf("%s\n", errno_name(err));
		return;
	}
	unsigned idx = if_nametoindex(name);
	if (!idx) {
		printf("%s\n", errno_name(errno));
		return;
	}
	if (ndevices == MAX_DEVICES) {
		fprintf(stderr, "kbatch: too many devices\n");
		exit(1);
	}
	snprintf(devices[ndevices].name, IFNAMSIZ, "%s", name);
	devices[ndevices].ifindex = idx;
	ndevices++;
	printf("ok %u\n", idx);
}

static void op_create(char **w, int n)
{
	if (n < 3) {
		syntax("create needs a map type and MAX_ENTRIES");
		return;
	}
	uint32_t type;
	if (!strcmp(w[1], "devmap"))
		type = BPF_MAP_TYPE_DEVMAP;
	else if (!strcmp(w[1], "devmap_hash"))
		type = BPF_MAP_TYPE_DEVMAP_HASH_VALUE;
	else {
		syntax("unknown map type '%s' (devmap, devmap_hash)", w[1]);
		return;
	}
	uint32_t max_entries, key_size = 4, value_size = 4, flags = 0;
	if (!parse_u32(w[2], &max_entries)) {
		syntax("MAX_ENTRIES must be a number 0...4294967295");
		return;
	}
	for (int i = 3; i < n; i += 2) {
		uint32_t v;
		if (i + 1 >= n || !parse_u32(w[i + 1], &v)) {
			syntax("'%s' needs a number", w[i]);
			return;
		}
		if (!strcmp(w[i], "key_size")) key_size = v;
		else if (!strcmp(w[i], "value_size")) value_size = v;
		else if (!strcmp(w[i], "flags")) flags = v;
		else {
			syntax("unknown create option '%s'", w[i]);
			return;
		}
	}
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_type = type;
	attr.key_size = key_size;
	attr.value_size = value_size;
	attr.max_entries = max_entries;
	attr.map_flags = flags;
	attr.numa_node = 0;	/* used only with BPF_F_NUMA_NODE: node 0 is online */
	if (too_big_to_try(type, max_entries)) {
		printf("SKIPPED (a %llu-byte kernel allocation)\n", (unsigned long long)max_entries * 8);
		return;
	}
	if (unprivileged && set_net_admin(0)) {
		perror("kbatch: capset");
		exit(1);
	}
	long fd = sys_bpf(BPF_MAP_CREATE, &attr);
	int saved = errno;
	if (unprivileged && set_net_admin(1)) {
		perror("kbatch: capset");
		exit(1);
	}
	errno = saved;
	if (fd >= 0) {
		if (map_fd >= 0)
			close(map_fd);
		map_fd = (int)fd;
		map_value_size = value_size;
	}
	answer(fd);
}

static int parse_key(const char *text, uint32_t *key)
{
	if (!parse_u32(text, key)) {
		syntax("KEY must be a number 0...4294967295, got '%s'", text);
		return 0;
	}
	return 1;
}

static void op_update(char **w, int n)
{
	if (n != 3 && n != 4) {
		syntax("usage: update KEY DEVICE [any|noexist|exist|N]");
		return;
	}
	uint32_t key, ifindex;
	uint64_t flags = BPF_ANY;
	if (!parse_key(w[1], &key) || !resolve_device(w[2], &ifindex))
		return;
	if (n == 4) {
		if (!strcmp(w[3], "any")) flags = BPF_ANY;
		else if (!strcmp(w[3], "noexist")) flags = BPF_NOEXIST;
		else if (!strcmp(w[3], "exist")) flags = BPF_EXIST;
		else if (!parse_number(w[3], &flags)) {
			syntax("flags must be any, noexist, exist or a number");
			return;
		}
	}
	/* key and value buffers larger than any size a devmap accepts; value: ifindex, then a prog fd 0 */
	uint32_t kbuf[16] = { key }, vbuf[16] = { ifindex, 0 };
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = (uint32_t)map_fd;	/* -1 before a successful create: EBADF */
	attr.key = (uintptr_t)kbuf;
	attr.value = (uintptr_t)vbuf;
	attr.flags = flags;
	answer(sys_bpf(BPF_MAP_UPDATE_ELEM, &attr));
}

static void op_keyed(char **w, int n)
{
	if (n != 2) {
		syntax("usage: %s KEY", w[0]);
		return;
	}
	uint32_t key;
	if (!parse_key(w[1], &key))
		return;
	uint32_t kbuf[16] = { key }, vbuf[16] = { 0 };
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = (uint32_t)map_fd;
	attr.key = (uintptr_t)kbuf;
	if (!strcmp(w[0], "delete")) {
		answer(sys_bpf(BPF_MAP_DELETE_ELEM, &attr));
		return;
	}
	attr.value = (uintptr_t)vbuf;
	if (sys_bpf(BPF_MAP_LOOKUP_ELEM, &attr) < 0) {
		answer(-1);
		return;
	}
	print_value(vbuf);
}

static void op_next(char **w, int n)
{
	if (n != 2) {
		syntax("usage: next KEY|none");
		return;
	}
	uint32_t key, kbuf[16] = { 0 }, next[16] = { 0 };
	int have_key = strcmp(w[1], "none") != 0;
	if (have_key) {
		if (!parse_key(w[1], &key))
			return;
		kbuf[0] = key;
	}
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = (uint32_t)map_fd;
	attr.key = have_key ? (uintptr_t)kbuf : 0;
	attr.next_key = (uintptr_t)next;
	if (sys_bpf(BPF_MAP_GET_NEXT_KEY, &attr) < 0) {
		answer(-1);
		return;
	}
	printf("ok %u\n", next[0]);
}

static void op_unregister(char **w, int n)
{
	if (n != 2) {
		syntax("usage: unregister DEVICE");
		return;
	}
	uint32_t ifindex;
	if (!resolve_device(w[1], &ifindex))
		return;
	/* a declared name whose device is already gone must not hit a newer device that reused the ifindex */
	struct device *d = find_device(w[1]);
	if (d) {
		char name[IF_NAMESIZE];
		if (!if_indextoname(ifindex, name) || strcmp(name, d->name)) {
			printf("ENODEV\n");
			return;
		}
	}
	int err = link_del(ifindex);
	if (err)
		printf("%s\n", errno_name(err));
	else
		printf("ok\n");
}

/* ---------- main ---------- */

static void run_line(char *line)
{
	char *hash = strchr(line, '#');
	if (hash)
		*hash = 0;
	char *w[64];
	int n = 0;
	for (char *tok = strtok(line, " \t\r\n"); tok && n < 64; tok = strtok(NULL, " \t\r\n"))
		w[n++] = tok;
	if (!n)
		return;
	if (!strcmp(w[0], "device")) op_device(w, n);
	else if (!strcmp(w[0], "create")) op_create(w, n);
	else if (!strcmp(w[0], "update")) op_update(w, n);
	else if (!strcmp(w[0], "delete") || !strcmp(w[0], "lookup")) op_keyed(w, n);
	else if (!strcmp(w[0], "next")) op_next(w, n);
	else if (!strcmp(w[0], "unregister")) op_unregister(w, n);
	else syntax("unknown operation '%s'", w[0]);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--unprivileged"))
			unprivileged = 1;
		else if (!path)
			path = argv[i];
		else
			path = NULL, i = argc;
	}
	if (!path) {
		fprintf(stderr, "usage: kbatch [--unprivileged] FILE|-\n");
		return 64;
	}
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	if (!f) {
		fprintf(stderr, "kbatch: %s: %s\n", path, strerror(errno));
		return 2;
	}
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) >= 0) {
		line_no++;
		run_line(line);
	}
	free(line);
	return syntax_errors ? 2 : 0;
}
