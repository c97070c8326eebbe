import Testing

@testable import XDPEmuTopology

@Suite("Addresses and the JSON parser")
struct AddressAndJSONTests {
    @Test("port ranges")
    func portRanges() {
        #expect(parsePortRange("80") == 80...80)
        #expect(parsePortRange("1000-2000") == 1000...2000)
        #expect(parsePortRange("0-65535")?.contains(65535) == true)
        for bad in ["", "-", "80-", "-80", "2000-1000", "65536", "08", "1-2-3", "http"] {
            #expect(parsePortRange(bad) == nil, "\(bad)")
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
