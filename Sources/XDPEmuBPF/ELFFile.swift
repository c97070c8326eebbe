// The ELF64 little-endian relocatable objects clang writes for `-target bpf`, read from bytes that are not
// trusted: every offset and size is checked once here (`ByteReader`), so everything after it indexes safely.
// Only what a BPF loader needs is kept: section headers, the symbol table, REL relocation sections.

/// A problem with an object file; `description` names the place (section, symbol, instruction index).
public struct BPFObjectError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Bounds-checked little-endian reads from a byte array.
struct ByteReader {
    let bytes: [UInt8]

    func has(_ offset: Int, _ count: Int) -> Bool {
        offset >= 0 && count >= 0 && offset <= bytes.count && count <= bytes.count - offset
    }

    func u8(_ offset: Int) throws(BPFObjectError) -> UInt8 {
        guard has(offset, 1) else { throw BPFObjectError("byte offset \(offset): past the end of the file") }
        return bytes[offset]
    }

    func u16(_ offset: Int) throws(BPFObjectError) -> UInt16 { UInt16(truncatingIfNeeded: try le(offset, 2)) }
    func u32(_ offset: Int) throws(BPFObjectError) -> UInt32 { UInt32(truncatingIfNeeded: try le(offset, 4)) }
    func u64(_ offset: Int) throws(BPFObjectError) -> UInt64 { try le(offset, 8) }

    private func le(_ offset: Int, _ size: Int) throws(BPFObjectError) -> UInt64 {
        guard has(offset, size) else {
            throw BPFObjectError("byte offset \(offset): \(size)-byte field past the end of the file")
        }
        var value: UInt64 = 0
        for i in (0..<size).reversed() { value = value << 8 | UInt64(bytes[offset + i]) }
        return value
    }

    func slice(_ offset: Int, _ count: Int, what: String) throws(BPFObjectError) -> ArraySlice<UInt8> {
        guard has(offset, count) else {
            throw BPFObjectError(
                "\(what): bytes \(offset)..<\(offset &+ count) lie outside the file (\(bytes.count) bytes)")
        }
        return bytes[offset..<offset + count]
    }

    /// A NUL-terminated string starting at `offset` inside `limit`.
    func cString(_ offset: Int, in limit: Range<Int>) -> String? {
        guard limit.contains(offset) else { return nil }
        var end = offset
        while end < limit.upperBound && bytes[end] != 0 { end += 1 }
        guard end < limit.upperBound else { return nil }
        return String(decoding: bytes[offset..<end], as: UTF8.self)
    }
}

/// One section header.
struct ELFSection {
    static let progbits: UInt32 = 1
    static let symtab: UInt32 = 2
    static let strtab: UInt32 = 3
    static let rel: UInt32 = 9
    static let nobits: UInt32 = 8
    static let flagWrite: UInt64 = 1
    static let flagExec: UInt64 = 4

    var index: Int
    var name: String
    var type: UInt32
    var flags: UInt64
    var offset: Int
    var size: Int
    var link: Int
    var info: Int

    var isExecutable: Bool { type == Self.progbits && flags & Self.flagExec != 0 }
}

/// One symbol of `.symtab`.
struct ELFSymbol {
    static let typeFunc: UInt8 = 2
    static let typeSection: UInt8 = 3
    static let typeObject: UInt8 = 1
    static let bindGlobal: UInt8 = 1

    var name: String
    var info: UInt8
    var section: Int
    var value: UInt64
    var size: UInt64
    var type: UInt8 { info & 0xF }
    var binding: UInt8 { info >> 4 }
}

/// One `Elf64_Rel` entry of a REL section.
struct ELFRelocation {
    var offset: UInt64
    var symbol: Int
    var type: UInt32
}

/// The parts of an ELF object a BPF loader reads.
struct ELFFile {
    static let machineBPF: UInt16 = 247

    let reader: ByteReader
    let sections: [ELFSection]
    let symbols: [ELFSymbol]
    /// Relocation sections by the index of the section they apply to.
    let relocations: [Int: [ELFRelocation]]

