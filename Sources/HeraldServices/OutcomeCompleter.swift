import Foundation
import HeraldCore
import HeraldPostgres
import HeraldProviders
import HeraldStore
import HeraldTransport
import Logging
import Synchronization

/// Records outcomes as they arrive, many per statement (as River's batch completer): the
/// transport reports each answer the moment it ends (``answered(_:_:)``, on its thread), lanes
/// report what they decided without sending (``decided(_:broadcast:)``), and one task writes
/// whatever has gathered in one `QueueStore.record` statement per batch, guarded by
/// `lease_owner`. With fewer than ``WorkerConfiguration/recordGatherTarget`` outcomes in hand
/// it first waits ``WorkerConfiguration/recordLinger`` on its clock (less when ``finish()`` is
/// called meanwhile), and writes what gathered by then.
///
/// - Important: Outcomes are kept until they are written, however long the database is away:
///   the guard is the lease owner, not the lease's time, so a late write still applies to every
///   job no other worker has claimed since (and the claim's restart grace keeps other workers
///   off jobs whose lease lapsed during a database restart; see `QueueStore.claim`). Only the
///   death of this process loses them.
final class OutcomeCompleter: Sendable {
    private struct Decided: Sendable {
        var outcome: JobOutcome
        var broadcast: PreparedBroadcast
    }
    private enum Arrival: Sendable {
        case answered(SentJob, TransportOutcome)
        case decided([Decided])
    }
    private struct Inbox {
        var arrivals: [Arrival] = []
        /// The buffer the writer emptied, handed back with its capacity: the next `arrivals`.
        /// Engine threads append under the lock, so a fresh array growing 1, 2, 4, … there meant
        /// reallocating and copying inside the critical section, and the lock was the worker's
        /// most contended (3% of its CPU at one channel and 200 ms, in `lockSlow`).
        var spare: [Arrival] = []
        var finishing = false
    }

    private let inbox = Mutex(Inbox())
    private let writesFailing = Atomic<Bool>(false)
    /// Outcomes handed in and not yet written (answered or decided, judged or not).
    private let unwritten = Atomic<Int>(0)
    private let arrived: Wakeup
    /// Closed by ``finish()``: ends a wait for a fuller batch (see ``run(pool:)``).
    private let finishRequested: Wakeup
    private let configuration: WorkerConfiguration
    private let rules: OutcomeRules
    private let store = QueueStore()
    private let holds: ChannelHolds
    private let rests: BroadcastRests
    private let metrics: HeraldMetrics
    private let logger: Logger
    private let clock: any HeraldClock

    init(configuration: WorkerConfiguration, rules: OutcomeRules, holds: ChannelHolds, rests: BroadcastRests,
         metrics: HeraldMetrics, clock: any HeraldClock, logger: Logger) {
        self.clock = clock
        arrived = Wakeup(clock: clock)
        finishRequested = Wakeup(clock: clock)
        self.configuration = configuration
        self.rules = rules
        self.holds = holds
        self.rests = rests
        self.metrics = metrics
        self.logger = logger
    }

    /// A transfer ended (called on the transport's thread: only appends).
    func answered(_ sent: SentJob, _ outcome: TransportOutcome) {
        unwritten.add(1, ordering: .relaxed)
        let wasEmpty = inbox.withLock { box -> Bool in
            box.arrivals.append(.answered(sent, outcome))
            return box.arrivals.count == 1
        }
        if wasEmpty { arrived.signal() }
    }

    /// Outcomes decided without the transport (skips, unsendable messages, the sandbox, hand-backs).
    func decided(_ outcomes: [JobOutcome], broadcast: PreparedBroadcast) {
        guard !outcomes.isEmpty else { return }
        unwritten.add(outcomes.count, ordering: .relaxed)
        inbox.withLock { $0.arrivals.append(.decided(outcomes.map { Decided(outcome: $0, broadcast: broadcast) })) }
        arrived.signal()
    }

    /// Whether the last attempt to write outcomes failed and some are still unwritten. Lanes
    /// do not claim meanwhile: when the database comes back, this worker's own expired leases
    /// must be recorded before anything could claim them again.
    var isHoldingUnwritten: Bool { writesFailing.load(ordering: .relaxed) }

