// An object file made ready to run: its maps created (shared by every program of the object, as libbpf shares
// them per bpf_object), its code decoded once, and a log for what its programs report (faults, trace_printk).

import Synchronization
import XDPEmuCore

/// What a program reported: a fault or a note on a helper's answer (once per program and instruction), or a
/// `bpf_trace_printk` line.
public struct BPFMessage: Sendable, Equatable {
    public enum Kind: String, Sendable { case fault, note, print }
    public var kind: Kind
    public var time: Nanos
    public var program: String
    /// The instruction's place (`section xdp, instruction 12`) for a fault.
    public var place: String
    public var text: String
}

/// Messages of an object's programs, in the order they were reported. Appended only on the rare paths
/// (a first fault at an instruction, a trace_printk), read by the runtime between polls.
public final class BPFMessageLog: Sendable {
    private let messages = Mutex<(list: [BPFMessage], faults: Set<String>)>(([], []))
    public init() {}
    /// Appends `message`; a fault or a note only the first time for its program and instruction.
    func append(_ message: BPFMessage) {
        messages.withLock {
            if message.kind != .print,
                !$0.faults.insert("\(message.kind)@\(message.program)@\(message.place)").inserted
            {
                return
            }
            $0.list.append(message)
        }
    }
    /// Removes and returns the messages so far.
    public func drain() -> [BPFMessage] {
        messages.withLock { m in
            defer { m.list = [] }
            return m.list
        }
    }
}

public final class LoadedBPFObject: @unchecked Sendable {
    // @unchecked Sendable: maps are used by the worker that runs the programs and by the control plane between
    // runs (see BPFMap).
    public let object: BPFObject
    public let maps: [BPFMap]
    public let log = BPFMessageLog()
    /// Held by a machine's run when its `serialised` is set (RunLock.swift).
    let runLock = RunLock()
    let code: UnsafeMutablePointer<Instruction>
    let codeCount: Int
    let faultReasons: [String]
    let unknownHelpers: [(helper: Int32, index: Int)]

    /// Creates the object's maps for `cpus` emulated CPUs and decodes its code.
    public convenience init(_ object: BPFObject, cpus: Int) throws(BPFObjectError) {
        try self.init(object, cpus: cpus, specialise: true)
    }

    /// - Parameter specialise: whether to choose instructions at load time (Decoder+Fuse.swift); the tests run
    ///   programs both ways.
    init(_ object: BPFObject, cpus: Int, specialise: Bool) throws(BPFObjectError) {
        self.object = object
        guard object.maps.count <= VirtualAddress.maxMaps else {
            throw BPFObjectError(
                "the object defines \(object.maps.count) maps (global data sections included); xdpemu runs objects "
                    + "of at most \(VirtualAddress.maxMaps)")
        }
        var maps: [BPFMap] = []
        for definition in object.maps {
            switch BPFMap.make(definition, cpus: cpus, programs: object.programs) {
            case .success(let map): maps.append(map)
            case .failure(let error): throw error
            }
        }
        self.maps = maps
        let decoded = Decoder.decode(
            object, mapAddress: VirtualAddress.mapHandle,
            valueAddress: { VirtualAddress.mapValue($0, offset: $1) }, specialise: specialise)
        codeCount = decoded.instructions.count
        code = .allocate(capacity: max(codeCount, 1))
        code.initialize(from: decoded.instructions, count: codeCount)
        faultReasons = decoded.faultReasons
        unknownHelpers = decoded.unknownHelpers
    }

    deinit { code.deallocate() }

    /// The map named `name`.
    public func map(named name: String) -> BPFMap? { maps.first { $0.definition.name == name } }

    /// The program selected by function name or section; with neither, the object's only XDP program.
    public func program(function: String?, section: String?) -> Result<BPFProgramInfo, BPFObjectError> {
        let xdp = object.programs.filter(\.isXDP)
        let names = object.programs.map { "\($0.name) (section \($0.section))" }.joined(separator: ", ")
        if let function {
            guard let found = object.programs.first(where: { $0.name == function }) else {
                return .failure(BPFObjectError("no program named \(function); the object has: \(names)"))
            }
            if let section, found.section != section {
                return .failure(BPFObjectError("program \(function) is in section \(found.section), not \(section)"))
            }
            return .success(found)
        }
        if let section {
            let inSection = object.programs.filter { $0.section == section }
            guard inSection.count == 1 else {
                return .failure(
                    BPFObjectError(
                        inSection.isEmpty
                            ? "no program in section \(section); the object has: \(names)"
                            : "section \(section) holds \(inSection.count) programs; name one with \"function\""))
            }
            return .success(inSection[0])
        }
        guard xdp.count == 1 else {
            return .failure(
                BPFObjectError(
                    xdp.isEmpty
                        ? "the object has no XDP program (a function in a section named xdp...)"
                        : "the object has \(xdp.count) XDP programs (\(names)); name one with \"function\""))
        }
        return .success(xdp[0])
    }

    /// Problems a verifier would refuse in the code `program` can reach: each as `instruction N: reason`.
    public func problems(of program: BPFProgramInfo) -> [String] {
        var seen = Set<Int>()
        var work = [program.entry]
        var out: [(Int, String)] = []
        while let start = work.popLast() {
            var pc = start
            while pc < codeCount, seen.insert(pc).inserted {
                let i = code[pc]
                switch i.op {
                case .fault:
                    out.append((pc, faultReasons[Int(i.imm)]))
                    pc = codeCount
                    continue
                case .exit:
                    pc = codeCount
                    continue
                case .ja:
                    pc = Int(i.off)
                    continue
                case .callLocal: work.append(Int(i.off))
                case .ldimm64, .ldimm64Mov: pc += 1
                case .lookupConstant, .lookupArray, .lookupHash:
                    // Fused with its LD_IMM64: skip the load's second half.
                    if i.dst == 2 { pc += 1 }
                default:
                    if i.op.isConditionalJump {
                        work.append(Int(i.off))
                    }
                }
                pc += 1
            }
        }
        return out.sorted { $0.0 < $1.0 }.map { "\(object.place(of: $0.0)): \($0.1)" }
    }

    /// The helpers the code reachable from `program` calls (known and unknown), by number.
    public func helpers(of program: BPFProgramInfo) -> [Int32] {
        var seen = Set<Int>()
        var work = [program.entry]
        var helpers = Set<Int32>()
        let raw = object.instructions
        while let start = work.popLast() {
            var pc = start
            while pc < raw.count, seen.insert(pc).inserted {
                let r = raw[pc]
                if r.opcode == 0x95 { break }
                if r.opcode == 0x85 {
                    if r.src == 0 {
                        helpers.insert(r.imm)
                    } else if code[pc].op == .callLocal {
                        work.append(Int(code[pc].off))
                    }
                }
                if r.opcode == 0x05, code[pc].op == .ja {
                    pc = Int(code[pc].off)
                    continue
                }
                if code[pc].op.isConditionalJump {
                    work.append(Int(code[pc].off))
                }
                pc += r.opcode == 0x18 ? 2 : 1
            }
        }
        return helpers.sorted()
    }
}
