// Faults: what ends a frame early, and the message reported (once per instruction) for each.

import XDPEmuCore

/// Why a frame faulted (kept as numbers; the message is built only the first time an instruction faults).
enum Fault {
    case none
    case invalid(reason: Int)
    case memory(address: UInt64, size: Int, write: Bool)
    case budget
    case callDepth
    /// A helper refused its arguments (`BPFMachine.helperReason` says why).
    case helper
}

extension BPFMachine {
    func report(_ c: XDPContext) {
        guard reported.insert(faultPC).inserted else { return }
        let text: String
        switch fault {
        case .none: return
        case .invalid(let reason): text = loaded.faultReasons[reason]
        case .memory(let address, let size, let write):
            text =
                "\(write ? "store" : "load") of \(size) bytes at 0x\(String(address, radix: 16)) is outside "
                + "the memory the program may \(write ? "write" : "read") (\(describe(address)))"
        case .budget: text = "more than \(budget) instructions in one frame"
        case .callDepth: text = "BPF-to-BPF calls nested deeper than \(VirtualAddress.maxFrames) frames"
        case .helper: text = helperReason
        }
        loaded.log.append(
            BPFMessage(
                kind: .fault, time: c.now, program: program.name, place: loaded.object.place(of: faultPC), text: text))
    }

    private func describe(_ address: UInt64) -> String {
        let region = address >> 32
        let offset = address & 0xFFFF_FFFF
        switch region {
        case 0:
            let r = readSpans[0]
            return offset >= VirtualAddress.packetBase
                ? "packet offset \(Int64(offset) - Int64(r.start)) from data_meta, the packet has \(r.span) bytes"
                : "not a pointer"
        case VirtualAddress.contextRegion: return "context offset \(offset), xdp_md has 24 bytes, read only"
        case VirtualAddress.stackRegion: return "stack offset \(offset), the stack has 8 frames of 512 bytes"
        case VirtualAddress.firstMapRegion..<regionCount:
            let map = loaded.maps[Int(region - VirtualAddress.firstMapRegion)]
            return "offset \(offset) in the values of map \(map.definition.name)"
                + (map.definition.readOnly ? ", read only" : "")
        default:
            return VirtualAddress.mapIndex(ofHandle: address) != nil
                ? "a map reference, not a pointer" : "not a pointer"
        }
    }

    /// redirect_map with flags under 4.18, where the helper returns XDP_ABORTED for any: said once per
    /// instruction, as the cause of aborted frames is otherwise not visible.
    @inline(never)
    func noteRedirectFlags(_ pc: Int, _ c: XDPContext) {
        guard c.semantics == .v4_18 else { return }
        loaded.log.append(
            BPFMessage(
                kind: .note, time: c.now, program: program.name, place: loaded.object.place(of: pc),
                text: "redirect_map with flags 0x\(String(registers[3], radix: 16)) returns XDP_ABORTED under "
                    + "\"semantics\": \"4.18\" (its helper takes no flags); BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS "
                    + "and a miss action need \"semantics\": \"modern\""))
    }

    @inline(never)
    func exhausted(_ pc: Int, _ budget: Int) -> Int {
        fault = .budget
        faultPC = pc
        return budget
    }

    @inline(never)
    func memoryFault(
        _ base: UInt64, _ i: Instruction, _ size: Int, _ write: Bool, _ pc: Int, _ budget: Int
    ) -> Int {
        fault = .memory(address: base &+ UInt64(bitPattern: Int64(i.off)), size: size, write: write)
        faultPC = pc
        return budget
    }
}
