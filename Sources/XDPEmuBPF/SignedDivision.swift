// Signed division and modulo as the kernel defines them for BPF_SDIV and BPF_SMOD (ISA v4): by zero, the
// quotient is 0 and the remainder the dividend; INT_MIN / -1 is INT_MIN (no trap) and INT_MIN % -1 is 0.

extension BPFMachine {
    @inline(__always) static func sdiv64(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = Int64(bitPattern: a)
        let y = Int64(bitPattern: b)
        if y == 0 { return 0 }
        if y == -1 { return UInt64(bitPattern: 0 &- x) }
        return UInt64(bitPattern: x / y)
    }

    @inline(__always) static func smod64(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = Int64(bitPattern: a)
        let y = Int64(bitPattern: b)
        if y == 0 { return a }
        if y == -1 { return 0 }
        return UInt64(bitPattern: x % y)
    }

    @inline(__always) static func sdiv32(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = Int32(truncatingIfNeeded: a)
        let y = Int32(truncatingIfNeeded: b)
        if y == 0 { return 0 }
        if y == -1 { return UInt64(UInt32(bitPattern: 0 &- x)) }
        return UInt64(UInt32(bitPattern: x / y))
    }

    @inline(__always) static func smod32(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = Int32(truncatingIfNeeded: a)
        let y = Int32(truncatingIfNeeded: b)
        if y == 0 { return UInt64(UInt32(bitPattern: x)) }
        if y == -1 { return 0 }
        return UInt64(UInt32(bitPattern: x % y))
    }
}
