import Foundation
import HeraldCore
import HeraldPostgres
import HeraldStore
import Logging
import Synchronization

/// The claiming lanes: each goes round the channels, claims a batch of the next channel that
/// has tokens and room in the window, hands it to the ``SendDispatcher`` and moves on at once.
/// No lane ever waits for a provider's answer, so the sends in flight are bounded by the
/// ``InFlightWindow``, not by lanes × batch.
///
/// Within a channel, the broadcast with the fewest messages claimed by this worker goes first
/// (a fair share of the channel's rate). A channel without tokens, or whose bucket granted less
/// than asked, is held until its bucket is worth asking again (half of its capacity accrued, as
/// `herald.take_tokens` computes it), not asked for every token.
final class ChannelClaimer: Sendable {
    enum Turn {
        /// This many jobs were claimed and handed over.
        case worked(Int)
        /// Nothing was due.
        case idle
        /// The channel's rate limit or window allows nothing before this instant.
        case held(until: ContinuousClock.Instant)
    }

    private let configuration: WorkerConfiguration
    private let directory: BroadcastDirectory
    private let completer: OutcomeCompleter
    private let dispatcher: SendDispatcher
    private let window: InFlightWindow
    private let holds: ChannelHolds
    private let rests: BroadcastRests
    private let metrics: HeraldMetrics
    private let logger: Logger
    private let clock: any HeraldClock
    private let store = QueueStore()
    private let cursor = Atomic<Int>(0)
    /// Messages this worker has claimed per broadcast.
    private let served: Mutex<[Int64: Int]> = Mutex([:])

    init(configuration: WorkerConfiguration, directory: BroadcastDirectory, completer: OutcomeCompleter, dispatcher: SendDispatcher,
         window: InFlightWindow, holds: ChannelHolds, rests: BroadcastRests, metrics: HeraldMetrics, clock: any HeraldClock,
         logger: Logger) {
        self.clock = clock
        self.configuration = configuration
        self.directory = directory
        self.completer = completer
        self.dispatcher = dispatcher
        self.window = window
        self.holds = holds
        self.rests = rests
        self.metrics = metrics
        self.logger = logger
    }

    /// One lane: claims until `stopping` is set.
    func lane(_ index: Int, pool: PostgresPool, wakeup: Wakeup, stopping: Latch) async {
        var consecutiveErrors = 0
        while !stopping.isSet && !Task.isCancelled {
            if completer.isHoldingUnwritten {
                // The database refused outcomes: claim nothing until they are written.
                await wakeup.wait(timeout: .milliseconds(200))
                continue
            }
            if completer.unwrittenCount >= configuration.maxInFlight {
                // The completer is a window behind: let it write before claiming more.
                await wakeup.wait(timeout: .milliseconds(10))
                continue
            }
            do {
                let channels = try await directory.channels(pool: pool)
                var didWork = false
                var nextTry = clock.now + configuration.idlePoll
                for _ in 0..<channels.count {
                    if stopping.isSet { break }
                    if window.inFlight >= window.limit { break }
                    let broadcasts = channels[cursor.add(1, ordering: .relaxed).oldValue % channels.count]
                    let channelID = broadcasts[0].info.channelID
                    if let later = holds.begin(channelID, now: clock.now) {
                        nextTry = min(nextTry, max(later, clock.now + .milliseconds(5)))
                        continue
                    }
                    let turn: Turn
                    do {
                        defer { holds.end(channelID) }
                        turn = try await self.turn(of: broadcasts, pool: pool)
                    }
                    switch turn {
                    case .worked: didWork = true
                    case .idle: break
                    case .held(let until): nextTry = min(nextTry, until)
                    }
                }
                if stopping.isSet { break }
                if window.inFlight >= window.limit {
                    await window.roomFreed.wait(timeout: .milliseconds(50))
                } else if !didWork {
                    let wait = nextTry - clock.now
                    if wait > .zero { await wakeup.wait(timeout: wait) }
                }
                if index == 0 {
                    holds.prune(now: clock.now)
                    rests.prune(now: clock.now)
                }
                consecutiveErrors = 0
            } catch {
                consecutiveErrors += 1
                logger.error("worker lane failed; retrying", metadata: ["lane": "\(index)", "error": "\(error)"])
                directory.markDirty()
                let delay = Duration.milliseconds(min(5000, 100 * (1 << min(consecutiveErrors, 6))))
                await wakeup.wait(timeout: delay)
            }
        }
    }