    /// Outcomes not yet written. The in-flight window frees a slot when its answer arrives, not
    /// when it is written: lanes stop claiming while this is as large as the window, so a
    /// database slower than the providers (a fast provider, a busy primary) cannot make the
    /// backlog, its memory and the time outcomes wait for their lease grow without bound.
    var unwrittenCount: Int { unwritten.load(ordering: .relaxed) }

    /// No more arrivals will come: ``run(pool:)`` writes what it holds and returns.
    func finish() {
        inbox.withLock { $0.finishing = true }
        arrived.signal()
        finishRequested.close()
    }

    /// Writes outcomes until ``finish()`` was called and everything is written; after
    /// `finish`, gives up on the database after ``WorkerConfiguration/shutdownGrace`` (at least
    /// 5 s) and says how many outcomes were lost.
    func run(pool: PostgresPool) async {
        var backlog: [Decided] = []
        var failures = 0
        var giveUpAt: ContinuousClock.Instant?
        // When the current wait for a fuller batch ends.
        var lingerUntil: ContinuousClock.Instant?
        while true {
            var taken: [Arrival] = []
            let finishing = inbox.withLock { box -> Bool in
                swap(&taken, &box.arrivals)
                swap(&box.arrivals, &box.spare)
                return box.finishing
            }
            if !taken.isEmpty {
                backlog.append(contentsOf: judge(taken))
                taken.removeAll(keepingCapacity: true)
                inbox.withLock { box in swap(&box.spare, &taken) }  // `spare` is empty: it became `arrivals` above
            }
            if finishing && giveUpAt == nil {
                giveUpAt = clock.now + max(configuration.shutdownGrace, .seconds(5))
            }
            if backlog.isEmpty {
                if finishing && inbox.withLock({ $0.arrivals.isEmpty }) { return }
                await arrived.wait(timeout: .milliseconds(20))
                continue
            }
            // Fewer than a batch's worth: wait a little for more (see `recordGatherTarget`),
            // unless finishing or retrying a failed write.
            if backlog.count < configuration.recordGatherTarget && configuration.recordLinger > .zero && !finishing && failures == 0 {
                let now = clock.now
                let until = lingerUntil ?? now + configuration.recordLinger
                lingerUntil = until
                if now < until {
                    // Ends early on `finish()`: the sends it reports last are written at once.
                    await finishRequested.wait(timeout: until - now)
                    continue
                }
            }
            lingerUntil = nil
            let chunk = Array(backlog.prefix(configuration.recordBatchSize))
            do {
                let applied = try await pool.withConnection {
                    try await self.store.record(chunk.map(\.outcome), owner: self.configuration.workerID, on: $0)
                }
                backlog.removeFirst(chunk.count)
                unwritten.subtract(chunk.count, ordering: .relaxed)
                failures = 0
                writesFailing.store(false, ordering: .relaxed)
                if applied < chunk.count {
                    logger.warning("some outcomes were not recorded: another worker holds their jobs now", metadata: [
                        "lost": "\(chunk.count - applied)"])
                }
                count(chunk)
                wakeRequeued(chunk)
                try await throttle(chunk, pool: pool)
            } catch {
                failures += 1
                writesFailing.store(true, ordering: .relaxed)
                if let giveUpAt, clock.now >= giveUpAt {
                    logger.error("could not record outcomes before exiting; their jobs return when their lease ends", metadata: [
                        "lost": "\(backlog.count)", "error": "\(error)"])
                    return
                }
                if failures == 1 || failures % 20 == 0 {
                    logger.warning("could not record outcomes; keeping them and trying again", metadata: [
                        "outcomes.count": "\(backlog.count)", "failures": "\(failures)", "error": "\(error)"])
                }
                await arrived.wait(timeout: .milliseconds(min(2000, 100 * (1 << min(failures, 5)))))
            }
        }
    }

