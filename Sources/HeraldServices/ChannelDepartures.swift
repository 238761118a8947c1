import HeraldCore
import Synchronization

/// When each channel's sends actually left for the provider, so that a claim never lets more
/// than a channel's rate plus its burst leave within one second.
///
/// The rate bucket (`herald.take_tokens`) counts sends when they are claimed. A provider counts
/// them when they arrive. Between the two, the transport may hold a send for a while: waiting for
/// a TLS connection (``WorkerConfiguration/maxTLSConnections``) or for its handshake on a busy
/// machine. When those waits shrink, sends claimed seconds apart leave together: at a cold start
/// over HTTPS/1.1 with 1,000 channels, one channel's three claims (18 + 17 + 14) arrived within one
/// second against a limit of 40 (BENCHMARKS.md).
///
/// The rule: a claim of a channel takes at most `limit − departed − waiting` jobs, where `limit`
/// is its rate plus its burst, `departed` its sends that left in the last ``span`` and `waiting`
/// those handed to the transport that have not left yet. Then no stretch of ``span`` holds more
/// than `limit` departures of one worker: the sends that leave in `[s, s + span)` were claimed at
/// or before the last claim `t` in it; those that left before `t` left in `(t − span, t]`, and
/// those that leave after were waiting at `t` or claimed at `t`. The span is the provider's
/// second and no longer: a channel sending at its full rate (0.98 of it, the bucket's margin)
/// has at most 0.99 × rate in a span (ticks count up to 10 ms longer), so every claim the bucket
/// can grant still fits, whatever the burst; a longer span, as a margin for the network's
/// jitter, would cut into the rate of channels with a burst under a tenth of their rate. Several
/// workers each keep to it; across them the bucket is the bound.
///
/// Departures are counted in buckets of ``tick`` (rounded so that they count a little longer,
/// never shorter): one channel costs at most about a hundred small entries.
final class ChannelDepartures: Sendable {
    /// What a claim of a channel may take now.
    enum Room: Equatable {
        /// Up to this many jobs (more than zero).
        case jobs(Int)
        /// None before this instant: look again then.
        case none(until: ContinuousClock.Instant)
    }

    /// How finely departures are dated.
    static let tick = Duration.milliseconds(10)
    /// How long a departure counts against the channel's next claims.
    static let span = Duration.seconds(1)
    /// How soon a channel with sends still waiting in the transport is looked at again: their
    /// departures are not scheduled, they happen.
    static let waitingRecheck = Duration.milliseconds(20)
    private static let ticksPerSecond: Int64 = 100
    private static let spanTicks: Int64 = 100

    fileprivate struct Bucket {
        var tick: Int64
        var count: Int
    }

