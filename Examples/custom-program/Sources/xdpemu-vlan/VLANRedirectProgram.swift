import XDPEmuCore

/// Redirects tagged frames through `map` with their VLAN id as the key; untagged frames go to the local stack.
struct VLANRedirectProgram: XDPProgram {
    let map: DevMap

    // `mutating` although it changes nothing: the poll loop then runs it in place rather than on a copy.
    mutating func run(_ context: inout XDPContext) -> XDPAction {
        // nil past data_end: a frame too short for a tag is simply "untagged".
        guard let tpid = context.loadBigEndian(UInt16.self, at: 12),
            tpid == 0x8100 || tpid == 0x88A8,
            let tci = context.loadBigEndian(UInt16.self, at: 14)
        else { return .pass }
        return context.redirectMap(map, key: UInt32(tci & 0x0FFF))
    }
}
