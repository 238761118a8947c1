/// How many transfers an engine that opens a connection per transfer lets into libcurl at once:
/// a few while its transfers are answered quickly, up to its whole share of the window while
/// they wait on slow providers. The worker's default (`--admission-floor 128`; `off` lets every
/// transfer of an engine's share in at once, as before this limit existed).
///
/// Why a limit below the window: claims run ahead of sending and fill the window, and an engine
/// without this limit starts every transfer it is handed. A provider that answers at once needs
/// few in flight, yet at zero latency two workers then held 2,300–2,700 connections to nginx and
/// spent more CPU a message than the worker before issue 15, which held 128; let in 128 at a time
/// (the rest queued in the engine, where they cost little) they sent 1.03–1.19 times as many
/// messages a second as without the limit, and as many as that worker (BENCHMARKS.md,
/// "Transfers let into libcurl"). A provider that answers in
/// 200 ms needs thousands in flight (Little's law: 20,000 msg/s × 0.2 s), so the limit cannot
/// stay fixed. Against such a provider the limit reaches the ceiling in the first 110–230 ms and
/// stays there, so the engine behaves as without it: at 1,000 channels and 200 ms, runs with and
/// without it sent as many messages a second for as much CPU, within the machine's spread
/// (BENCHMARKS.md, "Transfers let into libcurl, by default").
///
/// **The rule.** The limit starts at ``floor``. At most every half ``slowAfter`` the engine
/// looks at the oldest transfer in flight:
/// - if transfers are queued behind the limit and that one has been out ``slowAfter`` or
///   longer, the providers are slow and more in flight means more sent: the limit doubles, up
///   to ``ceiling`` (from 128 to 922, an engine's share of the default window, in 110–230 ms
///   in the runs logged for BENCHMARKS.md);
/// - if transfers are queued and that one has been out between half ``slowAfter`` and
///   ``slowAfter`` (a provider answering in 25–50 ms), the limit doubles once four more checks
///   have said so than said "quick" (``checksToConfirm``);
/// - if it has been out less than half ``slowAfter`` in four checks in a row, the limit halves,
///   down to ``floor``;
/// - with nothing in flight it stays: an engine between two bursts to a slow provider keeps
///   what the first one taught it.
///
/// The oldest transfer's age, not a mean latency: with few in flight, queueing inside the
/// worker keeps it to milliseconds for a provider on loopback even on a loaded machine, while a
/// real provider (100–500 ms) or one that stopped answering makes it long at once, so a stalled
/// provider never holds the other channels' sends in the queue for more than a few checks. On a
/// machine too slow to answer ``floor`` transfers within ``slowAfter`` the limit simply grows to
/// the ceiling, as it was before this limit existed.
///
/// **Providers in between.** With one check deciding, a provider that answers in 25–50 ms held
/// an engine at its floor (the oldest transfer never reached 50 ms and was often younger than
/// 25 ms just after a batch of answers): five engines of 128 sent 19,894–20,915 msg/s to a 30 ms
/// provider against 23,330–24,296 without the limit. With ``checksToConfirm`` they sent
/// 22,160–23,545, and two workers at zero latency lost nothing (BENCHMARKS.md, "Transfers let
/// into libcurl, by default").
struct TransferAdmission: Sendable {
    /// The limit while transfers are answered quickly: what the worker held in flight before
    /// issue 15, and the better of the two fixed limits tried at zero latency (128 and 512).
    static let defaultFloor = 128
    /// Age of the oldest transfer in flight from which its providers count as slow: above what
    /// loopback and LAN stand-ins take with ``defaultFloor`` in flight, below any real
    /// provider's answer (100–500 ms).
    static let defaultSlowAfter: Duration = .milliseconds(50)

    let floor: Int
    let ceiling: Int
    let slowAfter: Duration
    /// Checks that confirm a change the oldest transfer's age only suggests: a provider in
    /// between (the oldest 25–50 ms old while transfers wait) doubles the limit after this many
    /// more such checks than quick ones, and quick checks (the oldest younger than 25 ms) halve
    /// it after this many in a row. One check alone says little there: right after a batch of
    /// answers the oldest transfer out is young even at 30 ms, and at zero latency the engine's
    /// thread kept off its core for a moment makes one old.
    static let checksToConfirm = 4

    /// Transfers in flight at most, now.
    private(set) var limit: Int
    private var nextCheck: ContinuousClock.Instant?
    private var checksInBetween = 0
    private var quickChecks = 0

    init(floor: Int = Self.defaultFloor, ceiling: Int, slowAfter: Duration = Self.defaultSlowAfter) {
        self.ceiling = max(1, ceiling)
        self.floor = max(1, min(floor, self.ceiling))
        self.slowAfter = slowAfter
        limit = self.floor
    }

    /// Whether ``update(now:oldestInFlight:waiting:)`` would look at the transfers now: the
    /// caller finds the oldest one (a walk over those in flight) only then.
    func isDue(_ now: ContinuousClock.Instant) -> Bool {
        floor < ceiling && nextCheck.map { now >= $0 } ?? true
    }

    /// How long the engine may wait for its sockets before the next check is due, when
    /// transfers are queued behind the limit (so that a slow provider's ramp is not held up by
    /// a quiet wait); nil when nothing waits.
    func wait(_ now: ContinuousClock.Instant, waiting: Bool) -> Duration? {
        guard waiting, limit < ceiling else { return nil }
        return nextCheck.map { max(.zero, $0 - now) } ?? .zero
    }

    /// Applies the rule (see the type's comment).
    /// - Parameters:
    ///   - oldestInFlight: How long the oldest transfer in flight has been out, or any one that
    ///     has been out ``slowAfter`` or longer (which decides the same); nil when none is.
    ///   - waiting: Whether transfers are queued because the limit is reached.
    mutating func update(now: ContinuousClock.Instant, oldestInFlight: Duration?, waiting: Bool) {
        guard isDue(now) else { return }
        nextCheck = now + slowAfter / 2
        guard let age = oldestInFlight else {
            (checksInBetween, quickChecks) = (0, 0)
            return
        }
        if waiting, age >= slowAfter {
            double()
        } else if age < slowAfter / 2 {
            checksInBetween = max(0, checksInBetween - 1)
            quickChecks += 1
            if quickChecks >= Self.checksToConfirm {
                limit = max(floor, limit / 2)
                quickChecks = 0
            }
        } else if waiting {
            quickChecks = 0
            checksInBetween += 1
            if checksInBetween >= Self.checksToConfirm { double() }
        } else {
            (checksInBetween, quickChecks) = (0, 0)
        }
    }

    /// Doubles the limit (up to ``ceiling``) and starts both counts afresh.
    private mutating func double() {
        limit = min(ceiling, limit * 2)
        (checksInBetween, quickChecks) = (0, 0)
    }
}
