// What a topology says about compiled eBPF programs and their maps. The topology loader checks only the shape
// of what is written (the object file is read and checked against it when the emulation is built, and by
// `xdpemu validate`), so map contents are kept as written: an integer or exact bytes, sized later from the
// object's definition.

/// `{"type": "ebpf", "object": "prog.o", "function": "xdp_main"}` (or `"section"`).
public struct EBPFProgramConfiguration: Sendable, Equatable {
    /// The object's path, relative paths resolved against the topology file's directory.
    public var object: String
    /// The program's function name; nil to take the object's only XDP program (or the one in `section`).
    public var function: String?
    /// The ELF section holding the program.
    public var section: String?
    /// Instructions one frame may run before it is aborted.
    public var instructionBudget: Int

    public init(object: String, function: String? = nil, section: String? = nil, instructionBudget: Int = 1_000_000) {
        self.object = object
        self.function = function
        self.section = section
        self.instructionBudget = instructionBudget
    }
}

/// A key or value of a map entry as written: an integer (stored little-endian in a 4- or 8-byte field) or
/// exact bytes (a hex string).
public enum MapBytes: Sendable, Equatable, CustomStringConvertible {
    case integer(UInt64)
    case bytes([UInt8])

    /// The field's bytes for a field of `size` bytes, or a message saying why they do not fit.
    public func encoded(size: Int) -> Result<[UInt8], MapBytesError> {
        switch self {
        case .integer(let value):
            guard size == 4 || size == 8 else {
                return .failure(
                    MapBytesError(
                        "an integer fits only a 4- or 8-byte field; this one has \(size) bytes: write \(size * 2) hex digits"
                    ))
            }
            guard size == 8 || value <= UInt64(UInt32.max) else {
                return .failure(MapBytesError("\(value) does not fit in 4 bytes"))
            }
            return .success((0..<size).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) })
        case .bytes(let bytes):
            guard bytes.count == size else {
                return .failure(MapBytesError("\(bytes.count) bytes given, the field has \(size)"))
            }
            return .success(bytes)
        }
    }

    public var description: String {
        switch self {
        case .integer(let value): String(value)
        case .bytes(let bytes): bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
        }
    }

    /// Parses hex pairs, with optional colons or spaces between them.
    public static func hex(_ text: String) -> [UInt8]? {
        let digits = text.unicodeScalars.filter { $0 != ":" && $0 != " " }
        guard !digits.isEmpty, digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        var iterator = digits.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            guard let h = hexValue(high), let l = hexValue(low) else { return nil }
            out.append(h << 4 | l)
        }
        return out
    }
}

private func hexValue(_ scalar: Unicode.Scalar) -> UInt8? {
    switch scalar.value {
    case 0x30...0x39: UInt8(scalar.value - 0x30)
    case 0x41...0x46: UInt8(scalar.value - 0x41 + 10)
    case 0x61...0x66: UInt8(scalar.value - 0x61 + 10)
    default: nil
    }
}

public struct MapBytesError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One `{"key": K, "value": V}` entry of a map that is not a devmap, or `{"key": K, "program": "function"}` of a
/// prog_array, with where it was written.
public struct DataMapEntry: Sendable, Equatable {
    public var key: MapBytes
    /// The value; for a prog_array, `.integer(0)` (the slot holds `program`).
    public var value: MapBytes
    /// The function a prog_array slot holds (nil for other maps).
    public var program: String?
    /// JSON path of the entry, for messages.
    public var path: String

    public init(key: MapBytes, value: MapBytes, program: String? = nil, path: String) {
        self.key = key
        self.value = value
        self.program = program
        self.path = path
    }
}
