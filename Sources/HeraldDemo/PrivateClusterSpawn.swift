import Foundation
import Glibc

/// How ``PrivateCluster`` starts its commands: `posix_spawn` with the process group, signal
/// dispositions and inherited descriptors they need (`run(_:_:log:)` says why not
/// `Foundation.Process`).
extension PrivateCluster {
    /// Where a spawned command runs, in terms of process groups.
    enum ProcessGroup {
        /// A process group whose id is the child's pid: ``stop()`` signals the whole group, so
        /// what the child started (runuser forks the command it runs) ends with it.
        case own
        /// A session of its own (the watchdog, which must outlive this process's terminal).
        case ownSession
    }

    /// Starts `argv` with stdin from /dev/null and stdout and stderr appended to `stdout`.
    /// - Parameter group: where the child goes; with a group or session of its own, a
    ///   terminal's Ctrl-C does not reach it.
    /// - Returns: its process id; the caller reaps it.
    static func spawn(_ argv: [String], stdout: String, group: ProcessGroup) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else of ours: the server lives on after `pg_ctl` and must not hold our pipes.
        if let closeFrom = Self.addCloseFrom { _ = closeFrom(&actions, 3) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Children start with default signal handling, whatever this process ignores.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        // POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK, and POSIX_SPAWN_SETSID (glibc's 0x80,
        // a macro Swift does not import).
        var flags = Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)
        switch group {
        case .own:
            flags |= Int16(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attributes, 0)
        case .ownSession:
            flags |= 0x80
        }
        posix_spawnattr_setflags(&attributes, flags)
        var cargv: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cargv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, &cargv, environ)
        guard rc == 0 else {
            throw Error(code: .startFailed, message: "cannot run \(argv[0]): \(String(cString: strerror(rc)))")
        }
        return pid
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later), which Swift's Glibc
    /// module does not import; nil on older systems (then the children inherit what is not
    /// close-on-exec, which only delays noticing their exit).
    static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()
}
