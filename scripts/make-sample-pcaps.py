#!/usr/bin/env python3
"""Write the small sample traces in pcaps/ that go with the sample topologies in topologies/.

Usage: scripts/make-sample-pcaps.py [--out DIR]     (default: pcaps/ next to this script's directory)

Every file is a classic pcap: nanosecond-resolution magic (0xa1b23c4d) written little endian, version 2.4,
snaplen 262144, link type 1 (Ethernet). Frames are stored whole (caplen == len), without FCS and without padding
to 60 bytes, as a capture on a TAP shows them. IPv4 header, ICMP, UDP and TCP checksums are correct; IPv4 packets
have DF set, TTL 64 and IP IDs counting from 0x1000 per trace.

Each trace's clock starts at 1700000000.000000000 and advances by a few microseconds per frame; every trace has
at least one pair of frames with identical timestamps (noted below), which a replay must keep in file order.
Frames are sent by the hosts of the matching topology, so a replay that needs an ingress port can find it from the
source MAC (the host behind port N has the MAC listed for N).

The script uses only the standard library, reads no clock and no randomness: running it twice writes identical
bytes (a test in Tests/XDPEmuTopologyTests compares its output with the committed files).

two-hosts-icmp.pcap  (topologies/two-hosts.json; h1 02:00:00:00:01:01 10.77.0.1 on xe0, h2 02:00:00:00:01:02
                      10.77.0.2 on xe1)
    1    h1 -> broadcast  ARP who-has 10.77.0.2 tell 10.77.0.1
    2    h2 -> h1         ARP reply 10.77.0.2 is-at 02:00:00:00:01:02
    3-22 ten ICMP echo request (h1 -> h2, id 0x4d01, seq 1..10, 56 bytes of data) / echo reply (h2 -> h1) pairs;
         the replies to seq 4 and seq 8 carry the same timestamp as their request.

star4-mixed.pcap  (topologies/star4.json; s1..s4 = 02:00:00:00:02:01..04, 10.78.0.1..4, on p1..p4; all frames
                   from s1)
    1  ARP who-has 10.78.0.2 to ff:ff:ff:ff:ff:ff      (misses the dst_mac table: XDP_PASS)
    2  UDP 10.78.0.1:40001 -> 10.78.0.2:7000 to s2    (key 2 -> p2)
    3  TCP SYN 10.78.0.1:40002 -> 10.78.0.3:80 to s3  (key 3 -> p3)
    4  UDP 10.78.0.1:40003 -> 10.78.0.4:7000 to s4    (key 4 -> p4)
    5  TCP SYN 10.78.0.1:40004 -> 10.78.0.2:22 to s2  (key 2 -> p2)
    6  UDP 10.78.0.1:40005 -> 10.78.0.99:7000 to the unknown MAC 02:00:00:00:02:99 (miss: XDP_PASS)
    7  UDP 10.78.0.1:40006 -> 10.78.0.255:9999 to ff:ff:ff:ff:ff:ff (miss: XDP_PASS), same timestamp as frame 6
    8  UDP 10.78.0.1:40007 -> 10.78.0.4:7000 to s4 with 1472 bytes of data (a full 1500-byte IP packet)

acl-mixed.pcap  (topologies/acl-firewall.json; f1 02:00:00:00:04:01 10.81.0.1 on fw0 -> f2 02:00:00:00:04:02
                 10.81.0.2; the verdict is what fw0's rules decide)
    1  ARP who-has 10.81.0.2, broadcast        allow (not IP)
    2  TCP SYN :40001 -> :23                   drop  (tcp dport 23)
    3  TCP SYN :40002 -> :80                   allow
    4  TCP SYN :40003 -> :2323                 allow
    5  TCP ACK :23 -> :40004                   allow (the rule matches the destination port only)
    6  UDP :40005 -> :5353                     drop  (udp 5000-5999)
    7  UDP :40006 -> :5001                     drop
    8  UDP :40007 -> :4999                     allow (just below the range)
    9  UDP :40008 -> :5000                     drop  (first port of the range), same timestamp as frame 8
    10 UDP :40009 -> :5999                     drop  (last port of the range)
    11 UDP :40010 -> :6000                     allow (just above the range)
    12 UDP :40011 -> :53                       allow
    13 ICMP echo request id 0x4d03 seq 1       allow

l2-switch.pcap  (topologies/l2-switch.json; w1..w3 = 02:00:00:00:03:01..03, 10.79.0.1..3, on sw1..sw3)
    1  w1 -> broadcast  ARP who-has 10.79.0.2              (flood; the switch learns w1 on sw1)
    2  w2 -> w1         ARP reply 10.79.0.2 is-at w2       (w1 known: to sw1; learns w2 on sw2)
    3  w1 -> w2         ICMP echo request id 0x4d04 seq 1  (w2 known: to sw2)
    4  w2 -> w1         ICMP echo reply                    (to sw1)
    5  w1 -> w3         UDP :40001 -> :7000                (w3 unknown: flood)
    6  w3 -> w1         UDP :7000 -> :40001                (to sw1; learns w3 on sw3), same timestamp as frame 5
    7  w1 -> w3         UDP :40001 -> :7000                (w3 known now: to sw3)
    8  w3 -> 01:00:5e:00:00:fb  UDP 10.79.0.3:5353 -> 224.0.0.251:5353, TTL 255 (multicast: flood)

reflector-udp.pcap  (topologies/reflector.json; r1 02:00:00:00:05:01 10.80.0.1 -> the port refl0,
                     02:00:00:00:05:fe, which stands in for the gateway 10.80.0.254)
    1-5  UDP 10.80.0.1:40000+n -> 198.51.100.7:7 with 0, 18, 64, 512 and 1472 bytes of data (through the
         gateway); frames 4 and 5 share a timestamp
    6    UDP 10.80.0.1:40010 -> 10.80.0.254:7 with 32 bytes of data (to the gateway itself)
"""

