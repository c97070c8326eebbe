import Testing
import XDPEmuCore
import XDPEmuPrograms

func parse(_ bytes: [UInt8]) -> PacketHeaders? {
    bytes.withUnsafeBytes { PacketHeaders(parsing: $0) }
}

/// Header parsing: every layer the parser knows, the malformed cases, and truncation at every length.
@Suite struct PacketParserTests {
    @Test func untaggedIPv4TCP() throws {
        let h = try #require(parse(Packet.ipv4Frame("10.0.0.1", "192.168.1.20", .tcp(source: 40000, destination: 443))))
        #expect(h.destinationMAC == Packet.macB && h.sourceMAC == Packet.macA)
        #expect(h.vlanCount == 0 && h.vlanID == nil && h.etherType == 0x0800 && h.networkOffset == 14)
        #expect(h.network == .ipv4 && !h.isMalformed && h.ipProtocol == 6 && h.fragment == .none)
        #expect(h.source == IPAddress("10.0.0.1") && h.destination == IPAddress("192.168.1.20"))
        #expect(h.transportOffset == 34 && h.hasPorts && h.sourcePort == 40000 && h.destinationPort == 443)
        #expect(
            h.flowKey
                == FlowKey(
                    source: IPAddress(ipv4: 0x0A00_0001), destination: IPAddress(ipv4: 0xC0A8_0114),
                    sourcePort: 40000, destinationPort: 443, ipProtocol: 6))
    }

    @Test func singleAndDoubleVLANTags() throws {
        let one = try #require(
            parse(
                Packet.ipv4Frame(
                    "10.0.0.1", "10.0.0.2", .udp(source: 53, destination: 5353),
                    vlans: [(0x8100, 0x2064)])))
        #expect(one.vlanCount == 1 && one.outerVLANTag == 0x2064 && one.vlanID == 100)
        #expect(one.networkOffset == 18 && one.transportOffset == 38 && one.ipProtocol == 17)
        #expect(one.sourcePort == 53 && one.destinationPort == 5353)

        let qinq = try #require(
            parse(
                Packet.ipv6Frame(
                    "2001:db8::1", "2001:db8::2", .tcp(source: 1, destination: 2),
                    vlans: [(0x88A8, 0x0005), (0x8100, 0x0FFF)])))
        #expect(qinq.vlanCount == 2 && qinq.outerVLANTag == 5 && qinq.innerVLANTag == 0x0FFF && qinq.vlanID == 5)
        #expect(qinq.etherType == 0x86DD && qinq.networkOffset == 22 && qinq.network == .ipv6)
        #expect(qinq.transportOffset == 62 && qinq.hasPorts && qinq.destinationPort == 2)
    }

    @Test func aThirdTagIsNotParsed() throws {
        let frame = Packet.ipv4Frame(
            "10.0.0.1", "10.0.0.2", .udp(source: 1, destination: 2),
            vlans: [(0x88A8, 1), (0x8100, 2), (0x8100, 3)])
        let h = try #require(parse(frame))
        #expect(h.vlanCount == 2 && h.etherType == 0x8100 && h.network == .other && !h.isMalformed)
        #expect(h.flowKey == nil)
    }

    @Test func ipv4OptionsAreSkipped() throws {
        let options: [UInt8] = [1, 1, 1, 0, 0x94, 4, 0, 0]  // NOP NOP NOP EOL, router alert
        let packet = Packet.ipv4("10.0.0.1", "10.0.0.2", .tcp(source: 7, destination: 8), options: options)
        let h = try #require(parse(Packet.ethernet(etherType: 0x0800, packet)))
        #expect(h.transportOffset == 14 + 28 && h.sourcePort == 7 && h.destinationPort == 8 && !h.isMalformed)
    }

    @Test func ipv4FragmentsShareOneFlowKey() throws {
        let udp = Packet.Transport.udp(source: 1000, destination: 2000)
        let first = try #require(
            parse(
                Packet.ethernet(
                    etherType: 0x0800,
                    Packet.ipv4("10.0.0.1", "10.0.0.2", udp, fragment: 0x2000))))
        #expect(first.fragment == .first && first.hasPorts && first.sourcePort == 1000)
        // Offset 185 (1480 bytes): the payload is the middle of the datagram, with no UDP header.
        let later = try #require(
            parse(
                Packet.ethernet(
                    etherType: 0x0800,
                    Packet.ipv4(
                        "10.0.0.1", "10.0.0.2", udp, payload: [0xDE, 0xAD, 0xBE, 0xEF, 0, 0, 0, 0], fragment: 185,
                        transportHeader: false))))
        #expect(later.fragment == .later && later.transportOffset == nil && !later.hasPorts && !later.isMalformed)
        #expect(later.ipProtocol == 17 && later.sourcePort == 0)
        let key = try #require(first.flowKey)
        #expect(key.sourcePort == 0 && key.destinationPort == 0)
        #expect(later.flowKey == key)
    }

    @Test func ipv6ExtensionHeadersAreWalked() throws {
        let frame = Packet.ipv6Frame(
            "fe80::1", "ff02::1:2", .udp(source: 546, destination: 547),
            extensionHeaders: [.hopByHop, .routing, .destinationOptions])
        let h = try #require(parse(frame))
        #expect(h.network == .ipv6 && !h.isMalformed && h.ipProtocol == 17)
        #expect(h.transportOffset == 14 + 40 + 24 && h.sourcePort == 546 && h.destinationPort == 547)
        #expect(h.source == IPAddress("fe80::1") && h.destination == IPAddress("ff02::1:2"))
        #expect(h.source.high == 0xFE80_0000_0000_0000 && h.source.low == 1)
    }

    @Test func ipv6Fragments() throws {
        let tcp = Packet.Transport.tcp(source: 5, destination: 6)
        let first = try #require(
            parse(
                Packet.ipv6Frame(
                    "2001:db8::1", "2001:db8::2", tcp,
                    extensionHeaders: [.fragment(offset: 0, more: true)])))
        #expect(first.fragment == .first && first.hasPorts && first.transportOffset == 14 + 48)
        let later = try #require(
            parse(
                Packet.ethernet(
                    etherType: 0x86DD,
                    Packet.ipv6(
                        "2001:db8::1", "2001:db8::2", tcp, payload: [1, 2, 3, 4],
                        extensionHeaders: [.fragment(offset: 100, more: false)], transportHeader: false))))
        #expect(later.fragment == .later && later.ipProtocol == 6 && later.transportOffset == nil && !later.isMalformed)
        #expect(later.flowKey == first.flowKey)
    }

    @Test func extensionHeaderChainIsBounded() throws {
        let udp = Packet.Transport.udp(source: 1, destination: 2)
        let eight = [Packet.ExtensionHeader](
            repeating: .destinationOptions,
            count: PacketHeaders.maxIPv6ExtensionHeaders)
        let ok = try #require(parse(Packet.ipv6Frame("::1", "::2", udp, extensionHeaders: eight)))
        #expect(!ok.isMalformed && ok.hasPorts)
        let nine = try #require(
            parse(
                Packet.ipv6Frame(
                    "::1", "::2", udp,
                    extensionHeaders: eight + [.destinationOptions])))
        #expect(nine.isMalformed && !nine.hasPorts && nine.flowKey == nil)
    }

    @Test func icmpAndICMPv6() throws {
        let echo = try #require(parse(Packet.ipv4Frame("10.0.0.1", "10.0.0.2", .icmp(type: 8, code: 0))))
        #expect(echo.ipProtocol == 1 && echo.hasICMP && echo.icmpType == 8 && !echo.hasPorts)
        #expect(echo.flowKey?.sourcePort == 0)
        let unreachable = try #require(parse(Packet.ipv6Frame("::1", "::2", .icmp(type: 1, code: 4))))
        #expect(
            unreachable.ipProtocol == 58 && unreachable.hasICMP && unreachable.icmpType == 1
                && unreachable.icmpCode == 4)
    }

    @Test func arpIsNotIP() throws {
        let h = try #require(parse(Packet.arp()))
        #expect(h.network == .other && h.etherType == 0x0806 && !h.isMalformed && h.flowKey == nil)
    }

    @Test func invalidIPHeadersAreMalformed() throws {
        let udp = Packet.Transport.udp(source: 1, destination: 2)
        var v4InV6 = Packet.ipv6Frame("::1", "::2", udp)
        v4InV6[14] = 0x45
        var v6InV4 = Packet.ipv4Frame("10.0.0.1", "10.0.0.2", udp)
        v6InV4[14] = 0x65
        var shortIHL = Packet.ipv4Frame("10.0.0.1", "10.0.0.2", udp)
        shortIHL[14] = 0x44
        for frame in [v4InV6, v6InV4, shortIHL] {
            let h = try #require(parse(frame))
            #expect(h.isMalformed && h.transportOffset == nil && h.flowKey == nil && !h.hasPorts)
        }
    }

    @Test func totalLengthShorterThanTheHeaderIsMalformed() throws {
        var frame = Packet.ipv4Frame("10.0.0.1", "10.0.0.2", .udp(source: 1, destination: 2))
        frame[16] = 0
        frame[17] = 19
        #expect(try #require(parse(frame)).isMalformed)
    }

    /// Every prefix of a double-tagged IPv6 TCP frame with three extension headers: the parser never reads past the
    /// end, and reports exactly what the prefix holds.
    @Test func everyTruncationOfAnIPv6TCPFrame() throws {
        let frame = Packet.ipv6Frame(
            "2001:db8::1", "2001:db8::2", .tcp(source: 1234, destination: 80),
            vlans: [(0x88A8, 10), (0x8100, 20)],
            extensionHeaders: [.hopByHop, .routing, .fragment(offset: 0, more: false)],
            payload: [1, 2, 3, 4, 5])
        let transport = 14 + 8 + 40 + 24
        #expect(frame.count == transport + 20 + 5)
        for length in 0...frame.count {
            let h = parse(Array(frame[0..<length]))
            if length < 14 {
                #expect(h == nil)
                continue
            }
            let headers = try #require(h)
            let complete = length >= transport + 20
            #expect(headers.hasPorts == complete, "length \(length)")
            #expect(headers.isMalformed == !complete, "length \(length)")
            #expect(headers.vlanCount == (length >= 22 ? 2 : length >= 18 ? 1 : 0), "length \(length)")
            #expect((headers.flowKey != nil) == complete, "length \(length)")
        }
    }

    @Test func everyTruncationOfAnIPv4TCPFrame() throws {
        let frame = Packet.ipv4Frame("10.0.0.1", "10.0.0.2", .tcp(source: 1, destination: 2), payload: [9, 9])
        for length in 14...frame.count {
            let headers = try #require(parse(Array(frame[0..<length])))
            #expect(headers.hasPorts == (length >= 54) && headers.isMalformed == (length < 54), "length \(length)")
            #expect((headers.transportOffset != nil) == (length >= 34), "length \(length)")
        }
    }

    @Test func addressText() throws {
        #expect(IPAddress("10.1.2.3")?.ipv4Value == 0x0A01_0203)
        #expect(IPAddress("10.1.2.3")?.description == "10.1.2.3")
        let canonicalForms = [
            ("2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"), ("::", "::"), ("::1", "::1"), ("fe80::", "fe80::"),
            ("1:0:0:2:0:0:0:3", "1:0:0:2::3"), ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
            ("::ffff:10.0.0.1", "::ffff:a00:1"), ("1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0"),
        ]
        for (text, canonical) in canonicalForms {
            #expect(IPAddress(text)?.description == canonical, "\(text)")
        }
        let malformed = [
            "", "10.0.0", "10.0.0.256", "10.0.0.+1", "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "g::",
            ":1", "1:2:3:4:5:6:7::8",
        ]
        for bad in malformed {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
    }
}