    init(bytes: [UInt8]) throws(BPFObjectError) {
        let r = ByteReader(bytes: bytes)
        reader = r
        guard r.has(0, 64), bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46 else {
            throw BPFObjectError("not an ELF file (no \\x7fELF magic)")
        }
        guard bytes[4] == 2 else { throw BPFObjectError("not a 64-bit ELF object (EI_CLASS \(bytes[4]))") }
        guard bytes[5] == 1 else {
            throw BPFObjectError(
                "not a little-endian ELF object (EI_DATA \(bytes[5])); compile with -target bpf or bpfel")
        }
        let machine = try r.u16(18)
        guard machine == Self.machineBPF else {
            throw BPFObjectError(
                "not a BPF object: e_machine is \(machine), BPF is 247 (compile with clang -target bpf)")
        }
        let sectionOffset = Int(try r.u64(40))
        let entrySize = Int(try r.u16(58))
        let count = Int(try r.u16(60))
        let namesIndex = Int(try r.u16(62))
        guard entrySize >= 64 else { throw BPFObjectError("section header size \(entrySize) is below 64") }
        var headers: [ELFSection] = []
        for index in 0..<count {
            let at = sectionOffset &+ index &* entrySize
            guard r.has(at, 64) else { throw BPFObjectError("section header \(index) lies outside the file") }
            let size = try r.u64(at + 32)
            let offset = try r.u64(at + 24)
            guard size < 1 << 32, offset < 1 << 40 else { throw BPFObjectError("section \(index): size out of range") }
            headers.append(
                ELFSection(
                    index: index, name: "", type: try r.u32(at + 4), flags: try r.u64(at + 8), offset: Int(offset),
                    size: Int(size), link: Int(try r.u32(at + 40)), info: Int(try r.u32(at + 44))))
            headers[index].name = String(try r.u32(at))  // the name's offset until the names are read
        }
        guard namesIndex < headers.count else { throw BPFObjectError("e_shstrndx \(namesIndex) names no section") }
        let names = headers[namesIndex]
        _ = try r.slice(names.offset, names.size, what: "section names")
        for index in headers.indices {
            let nameOffset = Int(headers[index].name) ?? 0
            headers[index].name =
                r.cString(names.offset + nameOffset, in: names.offset..<names.offset + names.size) ?? "#\(index)"
            if headers[index].type != Self.nobitsType {
                _ = try r.slice(headers[index].offset, headers[index].size, what: "section \(headers[index].name)")
            }
        }
        sections = headers

        var symbols: [ELFSymbol] = []
        if let table = headers.first(where: { $0.type == ELFSection.symtab }) {
            guard table.link < headers.count else {
                throw BPFObjectError(".symtab: string table \(table.link) missing")
            }
            let strings = headers[table.link]
            let stringRange = strings.offset..<strings.offset + strings.size
            for at in stride(from: table.offset, to: table.offset + table.size - 23, by: 24) {
                let nameOffset = Int(try r.u32(at))
                symbols.append(
                    ELFSymbol(
                        name: r.cString(strings.offset + nameOffset, in: stringRange) ?? "", info: try r.u8(at + 4),
                        section: Int(try r.u16(at + 6)), value: try r.u64(at + 8), size: try r.u64(at + 16)))
            }
        }
        self.symbols = symbols

        var relocations: [Int: [ELFRelocation]] = [:]
        for section in headers where section.type == ELFSection.rel {
            var list: [ELFRelocation] = []
            for at in stride(from: section.offset, to: section.offset + section.size - 15, by: 16) {
                let info = try r.u64(at + 8)
                let symbol = Int(info >> 32)
                guard symbol < symbols.count else {
                    throw BPFObjectError(
                        "section \(section.name): relocation names symbol \(symbol), which does not exist")
                }
                list.append(
                    ELFRelocation(offset: try r.u64(at), symbol: symbol, type: UInt32(truncatingIfNeeded: info)))
            }
            relocations[section.info, default: []].append(contentsOf: list)
        }
        self.relocations = relocations
    }

    static let nobitsType = ELFSection.nobits

    func section(named name: String) -> ELFSection? { sections.first { $0.name == name } }

    /// The bytes of `section` (zeros for SHT_NOBITS).
    func contents(_ section: ELFSection) -> [UInt8] {
        if section.type == ELFSection.nobits { return [UInt8](repeating: 0, count: section.size) }
        return Array(reader.bytes[section.offset..<section.offset + section.size])
    }
}
