import Foundation
import Synchronization

/// A child process started with `posix_spawn`, for tests: the programs under test (`herald`,
/// nginx, python3) with their output sent where the caller says.
///
/// Written by hand instead of using Foundation's `Process` because on Linux `Process.run()`
/// copies the whole 256-byte `d_name` of every entry of `/proc/self/fd` (to find the highest
/// open descriptor), reading past the end of glibc's directory buffer: with a test process
/// holding a thousand or more descriptors it crashed the whole test run (in `memcpy`, at a page
/// boundary), whatever lock serialized the launches. Here the child closes every descriptor
/// above stderr with `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34+); on an older glibc
/// the descriptors this type creates are close-on-exec, and others may leak into the child.
public final class ChildProcess: Sendable {
    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Where one of the child's standard streams goes.
    public enum Stream: Sendable {
        /// `/dev/null`.
        case null
        /// This descriptor (dup'ed into place in the child; the caller still owns it).
        case descriptor(Int32)
    }

    public let pid: pid_t
    /// The exit status once reaped: the code for a normal exit, the signal's number for one
    /// that killed it (as Foundation's `terminationStatus`).
    private let status = Mutex<Int32?>(nil)

    /// Starts `executable` with `arguments` and exactly `environment`, stdin from `/dev/null`,
    /// in a process group of its own (a signal to the test's group does not reach it).
    public init(_ executable: String, _ arguments: [String], environment: [String: String],
                stdout: Stream = .null, stderr: Stream = .null) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        for (target, stream) in [(Int32(1), stdout), (Int32(2), stderr)] {
            switch stream {
            case .null: posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0)
            case .descriptor(let fd): posix_spawn_file_actions_adddup2(&actions, fd, target)
            }
        }
        if let closeFrom = Self.addCloseFrom { _ = closeFrom(&actions, 3) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv + envp { free(p) } }
        var pid = pid_t()
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(result)))")
        }
        self.pid = pid
    }

    /// `posix_spawn_file_actions_addclosefrom_np`, looked up at run time: Swift's Glibc module
    /// does not declare it (it needs `_GNU_SOURCE`), and glibc before 2.34 lacks it.
    private static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    /// Whether it has not exited yet (reaps it when it has).
    public var isRunning: Bool { reap(blocking: false) == nil }

    /// Sends a signal (SIGTERM, SIGKILL, …); nothing once it was reaped.
    public func signal(_ sig: Int32) {
        status.withLock { if $0 == nil { kill(pid, sig) } }
    }

    /// Waits for it to exit, polling every 20 ms without blocking a thread.
    public func wait() async -> Int32 {
        while true {
            if let code = reap(blocking: false) { return code }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Waits for it to exit, blocking the calling thread.
    public func waitBlocking() -> Int32 {
        reap(blocking: true) ?? -1
    }

    private func reap(blocking: Bool) -> Int32? {
        status.withLock { known in
            if let known { return known }
            var raw: Int32 = 0
            var result: pid_t
            repeat { result = waitpid(pid, &raw, blocking ? 0 : WNOHANG) } while result == -1 && errno == EINTR
            guard result == pid else { return nil }
            // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift does not import.
            let signal = raw & 0x7f
            known = signal == 0 ? (raw >> 8) & 0xff : signal
            return known
        }
    }

    /// A pipe whose two ends are close-on-exec (the child gets the write end by `dup2`, which
    /// clears the flag on the copy only), as (read, write).
    public static func pipe() throws -> (read: Int32, write: Int32) {
        // pipe2(O_CLOEXEC) would do it in one step, but Swift's Glibc module does not declare it.
        var fds: [Int32] = [0, 0]
        guard Glibc.pipe(&fds) == 0 else {
            throw SpawnError(description: "pipe: \(String(cString: strerror(errno)))")
        }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }
}
