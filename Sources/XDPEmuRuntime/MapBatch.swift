import XDPEmuCore
import XDPEmuTopology

/// Runs a script of devmap operations against an in-memory network and answers one line per operation, so the
/// emulator's map semantics can be compared line by line with a kernel's answers to the same operations.
///
/// Syntax, one operation a line (`#` starts a comment; blank lines are ignored):
/// ```
/// device NAME [ifindex N] [mtu N] [down] [noxmit]     -> ok IFINDEX
/// create devmap|devmap_hash MAX_ENTRIES [key_size N] [value_size N] [flags N]   -> ok | ERRNO
/// update KEY DEVICE [any|noexist|exist|N]            -> ok | ERRNO   (DEVICE: a name or a numeric ifindex)
/// delete KEY                                          -> ok | ERRNO
/// lookup KEY                                          -> ok DEVICE-NAME [progid=N] | ERRNO
/// next KEY|none                                       -> ok NEXT | ERRNO
/// unregister DEVICE                                   -> ok
/// ```
/// Operations on the map before any successful `create` answer EBADF (no map fd). Numbers are decimal or 0x hex.
/// The semantics profile decides the answers: `4.18` knows only `devmap` with value_size 4; `modern` adds
/// `devmap_hash` and value_size 8, whose lookups also show the entry's program id (`progid=0`: the script gives
/// no program fd, as an update with fd 0).
public struct MapBatch {
    /// A problem with the script itself (not an answer of the map).
    public struct SyntaxError: Error, Equatable, CustomStringConvertible {
        public var line: Int
        public var message: String
        public var description: String { "error: line \(line): \(message)" }
    }

    public let network: Network
    /// Whether the caller has CAP_NET_ADMIN (map creation needs it).
    public let capNetAdmin: Bool
    private var map: DevMap?
    /// Every device declared by name, including unregistered ones (their stale ifindex stays usable in updates).
    private var declared: [String: IfIndex] = [:]
    private var names: [IfIndex: String] = [:]

    public init(semantics: Semantics = .v4_18, capNetAdmin: Bool = true) {
        network = Network(semantics: semantics, workers: 1, poolCapacity: 16, bufferSize: 512)
        self.capNetAdmin = capNetAdmin
    }

    /// Runs every line; returns the answers (one per operation) and the syntax errors, in order.
    public mutating func run(script: String) -> (output: [String], errors: [SyntaxError]) {
        var output = [String]()
        var errors = [SyntaxError]()
        for (index, rawLine) in Self.lines(of: script).enumerated() {
            switch execute(line: String(rawLine), number: index + 1) {
            case .success(let answer?): output.append(answer)
            case .success(nil): break
            case .failure(let error): errors.append(error)
            }
        }
        return (output, errors)
    }

    /// The lines of a script, ended by LF or CRLF (a script written on Windows has the same lines). "\r\n" is one
    /// Character in Swift, so splitting on "\n" alone would read such a script as one line.
    public static func lines(of script: String) -> [Substring] {
        script.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
    }

