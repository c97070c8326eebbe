import Foundation
import Glibc
import SystemPackage
import XDPEmuOS

/// Why a control client could not get an answer.
public enum ControlClientError: Error, CustomStringConvertible {
    /// No socket: no instance of that name runs (exit code 1).
    case noInstance(String)
    /// The instance is dead (its socket file is stale) or went away mid-request (exit code 1).
    case dead(String)
    /// The socket refuses us (another user's instance): exit code 77.
    case notPermitted(String)
    /// The instance refused the request: unknown map, port, malformed request (exit code 2).
    case refused(String)
    /// Something else (a timeout, a response too long): exit code 1.
    case failed(String)

    public var description: String {
        switch self {
        case .noInstance(let m), .dead(let m), .notPermitted(let m), .refused(let m), .failed(let m): m
        }
    }
}

/// A connection to a live instance's control socket (ControlProtocol.swift): one request at a time, one answer
/// line each; or, after `events`, a stream of lines.
public final class ControlClient {
    public let instance: String
    public let path: String
    private let connection: UnixConnection
    private var input: [UInt8] = []

    /// Connects to instance `name`'s socket in `stateDirectory`.
    public init(
        instance name: String, stateDirectory: String, timeoutMillis: Int = 5000
    )
        throws(ControlClientError)
    {
        do throws(NameError) {
            try InstanceName.validate(name)
        } catch {
            throw .refused("--instance: \(error)")
        }
        instance = name
        path = ControlSocketFiles.path(instance: name, directory: stateDirectory)
        do {
            connection = try UnixConnection.connect(path: path, timeoutMillis: timeoutMillis)
        } catch {
            switch error {
            case .missing:
                throw .noInstance(
                    "no running instance \(name) (no socket \(path); `xdpemu list --state-dir \(stateDirectory)` "
                        + "lists the running ones)")
            case .stale:
                throw .dead(
                    "instance \(name) is not running: its socket \(path) is stale (the run died; `xdpemu cleanup` "
                        + "removes it)")
            case .failed(_, _, .permissionDenied):
                throw .notPermitted(
                    "\(path): permission denied: the control socket is mode 0600, usable only by the user who "
                        + "started the run")
            default:
                throw .failed("\(error)")
            }
        }
    }

    /// Sends one request and returns its answer's object (`ok` true), or throws its failure: an `errno` answer is
    /// returned as `.errno` in the result rather than thrown.
    public func request(_ op: String, _ fields: [String: Any] = [:]) throws(ControlClientError) -> ControlAnswer {
        do {
            try connection.writeAll(ControlProtocol.request(op, fields))
        } catch {
            throw .dead("instance \(instance) went away (\(error))")
        }
        guard let line = try readLine() else { throw .dead("instance \(instance) closed the connection") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
            throw .failed("instance \(instance) answered something that is not JSON")
        }
        if object["ok"] as? Bool == true { return .ok(object) }
        if let name = object["errno"] as? String { return .errno(name) }
        throw .refused((object["error"] as? String) ?? "request refused")
    }

    /// The next line the instance sends (without its newline), or nil at the end of the stream. Without `wait`
    /// it gives up at the socket's timeout.
    public func readLine(wait: Bool = false) throws(ControlClientError) -> ArraySlice<UInt8>? {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let newline = input.firstIndex(of: UInt8(ascii: "\n")) {
                let line = input[..<newline]
                input.removeSubrange(...newline)
                return ArraySlice(Array(line))
            }
            guard input.count <= ControlProtocol.maxResponseBytes else {
                throw .failed("the answer of \(instance) is longer than \(ControlProtocol.maxResponseBytes) bytes")
            }
            let count: Int?
            do {
                count = try chunk.withUnsafeMutableBytes { try connection.read(into: $0) }
            } catch {
                throw .dead("instance \(instance) went away (\(error))")
            }
            guard let count else {
                // The socket's timeout (SO_RCVTIMEO) passed.
                if wait { continue }
                throw .failed("instance \(instance) did not answer in time")
            }
            guard count > 0 else { return nil }
            input.append(contentsOf: chunk[0..<count])
        }
    }
}

/// A control request's answer.
public enum ControlAnswer {
    /// The answer's object.
    case ok([String: Any])
    /// A devmap errno, by name (EEXIST, E2BIG, ...).
    case errno(String)
}

/// The running instances in `directory`: each socket's instance, with its `hello` answer, or nil for a stale
/// socket (a dead run).
public func listInstances(stateDirectory directory: String) -> [(name: String, hello: [String: Any]?)] {
    ControlSocketFiles.instances(directory: directory).map { name in
        guard let client = try? ControlClient(instance: name, stateDirectory: directory, timeoutMillis: 2000),
            case .ok(let hello)? = try? client.request("hello")
        else { return (name, nil) }
        return (name, hello)
    }
}
