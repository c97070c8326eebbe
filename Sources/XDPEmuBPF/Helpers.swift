// The helpers, called with r1..r5 and answering in r0. Those that act on the frame or redirect call the core's
// `XDPContext` helpers, the same code the Swift programs use (bounds, errnos and the per-CPU redirect
// request are the core's). Pointer arguments are checked like any load or store; a bad argument (a pointer
// outside the program's memory, a map reference that is not one, a map of the wrong kind) faults the frame,
// where the verifier would have refused the program. Returns false on a fault (`fault` set).

import XDPEmuCore

extension BPFMachine {
    /// map_lookup_elem when its arguments are right (a map that is not a devmap, a key in the program's memory);
    /// anything else goes to `callHelper`, which reports it.
    @inline(__always)
    func lookupFast(_ c: inout XDPContext) -> Bool {
        guard let index = mapIndex(inR1: false) else { return callHelper(HelperID.mapLookupElem.rawValue, &c) }
        return lookup(BPFMap.self, index, &c)
    }

    /// map_lookup_elem of map `index`, known to be an `M` that is not a devmap (a final class: the call is
    /// direct); a key outside the program's memory goes to `callHelper`, which reports it.
    @inline(__always)
    func lookup<M: BPFMap>(_: M.Type, _ index: Int, _ c: inout XDPContext) -> Bool {
        let R = registers
        let found: UInt64?? = maps[index]._withUnsafeGuaranteedRef { map in
            let map = unsafeDowncast(map, to: M.self)
            guard let key = translate(R[2], anySize: UInt64(truncatingIfNeeded: map.keySize), write: false) else {
                return nil
            }
            return .some(map.lookup(key: key, cpu: cpu))
        }
        guard let result = found else { return callHelper(HelperID.mapLookupElem.rawValue, &c) }
        R[0] = result.map { (VirtualAddress.firstMapRegion &+ UInt64(index)) << 32 | $0 } ?? 0
        return true
    }

    /// redirect_map into a devmap bound to the core's; anything else goes to `callHelper`.
    @inline(__always)
    func redirectMapFast(_ c: inout XDPContext) -> Bool {
        guard let index = mapIndex(inR1: true) else { return callHelper(HelperID.redirectMap.rawValue, &c) }
        return redirect(intoDevMap: index, &c)
    }

    /// redirect_map into devmap `index`; before the devmap is bound to the core's, the call goes to
    /// `callHelper`.
    @inline(__always)
    func redirect(intoDevMap index: Int, _ c: inout XDPContext) -> Bool {
        let R = registers
        let core = maps[index]._withUnsafeGuaranteedRef { unsafeDowncast($0, to: DevMapReference.self).coreMap }
        guard let core else { return callHelper(HelperID.redirectMap.rawValue, &c) }
        R[0] = core._withUnsafeGuaranteedRef {
            UInt64(c.redirectMap($0, key: UInt32(truncatingIfNeeded: R[2]), flags: R[3]).rawValue)
        }
        return true
    }

    /// bpf_tail_call(ctx, r2 = prog_array, r3 = index): the entry of the program to go on with, nil when the
    /// call fails and the program goes on after it (an empty or missing slot, or the 33 tail calls a frame may
    /// make, as MAX_TAIL_CALL_CNT); false in `ok` after a fault (r2 is no prog_array, or the call is made from a
    /// BPF-to-BPF function).
    @inline(never)
    func tailCallTarget(depth: Int, ok: inout Bool) -> Int? {
        let R = registers
        let index = Int(truncatingIfNeeded: (R[2] >> 32) &- VirtualAddress.mapHandleRegion)
        guard R[2] & 0xFFFF_FFFF == 0, UInt(bitPattern: index) < UInt(mapCount),
            let map = maps[index].takeUnretainedValue() as? ProgArrayMap
        else {
            ok = helperFault("tail_call: argument 2 (0x\(String(R[2], radix: 16))) is not a prog_array")
            return nil
        }
        guard depth == 0 else {
            ok = helperFault("tail_call from a BPF-to-BPF function is not supported by xdpemu")
            return nil
        }
        guard tailCalls < VirtualAddress.maxTailCalls, let target = map.target(R[3] & 0xFFFF_FFFF) else { return nil }
        tailCalls += 1
        return target
    }

