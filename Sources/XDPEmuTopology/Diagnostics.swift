// The reading side of the loader: typed access to JSON nodes that records a problem for every mismatch and keeps
// going, so one run reports everything wrong with a file.
//
// Convention: readers return the value when it is valid, the default when the member is absent, and (after
// recording a problem) nil or the default when it is invalid. Nothing built from an invalid file escapes: the
// loader throws when any problem was recorded.

/// A JSONPath such as `$.ports[2].mtu`; member names that are not identifiers are bracketed: `$.maps[0].entries["1"]`.
struct JSONPath: Sendable, CustomStringConvertible {
    let description: String

    static let root = JSONPath(description: "$")

    func member(_ key: String) -> JSONPath {
        let bytes = Array(key.utf8)
        let isIdentifier =
            !bytes.isEmpty && !isASCIIDigit(bytes[0])
            && bytes.allSatisfy { isASCIIDigit($0) || isASCIILetter($0) || $0 == UInt8(ascii: "_") }
        return JSONPath(description: description + (isIdentifier ? "." + key : "[" + quotedForMessage(key) + "]"))
    }

    func index(_ index: Int) -> JSONPath {
        JSONPath(description: description + "[\(index)]")
    }
}

/// The members of one JSON object, checked against the names allowed there.
struct Fields {
    let path: JSONPath
    let position: SourcePosition
    private let byName: [String: JSONNode]

    init(path: JSONPath, position: SourcePosition, members: [JSONMember]) {
        self.path = path
        self.position = position
        // The first of duplicate members counts; the others are reported where the object is read.
        var byName: [String: JSONNode] = [:]
        for member in members where byName[member.key] == nil {
            byName[member.key] = member.value
        }
        self.byName = byName
    }

    subscript(key: String) -> JSONNode? { byName[key] }

    func path(_ key: String) -> JSONPath { path.member(key) }
}

/// Collects problems while reading a document.
final class Diagnostics {
    private(set) var problems: [TopologyError.Problem] = []

    func report(_ path: JSONPath, _ message: String, at position: SourcePosition?) {
        problems.append(TopologyError.Problem(path: path.description, message: message, position: position))
    }

    func report(_ path: JSONPath, _ message: String, at node: JSONNode) {
        report(path, message, at: node.position)
    }

    // MARK: Objects

    /// The members of `node` if it is an object. Duplicate member names and names outside `allowed` are reported.
    func object(_ node: JSONNode, at path: JSONPath, allowed: [String]) -> Fields? {
        guard case .object(let members) = node.kind else {
            report(path, "expected an object, got \(node.compact)", at: node)
            return nil
        }
        var seen: Set<String> = []
        for member in members {
            let memberPath = path.member(member.key)
            if !seen.insert(member.key).inserted {
                report(memberPath, "duplicate member \(quotedForMessage(member.key))", at: member.keyPosition)
            } else if !allowed.contains(member.key) {
                var message = "unknown field \(quotedForMessage(member.key))"
                if let suggestion = closestName(to: member.key, among: allowed) {
                    message += " (did you mean \(quotedForMessage(suggestion))?)"
                }
                message += "; allowed: " + allowed.joined(separator: ", ")
                report(memberPath, message, at: member.keyPosition)
            }
        }
        return Fields(path: path, position: node.position, members: members)
    }

    /// The members of an object used as a dictionary (any names); duplicates are reported and dropped.
    func dictionary(_ node: JSONNode, at path: JSONPath, expected: String) -> [JSONMember]? {
        guard case .object(let members) = node.kind else {
            report(path, "expected \(expected), got \(node.compact)", at: node)
            return nil
        }
        var seen: Set<String> = []
        return members.filter { member in
            guard seen.insert(member.key).inserted else {
                report(
                    path.member(member.key), "duplicate member \(quotedForMessage(member.key))", at: member.keyPosition)
                return false
            }
            return true
        }
    }

    /// The elements of `node` if it is an array.
    func array(_ node: JSONNode, at path: JSONPath, expected: String = "an array") -> [JSONNode]? {
        guard case .array(let elements) = node.kind else {
            report(path, "expected \(expected), got \(node.compact)", at: node)
            return nil
        }
        return elements
    }

    /// The member `key` of `fields`; reports it missing when absent.
    func required(_ fields: Fields, _ key: String) -> JSONNode? {
        guard let node = fields[key] else {
            report(fields.path(key), "missing required field \(quotedForMessage(key))", at: fields.position)
            return nil
        }
        return node
    }

    // MARK: Scalars

    func string(_ node: JSONNode, at path: JSONPath) -> String? {
        guard case .string(let value) = node.kind else {
            report(path, "expected a string, got \(node.compact)", at: node)
            return nil
        }
        return value
    }

    func bool(_ node: JSONNode, at path: JSONPath) -> Bool? {
        guard case .bool(let value) = node.kind else {
            report(path, "expected true or false, got \(node.compact)", at: node)
            return nil
        }
        return value
    }

    /// An integer in `range`, read exactly from the number's text. Integral values written with a fraction or an
    /// exponent (`2.0`, `1e3`) are accepted; `1.5`, strings and out-of-range values are reported alike, with the
    /// allowed range.
    func integer<T: FixedWidthInteger>(_ node: JSONNode, at path: JSONPath, in range: ClosedRange<T>) -> T? {
        let failure = "must be an integer \(range.lowerBound)...\(range.upperBound), got \(node.compact)"
        guard case .number(let number) = node.kind, case .exact(let negative, let magnitude) = number.integer else {
            report(path, failure, at: node)
            return nil
        }
        let value = negative ? -Int128(magnitude) : Int128(magnitude)
        guard value >= Int128(range.lowerBound) && value <= Int128(range.upperBound) else {
            report(path, failure, at: node)
            return nil
        }
        return T(value)
    }

