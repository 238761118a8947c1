import Foundation
import Glibc
import Logging
import Synchronization

/// A throwaway PostgreSQL server in a temporary directory: `herald demo`'s database when no
/// `DATABASE_URL` is given.
///
/// ``init(prefix:logger:)`` finds the server binaries (the highest version under
/// `/usr/lib/postgresql/*/bin`, as Debian and Ubuntu install them, or `HERALD_POSTGRES_BIN`) and
/// makes the directory; ``start()`` runs `initdb` and `pg_ctl start` there, on a free TCP port of
/// 127.0.0.1 and a Unix socket in the directory, and returns a connection URI over the socket;
/// ``stop()`` stops the server (`pg_ctl -m immediate`: the data is thrown away anyway) and removes
/// the directory.
///
/// **Never as root.** PostgreSQL refuses to run as root, so when this process is root the server
/// runs as the `postgres` OS user that Debian's `postgresql` package creates (`runuser -u
/// postgres --`), and the directory is handed to that user; otherwise it runs as this process's
/// user.
///
/// **Never left behind.** Call ``stop()`` on every exit path (it is idempotent and safe from any
/// thread). As a last resort against `SIGKILL` or a crash, ``start()`` also leaves a tiny watchdog
/// shell, in a session of its own, that stops the server and removes the directory once this
/// process is gone; ``stop()`` ends it.
///
/// Access: the socket lives in a directory only its owner can enter, with `trust` authentication;
/// TCP on 127.0.0.1 asks for a random password (`scram-sha-256`), which ``password`` holds.
public final class PrivateCluster: Sendable {
    /// Why the cluster could not be made or started. ``description`` is one line for the operator.
    public struct Error: Swift.Error, Sendable, CustomStringConvertible {
        public enum Code: String, Sendable, CustomStringConvertible {
            /// No PostgreSQL server binaries were found.
            case notInstalled = "not installed"
            /// Running as root, but there is no `postgres` OS user (or no `runuser`) to run as.
            case noServerUser = "no server user"
            /// The temporary directory could not be made or prepared.
            case directory = "directory"
            /// `initdb` failed.
            case initdbFailed = "initdb failed"
            /// `pg_ctl start` failed on every port tried.
            case startFailed = "start failed"
            /// ``stop()`` ran while ``start()`` was under way.
            case stopped = "stopped"
            public var description: String { rawValue }
        }
        public var code: Code
        public var message: String
        public var description: String { message }
    }

    /// The temporary directory: `data/` (the cluster), the socket, and the logs `initdb.log`,
    /// `server.log`.
    public let directory: String
    /// The directory holding `initdb`, `pg_ctl` and `postgres`.
    public let binDirectory: String
    /// The password of the `postgres` role over TCP (the socket needs none).
    public let password: String
    private let asServerUser: Bool
    private let logger: Logger
    /// Told each ``StartStep`` of ``start()`` just before it begins.
    private let onStep: (@Sendable (StartStep) -> Void)?
    private let state = Mutex(State())
    private let stopLock = Mutex(false)

    private struct State {
        var port: Int?
        var watchdog: Int32?
        /// `pg_ctl start` is running: the server may be up without ``port`` set yet.
        var starting = false
        /// The command ``run(_:_:log:)`` is waiting for (initdb, pg_ctl); nil once reaped.
        var child: pid_t?
        /// ``stop()`` signalled ``child``'s process group: the group is killed once more, for
        /// strays, just before the child is reaped.
        var childSignalled = false
        /// ``stop()`` has begun: nothing may be spawned any more. Spawning a child and recording
        /// it happen under the same lock that sets this, so a stop from a signal handler either
        /// sees the child (and ends it) or prevents it; none can slip in between and outlive us.
        var stopped = false
    }

