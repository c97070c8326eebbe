// BPF_MAP_TYPE_PROG_ARRAY: the slots `bpf_tail_call` jumps through. Each holds a program of the same object (as
// the kernel requires one of the same type, xdpemu requires an XDP program of the object) or nothing. Programs may
// not read or write it (the verifier allows only bpf_tail_call on it); the topology fills it, by function name.

import XDPEmuCore

public final class ProgArrayMap: BPFMap, @unchecked Sendable {
    /// Per slot: the program's index in the object's programs, or -1.
    @exclusivity(unchecked) var slots: [Int32]
    /// The programs, by index (the object's list).
    let programs: [BPFProgramInfo]

    init(definition: BPFMapDefinition, programs: [BPFProgramInfo]) {
        slots = [Int32](repeating: -1, count: Int(definition.maxEntries))
        self.programs = programs
        super.init(base: definition, cpus: 1)
    }

    /// The entry of the program in slot `key`, if any.
    @inline(__always)
    func target(_ key: UInt64) -> Int? {
        guard key < UInt64(slots.count) else { return nil }
        let program = slots[Int(key)]
        return program < 0 ? nil : programs[Int(program)].entry
    }

    /// Puts the XDP program `function` of the object in slot `key` (nil: empties it); a message saying why not.
    public func setProgram(_ function: String?, at key: UInt32) -> String? {
        guard key < UInt32(slots.count) else {
            return "key \(key) is out of range: max_entries is \(slots.count), so keys are 0...\(slots.count - 1)"
        }
        guard let function else {
            slots[Int(key)] = -1
            return nil
        }
        guard let index = programs.firstIndex(where: { $0.name == function }) else {
            return "the object has no function \(function) (it has: \(programs.map(\.name).joined(separator: ", ")))"
        }
        guard programs[index].isXDP else {
            return "\(function) is in section \(programs[index].section), not an XDP program"
        }
        slots[Int(key)] = Int32(index)
        return nil
    }

    /// The slots that hold a program: key and function name.
    public var programSlots: [(key: UInt32, function: String)] {
        slots.enumerated().compactMap { key, program in
            program < 0 ? nil : (UInt32(key), programs[Int(program)].name)
        }
    }
}
