// Running external programs (iproute2's `ip`, and in tests `ping`) without a shell.
//
// posix_spawn(3) with an argument array: no shell parses anything, so no name can inject a command.
// The child gets an empty signal mask and default SIGINT/SIGTERM/SIGPIPE dispositions (a `SignalWatcher`
// blocks SIGINT/SIGTERM in this process and the mask would otherwise be inherited), and every fd above 2
// is closed in the child (posix_spawn_file_actions_addclosefrom_np), so no TAP fd ever leaks into a child
// and outlives us there.

import CTapShim
import Glibc
import SystemPackage

/// What a finished command printed and how it ended.
public struct CommandOutput: Sendable, Equatable {
    /// The exit status (0...255), or 128 + signal number if the child was killed by a signal.
    public let status: Int32
    /// Everything written to stdout.
    public let stdout: String
    /// Everything written to stderr.
    public let stderr: String
}

/// Why a command could not be run or did not succeed.
public enum CommandError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The executable was not found in any of the searched directories.
    case notFound(executable: String, searched: [String])
    /// pipe2/posix_spawn/waitpid failed.
    case spawnFailed(commandLine: [String], Errno)
    /// The command ran and exited with a non-zero status.
    case failed(commandLine: [String], output: CommandOutput)

    public var description: String {
        switch self {
        case .notFound(let executable, let searched):
            return "\(executable) not found in \(searched.joined(separator: ":")) (install iproute2)"
        case .spawnFailed(let commandLine, let errno):
            return "cannot run `\(commandLine.joined(separator: " "))`: \(errno)"
        case .failed(let commandLine, let output):
            let message = output.stderr.trimmingTrailingNewlines()
            return "`\(commandLine.joined(separator: " "))` exited with status \(output.status)"
                + (message.isEmpty ? "" : ": \(message)")
        }
    }
}

/// Runs programs with argument arrays, capturing stdout and stderr.
public enum Command {
    /// Directories searched for executables before `$PATH`: iproute2 lives in /usr/sbin or /sbin, which a
    /// non-login root shell's PATH may lack.
    public static let systemDirectories = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]

    /// Finds `executable` (a bare name) in `systemDirectories` then `$PATH`, by access(2) with X_OK.
    public static func locate(_ executable: String) throws(CommandError) -> String {
        if executable.contains("/") {
            return executable
        }
        var searched = systemDirectories
        if let path = getenv("PATH") {
            for dir in String(cString: path).split(separator: ":") where !searched.contains(String(dir)) {
                searched.append(String(dir))
            }
        }
        for dir in searched {
            let candidate = dir + "/" + executable
            if access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        throw .notFound(executable: executable, searched: searched)
    }

    /// Runs `executable` (located with `locate`) with `arguments` and waits for it; throws if it exits
    /// non-zero (`CommandError.failed` carries the command line and stderr).
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String]) throws(CommandError) -> CommandOutput {
        let output = try runUnchecked(executable, arguments)
        if output.status != 0 {
            throw .failed(commandLine: [executable] + arguments, output: output)
        }
        return output
    }

    /// Runs `executable` with `arguments` and waits for it, returning its output whatever its status.
    ///
    /// posix_spawn(3) with stdin on /dev/null, stdout and stderr on pipe2(O_CLOEXEC) pipes read with poll(2)
    /// until both close, then waitpid(2).
    public static func runUnchecked(
        _ executable: String, _ arguments: [String]
    ) throws(CommandError)
        -> CommandOutput
    {
        let path = try locate(executable)
        let commandLine = [executable] + arguments
        do throws(Errno) {
            return try spawnAndWait(path: path, argv: commandLine)
        } catch {
            throw .spawnFailed(commandLine: commandLine, error)
        }
    }

    private static func spawnAndWait(path: String, argv: [String]) throws(Errno) -> CommandOutput {
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        _ = try retryingEINTROrThrow { negatedErrnoToMinusOne(xdpemu_pipe_cloexec(&outPipe)) }
        defer { closeAll(outPipe) }
        _ = try retryingEINTROrThrow { negatedErrnoToMinusOne(xdpemu_pipe_cloexec(&errPipe)) }
        defer { closeAll(errPipe) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        xdpemu_spawn_closefrom(&actions, 3)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigmask(&attr, &emptyMask)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var pid: pid_t = 0
        let spawnError = posix_spawn(&pid, path, &actions, &attr, &cArgs, environ)
        if spawnError != 0 {
            throw Errno(rawValue: spawnError)
        }
        // The child holds the write ends now; drop ours so reads see EOF when it exits.
        Glibc.close(outPipe[1])
        outPipe[1] = -1
        Glibc.close(errPipe[1])
        errPipe[1] = -1

        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        try drain(outPipe[0], into: &stdout, errPipe[0], into: &stderr)

        var status: Int32 = 0
        _ = try retryingEINTROrThrow { waitpid(pid, &status, 0) }
        let exitStatus: Int32
        if status & 0x7f == 0 {
            exitStatus = (status >> 8) & 0xff  // WIFEXITED / WEXITSTATUS
        } else {
            exitStatus = 128 + (status & 0x7f)  // WTERMSIG
        }
        return CommandOutput(
            status: exitStatus,
            stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self)
        )
    }

    /// Reads both pipes until both report EOF, using poll(2) so neither child write can block on a full pipe.
    private static func drain(
        _ fd1: Int32, into out1: inout [UInt8], _ fd2: Int32, into out2: inout [UInt8]
    ) throws(Errno) {
        var fds = [fd1, fd2].map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { chunk.deallocate() }
        while fds.contains(where: { $0.fd >= 0 }) {
            _ = try retryingEINTROrThrow { poll(&fds, nfds_t(fds.count), -1) }
            for i in fds.indices where fds[i].fd >= 0 && fds[i].revents != 0 {
                let fd = fds[i].fd
                guard case .value(let n) = try retryingEINTR({ Glibc.read(fd, chunk.baseAddress, chunk.count) }) else {
                    continue
                }
                if n == 0 {
                    fds[i].fd = -1
                } else if n > 0 {
                    if i == 0 {
                        out1.append(contentsOf: chunk[0..<n])
                    } else {
                        out2.append(contentsOf: chunk[0..<n])
                    }
                }
            }
        }
    }

    private static func closeAll(_ fds: [Int32]) {
        for fd in fds where fd >= 0 {
            Glibc.close(fd)
        }
    }
}

extension String {
    func trimmingTrailingNewlines() -> String {
        var result = Substring(self)
        while let last = result.last, last.isNewline || last == " " {
            result.removeLast()
        }
        return String(result)
    }
}
