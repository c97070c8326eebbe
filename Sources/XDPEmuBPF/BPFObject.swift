// A BPF object file as the emulator runs it: its programs, its maps (BTF-defined `SEC(".maps")`, legacy
// `SEC("maps")` and one single-entry array per global data section, as libbpf creates them) and its code with
// every relocation resolved. Parsed from bytes without any system call: no bpf(2), no kernel.
//
// The code of all executable sections is kept in one array (`instructions`), each section followed by one
// invalid instruction, so a BPF-to-BPF call across sections is an index into the same array and running off the
// end of a section faults instead of entering the next.

/// `BPF_MAP_TYPE_*`.
public struct BPFMapType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let hash = BPFMapType(rawValue: 1)
    public static let array = BPFMapType(rawValue: 2)
    public static let progArray = BPFMapType(rawValue: 3)
    public static let percpuHash = BPFMapType(rawValue: 5)
    public static let percpuArray = BPFMapType(rawValue: 6)
    public static let lruHash = BPFMapType(rawValue: 9)
    public static let lruPercpuHash = BPFMapType(rawValue: 10)
    public static let lpmTrie = BPFMapType(rawValue: 11)
    public static let devmap = BPFMapType(rawValue: 14)
    public static let devmapHash = BPFMapType(rawValue: 25)

    static let names: [(BPFMapType, String)] = [
        (.hash, "hash"), (.array, "array"), (.percpuHash, "percpu_hash"), (.percpuArray, "percpu_array"),
        (.lruHash, "lru_hash"), (.lruPercpuHash, "lru_percpu_hash"), (.lpmTrie, "lpm_trie"), (.devmap, "devmap"),
        (.devmapHash, "devmap_hash"), (.progArray, "prog_array"),
    ]

    /// The emulator's name for the type (the topology's `"type"`), or `type N` for one it does not implement.
    public var description: String { Self.names.first { $0.0 == self }?.1 ?? "type \(rawValue)" }
    public init?(name: String) {
        guard let found = Self.names.first(where: { $0.1 == name }) else { return nil }
        self = found.0
    }
    public var isSupported: Bool { Self.names.contains { $0.0 == self } }
    public var isPerCPU: Bool { self == .percpuHash || self == .percpuArray || self == .lruPercpuHash }
    public var isDevMap: Bool { self == .devmap || self == .devmapHash }
}

/// A map as the object defines it.
public struct BPFMapDefinition: Sendable, Equatable {
    public var name: String
    public var type: BPFMapType
    public var keySize: Int
    public var valueSize: Int
    public var maxEntries: UInt32
    public var flags: UInt32
    /// For a global data section: its initial bytes (the map's one value), and whether the program may write it.
    public var initialValue: [UInt8]?
    public var readOnly: Bool
}

/// An XDP program (a function in an executable section other than .text).
public struct BPFProgramInfo: Sendable, Equatable {
    public var name: String
    public var section: String
    /// Index of its first instruction in `BPFObject.instructions`.
    public var entry: Int
    public var instructionCount: Int
    /// In a section libbpf loads as XDP: `xdp`, `xdp/...`, `xdp.frags`, and the names before libbpf 1.0 that
    /// only began with `xdp` (`xdp_redirect`, `xdp_prog`), as the tutorials' older programs have.
    public var isXDP: Bool { section.hasPrefix("xdp") }
}

/// One 8-byte instruction as encoded.
public struct RawInstruction: Sendable, Equatable {
    public var opcode: UInt8
    public var dst: UInt8
    public var src: UInt8
    public var offset: Int16
    public var imm: Int32
}

/// What a relocation made of an instruction.
enum Relocation: Equatable {
    /// LD_IMM64 of a map (index into `maps`).
    case map(Int)
    /// LD_IMM64 of an address in a global data map.
    case mapValue(map: Int, offset: Int)
    /// A BPF-to-BPF call to this instruction index.
    case call(Int)
}

public final class BPFObject: Sendable {
    public let maps: [BPFMapDefinition]
    public let programs: [BPFProgramInfo]
    public let instructions: [RawInstruction]
    let relocations: [Int: Relocation]
    /// Section name and index inside it of each instruction (for messages).
    let sectionStarts: [(start: Int, name: String)]

