// A small strict JSON parser (RFC 8259) that remembers where each value starts.
//
// Why not JSONSerialization: the loader reports problems by JSON path *and* position, says where a syntax error is
// by line and column, must read 64-bit integers exactly (NSNumber goes through Double for some literals), and must
// see duplicate member names, which JSONSerialization silently collapses.

/// A line and column in a topology file, both starting at 1. Columns count Unicode scalars, not bytes.
public struct SourcePosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public static func < (lhs: SourcePosition, rhs: SourcePosition) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }

    public var description: String { "line \(line), column \(column)" }
}

/// A parsed JSON value and where it starts.
struct JSONNode: Sendable {
    enum Kind: Sendable {
        case null
        case bool(Bool)
        case number(JSONNumber)
        case string(String)
        case array([JSONNode])
        case object([JSONMember])
    }

    var kind: Kind
    var position: SourcePosition

    /// The value without positions, for custom program configurations.
    var value: JSONValue {
        switch kind {
        case .null: .null
        case .bool(let value): .bool(value)
        case .number(let number): .number(number.doubleValue)
        case .string(let value): .string(value)
        case .array(let nodes): .array(nodes.map(\.value))
        case .object(let members): .object(members.map { ($0.key, $0.value.value) })
        }
    }

    /// "a string", "an object"... for type mismatch messages.
    var typeName: String {
        switch kind {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// The value as short JSON text for messages: numbers as written, long values cut with an ellipsis.
    var compact: String {
        let text = compactText(limit: 48)
        return text.count > 48 ? String(text.prefix(47)) + "…" : text
    }

    private func compactText(limit: Int) -> String {
        switch kind {
        case .number(let number): return number.literal
        case .string(let text): return quotedForMessage(text, limit: limit)
        case .array(let nodes):
            var text = "["
            for (index, node) in nodes.enumerated() {
                if text.count > limit { break }
                text += (index == 0 ? "" : ",") + node.compactText(limit: limit)
            }
            return text + "]"
        case .object(let members):
            var text = "{"
            for (index, member) in members.enumerated() {
                if text.count > limit { break }
                text +=
                    (index == 0 ? "" : ",") + quotedForMessage(member.key, limit: limit) + ":"
                    + member.value.compactText(limit: limit)
            }
            return text + "}"
        default: return value.description
        }
    }
}

/// One `"key": value` of an object.
struct JSONMember: Sendable {
    var key: String
    var keyPosition: SourcePosition
    var value: JSONNode
}

/// A JSON number kept as its literal, so integers can be read exactly.
struct JSONNumber: Sendable {
    /// What the number means as an integer.
    enum Integer: Sendable {
        /// An integral value: `3`, `-7`, `1e3`, `2.50e1`.
        case exact(negative: Bool, magnitude: UInt64)
        /// Integral, but its magnitude is at least 2^64.
        case tooLarge(negative: Bool)
        /// Has a fractional part: `1.5`, `1e-3`.
        case fractional
    }

    let literal: String

    var doubleValue: Double { Double(literal) ?? .nan }

    /// Computes the integer meaning of `literal` from its digits, never through `Double`.
    var integer: Integer {
        var bytes = Array(literal.utf8)[...]
        let negative = bytes.first == UInt8(ascii: "-")
        if negative { bytes = bytes.dropFirst() }
        var digits: [UInt8] = []
        var exponent = 0
        var index = bytes.startIndex
        while index < bytes.endIndex, isDigit(bytes[index]) {
            digits.append(bytes[index] - UInt8(ascii: "0"))
            index += 1
        }
        if index < bytes.endIndex, bytes[index] == UInt8(ascii: ".") {
            index += 1
            while index < bytes.endIndex, isDigit(bytes[index]) {
                digits.append(bytes[index] - UInt8(ascii: "0"))
                exponent -= 1
                index += 1
            }
        }
        if index < bytes.endIndex, bytes[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            var exponentNegative = false
            if bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
                exponentNegative = bytes[index] == UInt8(ascii: "-")
                index += 1
            }
            var written = 0
            while index < bytes.endIndex {
                // Saturate: any exponent this large already decides the answer.
                written = min(written * 10 + Int(bytes[index] - UInt8(ascii: "0")), 1_000_000)
                index += 1
            }
            exponent += exponentNegative ? -written : written
        }
        while let last = digits.last, last == 0, digits.count > 0 {
            digits.removeLast()
            exponent += 1
        }
        guard let firstNonZero = digits.firstIndex(where: { $0 != 0 }) else {
            return .exact(negative: false, magnitude: 0)
        }
        digits.removeFirst(firstNonZero)
        if exponent < 0 { return .fractional }
        if digits.count + exponent > 20 { return .tooLarge(negative: negative) }
        var magnitude: UInt64 = 0
        for digit in digits + Array(repeating: 0, count: exponent) {
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit))
            if overflow1 || overflow2 { return .tooLarge(negative: negative) }
            magnitude = sum
        }
        return .exact(negative: negative, magnitude: magnitude)
    }
}