    /// The index of the map whose reference r1 holds, when it is one and is a devmap (`devMap`) or a map of
    /// data.
    @inline(__always)
    func mapIndex(inR1 devMap: Bool) -> Int? {
        let r1 = registers[1]
        let index = Int(truncatingIfNeeded: (r1 >> 32) &- VirtualAddress.mapHandleRegion)
        guard r1 & 0xFFFF_FFFF == 0, UInt(bitPattern: index) < UInt(mapCount),
            maps[index]._withUnsafeGuaranteedRef({ devMap ? $0.isDevMap : $0.holdsData })
        else { return nil }
        return index
    }

    func callHelper(_ id: Int64, _ c: inout XDPContext) -> Bool {
        let R = registers
        switch id {
        case HelperID.mapLookupElem.rawValue, HelperID.mapUpdateElem.rawValue, HelperID.mapDeleteElem.rawValue:
            guard let index = mapIndex(R[1]) else { return false }
            return maps[index]._withUnsafeGuaranteedRef { map in mapHelper(id, map, index) }
        case HelperID.ktimeGetNs.rawValue:
            R[0] = c.now
        case HelperID.ktimeGetCoarseNs.rawValue:
            // CLOCK_MONOTONIC_COARSE advances once per tick: 4 ms at HZ=250.
            R[0] = c.now - c.now % 4_000_000
        case HelperID.tracePrintk.rawValue:
            return tracePrintk(c)
        case HelperID.getPrandomU32.rawValue:
            random = random &+ 0x9E37_79B9_7F4A_7C15
            var z = random
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            R[0] = UInt64(UInt32(truncatingIfNeeded: z ^ (z >> 31)))
        case HelperID.getSmpProcessorId.rawValue:
            R[0] = UInt64(cpu)
        case HelperID.redirect.rawValue:
            R[0] = UInt64(
                c.redirect(ifindex: IfIndex(rawValue: UInt32(truncatingIfNeeded: R[1])), flags: R[2]).rawValue)
        case HelperID.redirectMap.rawValue:
            guard let index = mapIndex(R[1]) else { return false }
            return maps[index]._withUnsafeGuaranteedRef { map in
                guard map.isDevMap, let core = unsafeDowncast(map, to: DevMapReference.self).coreMap else {
                    return helperFault(
                        "redirect_map on map \(map.definition.name), which is a \(map.definition.type), not a devmap")
                }
                R[0] = core._withUnsafeGuaranteedRef {
                    UInt64(c.redirectMap($0, key: UInt32(truncatingIfNeeded: R[2]), flags: R[3]).rawValue)
                }
                return true
            }
        case HelperID.xdpAdjustHead.rawValue:
            guard contextArgument(R[1]) else { return false }
            R[0] = UInt64(bitPattern: Int64(c.adjustHead(Int(Int32(truncatingIfNeeded: R[2])))))
            syncPacket(c)
        case HelperID.xdpAdjustMeta.rawValue:
            guard contextArgument(R[1]) else { return false }
            R[0] = UInt64(bitPattern: Int64(c.adjustMeta(Int(Int32(truncatingIfNeeded: R[2])))))
            syncPacket(c)
        case HelperID.xdpAdjustTail.rawValue:
            guard contextArgument(R[1]) else { return false }
            R[0] = UInt64(bitPattern: Int64(c.adjustTail(Int(Int32(truncatingIfNeeded: R[2])))))
            syncPacket(c)
        case HelperID.xdpGetBuffLen.rawValue:
            guard contextArgument(R[1]) else { return false }
            R[0] = UInt64(c.length)
        case HelperID.xdpLoadBytes.rawValue, HelperID.xdpStoreBytes.rawValue:
            guard contextArgument(R[1]) else { return false }
            let offset = R[2] & 0xFFFF_FFFF
            let length = R[4] & 0xFFFF_FFFF
            let store = id == HelperID.xdpStoreBytes.rawValue
            guard length > 0, let buffer = argument(R[3], Int(length), write: !store, "buffer") else {
                return length > 0 ? false : helperFault("xdp_load_bytes/xdp_store_bytes with length 0")
            }
            guard offset + length <= UInt64(c.length) else {
                R[0] = UInt64(bitPattern: Int64(-KernelErrno.EINVAL.rawValue))
                return true
            }
            if store {
                (c.data + Int(offset)).copyMemory(from: buffer, byteCount: Int(length))
            } else {
                buffer.copyMemory(from: c.data + Int(offset), byteCount: Int(length))
            }
            R[0] = 0
        case HelperID.csumDiff.rawValue:
            return csumDiff()
        case HelperID.fibLookup.rawValue:
            let size = Int(R[3] & 0xFFFF_FFFF)
            guard contextArgument(R[1]), let params = argument(R[2], max(size, 1), write: true, "params") else {
                return false
            }
            R[0] = UInt64(bitPattern: fibLookup(params, size: size))
        default:
            return helperFault("helper \(id) is not supported by xdpemu")
        }
        return true
    }

