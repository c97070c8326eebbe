import Foundation
import Glibc
import Testing
import XDPEmuCore
import XDPEmuOS
import XDPEmuTopology

@testable import XDPEmuRuntime

/// The control server and its protocol, against an emulation in memory (no root, no TAPs): the devmap's errno
/// answers, refusals of malformed requests, and clients that misbehave without hurting the others.
@Suite struct ControlServerTests {
    final class Server {
        let directory: String
        let emulation: Emulation
        let server: ControlServer
        let feed = EventFeed()

        init(writeTimeout: UInt64 = 5_000_000_000) throws {
            var template = Array("/tmp/xdpemu-control-XXXXXX".utf8CString)
            guard mkdtemp(&template) != nil else { throw POSIXError(.EIO) }
            directory = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            let topology = try Topology.parse(
                data: """
                    {"name": "ctl", "ports": [
                      {"name": "p1", "program": {"type": "redirect_map", "map": "fwd", "key": {"kind": "constant", "value": 0}}},
                      {"name": "p2", "program": {"type": "pass"}}],
                     "maps": [{"name": "fwd", "type": "devmap", "max_entries": 4, "entries": {"0": "p2"}}]}
                    """, source: "ctl.json")
            let emulation = try Emulation(topology: topology)
            self.emulation = emulation
            let commands = ControlCommands(
                instance: "ctl", emulation: emulation, workers: 1,
                snapshot: { RunStatistics(emulation: emulation, ingress: [:], polls: 0, framesIn: 0, errors: []) })
            server = try ControlServer(
                path: ControlSocketFiles.path(instance: "ctl", directory: directory), handler: commands, feed: feed,
                writeTimeout: writeTimeout)
            server.start()
        }

        deinit {
            server.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }

        func client() throws -> ControlClient { try ControlClient(instance: "ctl", stateDirectory: directory) }
    }

