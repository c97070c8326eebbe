import Testing
import XDPEmuCore

@testable import XDPEmuPrograms

/// `FlowKey.hash(ofFrame:)` hashes the common frames where they lie; it must agree with the full parser's
/// `PacketHeaders(parsing:)?.flowKey?.hash` on every frame, cut at every length, and on frames with damaged headers.
@Suite struct FlowHashFastPathTests {
    /// Frames of every shape the parser knows, the fast path's and the others.
    static var corpus: [[UInt8]] {
        var frames: [[UInt8]] = []
        let transports: [Packet.Transport] = [
            .tcp(source: 40000, destination: 443), .udp(source: 53, destination: 5353), .icmp(type: 8, code: 0),
            .raw(47), .raw(132),
        ]
        for t in transports {
            for payload in [[], [UInt8](repeating: 0xA5, count: 37)] {
                frames.append(Packet.ipv4Frame("10.0.0.1", "192.168.1.20", t, payload: payload))
                frames.append(Packet.ipv6Frame("2001:db8::1", "2001:db8:ffff::2", t, payload: payload))
                frames.append(Packet.ipv4Frame("10.0.0.1", "10.0.0.2", t, vlans: [(0x8100, 100)], payload: payload))
                frames.append(
                    Packet.ipv6Frame(
                        "2001:db8::1", "2001:db8::2", t,
                        vlans: [(0x88A8, 5), (0x8100, 7)], payload: payload))
                frames.append(
                    Packet.ethernet(
                        etherType: 0x0800,
                        Packet.ipv4(
                            "10.0.0.1", "10.0.0.2", t, payload: payload, options: [1, 1, 1, 0])))
                for fragment: UInt16 in [0x4000, 0x2000, 0x2001, 0x0010, 0x6000] {
                    frames.append(
                        Packet.ethernet(
                            etherType: 0x0800,
                            Packet.ipv4(
                                "10.0.0.1", "10.0.0.2", t, payload: payload, fragment: fragment)))
                }
                for chain: [Packet.ExtensionHeader] in [
                    [.hopByHop], [.routing, .destinationOptions], [.fragment(offset: 0, more: true)],
                    [.fragment(offset: 0, more: false)], [.fragment(offset: 100, more: false)],
                ] {
                    frames.append(
                        Packet.ipv6Frame(
                            "2001:db8::1", "2001:db8::2", t, extensionHeaders: chain,
                            payload: payload))
                }
            }
        }
        frames.append(Packet.arp())
        return frames
    }

    static func expected(_ frame: [UInt8]) -> UInt32? {
        frame.withUnsafeBytes { PacketHeaders(parsing: $0)?.flowKey?.hash }
    }

    static func actual(_ frame: [UInt8]) -> UInt32? {
        frame.withUnsafeBytes { FlowKey.hash(ofFrame: $0) }
    }

    @Test func agreesWithTheParserAtEveryLength() {
        var compared = 0
        for frame in Self.corpus {
            for length in 0...frame.count {
                let cut = Array(frame[..<length])
                #expect(Self.actual(cut) == Self.expected(cut), "\(frame.count)-byte frame cut to \(length)")
                compared += 1
            }
        }
        #expect(compared > 10_000)
    }

    /// Each header byte the fast path reads, set to values that must send the frame to the full parser (or give
    /// the same hash): version and IHL, total length, fragment field, protocol, next header, EtherType.
    @Test func agreesWithTheParserOnDamagedHeaders() {
        let values: [UInt8] = [
            0x00, 0x01, 0x06, 0x11, 0x13, 0x20, 0x3F, 0x40, 0x45, 0x46, 0x60, 0x65, 0x80, 0x86,
            0xDD, 0xFF,
        ]
        var state: UInt32 = 0x1234_5678
        for frame in Self.corpus {
            for offset in [12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23, 54, 55] where offset < frame.count {
                for value in values {
                    var damaged = frame
                    damaged[offset] = value
                    #expect(Self.actual(damaged) == Self.expected(damaged), "byte \(offset) = \(value)")
                    // And a second byte at random, cut at a random length: a cheap fuzz, the same every run.
                    state = state &* 1_664_525 &+ 1_013_904_223
                    let other = 12 + Int(state >> 8) % max(1, min(damaged.count, 80) - 12)
                    if other < damaged.count { damaged[other] = UInt8(truncatingIfNeeded: state >> 24) }
                    let cut = Array(damaged[..<(Int(state >> 4) % (damaged.count + 1))])
                    #expect(Self.actual(cut) == Self.expected(cut))
                    #expect(Self.actual(damaged) == Self.expected(damaged))
                }
            }
        }
    }

    /// The frames a replay mostly carries take the fast path (or the speed-up is gone unnoticed).
    @Test func untaggedTCPAndUDPTakeTheFastPath() {
        let frames = [
            Packet.ipv4Frame("10.0.0.1", "192.168.1.20", .tcp(source: 40000, destination: 443)),
            Packet.ipv4Frame("10.0.0.1", "192.168.1.20", .udp(source: 1, destination: 2)),
            Packet.ethernet(
                etherType: 0x0800,
                Packet.ipv4(
                    "10.0.0.1", "10.0.0.2", .udp(source: 1, destination: 2),
                    fragment: 0x4000)),
            Packet.ipv6Frame("2001:db8::1", "2001:db8::2", .tcp(source: 1, destination: 2)),
            Packet.ipv6Frame("2001:db8::1", "2001:db8::2", .udp(source: 1, destination: 2)),
        ]
        for frame in frames {
            let fast = frame.withUnsafeBytes { FlowKey.fastHash($0.baseAddress!, count: $0.count) }
            #expect(fast != nil && fast == Self.expected(frame))
        }
        let icmp = Packet.ipv4Frame("10.0.0.1", "10.0.0.2", .icmp(type: 8, code: 0))
        #expect(icmp.withUnsafeBytes { FlowKey.fastHash($0.baseAddress!, count: $0.count) } == nil)
    }
}