    /// map_lookup_elem, map_update_elem, map_delete_elem on `map` (number `index`).
    @inline(__always)
    private func mapHelper(_ id: Int64, _ map: BPFMap, _ index: Int) -> Bool {
        let R = registers
        if !map.holdsData {
            let only = map.isDevMap ? "redirect_map" : "tail_call"
            return helperFault(
                "\(HelperID(rawValue: id)!.name) on \(map.definition.type) \(map.definition.name): the verifier allows "
                    + "only \(only) on it")
        }
        guard let key = argument(R[2], map.keySize, write: false, "key") else { return false }
        switch id {
        case HelperID.mapLookupElem.rawValue:
            let region = VirtualAddress.firstMapRegion &+ UInt64(index)
            R[0] = map.lookup(key: key, cpu: cpu).map { region << 32 | $0 } ?? 0
        case HelperID.mapUpdateElem.rawValue:
            guard let value = argument(R[3], map.definition.valueSize, write: false, "value") else { return false }
            R[0] = UInt64(bitPattern: map.update(key: key, value: value, flags: R[4], cpu: cpu))
        default:
            R[0] = UInt64(bitPattern: map.delete(key: key))
        }
        return true
    }

    @inline(never)
    func helperFault(_ reason: String) -> Bool {
        fault = .helper
        helperReason = reason
        return false
    }

    @inline(__always)
    private func mapIndex(_ address: UInt64) -> Int? {
        guard let index = VirtualAddress.mapIndex(ofHandle: address), index < mapCount else {
            _ = helperFault("argument 1 (0x\(String(address, radix: 16))) is not a map")
            return nil
        }
        return index
    }

    private func contextArgument(_ address: UInt64) -> Bool {
        address == VirtualAddress.contextRegion << 32 ? true : helperFault("argument 1 is not the context")
    }

    private func argument(_ address: UInt64, _ size: Int, write: Bool, _ what: String) -> UnsafeMutableRawPointer? {
        if let p = translate(address, UInt64(size), write: write) { return p }
        fault = .memory(address: address, size: size, write: write)
        return nil
    }