    // MARK: Members with defaults

    func bool(_ fields: Fields, _ key: String, default value: Bool) -> Bool {
        fields[key].flatMap { bool($0, at: fields.path(key)) } ?? value
    }

    func integer<T: FixedWidthInteger>(_ fields: Fields, _ key: String, in range: ClosedRange<T>, default value: T) -> T
    {
        fields[key].flatMap { integer($0, at: fields.path(key), in: range) } ?? value
    }

    func requiredInteger<T: FixedWidthInteger>(_ fields: Fields, _ key: String, in range: ClosedRange<T>) -> T? {
        required(fields, key).flatMap { integer($0, at: fields.path(key), in: range) }
    }

    func requiredString(_ fields: Fields, _ key: String) -> String? {
        required(fields, key).flatMap { string($0, at: fields.path(key)) }
    }

    /// One of `choices`, reported with the list when it is anything else.
    func choice(_ node: JSONNode, at path: JSONPath, _ what: String, _ choices: [String]) -> String? {
        guard let text = string(node, at: path) else { return nil }
        guard choices.contains(text) else {
            let list = choices.map { quotedForMessage($0) }.joined(separator: ", ")
            report(path, "unknown \(what) \(quotedForMessage(text)); allowed: \(list)", at: node)
            return nil
        }
        return text
    }
}

// MARK: - Names

/// The rule Linux applies to interface names (`dev_valid_name`), narrowed to the characters that are safe in shell
/// commands and file names: 1...15 bytes (IFNAMSIZ - 1) of `[A-Za-z0-9_.-]`, and not `.` or `..`.
func interfaceNameProblem(_ name: String) -> String? {
    let bytes = Array(name.utf8)
    if bytes.isEmpty { return "must not be empty" }
    if bytes.count > 15 {
        return "\(quotedForMessage(name)) is \(bytes.count) bytes long; interface names have at most 15"
    }
    if name == "." || name == ".." { return "\(quotedForMessage(name)) is not a valid interface name" }
    if let bad = name.unicodeScalars.first(where: { !isNameScalar($0, allowDash: true) }) {
        return "\(quotedForMessage(name)) contains \(describe(bad)); interface names use only A-Z a-z 0-9 _ . -"
    }
    return nil
}

/// Map names: the characters the kernel allows in BPF object names (`bpf_obj_name_cpy`), `[A-Za-z0-9_.]`, 1...255
/// bytes. Not the kernel's 15: an eBPF object's maps go by their whole ELF names, as libbpf finds them (the
/// kernel keeps, and bpftool shows, the first 15 bytes).
func mapNameProblem(_ name: String) -> String? {
    let bytes = Array(name.utf8)
    if bytes.isEmpty { return "must not be empty" }
    if bytes.count > 255 { return "\(quotedForMessage(name)) is \(bytes.count) bytes long; map names have at most 255" }
    if let bad = name.unicodeScalars.first(where: { !isNameScalar($0, allowDash: false) }) {
        return "\(quotedForMessage(name)) contains \(describe(bad)); map names use only A-Z a-z 0-9 _ ."
    }
    return nil
}

private func isNameScalar(_ scalar: Unicode.Scalar, allowDash: Bool) -> Bool {
    guard scalar.isASCII else { return false }
    let byte = UInt8(scalar.value)
    return isASCIILetter(byte) || isASCIIDigit(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        || (allowDash && byte == UInt8(ascii: "-"))
}

private func describe(_ scalar: Unicode.Scalar) -> String {
    scalar == " " ? "a space" : "'\(scalar.escaped(asASCII: true))'"
}

func isASCIIDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

func isASCIILetter(_ byte: UInt8) -> Bool {
    (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z")
}

/// The allowed name closest to a misspelt one, if any is close: one that starts with it (at least three letters
/// typed), or within an edit distance (adjacent transpositions counting one) of 1 for names of up to four letters
/// and 2 for longer ones, ignoring case.
func closestName(to name: String, among names: [String]) -> String? {
    let target = Array(name.lowercased().unicodeScalars)
    let limit = target.count <= 4 ? 1 : 2
    var best: (name: String, distance: Int)? = nil
    for candidate in names {
        let other = Array(candidate.lowercased().unicodeScalars)
        let distance = target.count >= 3 && other.starts(with: target) ? 1 : editDistance(target, other)
        if distance <= limit, distance < (best?.distance ?? .max) { best = (candidate, distance) }
    }
    return best?.name
}

/// The optimal string alignment distance: insertions, deletions, substitutions and adjacent transpositions.
private func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
    if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
    var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { table[i][0] = i }
    for j in 0...b.count { table[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
            }
        }
    }
    return table[a.count][b.count]
}

/// Parses a plain decimal number without sign or leading zeros, at most `max`.
func parseDecimal<S: StringProtocol>(_ text: S, max: Int) -> Int? {
    let bytes = Array(text.utf8)
    guard !bytes.isEmpty, bytes.count <= 10, bytes.allSatisfy(isASCIIDigit) else { return nil }
    guard bytes.count == 1 || bytes[0] != UInt8(ascii: "0") else { return nil }
    guard let value = Int(String(decoding: bytes, as: UTF8.self)), value <= max else { return nil }
    return value
}