    /// Runs one line: the answer, nil for a blank or comment line, or a syntax error.
    public mutating func execute(line: String, number: Int) -> Result<String?, SyntaxError> {
        let code = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let words = code.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
        guard let verb = words.first else { return .success(nil) }
        do {
            let answer: String
            switch verb {
            case "device": answer = try device(Array(words.dropFirst()), number)
            case "create": answer = try create(Array(words.dropFirst()), number)
            case "update": answer = try update(Array(words.dropFirst()), number)
            case "delete":
                answer = try keyed(words, number) { map, key throws(KernelErrno) in
                    try map.delete(key: key)
                    return "ok"
                }
            case "lookup":
                answer = try keyed(words, number) { map, key throws(KernelErrno) in
                    let value = try map.lookupValue(key: key)
                    let device = "ok " + (names[value.ifindex] ?? value.ifindex.description)
                    return map.valueSize == 8 ? device + " progid=\(value.programID)" : device
                }
            case "next": answer = try next(Array(words.dropFirst()), number)
            case "unregister": answer = try unregister(Array(words.dropFirst()), number)
            default: throw SyntaxError(line: number, message: "unknown operation \(quotedForMessage(verb, quote: "'"))")
            }
            return .success(answer)
        } catch let error as SyntaxError {
            return .failure(error)
        } catch {
            return .failure(SyntaxError(line: number, message: "\(error)"))
        }
    }

    // MARK: Operations

    private mutating func device(_ args: [String], _ line: Int) throws -> String {
        guard let name = args.first else { throw SyntaxError(line: line, message: "device needs a NAME") }
        guard quotedForMessage(name, quote: "'", limit: 15) == "'\(name)'" else {
            throw SyntaxError(
                line: line,
                message: "device name \(quotedForMessage(name, quote: "'")) must be at most 15 printable characters")
        }
        guard UInt32(name) == nil && !name.hasPrefix("0x") else {
            throw SyntaxError(
                line: line, message: "device name \(quotedForMessage(name, quote: "'")) must not be a number")
        }
        var ifindex: IfIndex?
        var mtu: UInt32 = 1500
        var up = true
        var xmit = true
        var i = 1
        while i < args.count {
            switch args[i] {
            case "ifindex", "mtu":
                guard i + 1 < args.count, let value = parseNumber(args[i + 1]), value <= UInt64(Int32.max) else {
                    throw SyntaxError(line: line, message: "\(args[i]) needs a number 1...2147483647")
                }
                if args[i] == "ifindex" {
                    guard value > 0 else { throw SyntaxError(line: line, message: "ifindex must be at least 1") }
                    ifindex = IfIndex(UInt32(value))
                } else {
                    mtu = UInt32(value)
                }
                i += 2
            case "down":
                up = false
                i += 1
            case "noxmit":
                xmit = false
                i += 1
            default:
                throw SyntaxError(line: line, message: "unknown device option \(quotedForMessage(args[i], quote: "'"))")
            }
        }
        let transmitter: (any XDPTransmitter)? = xmit ? DiscardingTransmitter() : nil
        do {
            let device = try network.addDevice(name: name, ifindex: ifindex, mtu: mtu, up: up, transmitter: transmitter)
            declared[name] = device.ifindex
            names[device.ifindex] = name
            return "ok \(device.ifindex)"
        } catch {
            return KernelErrno.EEXIST.name
        }
    }

    private mutating func create(_ args: [String], _ line: Int) throws -> String {
        guard args.count >= 2 else { throw SyntaxError(line: line, message: "create needs a map type and MAX_ENTRIES") }
        let type = args[0]
        guard type == "devmap" || type == "devmap_hash" else {
            throw SyntaxError(
                line: line, message: "unknown map type \(quotedForMessage(type, quote: "'")) (devmap, devmap_hash)")
        }
        guard let maxEntries = parseU32(args[1]) else {
            throw SyntaxError(line: line, message: "MAX_ENTRIES must be a number 0...4294967295")
        }
        var keySize: UInt32 = 4
        var valueSize: UInt32 = 4
        var flags: UInt32 = 0
        var i = 2
        while i < args.count {
            guard i + 1 < args.count, let value = parseU32(args[i + 1]) else {
                throw SyntaxError(line: line, message: "\(quotedForMessage(args[i], quote: "'")) needs a number")
            }
            switch args[i] {
            case "key_size": keySize = value
            case "value_size": valueSize = value
            case "flags": flags = value
            default:
                throw SyntaxError(line: line, message: "unknown create option \(quotedForMessage(args[i], quote: "'"))")
            }
            i += 2
        }
        do {
            // DEVMAP_HASH exists only in kernels after 5.4: the 4.18 profile answers EINVAL (unknown map type).
            map = try network.createDevMap(
                maxEntries: maxEntries, keySize: keySize, valueSize: valueSize,
                flags: flags, capNetAdmin: capNetAdmin, type: type == "devmap_hash" ? .hash : .array)
            return "ok"
        } catch {
            return error.name
        }
    }

    private mutating func update(_ args: [String], _ line: Int) throws -> String {
        guard args.count == 2 || args.count == 3 else {
            throw SyntaxError(line: line, message: "usage: update KEY DEVICE [any|noexist|exist|N]")
        }
        let key = try parseKey(args[0], line)
        let ifindex = try resolveDevice(args[1], line)
        var flags = UpdateFlag.any.rawValue
        if args.count == 3 {
            switch args[2] {
            case "any": flags = UpdateFlag.any.rawValue
            case "noexist": flags = UpdateFlag.noExist.rawValue
            case "exist": flags = UpdateFlag.exist.rawValue
            default:
                guard let value = parseNumber(args[2]) else {
                    throw SyntaxError(line: line, message: "flags must be any, noexist, exist or a number")
                }
                flags = value
            }
        }
        guard let map else { return KernelErrno.EBADF.name }
        do {
            try map.update(key: key, ifindex: ifindex, flags: flags)
            return "ok"
        } catch {
            return error.name
        }
    }

    private func keyed(
        _ words: [String], _ line: Int,
        _ body: (DevMap, MapKey) throws(KernelErrno) -> String
    ) throws -> String {
        guard words.count == 2 else { throw SyntaxError(line: line, message: "usage: \(words[0]) KEY") }
        let key = try parseKey(words[1], line)
        guard let map else { return KernelErrno.EBADF.name }
        do {
            return try body(map, key)
        } catch {
            return error.name
        }
    }

    private func next(_ args: [String], _ line: Int) throws -> String {
        guard args.count == 1 else { throw SyntaxError(line: line, message: "usage: next KEY|none") }
        let key: MapKey? = args[0] == "none" ? nil : try parseKey(args[0], line)
        guard let map else { return KernelErrno.EBADF.name }
        do {
            return "ok \(try map.nextKey(after: key))"
        } catch {
            return error.name
        }
    }

    private mutating func unregister(_ args: [String], _ line: Int) throws -> String {
        guard args.count == 1 else { throw SyntaxError(line: line, message: "usage: unregister DEVICE") }
        let ifindex = try resolveDevice(args[0], line)
        guard let device = network.device(ifindex: ifindex) else {
            return KernelErrno.ENODEV.name
        }
        network.unregister(device)
        network.quiesceAll()
        return "ok"
    }

    // MARK: Parsing

    private func parseNumber(_ text: String) -> UInt64? {
        if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt64(text.dropFirst(2), radix: 16) }
        return UInt64(text)
    }

    private func parseU32(_ text: String) -> UInt32? { parseNumber(text).flatMap { UInt32(exactly: $0) } }

    private func parseKey(_ text: String, _ line: Int) throws -> MapKey {
        guard let key = parseU32(text) else {
            throw SyntaxError(
                line: line, message: "KEY must be a number 0...4294967295, got \(quotedForMessage(text, quote: "'"))")
        }
        return MapKey(key)
    }

    private func resolveDevice(_ text: String, _ line: Int) throws -> IfIndex {
        if let number = parseNumber(text) {
            guard let ifindex = UInt32(exactly: number) else {
                throw SyntaxError(line: line, message: "ifindex must be a number 0...4294967295")
            }
            return IfIndex(ifindex)
        }
        guard let ifindex = declared[text] else {
            throw SyntaxError(
                line: line,
                message: "unknown device \(quotedForMessage(text, quote: "'")) (declare it with a 'device' line)")
        }
        return ifindex
    }
}

/// A transmitter that accepts and frees every frame (devices of the map batch tool never carry traffic).
final class DiscardingTransmitter: XDPTransmitter {
    func xdpXmit(
        _ frames: UnsafeMutableBufferPointer<FrameID>, flags: XmitFlags, device: NetDevice,
        worker: Worker
    ) -> Int32 {
        for frame in frames { worker.pool.give(frame) }
        return Int32(frames.count)
    }
}