    /// Parses an object file's bytes.
    public init(bytes: [UInt8]) throws(BPFObjectError) {
        let elf = try ELFFile(bytes: bytes)
        var maps: [BPFMapDefinition] = []
        var mapBySymbol: [String: Int] = [:]
        let btf = try elf.section(named: ".BTF").map { (s) throws(BPFObjectError) in
            try BTF(elf.reader.slice(s.offset, s.size, what: ".BTF"))
        }

        // BTF-defined maps.
        if let mapsSection = elf.section(named: ".maps") {
            guard let btf, let variables = btf.dataSection(named: ".maps") else {
                throw BPFObjectError("section .maps: no BTF describes it (compile with -g)")
            }
            for variable in variables {
                guard case .variable(let name, let type) = btf.type(variable.type) else { continue }
                var definition = try Self.mapDefinition(name: name, type: type, btf: btf)
                definition.name = name
                mapBySymbol[name] = maps.count
                maps.append(definition)
                _ = mapsSection
            }
        }
        // Legacy `struct bpf_map_def SEC("maps")`.
        if let legacy = elf.section(named: "maps") {
            let data = elf.contents(legacy)
            for symbol in elf.symbols where symbol.section == legacy.index && symbol.type != ELFSymbol.typeSection {
                let at = Int(symbol.value)
                guard at >= 0, at + 16 <= data.count else {
                    throw BPFObjectError("section maps: map \(symbol.name) lies outside the section")
                }
                let r = ByteReader(bytes: data)
                let flags = at + 20 <= data.count ? try r.u32(at + 16) : 0
                mapBySymbol[symbol.name] = maps.count
                maps.append(
                    BPFMapDefinition(
                        name: symbol.name, type: BPFMapType(rawValue: try r.u32(at)), keySize: Int(try r.u32(at + 4)),
                        valueSize: Int(try r.u32(at + 8)), maxEntries: try r.u32(at + 12), flags: flags,
                        initialValue: nil, readOnly: false))
            }
        }
        // Global data: one array map of one entry per section.
        var dataMapBySection: [Int: Int] = [:]
        for section in elf.sections
        where Self.isDataSection(section.name)
            && (section.type == ELFSection.progbits || section.type == ELFSection.nobits)
            && section.size > 0
        {
            dataMapBySection[section.index] = maps.count
            maps.append(
                BPFMapDefinition(
                    name: section.name, type: .array, keySize: 4, valueSize: section.size, maxEntries: 1, flags: 0,
                    initialValue: elf.contents(section), readOnly: section.flags & ELFSection.flagWrite == 0))
        }

        // Code: every executable section, each followed by an invalid instruction.
        var instructions: [RawInstruction] = []
        var base: [Int: Int] = [:]
        var starts: [(Int, String)] = []
        for section in elf.sections where section.isExecutable && section.size > 0 {
            guard section.size % 8 == 0 else {
                throw BPFObjectError("section \(section.name): size \(section.size) is not a multiple of 8")
            }
            base[section.index] = instructions.count
            starts.append((instructions.count, section.name))
            let r = elf.reader
            for at in stride(from: section.offset, to: section.offset + section.size, by: 8) {
                let regs = try r.u8(at + 1)
                instructions.append(
                    RawInstruction(
                        opcode: try r.u8(at), dst: regs & 0xF, src: regs >> 4,
                        offset: Int16(bitPattern: try r.u16(at + 2)), imm: Int32(bitPattern: try r.u32(at + 4))))
            }
            instructions.append(RawInstruction(opcode: 0, dst: 0, src: 0, offset: 0, imm: 0))
        }

        var relocations: [Int: Relocation] = [:]
        for section in elf.sections where section.isExecutable {
            guard let sectionBase = base[section.index] else { continue }
            for relocation in elf.relocations[section.index] ?? [] {
                let place = "section \(section.name), instruction \(relocation.offset / 8)"
                guard relocation.offset % 8 == 0, Int(relocation.offset) / 8 < section.size / 8 else {
                    throw BPFObjectError("\(place): relocation offset \(relocation.offset) is not an instruction")
                }
                let index = sectionBase + Int(relocation.offset / 8)
                let instruction = instructions[index]
                let symbol = elf.symbols[relocation.symbol]
                let symbolSection = symbol.section < elf.sections.count ? elf.sections[symbol.section].name : "?"
                if instruction.opcode == 0x18 {
                    if let map = mapBySymbol[symbol.name], symbolSection == ".maps" || symbolSection == "maps" {
                        relocations[index] = .map(map)
                    } else if let map = dataMapBySection[symbol.section] {
                        let offset = Int(symbol.value) + Int(instruction.imm)
                        guard offset >= 0, offset <= maps[map].valueSize else {
                            throw BPFObjectError("\(place): offset \(offset) lies outside \(maps[map].name)")
                        }
                        relocations[index] = .mapValue(map: map, offset: offset)
                    } else {
                        throw BPFObjectError(
                            "\(place): 64-bit load of symbol \(symbol.name) in section \(symbolSection), which is "
                                + "neither a map nor global data")
                    }
                } else if instruction.opcode == 0x85 && instruction.src == 1 {
                    guard let targetBase = base[symbol.section] else {
                        throw BPFObjectError("\(place): call to \(symbol.name) in \(symbolSection), not code")
                    }
                    let target = targetBase + Int(symbol.value / 8) + Int(instruction.imm) + 1
                    relocations[index] = .call(target)
                } else {
                    throw BPFObjectError(
                        "\(place): relocation of type \(relocation.type) against \(symbol.name) on an instruction "
                            + "with opcode 0x\(String(instruction.opcode, radix: 16)) is not supported")
                }
            }
        }

        var programs: [BPFProgramInfo] = []
        for symbol in elf.symbols where symbol.type == ELFSymbol.typeFunc {
            guard symbol.section < elf.sections.count, let sectionBase = base[symbol.section] else { continue }
            let section = elf.sections[symbol.section]
            guard section.name != ".text", symbol.binding == ELFSymbol.bindGlobal else { continue }
            programs.append(
                BPFProgramInfo(
                    name: symbol.name, section: section.name, entry: sectionBase + Int(symbol.value / 8),
                    instructionCount: Int(symbol.size / 8)))
        }
        programs.sort { $0.entry < $1.entry }
        self.maps = maps
        self.programs = programs
        self.instructions = instructions
        self.relocations = relocations
        sectionStarts = starts
    }