/// A syntax error: what was expected and where.
struct JSONSyntaxError: Error, Sendable {
    var message: String
    var position: SourcePosition
}

/// Parses one JSON document from UTF-8 bytes. A leading UTF-8 byte order mark is skipped.
struct JSONParser {
    /// Deeper documents are refused rather than risking the stack; topology files nest about six levels.
    static let maximumDepth = 128

    private let bytes: [UInt8]
    private var index = 0
    private var line = 1
    private var column = 1
    private var depth = 0

    private init(bytes: [UInt8]) {
        self.bytes = bytes
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
    }

    static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONNode {
        var parser = JSONParser(bytes: bytes)
        parser.skipWhitespace()
        guard parser.index < bytes.count else { throw parser.error("the document is empty") }
        let node = try parser.parseValue()
        parser.skipWhitespace()
        guard parser.index == bytes.count else {
            throw parser.error("unexpected \(parser.describeCurrent()) after the end of the document")
        }
        return node
    }

    private var position: SourcePosition { SourcePosition(line: line, column: column) }

    private func error(_ message: String, at position: SourcePosition? = nil) -> JSONSyntaxError {
        JSONSyntaxError(message: message, position: position ?? self.position)
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func advance() {
        let byte = bytes[index]
        index += 1
        if byte == UInt8(ascii: "\n") {
            line += 1
            column = 1
        } else if byte & 0xC0 != 0x80 {
            // UTF-8 continuation bytes do not start a new column.
            column += 1
        }
    }

    private func describeCurrent() -> String {
        guard let byte = current else { return "end of input" }
        if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        if byte == 0x20 { return "space" }
        let hex = String(byte, radix: 16, uppercase: true)
        return "byte 0x" + (hex.count == 1 ? "0" : "") + hex
    }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 {
            advance()
        }
    }

    private mutating func parseValue() throws(JSONSyntaxError) -> JSONNode {
        let start = position
        switch current {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return JSONNode(kind: .string(try parseString()), position: start)
        case UInt8(ascii: "t"):
            try parseLiteral("true")
            return JSONNode(kind: .bool(true), position: start)
        case UInt8(ascii: "f"):
            try parseLiteral("false")
            return JSONNode(kind: .bool(false), position: start)
        case UInt8(ascii: "n"):
            try parseLiteral("null")
            return JSONNode(kind: .null, position: start)
        case let byte? where byte == UInt8(ascii: "-") || isDigit(byte):
            return JSONNode(kind: .number(try parseNumber()), position: start)
        default:
            throw error("expected a value, got \(describeCurrent())")
        }
    }