    @Test func mapOperationsAnswerWithTheDevmapsErrnoNames() throws {
        let server = try Server()
        let client = try server.client()
        guard case .ok(let lookup) = try client.request("map.lookup", ["map": "fwd", "key": 0]) else {
            Issue.record("lookup failed")
            return
        }
        #expect(lookup["device"] as? String == "p2")
        #expect(
            try errno(client.request("map.update", ["map": "fwd", "key": 0, "device": "p1", "flags": "noexist"]))
                == "EEXIST")
        #expect(try errno(client.request("map.update", ["map": "fwd", "key": 9, "device": "p1"])) == "E2BIG")
        #expect(try errno(client.request("map.update", ["map": "fwd", "key": 1, "device": 77])) == "EINVAL")
        #expect(try errno(client.request("map.delete", ["map": "fwd", "key": 9])) == "EINVAL")
        #expect(try errno(client.request("map.lookup", ["map": "fwd", "key": 2])) == "ENOENT")
        #expect(try errno(client.request("map.next", ["map": "fwd", "key": 3])) == "ENOENT")
        guard case .ok = try client.request("map.update", ["map": "fwd", "key": 0, "device": "p1"]) else {
            Issue.record("update failed")
            return
        }
        #expect(server.emulation.maps["fwd"]!.device(at: 0)?.name == "p1")
        guard case .ok = try client.request("map.delete", ["map": "fwd", "key": 0]) else {
            Issue.record("delete failed")
            return
        }
        #expect(server.emulation.maps["fwd"]!.device(at: 0) == nil)
        guard case .ok(let next) = try client.request("map.next", ["map": "fwd"]) else {
            Issue.record("next failed")
            return
        }
        #expect(next["key"] as? Int == 0)
    }

    @Test func portsAreListedAndTheirLinkStateSet() throws {
        let server = try Server()
        let client = try server.client()
        guard case .ok(let set) = try client.request("port.set", ["port": "p2", "up": false, "mtu": 1400]) else {
            Issue.record("port.set failed")
            return
        }
        #expect(set["up"] as? Bool == false)
        let device = server.emulation.port(named: "p2")!.device
        #expect(!device.isUp && device.mtu == 1400)
        guard case .ok(let ports) = try client.request("ports") else {
            Issue.record("ports failed")
            return
        }
        let list = ports["ports"] as? [[String: Any]] ?? []
        #expect(list.map { $0["name"] as? String } == ["p1", "p2"])
        #expect(list[1]["mtu"] as? Int == 1400)
    }

    @Test(arguments: [
        (#"{"map": "nope", "key": 0}"#, #"unknown map "nope" (maps: fwd)"#),
        (#"{"map": "fwd", "key": -1}"#, #""key" must be an integer 0...4294967295, not -1"#),
        (#"{"map": "fwd"}"#, #"missing field "key""#),
        (#"{"map": "fwd", "key": 0, "device": "zz"}"#, #"unknown port "zz" (ports: p1, p2)"#),
    ])
    func badRequestsAreRefusedByName(json: String, message: String) throws {
        let server = try Server()
        let client = try server.client()
        let fields = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let op = fields["device"] == nil ? "map.delete" : "map.update"
        #expect(throws: ControlClientError.self) { try client.request(op, fields) }
        do {
            _ = try client.request(op, fields)
        } catch {
            #expect(error.description == message)
        }
    }

    @Test func malformedLinesTooLongLinesAndOtherVersionsGetErrorsAndTheServerStaysUp() throws {
        let server = try Server()
        let raw = try UnixConnection.connect(path: server.server.listener.path)
        try raw.writeAll(Array("not json\n{\"v\":2,\"op\":\"ports\"}\n{\"v\":1,\"op\":\"reboot\"}\n".utf8))
        let answers = try readLines(raw, count: 3)
        #expect(answers[0].contains("malformed request"))
        #expect(answers[1].contains("unsupported protocol version 2"))
        #expect(answers[2].contains("unknown op \\\"reboot\\\""))
        try raw.writeAll([UInt8](repeating: UInt8(ascii: "x"), count: ControlProtocol.maxRequestBytes + 10))
        let long = try readLines(raw, count: 1)
        #expect(long[0].contains("request longer than 4096 bytes"))
        // The connection is closed after that answer; others are served as before.
        var byte = [UInt8](repeating: 0, count: 1)
        #expect(try byte.withUnsafeMutableBytes { try raw.read(into: $0) } == 0)
        guard case .ok = try server.client().request("hello") else {
            Issue.record("hello failed")
            return
        }
    }

    @Test func aClientThatNeverReadsIsDisconnectedAndDoesNotBlockOthers() throws {
        let server = try Server(writeTimeout: 300_000_000)
        let silent = try UnixConnection.connect(path: server.server.listener.path, timeoutMillis: 200)
        // Requests whose answers fill the socket buffers: the server stops writing to this client, not serving.
        let request = ControlProtocol.request("map.dump", ["map": "fwd"])
        var sent = 0
        do {
            for _ in 0..<20000 {
                try silent.writeAll(request)
                sent += 1
            }
        } catch {}
        #expect(sent > 0)
        let started = Date()
        guard case .ok = try server.client().request("ports") else {
            Issue.record("ports failed")
            return
        }
        #expect(Date().timeIntervalSince(started) < 2)
        // After the write timeout the silent client is gone: its reads reach the end once the buffer drains.
        usleep(800_000)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var total = 0
        while let n = try? buffer.withUnsafeMutableBytes({ try silent.read(into: $0) }), n > 0 { total += n }
        #expect(total > 0)
        #expect(total < sent * 200)
    }

    @Test func aSecondServerOfTheSameNameIsRefusedAndAStaleSocketIsReplaced() throws {
        let server = try Server()
        let path = server.server.listener.path
        #expect(throws: RuntimeError.self) {
            _ = try ControlServer(path: path, handler: server.server.handlerForTests, feed: EventFeed())
        }
        // A socket file nobody listens on: a dead run's.
        let stale = server.directory + "/dead.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(stale.utf8) + [0]) }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        close(fd)
        #expect(throws: ControlClientError.self) {
            _ = try ControlClient(instance: "dead", stateDirectory: server.directory)
        }
        do {
            _ = try ControlClient(instance: "dead", stateDirectory: server.directory)
        } catch {
            #expect(error.description.contains("is not running: its socket"))
        }
        #expect(listInstances(stateDirectory: server.directory).map { $0.hello == nil } == [false, true])
        #expect(ControlSocketFiles.removeStale(directory: server.directory) == [stale])
        #expect(ControlSocketFiles.instances(directory: server.directory) == ["ctl"])
    }

    private func errno(_ answer: ControlAnswer) -> String? {
        if case .errno(let name) = answer { return name }
        return nil
    }

    private func readLines(_ connection: UnixConnection, count: Int) throws -> [String] {
        var text = ""
        var buffer = [UInt8](repeating: 0, count: 8192)
        while text.filter({ $0 == "\n" }).count < count {
            guard let n = try buffer.withUnsafeMutableBytes({ try connection.read(into: $0) }), n > 0 else { break }
            text += String(decoding: buffer[0..<n], as: UTF8.self)
        }
        return text.split(separator: "\n").map(String.init)
    }
}
