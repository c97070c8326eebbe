import Testing
import XDPEmuCore

/// The one text form of each address type: what topology files write and what messages print.
@Suite("Addresses")
struct AddressTests {
    @Test("MAC addresses parse six hex pairs and print lowercase")
    func macs() {
        #expect(MACAddress("02:00:00:00:00:0A")?.description == "02:00:00:00:00:0a")
        #expect(MACAddress("02:00:00:00:00:0a")?.octets == [2, 0, 0, 0, 0, 10])
        #expect(MACAddress("ff:ff:ff:ff:ff:ff") == .broadcast)
        #expect(MACAddress.broadcast.isMulticast)
        #expect(MACAddress("01:00:5e:00:00:01")?.isMulticast == true)
        #expect(MACAddress(rawValue: 0x1_0200_0000_0001) == MACAddress(2, 0, 0, 0, 0, 1))
        for bad in [
            "", "02:00:00:00:00", "02:00:00:00:00:00:00", "2:0:0:0:0:1", "02-00-00-00-00-01", "02:00:00:00:00:+1",
            "0g:00:00:00:00:00",
        ] {
            #expect(MACAddress(bad) == nil, "\(bad)")
        }
    }

    @Test("IPv4 and IPv6 addresses")
    func ipAddresses() {
        #expect(IPAddress("10.77.0.1")?.ipv4Value == 0x0A4D_0001)
        #expect(IPAddress("010.0.0.1") == nil)
        #expect(IPAddress("1.2.3") == nil)
        #expect(IPAddress("1.2.3.4.5") == nil)
        #expect(IPAddress("2001:db8::1")?.description == "2001:db8::1")
        #expect(IPAddress("2001:0db8:0000:0000:0000:0000:0000:0001")?.description == "2001:db8::1")
        #expect(IPAddress("::")?.description == "::")
        #expect(IPAddress("::1")?.description == "::1")
        #expect(IPAddress("1::")?.description == "1::")
        #expect(IPAddress("1:0:0:2:0:0:0:3")?.description == "1:0:0:2::3")
        #expect(IPAddress("1:0:2:3:4:5:6:7")?.description == "1:0:2:3:4:5:6:7")
        #expect(IPAddress("::ffff:10.0.0.1")?.groups == [0, 0, 0, 0, 0, 0xFFFF, 0x0A00, 0x0001])
        #expect(IPAddress("fe80::1")?.isLinkLocal == true)
        #expect(IPAddress("fec0::1")?.isLinkLocal == false)
        #expect(IPAddress("10.0.0.1")?.isLinkLocal == false)
        for bad in [
            "", ":", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "fe80::1%eth0", "1:2:3:4:5:6:7", "g::", "+1::",
        ] {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
    }

    @Test("interface addresses keep their host bits; prefixes clear them")
    func prefixes() throws {
        let written = try #require(InterfaceAddress("10.77.0.1/24"))
        #expect(written.description == "10.77.0.1/24" && !written.isNetwork)
        #expect(written.prefix == IPPrefix("10.77.0.0/24"))
        #expect(written.prefix.contains(IPAddress("10.77.0.254")!))
        #expect(!written.prefix.contains(IPAddress("10.77.1.1")!))
        #expect(InterfaceAddress("0.0.0.0/0")?.isNetwork == true)
        #expect(InterfaceAddress("10.0.0.1/33") == nil)
        #expect(InterfaceAddress("10.0.0.1/08") == nil)
        #expect(InterfaceAddress("fd00::1/64")?.prefix.description == "fd00::/64")
        #expect(InterfaceAddress("10.0.0.1", allowBareAddress: true) == InterfaceAddress("10.0.0.1/32"))
        #expect(InterfaceAddress("fd00::1", allowBareAddress: true) == InterfaceAddress("fd00::1/128"))
        #expect(InterfaceAddress("10.0.0.1") == nil)
    }

    @Test("a prefix that does not parse is nil, never a prefix that matches everything")
    func malformedPrefixes() {
        for bad in [
            "", "/8", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8/8", "10.0.0/8", "10.0.0.0/ 8", "any", "*",
            "::/129", "fd00::/064", "10.0.0.0/33",
        ] {
            #expect(IPPrefix(bad) == nil, "\(bad)")
        }
        // The zero-length prefixes match a whole family, and only when written so.
        #expect(IPPrefix("0.0.0.0/0")?.contains(IPAddress("1.2.3.4")!) == true)
        #expect(IPPrefix("0.0.0.0/0")?.contains(IPAddress("::1")!) == false)
    }
}