import argparse
import os
import struct

START_NS = 1_700_000_000 * 1_000_000_000
BROADCAST = "ff:ff:ff:ff:ff:ff"
ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
TCP_SYN = 0x02
TCP_ACK = 0x10


def mac(text):
    return bytes(int(part, 16) for part in text.split(":"))


def ip4(text):
    return bytes(int(part) for part in text.split("."))


def checksum(data):
    """The Internet checksum (RFC 1071) of data."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(dst, src, ethertype, payload):
    return mac(dst) + mac(src) + struct.pack("!H", ethertype) + payload


def arp(op, sender_mac, sender_ip, target_mac, target_ip):
    """An Ethernet/IPv4 ARP packet; op 1 is a request, 2 a reply."""
    return struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, op) + mac(sender_mac) + ip4(sender_ip) + mac(target_mac) + ip4(
        target_ip
    )


class Trace:
    """Frames and their timestamps; IP IDs count from 0x1000."""

    def __init__(self):
        self.now = START_NS
        self.records = []
        self.ip_id = 0x1000

    def advance(self, microseconds):
        self.now += microseconds * 1000

    def add(self, frame):
        self.records.append((self.now, frame))

    def ipv4(self, src, dst, proto, payload, ttl=64):
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), self.ip_id, 0x4000, ttl, proto, 0, ip4(src), ip4(dst)
        )
        self.ip_id += 1
        header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
        return header + payload

    def write(self, path):
        with open(path, "wb") as out:
            out.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))
            for timestamp, frame in self.records:
                seconds, nanoseconds = divmod(timestamp, 1_000_000_000)
                out.write(struct.pack("<IIII", seconds, nanoseconds, len(frame), len(frame)))
                out.write(frame)


def pseudo_header(src, dst, proto, length):
    return ip4(src) + ip4(dst) + struct.pack("!BBH", 0, proto, length)


def udp(src, dst, sport, dport, payload):
    segment = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    value = checksum(pseudo_header(src, dst, PROTO_UDP, len(segment)) + segment) or 0xFFFF
    return segment[:6] + struct.pack("!H", value) + segment[8:]


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b"", window=64240):
    segment = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, window, 0, 0) + payload
    value = checksum(pseudo_header(src, dst, PROTO_TCP, len(segment)) + segment)
    return segment[:16] + struct.pack("!H", value) + segment[18:]


def icmp_echo(kind, identifier, sequence, data):
    """kind 8 is an echo request, 0 an echo reply."""
    message = struct.pack("!BBHHH", kind, 0, 0, identifier, sequence) + data
    return message[:2] + struct.pack("!H", checksum(message)) + message[4:]


def pattern(length, seed=0):
    return bytes((seed + index) & 0xFF for index in range(length))


def two_hosts_icmp():
    h1, h2 = ("02:00:00:00:01:01", "10.77.0.1"), ("02:00:00:00:01:02", "10.77.0.2")
    trace = Trace()
    trace.add(ethernet(BROADCAST, h1[0], ETH_ARP, arp(1, h1[0], h1[1], "00:00:00:00:00:00", h2[1])))
    trace.advance(12)
    trace.add(ethernet(h1[0], h2[0], ETH_ARP, arp(2, h2[0], h2[1], h1[0], h1[1])))
    for sequence in range(1, 11):
        trace.advance(7)
        data = pattern(56, sequence)
        request = trace.ipv4(h1[1], h2[1], PROTO_ICMP, icmp_echo(8, 0x4D01, sequence, data))
        trace.add(ethernet(h2[0], h1[0], ETH_IPV4, request))
        if sequence not in (4, 8):
            trace.advance(9)
        reply = trace.ipv4(h2[1], h1[1], PROTO_ICMP, icmp_echo(0, 0x4D01, sequence, data))
        trace.add(ethernet(h1[0], h2[0], ETH_IPV4, reply))
    return trace


def star4_mixed():
    s = {n: ("02:00:00:00:02:0%d" % n, "10.78.0.%d" % n) for n in range(1, 5)}
    src_mac, src_ip = s[1]
    trace = Trace()

    def send(dst_mac, packet, step=5):
        trace.add(ethernet(dst_mac, src_mac, ETH_IPV4, packet))
        trace.advance(step)

    trace.add(ethernet(BROADCAST, src_mac, ETH_ARP, arp(1, src_mac, src_ip, "00:00:00:00:00:00", s[2][1])))
    trace.advance(4)
    send(s[2][0], trace.ipv4(src_ip, s[2][1], PROTO_UDP, udp(src_ip, s[2][1], 40001, 7000, pattern(32))))
    send(s[3][0], trace.ipv4(src_ip, s[3][1], PROTO_TCP, tcp(src_ip, s[3][1], 40002, 80, 1000, 0, TCP_SYN)))
    send(s[4][0], trace.ipv4(src_ip, s[4][1], PROTO_UDP, udp(src_ip, s[4][1], 40003, 7000, pattern(32, 1))))
    send(s[2][0], trace.ipv4(src_ip, s[2][1], PROTO_TCP, tcp(src_ip, s[2][1], 40004, 22, 2000, 0, TCP_SYN)))
    send("02:00:00:00:02:99", trace.ipv4(src_ip, "10.78.0.99", PROTO_UDP, udp(src_ip, "10.78.0.99", 40005, 7000,
        pattern(16))), step=0)
    send(BROADCAST, trace.ipv4(src_ip, "10.78.0.255", PROTO_UDP, udp(src_ip, "10.78.0.255", 40006, 9999,
        pattern(16, 2))))
    send(s[4][0], trace.ipv4(src_ip, s[4][1], PROTO_UDP, udp(src_ip, s[4][1], 40007, 7000, pattern(1472, 3))))
    return trace


def acl_mixed():
    (f1_mac, f1_ip), (f2_mac, f2_ip) = ("02:00:00:00:04:01", "10.81.0.1"), ("02:00:00:00:04:02", "10.81.0.2")
    trace = Trace()

    def send(packet, step=6):
        trace.add(ethernet(f2_mac, f1_mac, ETH_IPV4, trace.ipv4(f1_ip, f2_ip, *packet)))
        trace.advance(step)

    def tcp_to(sport, dport, flags, seq):
        return PROTO_TCP, tcp(f1_ip, f2_ip, sport, dport, seq, 0 if flags == TCP_SYN else 1, flags)

    def udp_to(sport, dport):
        return PROTO_UDP, udp(f1_ip, f2_ip, sport, dport, pattern(20, dport & 0xFF))

    trace.add(ethernet(BROADCAST, f1_mac, ETH_ARP, arp(1, f1_mac, f1_ip, "00:00:00:00:00:00", f2_ip)))
    trace.advance(6)
    send(tcp_to(40001, 23, TCP_SYN, 100))
    send(tcp_to(40002, 80, TCP_SYN, 200))
    send(tcp_to(40003, 2323, TCP_SYN, 300))
    send(tcp_to(23, 40004, TCP_ACK, 400))
    send(udp_to(40005, 5353))
    send(udp_to(40006, 5001))
    send(udp_to(40007, 4999), step=0)
    send(udp_to(40008, 5000))
    send(udp_to(40009, 5999))
    send(udp_to(40010, 6000))
    send(udp_to(40011, 53))
    send((PROTO_ICMP, icmp_echo(8, 0x4D03, 1, pattern(56))))
    return trace


def l2_switch():
    w = {n: ("02:00:00:00:03:0%d" % n, "10.79.0.%d" % n) for n in range(1, 4)}
    trace = Trace()

    def send(src, dst_mac, ethertype, payload, step=8):
        trace.add(ethernet(dst_mac, w[src][0], ethertype, payload))
        trace.advance(step)

    def udp_packet(src, dst, sport, dport, data):
        return trace.ipv4(w[src][1], w[dst][1], PROTO_UDP, udp(w[src][1], w[dst][1], sport, dport, data))

    send(1, BROADCAST, ETH_ARP, arp(1, w[1][0], w[1][1], "00:00:00:00:00:00", w[2][1]))
    send(2, w[1][0], ETH_ARP, arp(2, w[2][0], w[2][1], w[1][0], w[1][1]))
    data = pattern(56, 4)
    send(1, w[2][0], ETH_IPV4, trace.ipv4(w[1][1], w[2][1], PROTO_ICMP, icmp_echo(8, 0x4D04, 1, data)))
    send(2, w[1][0], ETH_IPV4, trace.ipv4(w[2][1], w[1][1], PROTO_ICMP, icmp_echo(0, 0x4D04, 1, data)))
    send(1, w[3][0], ETH_IPV4, udp_packet(1, 3, 40001, 7000, pattern(24)), step=0)
    send(3, w[1][0], ETH_IPV4, udp_packet(3, 1, 7000, 40001, pattern(24, 5)))
    send(1, w[3][0], ETH_IPV4, udp_packet(1, 3, 40001, 7000, pattern(24, 6)))
    mdns = udp(w[3][1], "224.0.0.251", 5353, 5353, pattern(12, 7))
    send(3, "01:00:5e:00:00:fb", ETH_IPV4, trace.ipv4(w[3][1], "224.0.0.251", PROTO_UDP, mdns, ttl=255))
    return trace


def reflector_udp():
    host_mac, host_ip, port_mac = "02:00:00:00:05:01", "10.80.0.1", "02:00:00:00:05:fe"
    trace = Trace()

    def send(dst_ip, sport, size, step=10):
        packet = trace.ipv4(host_ip, dst_ip, PROTO_UDP, udp(host_ip, dst_ip, sport, 7, pattern(size, sport & 0xFF)))
        trace.add(ethernet(port_mac, host_mac, ETH_IPV4, packet))
        trace.advance(step)

    for index, size in enumerate((0, 18, 64, 512, 1472)):
        send("198.51.100.7", 40000 + index, size, step=0 if index == 3 else 10)
    send("10.80.0.254", 40010, 32)
    return trace


TRACES = {
    "two-hosts-icmp.pcap": two_hosts_icmp,
    "star4-mixed.pcap": star4_mixed,
    "acl-mixed.pcap": acl_mixed,
    "l2-switch.pcap": l2_switch,
    "reflector-udp.pcap": reflector_udp,
}


def main():
    default_out = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pcaps")
    parser = argparse.ArgumentParser(description="Write the sample pcap traces.")
    parser.add_argument("--out", default=default_out, help="directory to write into (default: %(default)s)")
    arguments = parser.parse_args()
    os.makedirs(arguments.out, exist_ok=True)
    for name, make in TRACES.items():
        make().write(os.path.join(arguments.out, name))


if __name__ == "__main__":
    main()