    /// Turns answers into outcomes (classification happens here, off the transport's thread).
    private func judge(_ arrivals: [Arrival]) -> [Decided] {
        var out: [Decided] = []
        out.reserveCapacity(arrivals.count)
        let now = Date()
        // Each broadcast's latency series, looked up once per pass rather than once per answer.
        var latencies: [ObjectIdentifier: HeraldMetrics.ProviderLatencySeries] = [:]
        for arrival in arrivals {
            switch arrival {
            case .decided(let list):
                out.append(contentsOf: list)
            case .answered(let sent, let answer):
                if case .failure(let error) = answer.result, error.isNotStarted {
                    out.append(Decided(outcome: JobOutcome(messageID: sent.job.messageID, result: .handBack, segments: sent.segments),
                                       broadcast: sent.broadcast))
                    continue
                }
                let key = ObjectIdentifier(sent.broadcast)
                let series: HeraldMetrics.ProviderLatencySeries
                if let cached = latencies[key] {
                    series = cached
                } else {
                    series = metrics.providerLatencySeries(channel: sent.broadcast.info.channelName, provider: sent.broadcast.info.provider)
                    latencies[key] = series
                }
                series.record(answer.elapsed.inSeconds)
                let providerAnswer: ProviderAnswer
                switch (sent.request, answer.result) {
                case (.mail, .success): providerAnswer = .mailAccepted
                case (_, .success(let response)): providerAnswer = .http(response)
                case (_, .failure(let error)): providerAnswer = .transportFailed(error)
                }
                let delivery = sent.broadcast.channel.classify(providerAnswer, for: sent.request, now: now)
                out.append(Decided(outcome: rules.recordable(delivery, job: sent.job, broadcast: sent.broadcast,
                                                             segments: sent.segments, now: now, part: sent.part, parts: sent.parts),
                                   broadcast: sent.broadcast))
            }
        }
        return out
    }

    /// A provider that asked us to slow down pauses the whole channel, for every worker.
    private func throttle(_ chunk: [Decided], pool: PostgresPool) async throws {
        var pauses: [Int64: (Duration, String)] = [:]
        for d in chunk {
            guard let pause = d.outcome.rateLimitedFor else { continue }
            let id = d.broadcast.info.channelID
            if pause > pauses[id]?.0 ?? .zero { pauses[id] = (pause, d.broadcast.info.channelName) }
        }
        for (channelID, (pause, name)) in pauses {
            holds.hold(channelID, until: clock.now + pause)
            try await pool.withConnection { try await self.store.throttle(channelID: channelID, for: pause, on: $0) }
            logger.notice("provider asked to slow down; channel paused", metadata: [
                "channel": "\(name)", "pause.seconds": "\(pause.inSeconds)"])
        }
    }

    /// Broadcasts with a job just put back in the queue (a retry, a hand-back, a message's next
    /// part) may have something due: end their rest.
    private func wakeRequeued(_ chunk: [Decided]) {
        var requeued = Set<Int64>()
        for d in chunk {
            switch d.outcome.result {
            case .retry, .handBack, .partSent: requeued.insert(d.broadcast.info.id)
            case .sent, .failed, .skipped, .cancelled: break
            }
        }
        if !requeued.isEmpty { rests.wake(requeued) }
    }

    private func count(_ chunk: [Decided]) {
        struct Counts { var sent = 0, failed = 0, retried = 0, skipped = 0, cancelled = 0, handedBack = 0 }
        var byChannel: [String: (provider: String, counts: Counts)] = [:]
        for d in chunk {
            var entry = byChannel[d.broadcast.info.channelName] ?? (d.broadcast.info.provider, Counts())
            switch d.outcome.result {
            case .sent: entry.counts.sent += 1
            case .partSent: break
            case .failed: entry.counts.failed += 1
            case .retry: entry.counts.retried += 1
            case .skipped: entry.counts.skipped += 1
            case .cancelled: entry.counts.cancelled += 1
            case .handBack: entry.counts.handedBack += 1
            }
            byChannel[d.broadcast.info.channelName] = entry
        }
        for (channel, (provider, c)) in byChannel {
            if c.sent > 0 { metrics.sent(channel: channel, provider: provider, count: c.sent) }
            if c.failed > 0 { metrics.failed(channel: channel, provider: provider, count: c.failed) }
            if c.retried > 0 { metrics.retried(channel: channel, provider: provider, count: c.retried) }
            if c.skipped > 0 { metrics.skipped(channel: channel, provider: provider, count: c.skipped) }
            if c.cancelled > 0 { metrics.cancelled(channel: channel, provider: provider, count: c.cancelled) }
            if c.handedBack > 0 { metrics.handedBack(channel: channel, provider: provider, count: c.handedBack) }
        }
    }
}