    /// Finds the server binaries and makes the temporary directory (nothing runs yet).
    ///
    /// - Parameters:
    ///   - prefix: the directory is `/tmp/{prefix}-XXXXXX`.
    ///   - binDirectory: where `initdb` and `pg_ctl` are; nil finds them (see the type's notes).
    ///   - logger: for debug messages.
    ///   - onStep: told each step of ``start()`` just before it begins (tests stop the cluster there).
    /// - Throws: ``Error`` `.notInstalled` when PostgreSQL's server binaries are missing (the
    ///   message says how to install them), `.noServerUser` as root without a `postgres` user,
    ///   `.directory` when the directory cannot be made.
    public init(prefix: String = "herald-pg", binDirectory: String? = nil,
                logger: Logger = Logger(label: "herald.private-cluster"),
                onStep: (@Sendable (StartStep) -> Void)? = nil) throws {
        self.logger = logger
        self.onStep = onStep
        self.binDirectory = try binDirectory ?? Self.findBinaries()
        asServerUser = geteuid() == 0
        var serverUser: (uid: uid_t, gid: gid_t)?
        if asServerUser {
            guard let pw = getpwnam("postgres") else {
                throw Error(code: .noServerUser, message:
                    "PostgreSQL refuses to run as root and there is no `postgres` OS user to run it as (install postgresql: apt-get install postgresql)")
            }
            guard Self.runuser != nil else {
                throw Error(code: .noServerUser, message: "running as root needs `runuser` to start PostgreSQL as `postgres` (apt-get install util-linux)")
            }
            serverUser = (pw.pointee.pw_uid, pw.pointee.pw_gid)
        }
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw Error(code: .directory, message: "cannot make a temporary directory in /tmp: \(String(cString: strerror(errno)))")
        }
        directory = String(cString: made)
        var bytes = [UInt8](repeating: 0, count: 18)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        password = bytes.map { String($0, radix: 16) }.joined()
        if let serverUser, chown(directory, serverUser.uid, serverUser.gid) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: directory)
            throw Error(code: .directory, message: "cannot hand \(directory) to the postgres user: \(reason)")
        }
    }

    /// The steps of ``start()``, in order.
    public enum StartStep: String, Sendable, CaseIterable {
        case writingPasswordFile, startingWatchdog, runningInitdb, startingServer
    }

    /// The TCP port, once started.
    public var port: Int? { state.withLock { $0.port } }

    /// Runs `initdb`, starts the server and returns a libpq URI for the `postgres` database and
    /// role over the Unix socket.
    ///
    /// - Throws: ``Error`` `.initdbFailed` or `.startFailed`, with the last lines of the log.
    ///   The directory stays until ``stop()``.
    public func start() async throws -> String {
        let pwfile = directory + "/pwfile"
        onStep?(.writingPasswordFile)
        // Under the lock, as every spawn: a stop removing the directory meanwhile would otherwise
        // meet the file (Foundation writes it beside its name, then renames) and leave both behind.
        let written = try unlessStopped { _ in
            FileManager.default.createFile(atPath: pwfile, contents: Data((password + "\n").utf8),
                                           attributes: [.posixPermissions: 0o644])
        }
        guard written else { throw Error(code: .directory, message: "cannot write \(pwfile)") }
        onStep?(.startingWatchdog)
        startWatchdog()
        onStep?(.runningInitdb)
        let initdbLog = directory + "/initdb.log"
        let status = try await run(binDirectory + "/initdb", [
            "-D", directory + "/data", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=" + pwfile,
        ], log: initdbLog)
        try? FileManager.default.removeItem(atPath: pwfile)
        guard status == 0 else {
            throw Error(code: .initdbFailed, message: "initdb failed in \(directory): \(Self.lastLine(of: initdbLog))")
        }
        onStep?(.startingServer)
        state.withLock { $0.starting = true }
        defer { state.withLock { $0.starting = false } }
        // A port found free may be taken before the server binds it: try a few.
        let serverLog = directory + "/server.log"
        for _ in 0..<5 {
            let port = try Self.freePort()
            let options = [
                "-p \(port)", "-k '\(directory)'", "-c listen_addresses=127.0.0.1", "-c max_connections=200",
                "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
            ].joined(separator: " ")
            let status = try await run(binDirectory + "/pg_ctl", [
                "-D", directory + "/data", "-l", serverLog, "-w", "-t", "60", "-o", options, "start",
            ], log: directory + "/pg_ctl.log")
            if status == 0 {
                state.withLock { $0.port = port }
                logger.debug("private PostgreSQL started", metadata: ["directory": "\(directory)", "port": "\(port)"])
                let host = directory.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? directory
                return "postgresql://postgres@/postgres?host=\(host)&port=\(port)"
            }
        }
        throw Error(code: .startFailed, message: "could not start PostgreSQL in \(directory): \(Self.lastLine(of: serverLog))")
    }

    /// Stops the server (if it runs) and removes the directory. Idempotent; blocks for the time
    /// `pg_ctl stop` takes (well under a second); safe from any thread, also a signal handler's
    /// queue.
    public func stop() {
        // Held for the whole stop: a second caller (a signal handler) waits until it is done.
        stopLock.withLock { stopped in
            guard !stopped else { return }
            stopped = true
            let (port, watchdog, starting, child) = state.withLock { s in
                s.stopped = true
                return (s.port, s.watchdog, s.starting, s.child)
            }
            // Interrupted while `pg_ctl start` runs (a signal): whether the server is up is unknown
            // here, so leave both to the watchdog, which acts as soon as this process has exited.
            if starting, watchdog != nil { return }
            // Interrupted during initdb: end it first, or it would write on into the directory
            // removed below. The child leads a process group of its own: signal the group, so
            // what it started ends too (runuser, signalled at the wrong moment, can exit and leave
            // its command behind). The group is killed once more when the child has gone, for
            // such strays, before it is reaped.
            //
            // Every signal to the group is sent under the state lock while `child` is still set:
            // the waiting thread reaps only under that lock, so the leader has not been reaped
            // yet and the group's id is still its pid, not a stranger's.
            if let child {
                state.withLock { s in
                    guard s.child == child else { return }
                    s.childSignalled = true
                    _ = kill(-child, SIGTERM)
                }
                // Up to 5 s for the waiting thread to reap it (it clears `child`, and kills the
                // group's strays first: see ``run(_:_:log:)``).
                for _ in 0..<250 {
                    if state.withLock({ $0.child == nil }) { break }
                    usleep(20_000)
                }
                state.withLock { s in if s.child == child { _ = kill(-child, SIGKILL) } }
            }
            if let watchdog {
                kill(watchdog, SIGKILL)
                waitpid(watchdog, nil, 0)
            }
            if port != nil {
                let argv = command(binDirectory + "/pg_ctl", ["-D", directory + "/data", "-m", "immediate", "-w", "-t", "30", "stop"])
                let process = Process()
                process.executableURL = URL(fileURLWithPath: argv[0])
                process.arguments = Array(argv.dropFirst())
                process.currentDirectoryURL = URL(fileURLWithPath: "/")
                process.standardInput = FileHandle.nullDevice
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                do {
                    try process.run()
                    process.waitUntilExit()
                } catch {
                    logger.warning("could not run pg_ctl stop", metadata: ["error": "\(error)"])
                }
            }
            do {
                try FileManager.default.removeItem(atPath: directory)
            } catch {
                logger.warning("could not remove the private PostgreSQL directory",
                               metadata: ["directory": "\(directory)", "error": "\(error)"])
            }
        }
    }

    // MARK: - Helpers

    /// `path args…`, through `runuser -u postgres --` when this process is root.
    private func command(_ path: String, _ arguments: [String] = []) -> [String] {
        if asServerUser, let runuser = Self.runuser { return [runuser, "-u", "postgres", "--", path] + arguments }
        return [path] + arguments
    }

    /// Runs a command to its end, its output appended to `log`, and returns its exit status.
    ///
    /// Not `Foundation.Process`: it notices a child's exit by the closing of a socket the child
    /// inherits, and `pg_ctl start` leaves the server running with that socket inherited, so the
    /// exit of `pg_ctl` would never be seen. Here `posix_spawn` starts it and `waitpid` waits, on
    /// a thread of its own (a blocking call stays off Swift's cooperative pool).
    private func run(_ path: String, _ arguments: [String], log: String) async throws -> Int32 {
        // The server user may not be allowed into our working directory: start in ours.
        let argv = ["/bin/sh", "-c", #"cd "$0" && exec "$@""#, directory] + command(path, arguments)
        let pid = try unlessStopped { s in
            let pid = try Self.spawn(argv, stdout: log, group: .own)
            s.child = pid
            return pid
        }
        return await withCheckedContinuation { continuation in
            let thread = Thread { [self] in
                // Its exit is seen first and the zombie reaped only under the state lock: until
                // then the pid, and with it the process group's id, cannot go to another
                // process, so ``stop()`` never signals a stranger's group.
                var info = siginfo_t()
                while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
                var status: Int32 = 0
                state.withLock { s in
                    // Ended by ``stop()``: what it started may outlive it (runuser, signalled at
                    // the wrong moment, can exit and leave its command behind).
                    if s.childSignalled { _ = kill(-pid, SIGKILL) }
                    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                    s.child = nil
                }
                // WIFEXITED / WEXITSTATUS, which Swift does not import (they are macros).
                let exited = status & 0x7f == 0
                continuation.resume(returning: exited ? (status >> 8) & 0xff : 128 + (status & 0x7f))
            }
            thread.name = "herald-private-cluster-wait"
            thread.start()
        }
    }

    /// Runs `body` under the state lock unless ``stop()`` has begun. Whatever ``start()`` spawns
    /// or writes in the directory goes through here, so a stop either sees it (ends the child,
    /// removes the file) or prevents it: nothing lands in the directory while it is removed.
    /// - Throws: ``Error`` `.stopped` after ``stop()``, or what `body` throws.
    private func unlessStopped<T>(_ body: (inout State) throws -> T) throws -> T {
        try state.withLock { s in
            guard !s.stopped else {
                throw Error(code: .stopped, message: "the private PostgreSQL in \(directory) was stopped while it was starting")
            }
            return try body(&s)
        }
    }

    /// A shell in its own session (a terminal's Ctrl-C does not reach it) that waits for this
    /// process to disappear, then stops the server and removes the directory. It only matters
    /// when this process dies without running ``stop()`` (SIGKILL, a crash).
    private func startWatchdog() {
        // sh -c SCRIPT DIR PID STOP-COMMAND…: $0 is the directory, $1 our pid, the rest pg_ctl stop.
        let script = """
            pid=$1; shift
            while kill -0 "$pid" 2>/dev/null; do sleep 1; done
            "$@" >/dev/null 2>&1
            rm -rf "$0"
            """
        let stop = command(binDirectory + "/pg_ctl", ["-D", directory + "/data", "-m", "immediate", "-w", "stop"])
        do {
            try unlessStopped { s in
                s.watchdog = try Self.spawn(["/bin/sh", "-c", script, directory, "\(getpid())"] + stop, stdout: "/dev/null", group: .ownSession)
            }
        } catch {
            logger.debug("no watchdog for the private PostgreSQL", metadata: ["error": "\(error)"])
        }
    }

    static let runuser: String? = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// The highest-versioned `/usr/lib/postgresql/*/bin` holding `initdb` and `pg_ctl`, or
    /// `HERALD_POSTGRES_BIN`.
    static func findBinaries() throws -> String {
        func usable(_ dir: String) -> Bool {
            FileManager.default.isExecutableFile(atPath: dir + "/initdb")
                && FileManager.default.isExecutableFile(atPath: dir + "/pg_ctl")
        }
        if let dir = ProcessInfo.processInfo.environment["HERALD_POSTGRES_BIN"], !dir.isEmpty {
            guard usable(dir) else {
                throw Error(code: .notInstalled, message: "HERALD_POSTGRES_BIN=\(dir) holds no initdb and pg_ctl")
            }
            return dir
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .sorted { $0.compare($1, options: .numeric) == .orderedDescending }
        for version in versions where usable("\(root)/\(version)/bin") {
            return "\(root)/\(version)/bin"
        }
        throw Error(code: .notInstalled, message:
            "PostgreSQL server binaries not found under /usr/lib/postgresql: install postgresql (apt-get install postgresql), or set DATABASE_URL to use an existing database")
    }

    /// A TCP port of 127.0.0.1 that nobody listens on right now (the kernel's pick for port 0).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Error(code: .startFailed, message: "cannot find a free port: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, length) == 0 && getsockname(fd, sa, &length) == 0
            }
        }
        guard bound else { throw Error(code: .startFailed, message: "cannot find a free port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// The last non-empty line of a log file, for one-line errors.
    static func lastLine(of path: String) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").last.map(String.init) ?? "(see \(path))"
    }
}