    /// `bpf_csum_diff(from, from_size, to, to_size, seed)`: the one's-complement sum of `seed`, the negated words
    /// of `from` and the words of `to` (csum_partial, unfolded, as x86-64 gives it); sizes must be multiples of 4
    /// and together at most 512 bytes, else EINVAL.
    private func csumDiff() -> Bool {
        let R = registers
        let fromSize = Int(R[2] & 0xFFFF_FFFF)
        let toSize = Int(R[4] & 0xFFFF_FFFF)
        guard (fromSize | toSize) & 3 == 0, fromSize + toSize <= 512 else {
            R[0] = UInt64(bitPattern: Int64(-KernelErrno.EINVAL.rawValue))
            return true
        }
        var sum = UInt64(UInt32(truncatingIfNeeded: R[5]))
        if fromSize > 0 {
            guard let from = argument(R[1], fromSize, write: false, "from") else { return false }
            for i in stride(from: 0, to: fromSize, by: 4) {
                sum += UInt64(~from.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            }
        }
        if toSize > 0 {
            guard let to = argument(R[3], toSize, write: false, "to") else { return false }
            for i in stride(from: 0, to: toSize, by: 4) {
                sum += UInt64(to.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            }
        }
        while sum >> 32 != 0 { sum = (sum & 0xFFFF_FFFF) + (sum >> 32) }
        R[0] = sum
        return true
    }

    /// `bpf_trace_printk(fmt, fmt_size, a, b, c)`: formats %d %i %u %x %X %lld %llu %llx %p %c %s and %% (up to
    /// three arguments) into the object's message log; answers the length written.
    private func tracePrintk(_ c: XDPContext) -> Bool {
        let R = registers
        let size = Int(R[2] & 0xFFFF_FFFF)
        guard size > 0, size <= 1024, let format = argument(R[1], size, write: false, "format") else {
            return size > 0 && size <= 1024 ? false : helperFault("trace_printk format size \(size)")
        }
        let bytes = Array(UnsafeRawBufferPointer(start: format, count: size).prefix { $0 != 0 })
        var out = ""
        var argIndex = 0
        var i = 0
        while i < bytes.count {
            let ch = bytes[i]
            guard ch == UInt8(ascii: "%"), i + 1 < bytes.count else {
                out.unicodeScalars.append(Unicode.Scalar(ch))
                i += 1
                continue
            }
            i += 1
            var longs = 0
            while i < bytes.count, bytes[i] == UInt8(ascii: "l") {
                longs += 1
                i += 1
            }
            guard i < bytes.count else { break }
            let conversion = bytes[i]
            i += 1
            if conversion == UInt8(ascii: "%") {
                out += "%"
                continue
            }
            guard argIndex < 3 else { return helperFault("trace_printk with more than three arguments") }
            let raw = R[3 + argIndex]
            argIndex += 1
            let value = longs == 0 ? raw & 0xFFFF_FFFF : raw
            switch conversion {
            case UInt8(ascii: "d"), UInt8(ascii: "i"):
                out += longs == 0 ? String(Int32(truncatingIfNeeded: value)) : String(Int64(bitPattern: value))
            case UInt8(ascii: "u"): out += String(value)
            case UInt8(ascii: "x"): out += String(value, radix: 16)
            case UInt8(ascii: "X"): out += String(value, radix: 16, uppercase: true)
            case UInt8(ascii: "p"): out += "0x" + String(raw, radix: 16)
            case UInt8(ascii: "c"): out.unicodeScalars.append(Unicode.Scalar(UInt8(truncatingIfNeeded: value)))
            case UInt8(ascii: "s"):
                var text = ""
                var address = raw
                while text.utf8.count < 256, let p = translate(address, 1, write: false) {
                    let byte = p.load(as: UInt8.self)
                    if byte == 0 { break }
                    text.unicodeScalars.append(Unicode.Scalar(byte))
                    address += 1
                }
                out += text
            default:
                return helperFault("trace_printk conversion %\(Character(Unicode.Scalar(conversion))) is not supported")
            }
        }
        loaded.log.append(
            BPFMessage(kind: .print, time: c.now, program: program.name, place: "", text: out))
        R[0] = UInt64(out.utf8.count)
        return true
    }
}
