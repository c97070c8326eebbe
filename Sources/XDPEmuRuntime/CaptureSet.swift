import XDPEmuOS
import XDPEmuPcap

/// The pcap files of one run, in one directory: `PORT.ingress.pcap`, `PORT.egress.pcap` and `PORT.pass.pcap`
/// for every port (ingress and egress as the port's capture settings say) and `drops.pcap`. Every file is a
/// valid, empty capture from the moment it is opened; `flush` writes whole records only.
public final class CaptureSet {
    public let directory: String
    public private(set) var ingress: [String: PcapWriter] = [:]
    public private(set) var egress: [String: PcapWriter] = [:]
    public private(set) var passed: [String: PcapWriter] = [:]
    public let drops: PcapWriter
    private var all: [PcapWriter] = []

    /// Creates the directory if needed and opens every file.
    public init(directory: String, ports: [(name: String, ingress: Bool, egress: Bool)]) throws(RuntimeError) {
        self.directory = directory
        do {
            try makeDirectories(directory)
            drops = try PcapWriter(path: directory + "/drops.pcap")
            all.append(drops)
            for port in ports {
                if port.ingress {
                    let w = try PcapWriter(path: "\(directory)/\(port.name).ingress.pcap")
                    ingress[port.name] = w
                    all.append(w)
                }
                if port.egress {
                    let w = try PcapWriter(path: "\(directory)/\(port.name).egress.pcap")
                    egress[port.name] = w
                    all.append(w)
                }
                let p = try PcapWriter(path: "\(directory)/\(port.name).pass.pcap")
                passed[port.name] = p
                all.append(p)
            }
        } catch let error as PcapError {
            throw .failure("cannot create captures: \(error)")
        } catch let error as RuntimeError {
            throw error
        } catch {
            throw .failure("cannot create captures in \(directory): \(error)")
        }
    }

    /// Writes buffered records of every file.
    public func flush() throws(RuntimeError) {
        for writer in all {
            do { try writer.flush() } catch { throw .failure("\(error)") }
        }
    }

    /// Flushes and closes every file (idempotent).
    public func close() throws(RuntimeError) {
        var first: RuntimeError?
        for writer in all {
            do { try writer.close() } catch { first = first ?? .failure("\(error)") }
        }
        if let first { throw first }
    }
}
