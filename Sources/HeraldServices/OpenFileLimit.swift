#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's limit on open files (`RLIMIT_NOFILE`), and the window of sends that fits in it.
///
/// Over HTTP/1.1 every send in flight holds a socket of its own, so the default window of 4,608
/// needs as many descriptors, and some more for the database connections, the transport's epoll
/// sets and wake-up pipes, and the files libraries open. Most Linux systems start processes with
/// a soft limit of 1,024 (a login shell; systemd's default `LimitNOFILE=1024:524288`). Under it
/// the worker ran out of descriptors within a second of sending to a slow provider: its lanes
/// could not reconnect to PostgreSQL, and libdispatch, which reads `/proc` to manage its thread
/// pool, trapped and took the process down.
///
/// So the worker, as Go's runtime does for every program since Go 1.19, raises its soft limit to
/// the hard one at start, which needs no privilege. Where the hard limit is still too low for the
/// window, the window shrinks to fit (the worker says so on stderr) rather than failing sends.
/// `herald webhooks` raises its soft limit too: each client connection holds a descriptor, and
/// at the limit new clients wait in the listen backlog until a connection closes.
/// Written by hand: none of the listed packages touch resource limits (swift-system has no
/// `setrlimit`), and the two system calls are all there is to it.
public struct OpenFileLimit: Sendable, Equatable {
    /// The limit in force (what `ulimit -n` prints).
    public var soft: Int
    /// The most the soft limit may be raised to without privilege (`ulimit -Hn`).
    public var hard: Int

    public init(soft: Int, hard: Int) {
        self.soft = soft
        self.hard = hard
    }

    /// The process's limit now, or nil when the system does not say.
    public static func current() -> OpenFileLimit? {
        var limit = rlimit()
        guard getrlimit(resourceNoFile, &limit) == 0 else { return nil }
        return OpenFileLimit(soft: clamped(limit.rlim_cur), hard: clamped(limit.rlim_max))
    }

    /// Raises the soft limit to the hard one; returns the limit in force afterwards (unchanged
    /// where the system refused).
    @discardableResult
    public static func raiseSoftToHard() -> OpenFileLimit? {
        var limit = rlimit()
        guard getrlimit(resourceNoFile, &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            // Refused where the hard limit exceeds what the kernel allows a process (an
            // "unlimited" hard limit on Linux, above fs.nr_open): the old soft limit stays.
            _ = setrlimit(resourceNoFile, &raised)
        }
        return current()
    }

    /// Descriptors kept for everything but the transfers' sockets: a quarter of the limit, at
    /// most 256 (a worker uses a few dozen: a handful of database connections, two or three
    /// per transport thread, the standard streams, files that libraries open now and then).
    public var reserve: Int { min(256, soft / 4) }

    /// The window of sends in flight that fits under the soft limit: `requested`, or fewer when
    /// the limit cannot hold a socket for each plus ``reserve``. At least 1.
    public func window(fitting requested: Int) -> Int {
        max(1, min(requested, soft - reserve))
    }

    /// One channel's most in flight within the window ``window(fitting:)`` kept: `perChannel`,
    /// less what the other channels must keep when one channel's provider stops answering
    /// (``InFlightWindow/channelShare(perChannel:requested:kept:)``: the default 4,096 of 4,608
    /// becomes 672 of 768). At least 1.
    public func perChannelLimit(requested perChannel: Int, window requested: Int) -> Int {
        InFlightWindow.channelShare(perChannel: perChannel, requested: requested, kept: window(fitting: requested))
    }

    /// One line for stderr when ``window(fitting:)`` is below `requested`: what the limit is, what
    /// the window needed, what the worker does instead, and how to give it the full window.
    public func shrinkNotice(requested: Int) -> String? {
        let window = window(fitting: requested)
        guard window < requested else { return nil }
        return "the open-file limit (ulimit -n) is \(soft), hard limit \(hard): \(requested) sends in flight need a socket each "
            + "over HTTP/1.1 and some \(reserve) descriptors more, so this worker keeps at most \(window) in flight. For the full "
            + "window raise the hard limit (systemd: LimitNOFILE=65536; docker run --ulimit nofile=65536) or lower --max-in-flight"
    }

    #if canImport(Glibc)
    private static let resourceNoFile = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    private static let resourceNoFile = RLIMIT_NOFILE
    #endif

    private static func clamped(_ value: rlim_t) -> Int {
        value >= rlim_t(Int.max) ? Int.max : Int(value)
    }
}
