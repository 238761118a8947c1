import Foundation
import HeraldCore
import HeraldPostgres
import HeraldStore
import Logging
import Synchronization

/// The claiming lanes: each goes round the channels, gathers those that have tokens and room in
/// the window (up to ``WorkerConfiguration/channelsPerClaim``), claims a batch for each in one
/// statement, hands the batches to the ``SendDispatcher`` and moves on at once. No lane ever
/// waits for a provider's answer, so the sends in flight are bounded by the ``InFlightWindow``,
/// not by lanes × batch. The lanes share one ``ChannelRotation``: a channel's turn waits, in its
/// place, until the window has room for its whole claim.
///
/// Within a channel, the broadcast with the fewest messages claimed by this worker goes first
/// (a fair share of the channel's rate); one that turns out to have nothing due rests, and the
/// channel's next broadcast is claimed at once. A channel without tokens, or whose bucket granted
/// less than asked, is held until its bucket is worth asking again (half of its capacity accrued,
/// as `herald.take_tokens` computes it), not asked for every token. A channel's claim is also
/// held to what its sends that left in the last second, and those still waiting in the
/// transport, leave of its rate and burst (``ChannelDepartures``).
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
    private let departures: ChannelDepartures
    private let holds: ChannelHolds
    private let rests: BroadcastRests
    private let metrics: HeraldMetrics
    private let logger: Logger
    private let clock: any HeraldClock
    private let store = QueueStore()
    private let rotation = ChannelRotation()
    /// Messages this worker has claimed per broadcast.
    private let served: Mutex<[Int64: Int]> = Mutex([:])

    init(configuration: WorkerConfiguration, directory: BroadcastDirectory, completer: OutcomeCompleter, dispatcher: SendDispatcher,
         window: InFlightWindow, departures: ChannelDepartures, holds: ChannelHolds, rests: BroadcastRests, metrics: HeraldMetrics,
         clock: any HeraldClock, logger: Logger) {
        self.clock = clock
        self.configuration = configuration
        self.directory = directory
        self.completer = completer
        self.dispatcher = dispatcher
        self.window = window
        self.departures = departures
        self.holds = holds
        self.rests = rests
        self.metrics = metrics
        self.logger = logger
    }

    /// A channel's part of the next claim statement: its broadcast and the window slots held for it.
    private struct Pending {
        /// Every broadcast of the channel, for the next one to be tried when this one has nothing due.
        var channel: [PreparedBroadcast]
        var broadcast: PreparedBroadcast
        var room: Int
        var claimedAt: ContinuousClock.Instant
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
                var pending: [Pending] = []
                func note(_ turn: Turn) {
                    switch turn {
                    case .worked: didWork = true
                    case .idle: break
                    case .held(let until): nextTry = min(nextTry, until)
                    }
                }
                // Set when the pass ended on a channel whose whole claim the window has no room
                // for (see ChannelRotation): the lane waits for answers to free some.
                var waitingForRoom = false
                let window = self.window, batchSize = configuration.batchSize
                for _ in 0..<channels.count {
                    if stopping.isSet { break }
                    guard let broadcasts = rotation.next(
                        of: channels, freeRoom: { window.limit - window.inFlight },
                        room: { Self.roomForTurn(burst: $0[0].info.burst, batchSize: batchSize, windowLimit: window.limit) })
                    else {
                        waitingForRoom = true
                        break
                    }
                    let channelID = broadcasts[0].info.channelID
                    if let later = holds.begin(channelID, now: clock.now) {
                        nextTry = min(nextTry, max(later, clock.now + .milliseconds(5)))
                        continue
                    }
                    switch prepare(broadcasts) {
                    case .ready(let part): pending.append(part)
                    case .notReady(let turn): holds.end(channelID); note(turn)
                    }
                    if pending.count >= configuration.channelsPerClaim {
                        for turn in try await claim(pending, pool: pool) { note(turn) }
                        pending.removeAll(keepingCapacity: true)
                    }
                }
                if !pending.isEmpty && !stopping.isSet {
                    for turn in try await claim(pending, pool: pool) { note(turn) }
                } else {
                    for part in pending { abandon(part) }
                }
                pending.removeAll()
                if stopping.isSet { break }
                if waitingForRoom || window.inFlight >= window.limit {
                    await window.roomFreed.wait(timeout: .milliseconds(50))
                } else if !didWork {
                    let wait = nextTry - clock.now
                    if wait > .zero { await wakeup.wait(timeout: wait) }
                }
                if index == 0 {
                    holds.prune(now: clock.now)
                    rests.prune(now: clock.now)
                    departures.prune()
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

    private enum Preparation {
        case ready(Pending)
        case notReady(Turn)
    }

    /// How many jobs a channel's claim asks for: its burst, which is the most its bucket grants
    /// (asking for more would reserve window slots, and lock due jobs, that the claim cannot use),
    /// or a batch when that is smaller.
    static func claimSize(burst: Int, batchSize: Int) -> Int {
        min(batchSize, burst)
    }

    /// The room in the window a channel's turn waits for: a whole claim of the channel
    /// (``claimSize(burst:batchSize:)``), or a quarter of the window when even that is smaller, so
    /// that a window narrower than a burst still turns.
    static func roomForTurn(burst: Int, batchSize: Int, windowLimit: Int) -> Int {
        max(1, min(claimSize(burst: burst, batchSize: batchSize), windowLimit / 4))
    }

    /// A channel's turn, before the statement: the least-served broadcast that is not resting,
    /// with window slots held for its claim.
    private func prepare(_ broadcasts: [PreparedBroadcast]) -> Preparation {
        let order = broadcasts.count == 1 ? broadcasts : leastServedFirst(broadcasts)
        let now = clock.now
        var restingUntil: ContinuousClock.Instant?
        for broadcast in order {
            if let end = rests.restingUntil(broadcast.info.id, now: now) {
                restingUntil = min(restingUntil ?? end, end)
                continue
            }
            let info = broadcast.info
            var wanted = Self.claimSize(burst: info.burst, batchSize: configuration.batchSize)
            if let limit = ChannelDepartures.limit(ratePerSecond: info.ratePerSecond, burst: info.burst) {
                // Sends still waiting in the transport, or a second already full of departures,
                // leave this claim less (see ChannelDepartures): the provider counts arrivals.
                switch departures.room(info.channelID, limit: limit) {
                case .jobs(let free): wanted = min(wanted, free)
                case .none(let until): return .notReady(.held(until: until))
                }
            }
            let room = window.reserve(wanted, channel: info.channelID,
                                      channelLimit: Self.inFlightLimit(of: broadcast, latencyAllowance: configuration.providerLatencyAllowance))
            guard room > 0 else { return .notReady(.held(until: now + .milliseconds(20))) }
            // Read before the claim, so the lease (counted from the database's clock during the
            // claim) ends no earlier than `claimedAt + lease` on this clock.
            return .ready(Pending(channel: broadcasts, broadcast: broadcast, room: room, claimedAt: clock.now))
        }
        // Every broadcast of the channel is resting.
        return .notReady(restingUntil.map { .held(until: $0) } ?? .idle)
    }

    /// A channel's broadcasts, the one with the fewest messages claimed by this worker first.
    /// Called for every turn of a channel with several broadcasts; a channel with one (the
    /// usual case, and at 1,000 channels most of the worker's turns) skips it.
    private func leastServedFirst(_ broadcasts: [PreparedBroadcast]) -> [PreparedBroadcast] {
        let counts = served.withLock { s -> [Int] in
            // A broadcast seen for the first time joins at the level of the least served one,
            // so a late start does not take the channel over until it has caught up.
            let floor = broadcasts.compactMap { s[$0.info.id] }.min() ?? 0
            for b in broadcasts where s[b.info.id] == nil { s[b.info.id] = floor }
            return broadcasts.map { s[$0.info.id]! }
        }
        return broadcasts.indices.sorted { (counts[$0], $0) < (counts[$1], $1) }.map { broadcasts[$0] }
    }

    /// The most sends of `broadcast`'s channel in flight, below the window's per-channel limit:
    /// its burst plus `latencyAllowance` of its rate (see
    /// ``WorkerConfiguration/providerLatencyAllowance``), and less for mails with attachments
    /// (``PreparedBroadcast/inFlightLimit``); nil when neither bounds it (a rate beyond any window).
    static func inFlightLimit(of broadcast: PreparedBroadcast, latencyAllowance: Duration) -> Int? {
        let info = broadcast.info
        let byRate = Double(max(info.burst, 1)) + max(info.ratePerSecond, 0) * latencyAllowance.inSeconds
        guard byRate.isFinite, byRate < Double(Int32.max) else { return broadcast.inFlightLimit }
        let rateLimit = Int(byRate.rounded(.up))
        return min(rateLimit, broadcast.inFlightLimit ?? rateLimit)
    }

    /// Gives back what ``prepare(_:)`` took for a claim that will not be made.
    private func abandon(_ part: Pending) {
        window.release(part.room, channel: part.broadcast.info.channelID)
        holds.end(part.broadcast.info.channelID)
    }

    /// How many due jobs a claim of `room` looks at (see ``QueueStore/ClaimRequest``): a whole
    /// batch where closed send windows may hide due jobs, else exactly `room` (every row scanned
    /// is locked; the scan is a parameter of the prepared statement, so any value shares its plan).
    static func scanLimit(_ room: Int, batchSize: Int, hasSendWindow: Bool) -> Int {
        hasSendWindow ? max(room, batchSize) : room
    }

    /// Claims for every pending channel in one statement and hands each batch to the dispatcher.
    /// A broadcast that turns out to have nothing due rests, and its channel's next broadcast is
    /// tried at once, in a further statement, as a channel's turn always did.
    private func claim(_ parts: [Pending], pool: PostgresPool) async throws -> [Turn] {
        var turns: [Turn] = []
        var parts = parts
        while !parts.isEmpty {
            let requests = parts.map { part in
                QueueStore.ClaimRequest(
                    broadcastID: part.broadcast.info.id, channelID: part.broadcast.info.channelID, kind: part.broadcast.kind,
                    limit: part.room,
                    scanLimit: Self.scanLimit(part.room, batchSize: configuration.batchSize, hasSendWindow: part.broadcast.info.hasSendWindow),
                    attributeKeys: part.broadcast.attributeKeys)
            }
            let claims: [QueueStore.Claim]
            do {
                claims = try await pool.withConnection {
                    try await self.store.claim(on: $0, requests: requests, lease: self.configuration.lease,
                                               restartGrace: self.configuration.restartGrace, owner: self.configuration.workerID)
                }
            } catch {
                for part in parts { abandon(part) }
                throw error
            }
            var again: [Pending] = []
            for (part, claim) in zip(parts, claims) {
                var turn = await finish(part, claim)
                if case .idle = turn {
                    switch prepare(part.channel) {
                    case .ready(let next):
                        again.append(next)  // the channel stays begun for its next broadcast
                        continue
                    case .notReady(let next): turn = next
                    }
                }
                holds.end(part.broadcast.info.channelID)
                turns.append(turn)
            }
            parts = again
        }
        return turns
    }

    /// What one broadcast's claim brought: holds and rests for the next turns, then the jobs to
    /// the dispatcher.
    private func finish(_ part: Pending, _ claim: QueueStore.Claim) async -> Turn {
        let broadcast = part.broadcast, info = broadcast.info
        window.release(part.room - claim.jobs.count, channel: info.channelID)
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
        if claim.granted < part.room {
            // The bucket ran short. `take_tokens` says when half of what the bucket can hold
            // will have accrued (its capacity is the database's rule, not the worker's); come
            // back at 1.8 times that, 90% of a full bucket: nearly full claims, so half as many
            // statements (1,000 channels at 20/s: about one claim per channel per second), and
            // no tokens lost to a full bucket while the claim is on its way.
            holds.hold(info.channelID, until: clock.now + min(claim.retryAfter * 1.8, configuration.idlePoll))
        }
        served.withLock { $0[info.id, default: 0] += claim.jobs.count }
        metrics.claimed(channel: info.channelName, provider: info.provider, count: claim.jobs.count)
        await dispatcher.dispatch(claim.jobs, of: broadcast, claimedAt: part.claimedAt)
        return .worked(claim.jobs.count)
    }
}