    /// An object of one program (`xdp` section, function `prog`) from instructions as they are, with `maps` and
    /// the LD_IMM64 relocations given (for tests and fuzzing).
    init(instructions: [RawInstruction], maps: [BPFMapDefinition] = [], relocations: [Int: Relocation] = [:]) {
        self.maps = maps
        self.instructions = instructions + [RawInstruction(opcode: 0, dst: 0, src: 0, offset: 0, imm: 0)]
        self.relocations = relocations
        programs = [BPFProgramInfo(name: "prog", section: "xdp", entry: 0, instructionCount: instructions.count)]
        sectionStarts = [(0, "xdp")]
    }

    static func isDataSection(_ name: String) -> Bool {
        for prefix in [".data", ".rodata", ".bss"] where name == prefix || name.hasPrefix(prefix + ".") {
            return true
        }
        return false
    }

    /// `section NAME, instruction N` for a global instruction index.
    public func place(of index: Int) -> String {
        guard let start = sectionStarts.last(where: { $0.start <= index }) else { return "instruction \(index)" }
        return "section \(start.name), instruction \(index - start.start)"
    }

    private static func mapDefinition(name: String, type: Int, btf: BTF) throws(BPFObjectError) -> BPFMapDefinition {
        guard case .structure(_, let members) = btf.type(btf.resolved(type)) else {
            throw BPFObjectError("map \(name): its BTF type is not a struct")
        }
        var definition = BPFMapDefinition(
            name: name, type: BPFMapType(rawValue: 0), keySize: 0, valueSize: 0, maxEntries: 0, flags: 0,
            initialValue: nil, readOnly: false)
        func number(_ member: Int) -> Int? {
            guard case .pointer(let target) = btf.type(btf.resolved(member)),
                case .array(_, let count) = btf.type(btf.resolved(target))
            else { return nil }
            return count
        }
        func pointee(_ member: Int) -> Int? {
            guard case .pointer(let target) = btf.type(btf.resolved(member)) else { return nil }
            return btf.size(of: target)
        }
        for member in members {
            switch member.name {
            case "type": definition.type = BPFMapType(rawValue: UInt32(number(member.type) ?? 0))
            case "max_entries": definition.maxEntries = UInt32(clamping: number(member.type) ?? 0)
            case "map_flags": definition.flags = UInt32(clamping: number(member.type) ?? 0)
            case "key_size": definition.keySize = number(member.type) ?? 0
            case "value_size": definition.valueSize = number(member.type) ?? 0
            case "key": definition.keySize = pointee(member.type) ?? 0
            case "value": definition.valueSize = pointee(member.type) ?? 0
            case "pinning", "numa_node", "map_extra": break
            default:
                throw BPFObjectError("map \(name): member \(member.name) is not supported")
            }
        }
        return definition
    }
}
