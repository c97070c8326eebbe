// The part of BTF (the .BTF section) a loader needs for BTF-defined maps: the `SEC(".maps")` variables, whose
// struct types encode the map's attributes in their members: `__uint(type, BPF_MAP_TYPE_HASH)` is a member
// `int (*type)[BPF_MAP_TYPE_HASH]` (a pointer to an array whose length is the value), `__type(key, T)` a member
// `T *key` (the key size is T's size).

/// A BTF type, reduced to what map definitions use.
enum BTFType {
    case int(size: Int)
    case pointer(target: Int)
    case array(element: Int, count: Int)
    case structure(size: Int, members: [(name: String, type: Int)])
    case enumeration(size: Int)
    case alias(target: Int)  // typedef, volatile, const, restrict, type tag
    case variable(name: String, type: Int)
    case dataSection(name: String, variables: [(type: Int, offset: Int, size: Int)])
    case float(size: Int)
    case other
}

/// The types of a .BTF section by id (id 0 is void).
struct BTF {
    private(set) var types: [BTFType] = [.other]
    private(set) var names: [String] = [""]

    init(_ bytes: ArraySlice<UInt8>) throws(BPFObjectError) {
        let r = ByteReader(bytes: Array(bytes))
        guard try r.u16(0) == 0xEB9F else { throw BPFObjectError(".BTF: bad magic") }
        let headerLength = Int(try r.u32(4))
        let typeStart = headerLength + Int(try r.u32(8))
        let typeLength = Int(try r.u32(12))
        let stringStart = headerLength + Int(try r.u32(16))
        let stringLength = Int(try r.u32(20))
        _ = try r.slice(typeStart, typeLength, what: ".BTF types")
        _ = try r.slice(stringStart, stringLength, what: ".BTF strings")
        let strings = stringStart..<stringStart + stringLength
        func name(_ offset: UInt32) -> String { r.cString(stringStart + Int(offset), in: strings) ?? "" }

        var at = typeStart
        let end = typeStart + typeLength
        while at < end {
            guard at + 12 <= end else { throw BPFObjectError(".BTF: type \(types.count) truncated") }
            let nameOffset = try r.u32(at)
            let info = try r.u32(at + 4)
            let sizeOrType = Int(try r.u32(at + 8))
            let count = Int(info & 0xFFFF)
            let kind = (info >> 24) & 0x1F
            at += 12
            var type = BTFType.other
            switch kind {
            case 1:
                type = .int(size: sizeOrType)
                at += 4
            case 2: type = .pointer(target: sizeOrType)
            case 3:
                type = .array(element: Int(try r.u32(at)), count: Int(try r.u32(at + 8)))
                at += 12
            case 4, 5:
                var members: [(String, Int)] = []
                for i in 0..<count {
                    members.append((name(try r.u32(at + i * 12)), Int(try r.u32(at + i * 12 + 4))))
                }
                type = .structure(size: sizeOrType, members: members)
                at += 12 * count
            case 6:
                type = .enumeration(size: sizeOrType)
                at += 8 * count
            case 7: type = .other
            case 8, 9, 10, 11, 18: type = .alias(target: sizeOrType)
            case 12: type = .other
            case 13: at += 8 * count
            case 14:
                type = .variable(name: name(nameOffset), type: sizeOrType)
                at += 4
            case 15:
                var variables: [(Int, Int, Int)] = []
                for i in 0..<count {
                    variables.append(
                        (Int(try r.u32(at + i * 12)), Int(try r.u32(at + i * 12 + 4)), Int(try r.u32(at + i * 12 + 8))))
                }
                type = .dataSection(name: name(nameOffset), variables: variables)
                at += 12 * count
            case 16: type = .float(size: sizeOrType)
            case 17: at += 4
            case 19:
                type = .enumeration(size: sizeOrType)
                at += 12 * count
            default:
                throw BPFObjectError(".BTF: type \(types.count) has unknown kind \(kind)")
            }
            types.append(type)
            names.append(name(nameOffset))
        }
    }

    func type(_ id: Int) -> BTFType { id >= 0 && id < types.count ? types[id] : .other }

    /// `id` with typedefs and qualifiers removed.
    func resolved(_ id: Int) -> Int {
        var id = id
        for _ in 0..<32 {
            guard case .alias(let target) = type(id) else { return id }
            id = target
        }
        return id
    }

    /// The size in bytes of type `id`, or nil when it has none (void, a function).
    func size(of id: Int, depth: Int = 0) -> Int? {
        guard depth < 32 else { return nil }
        switch type(resolved(id)) {
        case .int(let size), .structure(let size, _), .enumeration(let size), .float(let size): return size
        case .pointer: return 8
        case .array(let element, let count): return size(of: element, depth: depth + 1).map { $0 * count }
        default: return nil
        }
    }

    /// The data section named `name`.
    func dataSection(named name: String) -> [(type: Int, offset: Int, size: Int)]? {
        for type in types {
            if case .dataSection(let sectionName, let variables) = type, sectionName == name { return variables }
        }
        return nil
    }
}
