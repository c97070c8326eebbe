import Testing

@testable import XDPEmuRuntime

// The virtio-net header steps of live mode (LiveVirtio.swift) on hand-built frames: no TAP needed.

@Suite("Virtio-net headers, checksums and software segmentation")
struct LiveVirtioTests {
    /// An Ethernet + IPv4 + TCP frame with `payload` bytes (0, 1, 2...), flags PSH|ACK|FIN, checksums as a
    /// kernel hands a TSO super-frame over: IP header complete, TCP field holding the pseudo-header sum.
    func tcpFrame(ipv6: Bool = false, payload: Int, flags: UInt8 = 0x19) -> [UInt8] {
        var frame: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1] + (ipv6 ? [0x86, 0xdd] : [0x08, 0x00])
        let tcpLength = 20 + payload
        if ipv6 {
            frame += [0x60, 0, 0, 0] + be16(tcpLength) + [6, 64]
            frame += [0xfd] + Array(repeating: 0, count: 14) + [1] + [0xfd] + Array(repeating: 0, count: 14) + [2]
        } else {
            frame += [0x45, 0] + be16(20 + tcpLength) + [0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]
        }
        frame += [0x30, 0x39, 0x00, 0x50, 0, 0, 0x10, 0, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]
        frame += (0..<payload).map { UInt8(truncatingIfNeeded: $0) }
        if !ipv6 { store(&frame, 24, checksum(Array(frame[14..<34]))) }
        let tcp = ipv6 ? 54 : 34
        // The partial checksum: the folded pseudo-header sum, not complemented.
        store(&frame, tcp + 16, ~checksum(pseudoHeader(frame, ipv6: ipv6, tcpLength: tcpLength)))
        return frame
    }

    func be16(_ value: Int) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xff)] }

    func store(_ frame: inout [UInt8], _ offset: Int, _ value: UInt16) {
        frame[offset] = UInt8(value >> 8)
        frame[offset + 1] = UInt8(value & 0xff)
    }

    func load(_ frame: [UInt8], _ offset: Int) -> Int { Int(frame[offset]) << 8 | Int(frame[offset + 1]) }

    /// RFC 1071 over big-endian words, written the plain way to check the optimised one.
    func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum = 0
        for i in stride(from: 0, to: bytes.count, by: 2) {
            sum += Int(bytes[i]) << 8 + (i + 1 < bytes.count ? Int(bytes[i + 1]) : 0)
        }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    func pseudoHeader(_ frame: [UInt8], ipv6: Bool, tcpLength: Int, protocol number: UInt8 = 6) -> [UInt8] {
        ipv6
            ? Array(frame[22..<54]) + [0, 0] + be16(tcpLength) + [0, 0, 0, number]
            : Array(frame[26..<34]) + [0, number] + be16(tcpLength)
    }

    /// Whether the TCP checksum of a complete frame verifies.
    func tcpChecksumVerifies(_ frame: [UInt8], ipv6: Bool) -> Bool {
        let tcp = ipv6 ? 54 : 34
        return checksum(pseudoHeader(frame, ipv6: ipv6, tcpLength: frame.count - tcp) + Array(frame[tcp...])) == 0
    }

    @Test(arguments: [false, true])
    func aSuperFrameIsCutIntoSegmentsAsTCPGSOWould(ipv6: Bool) throws {
        let frame = tcpFrame(ipv6: ipv6, payload: 2500)
        let segmenter = TCPSegmenter()
        var segments = [[UInt8]]()
        let count = frame.withUnsafeBytes { packet in
            segmenter.segment(packet, gsoSize: 1000) {
                segments.append(Array($0))
                return true
            }
        }

        #expect(count == 3)
        let tcp = ipv6 ? 54 : 34
        #expect(segments.map(\.count) == [tcp + 20 + 1000, tcp + 20 + 1000, tcp + 20 + 500])
        for (index, segment) in segments.enumerated() {
            #expect(Array(segment[(tcp + 20)...]) == Array(frame[(tcp + 20 + 1000 * index)...].prefix(1000)))
            #expect(load(segment, tcp + 4) << 16 | load(segment, tcp + 6) == 0x1000 + 1000 * index)
            #expect(segment[tcp + 13] == (index == 2 ? 0x19 : 0x10), "FIN and PSH only on the last segment")
            #expect(tcpChecksumVerifies(segment, ipv6: ipv6))
            if ipv6 {
                #expect(load(segment, 18) == segment.count - 54)
            } else {
                #expect(load(segment, 16) == segment.count - 14)
                #expect(load(segment, 18) == 0x1234 + index)
                #expect(checksum(Array(segment[14..<34])) == 0)
            }
        }
    }

    @Test func aSegmentRefusedStopsTheCutAndOnlyTCPIsCut() {
        let frame = tcpFrame(payload: 3000)
        var seen = 0
        let count = frame.withUnsafeBytes { packet in
            TCPSegmenter().segment(packet, gsoSize: 1000) { _ in
                seen += 1
                return seen < 2
            }
        }
        #expect(count == 1 && seen == 2)
        var udp = frame
        udp[23] = 17
        #expect(udp.withUnsafeBytes { TCPSegmenter().segment($0, gsoSize: 1000) { _ in true } } == nil)
    }

    @Test func aHeaderIsRebuiltFromTheSuperFrame() throws {
        var frame = tcpFrame(payload: 4000, flags: 0x90)
        let header = try #require(frame.withUnsafeBytes { VirtioNetHeader.gso(for: $0, gsoSize: 1448) })
        #expect(header.flags == VirtioNetHeader.needsChecksum)
        #expect(header.gsoType == VirtioNetHeader.gsoTCPv4 | VirtioNetHeader.gsoECN)
        #expect(header.headerLength == 54 && header.gsoSize == 1448)
        #expect(header.checksumStart == 34 && header.checksumOffset == 16)

        var bytes = [UInt8](repeating: 0xee, count: VirtioNetHeader.length)
        bytes.withUnsafeMutableBytes { header.store(to: $0.baseAddress!) }
        #expect(bytes.withUnsafeBytes { VirtioNetHeader(loading: $0.baseAddress!) } == header)
        #expect(bytes[10] == 0 && bytes[11] == 0)
        #expect(frame.withUnsafeMutableBytes { VirtioNetHeader.accept(header, packet: $0) } == 1448)
        frame[12] = 0x08
        frame[13] = 0x06
        #expect(frame.withUnsafeBytes { VirtioNetHeader.gso(for: $0, gsoSize: 1448) } == nil, "not IP: no header")
    }

    @Test func anOrdinaryFramesPendingChecksumIsCompletedOnRead() {
        // A UDP datagram whose checksum field holds the pseudo-header sum, as with NEEDS_CSUM.
        var frame = tcpFrame(payload: 0)
        frame = Array(frame[0..<34]) + [0x30, 0x39, 0x00, 0x35, 0, 13, 0, 0, 1, 2, 3, 4, 5]
        frame[23] = 17
        store(&frame, 16, 20 + 13)
        store(&frame, 34 + 6, ~checksum(pseudoHeader(frame, ipv6: false, tcpLength: 13, protocol: 17)))
        var header = VirtioNetHeader()
        header.flags = VirtioNetHeader.needsChecksum
        header.checksumStart = 34
        header.checksumOffset = 6

        let gsoSize = frame.withUnsafeMutableBytes { VirtioNetHeader.accept(header, packet: $0) }

        #expect(gsoSize == 0)
        #expect(checksum(pseudoHeader(frame, ipv6: false, tcpLength: 13, protocol: 17) + Array(frame[34...])) == 0)
        header.checksumStart = 40
        #expect(frame.withUnsafeMutableBytes { VirtioNetHeader.accept(header, packet: $0) } == nil, "field outside")
        header.checksumStart = 34
        header.gsoType = 3  // UDP fragmentation offload: never offered
        #expect(frame.withUnsafeMutableBytes { VirtioNetHeader.accept(header, packet: $0) } == nil)
    }
}
