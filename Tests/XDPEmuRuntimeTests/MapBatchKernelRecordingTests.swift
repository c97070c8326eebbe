import Foundation
import Testing
import XDPEmuCore
import XDPEmuRuntime

/// The modern profile's map control plane against a running kernel's answers: every case script of
/// scripts/kernel-devmap/cases, run through `MapBatch(semantics: .modern)`, must give the answers kbatch recorded
/// from Linux 6.18 (scripts/kernel-devmap/recorded), line by line. (compare.sh makes the same comparison live, as
/// root; this one needs no privileges.) 09-huge is left out: whether a 32 GiB map can be had depends on the
/// machine's memory and overcommit settings, for the kernel and the emulator alike.
@Suite struct MapBatchKernelRecordingTests {
    static let casesDirectory = "\(repositoryRoot)/scripts/kernel-devmap/cases"

    static var caseNames: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: casesDirectory)) ?? [])
            .filter { $0.hasSuffix(".txt") && !$0.hasPrefix("09-") }.sorted()
    }

    @Test("every case script has a recording")
    func everyCaseIsRecorded() {
        #expect(Self.caseNames.count >= 15)
        for name in Self.caseNames {
            let recording = "\(repositoryRoot)/scripts/kernel-devmap/recorded/\(name.dropLast(4)).out"
            #expect(FileManager.default.fileExists(atPath: recording), "no recording for \(name)")
        }
    }

    @Test("the modern profile answers as Linux 6.18 did", arguments: caseNames)
    func modernProfileMatchesTheKernel(name: String) throws {
        let script = try String(contentsOfFile: "\(Self.casesDirectory)/\(name)", encoding: .utf8)
        let recorded = try String(
            contentsOfFile: "\(repositoryRoot)/scripts/kernel-devmap/recorded/\(name.dropLast(4)).out", encoding: .utf8
        ).split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        var batch = MapBatch(semantics: .modern, capNetAdmin: !script.contains("options: --unprivileged"))
        var answers: [(operation: String, answer: String)] = []
        for (index, line) in MapBatch.lines(of: script).enumerated() {
            guard case .success(let answer?) = batch.execute(line: String(line), number: index + 1) else { continue }
            answers.append((String(line.split(separator: "#").first ?? ""), answer))
        }
        #expect(answers.count == recorded.count, "\(name): answer count")
        for (i, (ours, kernels)) in zip(answers, recorded).enumerated() {
            // A device without an explicit ifindex is numbered differently (the kernel's veth pair takes two).
            let automatic = ours.operation.hasPrefix("device") && !ours.operation.contains("ifindex")
            if automatic && ours.answer.hasPrefix("ok ") && kernels.hasPrefix("ok ") { continue }
            #expect(ours.answer == kernels, "\(name) operation \(i + 1): \(ours.operation)")
        }
    }
}
