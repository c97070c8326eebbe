import SystemPackage
import XDPEmuOS
import XDPEmuPcap

/// The pcap files of one run, in one directory: `PORT.ingress.pcap`, `PORT.egress.pcap` and `PORT.pass.pcap`
/// for every port (ingress and egress as the port's capture settings say) and `drops.pcap`. Every file is a
/// valid, empty capture from the moment it is opened; `flush` writes whole records only, and a file whose write
/// fails (a full disk) ends at its last whole record (`PcapWriter`).
public final class CaptureSet {
    /// A port's name and which of its directions are captured.
    public typealias PortCapture = (name: String, ingress: Bool, egress: Bool)

    public let directory: String
    public private(set) var ingress: [String: PcapWriter] = [:]
    public private(set) var egress: [String: PcapWriter] = [:]
    public private(set) var passed: [String: PcapWriter] = [:]
    public let drops: PcapWriter
    private let all: [PcapWriter]

    /// The names of the files a capture of `ports` writes, in the order they are opened.
    public static func fileNames(ports: [PortCapture]) -> [String] {
        var names = ["drops.pcap"]
        for port in ports {
            if port.ingress { names.append("\(port.name).ingress.pcap") }
            if port.egress { names.append("\(port.name).egress.pcap") }
            names.append("\(port.name).pass.pcap")
        }
        return names
    }

    /// Whether `name` is a name xdpemu gives capture files: `drops.pcap`, `*.ingress.pcap`, `*.egress.pcap`,
    /// `*.pass.pcap`.
    public static func isCaptureFileName(_ name: String) -> Bool {
        name == "drops.pcap"
            || [".ingress.pcap", ".egress.pcap", ".pass.pcap"].contains { name.hasSuffix($0) && name.count > $0.count }
    }

    /// Creates the directory if needed (mode 0755) and opens every file (`createOutputFile`: mode 0644, never
    /// through a symbolic link). A file whose header cannot be written is removed; the others stay valid captures.
    public init(directory: String, ports: [PortCapture]) throws(RuntimeError) {
        self.directory = directory
        do {
            try makeDirectories(directory)
        } catch {
            throw .failure("cannot create the capture directory: \(error)")
        }
        var opened = [String: PcapWriter]()
        var all = [PcapWriter]()
        for name in Self.fileNames(ports: ports) {
            let path = "\(directory)/\(name)"
            do {
                let fd = try createOutputFile(path)
                let writer: PcapWriter
                do {
                    writer = try PcapWriter(path: path, fileDescriptor: fd)
                } catch {
                    try? removeOutputFile(path)
                    throw error
                }
                opened[name] = writer
                all.append(writer)
            } catch {
                for writer in all { try? writer.close() }
                throw .failure("\(error)")
            }
        }
        self.all = all
        drops = opened["drops.pcap"]!
        for port in ports {
            ingress[port.name] = opened["\(port.name).ingress.pcap"]
            egress[port.name] = opened["\(port.name).egress.pcap"]
            passed[port.name] = opened["\(port.name).pass.pcap"]
        }
    }

    /// Writes buffered records of every file; throws the first failure.
    public func flush() throws(RuntimeError) {
        for writer in all {
            do { try writer.flush() } catch { throw .failure("\(error)") }
        }
    }

    /// Flushes and closes every file (idempotent); returns every file that is missing records.
    public func close() -> [OutputFailure] {
        var failures = [OutputFailure]()
        for writer in all {
            do {
                try writer.close()
            } catch {
                failures.append(
                    OutputFailure(
                        path: writer.path, error: describe(error),
                        kept: writer.recordsWritten, missing: writer.recordsMissing, unit: "frames"))
            }
        }
        return failures
    }
}

/// The reason of a write or close error, without the path (which `OutputFailure` names).
private func describe(_ error: PcapError) -> String {
    switch error {
    case .cannotWrite(_, let errno): "cannot write: \(errno)"
    case .cannotClose(_, let errno): "cannot close: \(errno)"
    default: "\(error)"
    }
}

/// An output of a run that does not hold everything it should: a write failed (a full disk), so the file ends at
/// its last whole record (or line) and `missing` records are not in it.
public struct OutputFailure: Equatable, Sendable, CustomStringConvertible {
    public var path: String
    /// What went wrong, without the path.
    public var error: String
    /// Records (or lines) in the file.
    public var kept: Int
    /// Records (or lines) the run produced that are not in the file.
    public var missing: Int
    /// "frames" or "events".
    public var unit: String

    /// "out/xe1.egress.pcap: cannot write: No space left on device; the file ends after 812 whole frames,
    /// 188 frames missing".
    public var description: String {
        "\(path): \(error); the file ends after \(kept) whole \(unit), \(missing) \(unit) missing"
    }
}
