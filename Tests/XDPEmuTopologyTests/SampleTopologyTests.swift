import Foundation
import Testing
import XDPEmuCore
import XDPEmuPrograms

@testable import XDPEmuTopology

@Suite("Sample topologies")
struct SampleTopologyTests {
    static let sampleFiles: [String] = {
        let directory = packageRoot.appendingPathComponent("topologies")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".json") && $0 != "schema.json" }.sorted()
    }()

    @Test("the expected samples exist")
    func samplesExist() {
        for name in ["two-hosts.json", "star4.json", "l2-switch.json", "reflector.json", "acl-firewall.json"] {
            #expect(Self.sampleFiles.contains(name))
        }
    }

    /// 4.18 samples without a modern twin, and why.
    static let withoutModernTwin = [
        "reflector.json": "only XDP_TX: no map, no redirect, which is all the profiles differ in"
    ]

    @Test("every 4.18 sample has a modern twin (NAME-modern.json) or says why not")
    func modernTwins() throws {
        let originals = Self.sampleFiles.filter { !$0.hasSuffix("-modern.json") }
        #expect(originals.count >= 5)
        for name in originals {
            let original = try Topology.load(path: packageRoot.appendingPathComponent("topologies/\(name)").path)
            #expect(original.semantics == .v4_18, "\(name) is a 4.18 sample")
            let twinName = name.replacingOccurrences(of: ".json", with: "-modern.json")
            guard Self.sampleFiles.contains(twinName) else {
                #expect(Self.withoutModernTwin[name] != nil, "\(name) has no modern twin and no reason why not")
                continue
            }
            let twin = try Topology.load(path: packageRoot.appendingPathComponent("topologies/\(twinName)").path)
            #expect(twin.semantics == .modern, "\(twinName) uses the modern profile")
            #expect(twin.ports.map(\.name) == original.ports.map(\.name), "\(twinName) has the same ports")
        }
    }

    @Test("every sample loads without problems", arguments: sampleFiles)
    func sampleLoads(_ name: String) {
        let path = packageRoot.appendingPathComponent("topologies").appendingPathComponent(name).path
        do {
            let topology = try Topology.load(path: path)
            #expect(topology.source == path)
            #expect(topology.name + ".json" == name)
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test("two-hosts wires xe0 and xe1 to each other through fwd")
    func twoHosts() throws {
        let topology = try Topology.load(path: packageRoot.appendingPathComponent("topologies/two-hosts.json").path)
        #expect(topology.semantics == .v4_18)
        #expect(topology.ports.map(\.name) == ["xe0", "xe1"])
        #expect(topology.ports.map(\.ifindex) == [1, 2])
        #expect(topology.ports[0].host?.namespace == "xdpemu-h1")
        #expect(topology.ports[0].host?.interface == "xe0")
        #expect(topology.ports[0].host?.ipv4 == [InterfaceAddress("10.77.0.1/24")!])
        #expect(topology.ports[0].host?.mac == MACAddress("02:00:00:00:01:01"))
        #expect(topology.ports[1].host?.namespace == "xdpemu-h2")
        #expect(topology.ports[1].host?.mac == MACAddress("02:00:00:00:01:02"))
        #expect(
            topology.maps == [
                MapSpec(
                    name: "fwd",
                    type: .devmap,
                    maxEntries: 2,
                    entries: [
                        MapEntry(key: 0, port: "xe1"), MapEntry(key: 1, port: "xe0"),
                    ]
                )
            ]
        )
        #expect(topology.ports[0].program == .redirectMap(RedirectMapConfiguration(map: "fwd", selector: .constant(0))))
        #expect(topology.ports[1].program == .redirectMap(RedirectMapConfiguration(map: "fwd", selector: .constant(1))))
    }

    @Test("l2-switch derives each port's devmap key from the map")
    func l2Switch() throws {
        let topology = try Topology.load(path: packageRoot.appendingPathComponent("topologies/l2-switch.json").path)
        let expected = [PortKey(port: "sw1", key: 0), PortKey(port: "sw2", key: 1), PortKey(port: "sw3", key: 2)]
        for port in topology.ports {
            #expect(port.program == .l2Switch(L2SwitchConfiguration(map: "sw", ports: expected)))
        }
    }

    @Test("acl-firewall drops telnet and UDP 5000-5999, then redirects")
    func aclFirewall() throws {
        let topology = try Topology.load(path: packageRoot.appendingPathComponent("topologies/acl-firewall.json").path)
        guard case .acl(let acl) = topology.ports[0].program else {
            Issue.record("fw0 runs \(topology.ports[0].program)")
            return
        }
        #expect(
            acl.rules == [
                ACLRule(action: .drop, ipProtocol: IPProtocolNumber.tcp, destinationPorts: 23...23),
                ACLRule(action: .drop, ipProtocol: IPProtocolNumber.udp, destinationPorts: 5000...5999),
                ACLRule(action: .allow),
            ]
        )
        #expect(acl.defaultAction == .allow)
        #expect(acl.then == .redirectMap(RedirectMapConfiguration(map: "fwd", selector: .constant(0))))
    }

    @Test("star4 passes what its MAC table misses")
    func star4() throws {
        let topology = try Topology.load(path: packageRoot.appendingPathComponent("topologies/star4.json").path)
        #expect(topology.description?.isEmpty == false)
        guard case .redirectMap(let redirect) = topology.ports[2].program,
            case .destinationMAC(let table, let miss) = redirect.selector
        else {
            Issue.record("p3 runs \(topology.ports[2].program)")
            return
        }
        #expect(miss == .pass)
        // Key n reaches the host of the n-th port.
        let hostMACs = topology.ports.compactMap(\.host?.mac)
        #expect(hostMACs.count == 4 && table.count == 4)
        #expect(table == MACTable(Array(zip(hostMACs, [1, 2, 3, 4]))))
    }
}
