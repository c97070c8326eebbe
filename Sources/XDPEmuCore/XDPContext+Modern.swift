/// Flags of `bpf_redirect_map` (modern profile). The low two bits (`actionMask`) are the action the helper returns
/// when the key has no entry.
public enum RedirectMapFlags {
    /// XDP_ABORTED | XDP_DROP | XDP_PASS | XDP_TX: the bits that carry the miss action.
    @inlinable public static var actionMask: UInt64 { 3 }
    /// BPF_F_BROADCAST (5.14+): a copy to every entry of the map.
    @inlinable public static var broadcast: UInt64 { 1 << 3 }
    /// BPF_F_EXCLUDE_INGRESS (5.14+): with BROADCAST, not to the ingress device.
    @inlinable public static var excludeIngress: UInt64 { 1 << 4 }
}

extension XDPContext {
    /// `bpf_redirect_map` of the modern profile (`__bpf_xdp_redirect_map`): flag bits other than the miss action,
    /// BROADCAST and EXCLUDE_INGRESS return ABORTED, whatever the key. The helper looks the key up itself: on a
    /// miss without BROADCAST it clears the request (a bare XDP_REDIRECT after it then fails with EINVAL) and
    /// returns the low two bits of `flags` as the action (0 = ABORTED, DROP, PASS, TX). Otherwise it records the
    /// request and returns REDIRECT; with BROADCAST the key is not needed (a missing one is fine) and the frame
    /// goes to every entry (`Worker.broadcast`), not back to the ingress device with EXCLUDE_INGRESS.
    @usableFromInline
    mutating func redirectMapModern(_ map: DevMap, key: UInt32, flags: UInt64) -> XDPAction {
        let allowed = RedirectMapFlags.actionMask | RedirectMapFlags.broadcast | RedirectMapFlags.excludeIngress
        guard flags & ~allowed == 0 else { return .aborted }
        let bits = UInt(bitPattern: Unmanaged.passUnretained(map).toOpaque())
        if flags & RedirectMapFlags.broadcast != 0 {
            let exclude = flags & RedirectMapFlags.excludeIngress != 0
            requestBits = bits | (exclude ? RedirectInfo.floodExcludingIngress : RedirectInfo.flood)
            requestIndex = key
            return .redirect
        }
        guard map.lookupBlock(key: key) != nil else {
            requestBits = 0
            requestIndex = 0
            return XDPAction(rawValue: UInt32(flags & RedirectMapFlags.actionMask))
        }
        requestBits = bits
        requestIndex = key
        return .redirect
    }
}