    fileprivate struct Channel {
        /// Handed to the transport, not yet left nor ended.
        var waiting = 0
        /// Departures by tick, oldest first, from `head` on.
        var buckets: [Bucket] = []
        var head = 0
        /// The counts of `buckets[head...]`.
        var recent = 0

        mutating func forget(before oldest: Int64) {
            while head < buckets.count, buckets[head].tick < oldest {
                recent -= buckets[head].count
                head += 1
            }
            if head == buckets.count {
                buckets.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 64, head * 2 >= buckets.count {
                buckets.removeFirst(head)
                head = 0
            }
        }

        mutating func departWaiting(at tick: Int64) {
            waiting -= 1
            depart(1, at: tick)
        }

        mutating func depart(_ count: Int, at tick: Int64) {
            // Engine threads read the clock before they take the lock: a departure dated a hair
            // earlier than the last one joins its bucket (it then counts a little longer).
            if let last = buckets.last, head < buckets.count, last.tick >= tick {
                buckets[buckets.count - 1].count += count
            } else {
                buckets.append(Bucket(tick: tick, count: count))
            }
            recent += count
        }
    }

    /// One channel's entry. Sends report their departures here, under this channel's lock only:
    /// a single lock over every channel, taken on the transport's threads for every send, had
    /// 1.9% of the worker's samples spinning on it at 1,000 channels.
    final class Ledger: Sendable {
        fileprivate let state = Mutex(Channel())
        private let clock: any HeraldClock
        private let origin: ContinuousClock.Instant

        fileprivate init(clock: any HeraldClock, origin: ContinuousClock.Instant) {
            self.clock = clock
            self.origin = origin
        }

        /// One of the sends handed to the transport left for its provider now.
        func departed() {
            let tick = ChannelDepartures.ticks(clock.now, since: origin)
            state.withLock { $0.departWaiting(at: tick) }
        }

        /// One of the sends handed to the transport ended without leaving (withdrawn, past its
        /// start deadline, no connection).
        func ended() {
            state.withLock { $0.waiting -= 1 }
        }
    }

    private let clock: any HeraldClock
    private let origin: ContinuousClock.Instant
    private let channels = Mutex<[Int64: Ledger]>([:])
    /// When ``prune()`` last looked at every channel, in ticks.
    private let lastPrune = Mutex<Int64>(0)

    init(clock: any HeraldClock) {
        self.clock = clock
        origin = clock.now
    }

    /// The most departures of one second a channel with this rate and burst allows: its rate
    /// plus its burst (what its bucket lets through in a second when full); nil when that is
    /// beyond anything a worker sends.
    static func limit(ratePerSecond: Double, burst: Int) -> Int? {
        let sum = ratePerSecond.rounded(.down) + Double(max(burst, 1))
        guard sum.isFinite, sum < 1_000_000 else { return nil }
        return max(1, Int(sum))
    }

    /// How many jobs a claim of `channel` may take now, under `limit` departures a second.
    func room(_ channel: Int64, limit: Int) -> Room {
        let now = clock.now
        let current = ticks(now)
        guard let ledger = channels.withLock({ $0[channel] }) else { return .jobs(limit) }
        return ledger.state.withLock { entry -> Room in
            entry.forget(before: current - Self.spanTicks)
            let free = limit - entry.recent - entry.waiting
            if free > 0 { return .jobs(free) }
            if entry.waiting > 0 || entry.head == entry.buckets.count { return .none(until: now + Self.waitingRecheck) }
            // The oldest departures counted stop counting a span (and a tick) after their tick.
            let end = entry.buckets[entry.head].tick + Self.spanTicks + 1
            return .none(until: max(now + Self.tick, origin + Self.tick * end))
        }
    }

    /// `count` sends of `channel` are being handed to the transport: each reports to the
    /// returned ledger once, ``Ledger/departed()`` or ``Ledger/ended()``.
    func submitting(_ count: Int, of channel: Int64) -> Ledger {
        // Under the map's lock, so that prune() cannot drop the entry in between.
        channels.withLock { all in
            let ledger = ledger(of: channel, in: &all)
            ledger.state.withLock { $0.waiting += count }
            return ledger
        }
    }

    /// `count` sends of `channel` left now without the transport (the sandbox's simulated sends).
    func departedAtOnce(_ count: Int, of channel: Int64) {
        guard count > 0 else { return }
        let tick = ticks(clock.now)
        channels.withLock { all in
            ledger(of: channel, in: &all).state.withLock { $0.depart(count, at: tick) }
        }
    }

    /// `channel`'s ledger in `all`, added when it has none.
    private func ledger(of channel: Int64, in all: inout [Int64: Ledger]) -> Ledger {
        if let ledger = all[channel] { return ledger }
        let ledger = Ledger(clock: clock, origin: origin)
        all[channel] = ledger
        return ledger
    }

    /// Forgets channels with nothing waiting and nothing left in the last span (kept small
    /// with thousands of channels), at most once a second: a lane calls it on every pass.
    func prune() {
        let current = ticks(clock.now)
        let due = lastPrune.withLock { last -> Bool in
            guard current - last >= Self.ticksPerSecond else { return false }
            last = current
            return true
        }
        guard due else { return }
        let oldest = current - Self.spanTicks
        channels.withLock { all in
            all = all.filter { _, ledger in
                ledger.state.withLock { entry in
                    // Buckets are in tick order: the newest one decides.
                    entry.waiting != 0 || (entry.head < entry.buckets.count && entry.buckets[entry.buckets.count - 1].tick >= oldest)
                }
            }
        }
    }

    /// Channels with an entry (tests: ``prune()`` keeps this small).
    var trackedChannels: Int { channels.withLock { $0.count } }

    private func ticks(_ instant: ContinuousClock.Instant) -> Int64 {
        Self.ticks(instant, since: origin)
    }

    /// Whole ticks from `origin` to `instant`, rounded down: a departure never counts as later
    /// than it was.
    fileprivate static func ticks(_ instant: ContinuousClock.Instant, since origin: ContinuousClock.Instant) -> Int64 {
        let (seconds, attoseconds) = max(.zero, instant - origin).components
        return seconds * ticksPerSecond + attoseconds / 10_000_000_000_000_000
    }
}
