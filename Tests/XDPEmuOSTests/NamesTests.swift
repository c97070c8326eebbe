import Testing
import XDPEmuOS

@Suite("Interface and namespace names")
struct NamesTests {
    @Test(arguments: ["eth0", "tap-a", "h1.v10", "a_b", "x", "abcdefghijklmno"])
    func acceptsValidInterfaceNames(_ name: String) throws {
        try InterfaceName.validate(name)
    }

    @Test(arguments: [
        ("", "is empty"),
        ("abcdefghijklmnop", "at most 15"),
        (".", "reserved"),
        ("..", "reserved"),
        ("a/b", "'/'"),
        ("a b", "whitespace"),
        ("a\tb", "whitespace"),
        ("eth0:1", "':'"),
        ("-n", "'-'"),
        ("tap€", "letters, digits"),
        ("a;rm", "letters, digits"),
    ])
    func refusesInvalidInterfaceNames(_ name: String, _ reason: String) {
        #expect {
            try InterfaceName.validate(name)
        } throws: { error in
            let error = error as? NameError
            return error?.name == name && error?.description.contains(reason) == true
                && error?.description.contains("invalid interface name") == true
        }
    }

    @Test func lengthCountsBytesNotCharacters() {
        // 8 two-byte characters: 16 bytes, over IFNAMSIZ - 1 although only 8 characters.
        #expect(throws: NameError.self) { try InterfaceName.validate(String(repeating: "é", count: 8)) }
    }

    @Test func namespaceNamesMayBeLongerThanInterfaceNames() throws {
        try NamespaceName.validate(String(repeating: "h", count: 40))
        #expect(throws: NameError.self) { try NamespaceName.validate("../etc") }
        #expect(throws: NameError.self) { try NamespaceName.validate(String(repeating: "h", count: 256)) }
    }
}
