#!/usr/bin/env python3
"""Write a large, deterministic classic pcap trace for benchmarks (never commit its output: keep it in /tmp).

Usage: scripts/make-bench-trace.py FRAMES OUT.pcap [--flows 64] [--mix mixed|small|imix] [--per-timestamp 1]
                                   [--gaps MIN-MAX] [--pcapng]

Frames: Ethernet II + IPv4 + UDP from 02:00:00:00:0a:01 to 02:00:00:00:0a:02, `--flows` flows (10.90.0.1 ->
10.91.0.x, source port 40000 + x, destination port 7000 + x % 7), one frame per flow in turn. Every eighth flow is
IPv6 (2001:db8::1 -> 2001:db8:1::x) so that both fast paths of the hash are exercised. Sizes cycle through a fixed
list whose mean is ~500 bytes (`mixed`) or ~100 bytes (`small`, for the 10-million-frame memory check); `imix`
draws them from a seeded generator: 55% of 64 bytes, 30% of 576, 10% of 1514, 5% uniform in 64..1514 (mean ~400).
The file is nanosecond pcap, little endian, snaplen 262144; timestamps start at 1700000000 s and advance 1
microsecond per frame, or per `--per-timestamp` frames (which then share a timestamp, as in a microsecond capture
of a busy link), or by a gap drawn uniformly from `--gaps MIN-MAX` nanoseconds (seeded) per frame.
`--pcapng` writes the same records as pcapng instead, the way dumpcap does: a Section Header Block, one Interface
Description Block (if_tsresol 10^-9) and an Enhanced Packet Block per frame. No clock and no unseeded randomness: the
same arguments give the same bytes. IP and UDP checksums are left 0 (the emulator does not check them).
"""

import argparse
import struct
import sys

SIZES = {
    # mean (64+128+256+512+576+1024+1514+60+90+800) / 10 = 502.4
    "mixed": [64, 128, 256, 512, 576, 1024, 1514, 60, 90, 800],
    # mean 102.0
    "small": [60, 64, 90, 128, 168],
}


class Generator:
    """A 64-bit linear congruential generator (Knuth's MMIX constants): the same seed gives the same draws."""

    def __init__(self, seed: int) -> None:
        self.state = seed

    def below(self, bound: int) -> int:
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        return (self.state >> 33) % bound


def imix_size(draw: Generator) -> int:
    roll = draw.below(100)
    if roll < 55:
        return 64
    if roll < 85:
        return 576
    if roll < 95:
        return 1514
    return 64 + draw.below(1514 - 64 + 1)


def frame(flow: int, size: int) -> bytes:
    eth_v4 = bytes.fromhex("02000000 0a02 02000000 0a01".replace(" ", "")) + b"\x08\x00"
    sport = 40000 + flow
    dport = 7000 + flow % 7
    if flow % 8 == 7:
        eth = eth_v4[:12] + b"\x86\xdd"
        size = max(size, 14 + 40 + 8)
        payload = size - 14 - 40 - 8
        udp = struct.pack("!HHHH", sport, dport, 8 + payload, 0)
        ip = struct.pack("!IHBB", 6 << 28, 8 + payload, 17, 64)
        ip += bytes.fromhex("20010db8000000000000000000000001")
        ip += bytes.fromhex("20010db8000100000000000000000000")[:14] + struct.pack("!H", flow)
        return eth + ip + udp + bytes(payload)
    size = max(size, 14 + 20 + 8)
    payload = size - 14 - 20 - 8
    udp = struct.pack("!HHHH", sport, dport, 8 + payload, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + payload, flow, 0x4000, 64, 17, 0,
                     bytes([10, 90, 0, 1]), bytes([10, 91, flow >> 8 & 0xFF, flow & 0xFF]))
    return eth_v4 + ip + udp + bytes(payload)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frames", type=int)
    parser.add_argument("out")
    parser.add_argument("--flows", type=int, default=64)
    parser.add_argument("--mix", choices=sorted(SIZES) + ["imix"], default="mixed")
    parser.add_argument("--gaps", help="MIN-MAX: nanoseconds between timestamps, drawn per frame")
    parser.add_argument("--per-timestamp", type=int, default=1)
    parser.add_argument("--pcapng", action="store_true")
    args = parser.parse_args()

    if args.mix == "imix":
        draw = Generator(1)
        sizes = [imix_size(draw) for _ in range(8192)]
    else:
        sizes = SIZES[args.mix]
    # The sequence of (flow, size) repeats every lcm(flows, len(sizes)) frames: build that block of records once
    # (without timestamps) and stamp each record as it is written.
    period = args.flows * len(sizes)
    while period % args.flows or period % len(sizes):
        period += 1
    records = []
    for i in range(period):
        data = frame(i % args.flows, sizes[i % len(sizes)])
        if args.pcapng:
            # Enhanced Packet Block: type, total length, interface 0, then (after the time stamp) the lengths, the
            # padded data and the total length again.
            total = 32 + (len(data) + 3) // 4 * 4
            records.append((struct.pack("<III", 6, total, 0),
                            struct.pack("<II", len(data), len(data)) + data + bytes(-len(data) % 4)
                            + struct.pack("<I", total)))
        else:
            records.append((b"", struct.pack("<II", len(data), len(data)) + data))

    start = 1_700_000_000 * 1_000_000_000
    if args.pcapng:
        section = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
        resolution = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)  # if_tsresol 10^-9, opt_endofopt
        interface = struct.pack("<IIHHI", 1, 20 + len(resolution), 1, 0, 262144) + resolution
        header = section + interface + struct.pack("<I", 20 + len(resolution))
        pack = struct.Struct("<II").pack
        stamp = lambda t: pack(t >> 32, t & 0xFFFFFFFF)
    else:
        header = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)
        pack = struct.Struct("<II").pack
        stamp = lambda t: pack(t // 1_000_000_000, t % 1_000_000_000)
    with open(args.out, "wb", buffering=1 << 22) as out:
        out.write(header)
        chunk = []
        gaps = None
        if args.gaps:
            low, high = (int(x) for x in args.gaps.split("-"))
            gaps = Generator(2)
        t = start
        for i in range(args.frames):
            before, after = records[i % period]
            if gaps:
                t += low + gaps.below(high - low + 1) if i else 0
            else:
                t = start + i // args.per_timestamp * 1000
            chunk.append(before)
            chunk.append(stamp(t))
            chunk.append(after)
            if len(chunk) >= 3 * 65536:
                out.write(b"".join(chunk))
                chunk.clear()
        out.write(b"".join(chunk))


if __name__ == "__main__":
    sys.exit(main())
