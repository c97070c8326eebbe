import Testing

@testable import XDPEmuBPF

/// The maps' kernel rules, through the interface the helpers use.
@Suite struct BPFMapTests {
    func make(_ type: BPFMapType, key: Int = 4, value: Int = 4, max: UInt32 = 2, flags: UInt32 = 0) throws -> BPFMap {
        try BPFMap.make(
            BPFMapDefinition(
                name: "m", type: type, keySize: key, valueSize: value, maxEntries: max, flags: flags, initialValue: nil,
                readOnly: false), cpus: 2
        ).get()
    }

    func update(_ map: BPFMap, _ key: [UInt8], _ value: [UInt8], _ flags: UInt64 = 0, cpu: Int = 0) -> Int64 {
        map.update(key: key, value: value, flags: flags, cpu: cpu)
    }

    func le(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }

    @Test func arrayUpdateAndDelete() throws {
        let map = try make(.array)
        #expect(update(map, le(1), le(5)) == 0)
        #expect(update(map, le(2), le(5)) == -7)  // E2BIG
        #expect(update(map, le(0), le(5), 1) == -17)  // NOEXIST: every element exists
        #expect(update(map, le(0), le(5), 8) == -22)
        #expect(map.delete(key: le(0)) == -22)
        #expect(map.entries().map(\.values) == [[le(0)], [le(5)]])
    }

    @Test func perCPUArraysKeepOneValuePerCPU() throws {
        let map = try make(.percpuArray, value: 4, max: 1)
        #expect(update(map, le(0), le(7), cpu: 1) == 0)
        #expect(map.entries().first?.values == [[0, 0, 0, 0], le(7)])
        #expect(map.lookup(key: le(0), cpu: 1) == 8)  // values rounded up to 8 bytes per CPU
    }

    @Test func hashDeletesKeepProbeChainsIntact() throws {
        let map = try make(.hash, max: 64)
        for k in 0..<64 { #expect(update(map, le(UInt32(k * 7919)), le(UInt32(k))) == 0) }
        #expect(update(map, le(999_999), le(1)) == -7)
        for k in stride(from: 0, to: 64, by: 2) { #expect(map.delete(key: le(UInt32(k * 7919))) == 0) }
        for k in 0..<64 {
            let found = map.lookup(key: le(UInt32(k * 7919)), cpu: 0) != nil
            #expect(found == (k % 2 == 1))
        }
        #expect(map.delete(key: le(0)) == -2)
        #expect(map.entries().count == 32)
    }

    @Test func lruEvictsTheLeastRecentlyUsed() throws {
        let map = try make(.lruHash, max: 2)
        #expect(update(map, le(1), le(1)) == 0)
        #expect(update(map, le(2), le(2)) == 0)
        _ = map.lookup(key: le(1), cpu: 0)
        #expect(update(map, le(3), le(3)) == 0)
        #expect(map.lookup(key: le(2), cpu: 0) == nil)
        #expect(map.lookup(key: le(1), cpu: 0) != nil)
        #expect(update(map, le(4), le(4), 2) == -2)  // EXIST on a missing key
    }

    @Test func lpmTrieFindsTheLongestPrefix() throws {
        #expect(throws: BPFObjectError.self) { try make(.lpmTrie, key: 8) }  // needs BPF_F_NO_PREALLOC
        let map = try make(.lpmTrie, key: 8, max: 3, flags: 1)
        #expect(update(map, le(8) + [10, 0, 0, 0], le(8)) == 0)
        #expect(update(map, le(16) + [10, 1, 0, 0], le(16)) == 0)
        #expect(update(map, le(33) + [10, 1, 0, 0], le(1)) == -22)
        #expect(update(map, le(16) + [10, 1, 9, 9], le(17), 1) == -17)  // same prefix, host bits ignored
        #expect(update(map, le(24) + [10, 1, 2, 0], le(24)) == 0)
        #expect(update(map, le(0) + [0, 0, 0, 0], le(0)) == -28)  // ENOSPC
        func hop(_ address: [UInt8]) -> UInt64? { map.lookup(key: le(32) + address, cpu: 0) }
        #expect(hop([10, 1, 2, 3]) == 8)  // third slot, value size 4
        #expect(hop([10, 1, 3, 3]) == 4)
        #expect(hop([10, 2, 3, 3]) == 0)
        #expect(hop([11, 0, 0, 0]) == nil)
        #expect(map.delete(key: le(16) + [10, 1, 0, 0]) == 0)
        #expect(hop([10, 1, 3, 3]) == 0)
    }

    @Test func devmapsAndUnsupportedTypesAreCheckedAtCreation() throws {
        #expect(throws: BPFObjectError.self) { try make(.devmap, key: 4, value: 16) }
        #expect(throws: BPFObjectError.self) { try make(BPFMapType(rawValue: 17)) }
        #expect(throws: BPFObjectError.self) { try make(.array, key: 8) }
    }
}
