// Text from an input (a topology, a map-event file, a map script, the command line) echoed in a message.
//
// Input text is untrusted: a name may be a megabyte long, or hold NUL, control bytes or ANSI escape sequences
// that would rewrite the user's terminal. Every message that echoes input quotes it with `quotedForMessage`:
// non-printable characters are escaped and the text is cut to a length a line can show.

/// `text` between `quote`s for a message: backslash, the quote, control characters, invisible format characters
/// (bidirectional overrides, zero-width spaces), separators other than the space, and unassigned or private code
/// points escaped (`\n`, `\t`, `\u001b`, `\u{e0001}`); cut after `limit` characters of the escaped form, with `…`
/// and the original length in bytes.
public func quotedForMessage(_ text: some StringProtocol, quote: Character = "\"", limit: Int = 80) -> String {
    var result = ""
    var shown = 0
    for scalar in text.unicodeScalars {
        let piece = escaped(scalar, quote: quote)
        if shown + piece.count > limit {
            return "\(quote)\(result)\(quote)… (\(text.utf8.count) bytes)"
        }
        result += piece
        shown += piece.count
    }
    return "\(quote)\(result)\(quote)"
}

/// Whether `text` has at most `limit` characters and `quotedForMessage` would escape none of them but quotes and
/// backslashes: it can be printed as it is.
public func isPrintableText(_ text: some StringProtocol, limit: Int) -> Bool {
    var count = 0
    for scalar in text.unicodeScalars {
        count += 1
        if count > limit || (scalar != "\\" && escaped(scalar, quote: "\0") != String(scalar)) { return false }
    }
    return true
}

private func escaped(_ scalar: Unicode.Scalar, quote: Character) -> String {
    switch scalar {
    case "\\": return "\\\\"
    case "\n": return "\\n"
    case "\r": return "\\r"
    case "\t": return "\\t"
    case _ where Character(scalar) == quote: return "\\" + String(quote)
    case " ": return " "
    default: break
    }
    switch scalar.properties.generalCategory {
    case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator,
        .spaceSeparator:
        let hex = String(scalar.value, radix: 16)
        return scalar.value <= 0xFFFF
            ? "\\u" + String(repeating: "0", count: 4 - hex.count) + hex : "\\u{" + hex + "}"
    default:
        return String(scalar)
    }
}