    /// One channel's turn: the least-served broadcast with due jobs gets one claim.
    private func turn(of broadcasts: [PreparedBroadcast], pool: PostgresPool) async throws -> Turn {
        let counts = served.withLock { s -> [Int] in
            // A broadcast seen for the first time joins at the level of the least served one,
            // so a late start does not take the channel over until it has caught up.
            let floor = broadcasts.compactMap { s[$0.info.id] }.min() ?? 0
            for b in broadcasts where s[b.info.id] == nil { s[b.info.id] = floor }
            return broadcasts.map { s[$0.info.id]! }
        }
        let order = broadcasts.indices.sorted { (counts[$0], $0) < (counts[$1], $1) }.map { broadcasts[$0] }
        let now = clock.now
        var restingUntil: ContinuousClock.Instant?
        for broadcast in order {
            if let end = rests.restingUntil(broadcast.info.id, now: now) {
                restingUntil = min(restingUntil ?? end, end)
                continue
            }
            let result = try await claim(broadcast, pool: pool)
            if case .idle = result { continue }
            return result
        }
        // Every broadcast of the channel was resting or found nothing due.
        return restingUntil.map { .held(until: $0) } ?? .idle
    }

    /// How many due jobs a claim of `room` looks at (see ``QueueStore/claim``): a whole batch
    /// where closed send windows may hide due jobs, else `room` rounded up to a power of two, so
    /// that a connection prepares at most a handful of variants of the statement.
    static func scanLimit(_ room: Int, batchSize: Int, hasSendWindow: Bool) -> Int {
        if hasSendWindow { return max(room, batchSize) }
        var scan = 1
        while scan < room { scan <<= 1 }
        return scan
    }

    /// Claims one batch of a broadcast and hands it to the dispatcher.
    private func claim(_ broadcast: PreparedBroadcast, pool: PostgresPool) async throws -> Turn {
        let info = broadcast.info
        // The bucket never grants more than the channel's burst: asking for more would reserve
        // window slots, and lock due jobs, that the claim cannot use.
        let wanted = min(configuration.batchSize, info.burst)
        let room = window.reserve(wanted, channel: info.channelID, channelLimit: broadcast.inFlightLimit)
        guard room > 0 else { return .held(until: clock.now + .milliseconds(20)) }
        // Read before the claim, so the lease (counted from the database's clock during the
        // claim) ends no earlier than `claimedAt + lease` on this clock.
        let claimedAt = clock.now
        let scan = Self.scanLimit(room, batchSize: configuration.batchSize, hasSendWindow: info.hasSendWindow)
        let claim: QueueStore.Claim
        do {
            claim = try await pool.withConnection {
                try await self.store.claim(on: $0, broadcastID: info.id, channelID: info.channelID, kind: broadcast.kind,
                                           limit: room, scanLimit: scan,
                                           lease: self.configuration.lease, restartGrace: self.configuration.restartGrace,
                                           owner: self.configuration.workerID, attributeKeys: broadcast.attributeKeys)
            }
        } catch {
            window.release(room, channel: info.channelID)
            throw error
        }
        window.release(room - claim.jobs.count, channel: info.channelID)
        if claim.granted == 0 {
            metrics.rateLimiterWait(channel: info.channelName, seconds: claim.retryAfter.inSeconds)
            let until = clock.now + claim.retryAfter
            holds.hold(info.channelID, until: until)
            return .held(until: until)
        }
        guard !claim.jobs.isEmpty else {
            // Tokens but nothing due: leave this broadcast alone for a while (see BroadcastRests).
            rests.rest(info.id, until: clock.now + configuration.idlePoll)
            return .idle
        }
        if claim.granted < room {
            // The bucket ran short. `take_tokens` says when half of what the bucket can hold
            // will have accrued (its capacity is the database's rule, not the worker's); come
            // back at 1.8 times that, 90% of a full bucket: nearly full claims, so half as many
            // statements (1,000 channels at 20/s: about one claim per channel per second), and
            // no tokens lost to a full bucket while the claim is on its way.
            holds.hold(info.channelID, until: clock.now + min(claim.retryAfter * 1.8, configuration.idlePoll))
        }
        served.withLock { $0[info.id, default: 0] += claim.jobs.count }
        metrics.claimed(channel: info.channelName, provider: info.provider, count: claim.jobs.count)
        await dispatcher.dispatch(claim.jobs, of: broadcast, claimedAt: claimedAt)
        return .worked(claim.jobs.count)
    }
}