    private mutating func parseLiteral(_ word: StaticString) throws(JSONSyntaxError) {
        let start = position
        let expected = Array(UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount))
        for byte in expected {
            guard current == byte else { throw error("expected '\(word)'", at: start) }
            advance()
        }
    }

    private mutating func enter() throws(JSONSyntaxError) {
        depth += 1
        guard depth <= Self.maximumDepth else { throw error("nested deeper than \(Self.maximumDepth) levels") }
    }

    private mutating func parseObject() throws(JSONSyntaxError) -> JSONNode {
        let start = position
        try enter()
        advance()
        var members: [JSONMember] = []
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            advance()
            depth -= 1
            return JSONNode(kind: .object(members), position: start)
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else {
                throw error("expected a member name in double quotes, got \(describeCurrent())")
            }
            let keyPosition = position
            let key = try parseString()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else {
                throw error("expected ':' after member name \(quotedForMessage(key)), got \(describeCurrent())")
            }
            advance()
            skipWhitespace()
            members.append(JSONMember(key: key, keyPosition: keyPosition, value: try parseValue()))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","):
                advance()
                skipWhitespace()
                if current == UInt8(ascii: "}") { throw error("trailing comma before '}'") }
            case UInt8(ascii: "}"):
                advance()
                depth -= 1
                return JSONNode(kind: .object(members), position: start)
            default:
                throw error("expected ',' or '}' after an object member, got \(describeCurrent())")
            }
        }
    }

    private mutating func parseArray() throws(JSONSyntaxError) -> JSONNode {
        let start = position
        try enter()
        advance()
        var elements: [JSONNode] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            advance()
            depth -= 1
            return JSONNode(kind: .array(elements), position: start)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue())
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","):
                advance()
                skipWhitespace()
                if current == UInt8(ascii: "]") { throw error("trailing comma before ']'") }
            case UInt8(ascii: "]"):
                advance()
                depth -= 1
                return JSONNode(kind: .array(elements), position: start)
            default:
                throw error("expected ',' or ']' after an array element, got \(describeCurrent())")
            }
        }
    }

    private mutating func parseNumber() throws(JSONSyntaxError) -> JSONNumber {
        let startIndex = index
        if current == UInt8(ascii: "-") { advance() }
        guard let first = current, isDigit(first) else { throw error("expected a digit, got \(describeCurrent())") }
        advance()
        if first == UInt8(ascii: "0"), let next = current, isDigit(next) {
            throw error("numbers must not have leading zeros")
        }
        while let byte = current, isDigit(byte) { advance() }
        if current == UInt8(ascii: ".") {
            advance()
            guard let byte = current, isDigit(byte) else {
                throw error("expected a digit after '.', got \(describeCurrent())")
            }
            while let byte = current, isDigit(byte) { advance() }
        }
        if let byte = current, byte | 0x20 == UInt8(ascii: "e") {
            advance()
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { advance() }
            guard let byte = current, isDigit(byte) else {
                throw error("expected a digit in the exponent, got \(describeCurrent())")
            }
            while let byte = current, isDigit(byte) { advance() }
        }
        return JSONNumber(literal: String(decoding: bytes[startIndex..<index], as: UTF8.self))
    }

    private mutating func parseString() throws(JSONSyntaxError) -> String {
        let start = position
        advance()
        var utf8: [UInt8] = []
        while true {
            guard let byte = current else { throw error("unterminated string", at: start) }
            switch byte {
            case UInt8(ascii: "\""):
                advance()
                guard let text = String(validating: utf8, as: UTF8.self) else {
                    throw error("the string is not valid UTF-8", at: start)
                }
                return text
            case UInt8(ascii: "\\"):
                advance()
                try parseEscape(into: &utf8)
            case 0..<0x20:
                throw error("control character (\(describeCurrent())) in a string")
            default:
                utf8.append(byte)
                advance()
            }
        }
    }

    private mutating func parseEscape(into utf8: inout [UInt8]) throws(JSONSyntaxError) {
        let escapePosition = SourcePosition(line: line, column: column - 1)
        guard let byte = current else { throw error("unterminated string") }
        advance()
        let simple: [UInt8: UInt8] = [
            UInt8(ascii: "\""): 0x22, UInt8(ascii: "\\"): 0x5C, UInt8(ascii: "/"): 0x2F, UInt8(ascii: "b"): 0x08,
            UInt8(ascii: "f"): 0x0C, UInt8(ascii: "n"): 0x0A, UInt8(ascii: "r"): 0x0D, UInt8(ascii: "t"): 0x09,
        ]
        if let replacement = simple[byte] {
            utf8.append(replacement)
            return
        }
        guard byte == UInt8(ascii: "u") else {
            throw error("invalid escape '\\\(Character(Unicode.Scalar(byte)))' in a string", at: escapePosition)
        }
        var code = try parseHex4(escapePosition)
        if (0xD800..<0xDC00).contains(code) {
            // A high surrogate must be followed by an escaped low surrogate; together they are one scalar.
            guard current == UInt8(ascii: "\\") else { throw error("lone surrogate in \\u escape", at: escapePosition) }
            advance()
            guard current == UInt8(ascii: "u") else { throw error("lone surrogate in \\u escape", at: escapePosition) }
            advance()
            let low = try parseHex4(escapePosition)
            guard (0xDC00..<0xE000).contains(low) else {
                throw error("lone surrogate in \\u escape", at: escapePosition)
            }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00..<0xE000).contains(code) {
            throw error("lone surrogate in \\u escape", at: escapePosition)
        }
        utf8.append(contentsOf: String(Character(Unicode.Scalar(code)!)).utf8)
    }

    private mutating func parseHex4(_ escapePosition: SourcePosition) throws(JSONSyntaxError) -> UInt32 {
        var code: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = current, let digit = hexValue(byte) else {
                throw error("expected four hex digits after \\u", at: escapePosition)
            }
            code = code << 4 | UInt32(digit)
            advance()
        }
        return code
    }
}

private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}
