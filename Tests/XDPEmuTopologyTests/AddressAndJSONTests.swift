import Testing

@testable import XDPEmuTopology

@Suite("Addresses and the JSON parser")
struct AddressAndJSONTests {
    @Test("MAC addresses parse six hex pairs and print lowercase")
    func macs() {
        #expect(MACAddress("02:00:00:00:00:0A")?.description == "02:00:00:00:00:0a")
        #expect(MACAddress("02:00:00:00:00:0a")?.octets == [2, 0, 0, 0, 0, 10])
        #expect(MACAddress("ff:ff:ff:ff:ff:ff") == .broadcast)
        #expect(MACAddress.broadcast.isMulticast)
        #expect(MACAddress("01:00:5e:00:00:01")?.isMulticast == true)
        for bad in [
            "", "02:00:00:00:00", "02:00:00:00:00:00:00", "2:0:0:0:0:1", "02-00-00-00-00-01", "02:00:00:00:00:+1",
            "0g:00:00:00:00:00",
        ] {
            #expect(MACAddress(bad) == nil, "\(bad)")
        }
    }

    @Test("IPv4 and IPv6 addresses and prefixes")
    func ipAddresses() {
        #expect(IPv4Address("10.77.0.1")?.rawValue == 0x0A4D_0001)
        #expect(IPv4Address("010.0.0.1") == nil)
        #expect(IPv4Address("1.2.3") == nil)
        #expect(IPv4Address("1.2.3.4.5") == nil)
        #expect(IPv6Address("2001:db8::1")?.description == "2001:db8::1")
        #expect(IPv6Address("2001:0db8:0000:0000:0000:0000:0000:0001")?.description == "2001:db8::1")
        #expect(IPv6Address("::")?.description == "::")
        #expect(IPv6Address("::1")?.description == "::1")
        #expect(IPv6Address("1::")?.description == "1::")
        #expect(IPv6Address("1:0:0:2:0:0:0:3")?.description == "1:0:0:2::3")
        #expect(IPv6Address("1:0:2:3:4:5:6:7")?.description == "1:0:2:3:4:5:6:7")
        #expect(IPv6Address("::ffff:10.0.0.1")?.groups == [0, 0, 0, 0, 0, 0xFFFF, 0x0A00, 0x0001])
        #expect(IPv6Address("fe80::1")?.isLinkLocal == true)
        #expect(IPv6Address("fec0::1")?.isLinkLocal == false)
        for bad in [
            "", ":", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "fe80::1%eth0", "1:2:3:4:5:6:7", "g::", "+1::",
        ] {
            #expect(IPv6Address(bad) == nil, "\(bad)")
        }
        #expect(IPv4CIDR("10.77.0.1/24")?.network == IPv4Address("10.77.0.0"))
        #expect(IPv4CIDR("10.77.0.1/24")?.contains(IPv4Address("10.77.0.254")!) == true)
        #expect(IPv4CIDR("10.77.0.1/24")?.contains(IPv4Address("10.77.1.1")!) == false)
        #expect(IPv4CIDR("0.0.0.0/0")?.isNetwork == true)
        #expect(IPv4CIDR("10.0.0.1/33") == nil)
        #expect(IPv4CIDR("10.0.0.1/08") == nil)
        #expect(IPv6CIDR("fd00::1/64")?.network.description == "fd00::")
        #expect(IPCIDR("10.0.0.1", allowBareAddress: true) == .v4(IPv4CIDR("10.0.0.1/32")!))
        #expect(IPCIDR("fd00::1", allowBareAddress: true) == .v6(IPv6CIDR("fd00::1/128")!))
        #expect(IPCIDR("10.0.0.1") == nil)
    }

    @Test("port ranges")
    func portRanges() {
        #expect(PortRange("80") == PortRange(80, 80))
        #expect(PortRange("1000-2000") == PortRange(1000, 2000))
        #expect(PortRange("0-65535")?.contains(65535) == true)
        for bad in ["", "-", "80-", "-80", "2000-1000", "65536", "08", "1-2-3", "http"] {
            #expect(PortRange(bad) == nil, "\(bad)")
        }
    }

    @Test("numbers keep their literal and their exact integer meaning")
    func numbers() throws {
        func integer(_ literal: String) -> JSONNumber.Integer {
            JSONNumber(literal: literal).integer
        }
        guard case .exact(false, 1000) = integer("1e3"), case .exact(true, 5) = integer("-5"),
            case .exact(false, 25) = integer("2.50e1"), case .exact(false, 0) = integer("0e99999999999"),
            case .exact(false, 120) = integer("1200e-1"),
            case .fractional = integer("1.5"), case .fractional = integer("1e-1"),
            case .tooLarge(false) = integer("1e20"), case .tooLarge(true) = integer("-99999999999999999999")
        else {
            Issue.record("integer meanings are wrong")
            return
        }
    }

    @Test("parsed values keep member order and positions")
    func parsing() throws {
        let node = try JSONParser.parse(
            Array("{\n  \"b\": [1, true, null],\n  \"a\": \"\\u00e9\\ud83d\\ude00\"\n}".utf8)
        )
        #expect(
            node.value
                == .object([
                    ("b", .array([.number(1), .bool(true), .null])), ("a", .string("é😀")),
                ])
        )
        guard case .object(let members) = node.kind else {
            Issue.record("not an object")
            return
        }
        #expect(members.map(\.keyPosition) == [SourcePosition(line: 2, column: 3), SourcePosition(line: 3, column: 3)])
        #expect(members[0].value.position == SourcePosition(line: 2, column: 8))
        #expect(JSONValue.object([("k", .string("a\"b"))]).description == #"{"k":"a\"b"}"#)
        #expect(JSONValue.object([("a", .null)]) != JSONValue.object([("b", .null)]))
    }

    @Test("columns count characters, not bytes")
    func columnsCountCharacters() {
        expectProblem("{\"é\": x}", at: "$", "line 1, column 7: expected a value, got 'x'")
    }
}
