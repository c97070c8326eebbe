import Testing
import XDPEmuCore
import XDPEmuPrograms

/// The documented flow hash, re-implemented on raw bytes: 32-bit FNV-1a over source address ‖ destination address ‖
/// source port ‖ destination port ‖ protocol (network order), then MurmurHash3's fmix32.
func referenceHash(_ bytes: [UInt8]) -> UInt32 {
    var h: UInt32 = 2_166_136_261
    for byte in bytes { h = (h ^ UInt32(byte)) &* 16_777_619 }
    h ^= h >> 16
    h = h &* 0x85EB_CA6B
    h ^= h >> 13
    h = h &* 0xC2B2_AE35
    h ^= h >> 16
    return h
}

/// The tuple's bytes cut straight out of an untagged frame without extension headers or IPv4 options.
func tupleBytes(_ frame: [UInt8]) -> [UInt8] {
    if frame[12] == 0x08 {
        return Array(frame[26..<38]) + [frame[23]]  // src, dst, sport, dport; protocol
    }
    return Array(frame[22..<58]) + [frame[20]]
}

@Suite struct FlowHashTests {
    /// Values computed by hand (a Python one-liner over the same bytes), so a change of the hash shows up here.
    @Test func hashesOfFixedFlows() throws {
        let flows: [(frame: [UInt8], hash: UInt32)] = [
            (Packet.ipv4Frame("10.0.0.1", "192.168.1.20", .tcp(source: 40000, destination: 443)), 0x04F3_538D),
            (Packet.ipv4Frame("10.0.0.2", "10.0.0.1", .udp(source: 53, destination: 5353)), 0x0FBC_A354),
            (Packet.ipv6Frame("2001:db8::1", "2001:db8::2", .tcp(source: 1234, destination: 80)), 0xF889_CEC0),
            (Packet.ipv4Frame("10.0.0.1", "10.0.0.2", .icmp(type: 8, code: 0)), 0xE2B5_C3EB),
        ]
        for flow in flows {
            let key = try #require(parse(flow.frame)?.flowKey)
            #expect(key.hash == flow.hash)
            // ICMP has no ports: its type, code and checksum sit where the ports would be, so skip the byte cut.
            if key.ipProtocol != 1 {
                #expect(referenceHash(tupleBytes(flow.frame)) == flow.hash)
            }
        }
    }

    @Test func hashMatchesTheReferenceOnManyFlows() throws {
        for port in stride(from: UInt16(1), to: 65000, by: 997) {
            let v6Source = "2001:db8::\(String(port, radix: 16))"
            for frame in [
                Packet.ipv4Frame("172.16.\(port % 256).1", "8.8.8.8", .udp(source: port, destination: 53)),
                Packet.ipv6Frame(v6Source, "fd00::53", .tcp(source: 443, destination: port)),
            ] {
                let key = try #require(parse(frame)?.flowKey)
                #expect(key.hash == referenceHash(tupleBytes(frame)))
            }
        }
    }

    /// The hash is over the plain 5-tuple, not symmetric: the two directions of these flows hash differently.
    @Test func directionsHashDifferently() throws {
        let forward = try #require(
            parse(Packet.ipv4Frame("10.0.0.1", "192.168.1.20", .tcp(source: 40000, destination: 443)))?.flowKey)
        let backward = try #require(
            parse(Packet.ipv4Frame("192.168.1.20", "10.0.0.1", .tcp(source: 443, destination: 40000)))?.flowKey)
        #expect(forward.reversed == backward)
        #expect(backward.hash == 0xBBA0_303B)
        #expect(forward.hash != backward.hash)
        let v6 = try #require(
            parse(Packet.ipv6Frame("2001:db8::1", "2001:db8::2", .tcp(source: 1234, destination: 80)))?.flowKey)
        #expect(v6.reversed.hash == 0xE926_EE22)
    }

    @Test func ipv4AndIPv6OfTheSameNumbersDiffer() {
        let v4 = FlowKey(
            source: IPAddress(ipv4: 1), destination: IPAddress(ipv4: 2), sourcePort: 3, destinationPort: 4,
            ipProtocol: 6)
        let v6 = FlowKey(
            source: IPAddress(ipv6High: 0, low: 1), destination: IPAddress(ipv6High: 0, low: 2),
            sourcePort: 3, destinationPort: 4, ipProtocol: 6)
        #expect(v4.hash == referenceHash([0, 0, 0, 1, 0, 0, 0, 2, 0, 3, 0, 4, 6]))
        let zeros = [UInt8](repeating: 0, count: 15)
        #expect(v6.hash == referenceHash(zeros + [1] + zeros + [2, 0, 3, 0, 4, 6]))
        #expect(v4.hash != v6.hash)
    }
}
