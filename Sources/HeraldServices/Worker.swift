import Foundation
import HeraldCore
import HeraldPostgres
import HeraldProviders
import HeraldStore
import HeraldTransport
import Logging
import ServiceLifecycle
import Synchronization

/// How a ``Worker`` runs. Every field has a sensible default for production.
public struct WorkerConfiguration: Sendable {
    /// `DATABASE_URL`, or nil for libpq's `PG*` variables.
    public var databaseURL: String?
    /// This worker's name in `jobs.lease_owner`; unique per process.
    public var workerID: String
    /// Jobs claimed per round trip.
    public var batchSize: Int = 200
    /// Batches in flight at once (each: claim, send all, record). Four keep both PostgreSQL and
    /// the provider busy on a two-core machine (scripts/bench: 2 lanes gave 13.6k msg/s and 4
    /// gave 18k before the batch transport; now 3 to 6 measure the same).
    public var lanes: Int = 4
    /// How long a claim stays valid; a worker that dies loses its jobs to others after this.
    public var lease: Duration = .seconds(60)
    /// On SIGTERM: how long in-flight sends may take before they are abandoned (and handed back).
    public var shutdownGrace: Duration = .seconds(10)
    /// Serve only these channels (by name); nil serves all.
    public var channels: [String]?
    /// Where secrets named by `*_env` settings are read.
    public var environment: [String: String]
    /// `HERALD_PUBLIC_URL`: Twilio status callbacks point at `{publicURL}/webhooks/twilio`.
    public var publicURL: String?
    /// HTTP/SMTP transfers in flight at most.
    public var maxInFlight: Int = 128
    /// Fallback poll when no notification arrives (retries falling due, lost notifications).
    public var idlePoll: Duration = .seconds(1)
    /// Whole-transfer timeout of one provider request.
    public var requestTimeout: Duration = .seconds(15)
    /// Backoff between retries of one message.
    public var backoff = Backoff(base: .seconds(1), cap: .seconds(300))

    public init(databaseURL: String?, workerID: String = WorkerConfiguration.defaultWorkerID(),
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.databaseURL = databaseURL
        self.workerID = workerID
        self.environment = environment
        self.publicURL = environment["HERALD_PUBLIC_URL"]
    }

    /// `host-pid-random`, unique across machines and restarts.
    public static func defaultWorkerID() -> String {
        "\(ProcessInfo.processInfo.hostName)-\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
    }
}

/// `herald worker`: claims batches of due jobs with `FOR UPDATE SKIP LOCKED`, renders and
/// delivers them through the channel's provider, and records the outcomes in one statement per
/// batch.
///
/// - Important: no transaction is open while messages are sent: a claim commits a lease
///   (`jobs.run_at` moved to its expiry, `lease_owner` set), the sends happen, then one statement
///   records every outcome of the batch, guarded by the lease.
///
/// Wake-ups come from `LISTEN herald_jobs, herald_broadcasts` on a dedicated connection; a slow
/// poll (``WorkerConfiguration/idlePoll``) is only the fallback. Several lanes work at once, each
/// taking one batch per active broadcast per round, so concurrent broadcasts progress together.
/// On graceful shutdown it stops claiming, lets in-flight batches finish within the grace period,
/// and hands back whatever it still holds.
public final class Worker: Service, Sendable {
    public let configuration: WorkerConfiguration
    private let logger: Logger
    private let store = QueueStore()
    private let wakeup = Wakeup()
    private let stopping = Latch()
    private let broadcasts: Mutex<BroadcastCache> = Mutex(BroadcastCache())
    private let round = Atomic<Int>(0)
    /// Channels whose bucket is empty or that the provider throttled: not asked again before then.
    private let channelHolds: Mutex<[Int64: ContinuousClock.Instant]> = Mutex([:])
    /// Messages this worker has claimed per broadcast: within a channel, the broadcast with the
    /// fewest goes first. Counting messages, not turns, keeps the share even when the bucket
    /// grants a full batch to one claim and a few tokens to the next.
    private let served: Mutex<[Int64: Int]> = Mutex([:])

    struct BroadcastCache {
        var fetchedAt: ContinuousClock.Instant?
        var dirty = true
        var prepared: [PreparedBroadcast] = []
        /// Broadcasts this worker cannot serve (bad settings, missing secret), with why; logged once.
        var unusable: [Int64: String] = [:]
    }

    private let metrics: HeraldMetrics

    /// What providers read from this process: secrets, the public URL, the request timeout.
    private var providerEnvironment: ProviderEnvironment {
        ProviderEnvironment(variables: configuration.environment, publicURL: configuration.publicURL,
                            requestTimeout: configuration.requestTimeout)
    }

    /// - Parameter metrics: where the worker counts claims, outcomes, provider latency and
    ///   rate-limiter waits (serve it with ``MetricsServer``).
    public init(configuration: WorkerConfiguration, logger: Logger, metrics: HeraldMetrics = HeraldMetrics()) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
    }

    public func run() async throws {
        let pool = PostgresPool(connectionString: configuration.databaseURL, maxConnections: configuration.lanes + 1,
                                applicationName: "herald-worker", logger: logger)
        let transport = CurlTransport(maxInFlight: configuration.maxInFlight, logger: logger)
        let lanesLeft = Counter(configuration.lanes)
        logger.info("worker started", metadata: ["worker.id": "\(configuration.workerID)", "lanes": "\(configuration.lanes)"])
        do {
            try await withGracefulShutdownHandler {
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask { await self.listen() }
                    group.addTask { try await self.enforceGrace(lanesLeft: lanesLeft) }
                    for lane in 0..<configuration.lanes {
                        group.addTask {
                            await self.lane(lane, pool: pool, transport: transport)
                            lanesLeft.decrement()
                        }
                    }
                }
            } onGracefulShutdown: {
                self.stopping.set()
                self.wakeup.signal()
            }
        } catch is GraceExpired {
            logger.warning("shutdown grace period expired; abandoning in-flight sends")
        }
        transport.shutdown()
        // Hand back whatever is still held, so other workers can take it at once.
        do {
            let released = try await pool.withConnection { try await self.store.release(owner: self.configuration.workerID, on: $0) }
            if released > 0 { logger.info("handed back claimed jobs", metadata: ["jobs.count": "\(released)"]) }
        } catch {
            logger.error("could not hand back claimed jobs; they return when their lease expires", metadata: ["error": "\(error)"])
        }
        await pool.close()
        logger.info("worker stopped")
    }

    /// Asks the worker to stop as on SIGTERM (for tests and embedding).
    public func requestStop() {
        stopping.set()
        wakeup.signal()
    }

    struct GraceExpired: Error {}

    final class Counter: Sendable {
        private let state: Mutex<Int>
        init(_ value: Int) { state = Mutex(value) }
        var value: Int { state.withLock { $0 } }
        func decrement() { state.withLock { $0 -= 1 } }
    }

    private func enforceGrace(lanesLeft: Counter) async throws {
        await stopping.wait()
        let deadline = ContinuousClock.now + configuration.shutdownGrace
        while lanesLeft.value > 0 {
            if ContinuousClock.now >= deadline { throw GraceExpired() }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    // MARK: Wake-ups

    private func listen() async {
        var connection: PostgresConnection?
        while !stopping.isSet && !Task.isCancelled {
            do {
                if connection == nil {
                    let c = try await PostgresConnection.connect(configuration.databaseURL, applicationName: "herald-worker-listen", logger: logger)
                    try await c.listen("herald_jobs")
                    try await c.listen("herald_broadcasts")
                    connection = c
                    markDirty() // catch up on anything missed while not listening
                }
                let notifications = try await connection!.waitForNotifications(timeout: .milliseconds(250))
                if !notifications.isEmpty {
                    if notifications.contains(where: { $0.channel == "herald_broadcasts" }) { markDirty() }
                    wakeup.signal()
                }
            } catch is CancellationError {
                break
            } catch {
                logger.warning("notification connection failed; retrying", metadata: ["error": "\(error)"])
                connection = nil
                try? await Task.sleep(for: .seconds(1))
            }
        }
        await connection?.close()
    }

    private func markDirty() {
        broadcasts.withLock { $0.dirty = true }
    }

    // MARK: Lanes

    private func lane(_ index: Int, pool: PostgresPool, transport: CurlTransport) async {
        var consecutiveErrors = 0
        while !stopping.isSet && !Task.isCancelled {
            do {
                let active = try await activeBroadcasts(pool: pool)
                var didWork = false
                var nextTry = ContinuousClock.now + configuration.idlePoll
                // One batch per channel per round. Within a channel, the broadcast with the fewest
                // messages claimed goes first (fair share of its rate); a channel without tokens is skipped, never waited on, so a
                // slow or throttled channel cannot hold back the others.
                let channels = Self.groupByChannel(active)
                let start = round.add(1, ordering: .relaxed).newValue
                for offset in 0..<channels.count {
                    if stopping.isSet { break }
                    let broadcasts = channels[(start + offset) % channels.count]
                    let channelID = broadcasts[0].info.channelID
                    if let hold = channelHolds.withLock({ $0[channelID] }), hold > ContinuousClock.now {
                        nextTry = min(nextTry, hold)
                        continue
                    }
                    let counts = served.withLock { s -> [Int] in
                        // A broadcast seen for the first time joins at the level of the least
                        // served one, so a late start does not take the channel over until it
                        // has caught up with broadcasts that have been sending for hours.
                        let floor = broadcasts.compactMap { s[$0.info.id] }.min() ?? 0
                        for b in broadcasts where s[b.info.id] == nil { s[b.info.id] = floor }
                        return broadcasts.map { s[$0.info.id]! }
                    }
                    let order = broadcasts.indices.sorted { (counts[$0], $0) < (counts[$1], $1) }.map { broadcasts[$0] }
                    turn: for broadcast in order {
                        switch try await runBatch(broadcast, pool: pool, transport: transport) {
                        case .worked(let count):
                            served.withLock { $0[broadcast.info.id, default: 0] += count }
                            didWork = true
                            break turn
                        case .idle:
                            continue
                        case .throttled(let until):
                            nextTry = min(nextTry, until)
                            break turn
                        }
                    }
                }
                if !didWork && !stopping.isSet {
                    let wait = nextTry - ContinuousClock.now
                    if wait > .zero { await wakeup.wait(timeout: wait) }
                }
                consecutiveErrors = 0
            } catch {
                consecutiveErrors += 1
                logger.error("worker lane failed; retrying", metadata: ["lane": "\(index)", "error": "\(error)"])
                markDirty()
                let delay = Duration.milliseconds(min(5000, 100 * (1 << min(consecutiveErrors, 6))))
                await wakeup.wait(timeout: delay)
            }
        }
    }

    /// Active broadcasts grouped by channel, channels in id order.
    static func groupByChannel(_ broadcasts: [PreparedBroadcast]) -> [[PreparedBroadcast]] {
        var groups: [Int64: [PreparedBroadcast]] = [:]
        for b in broadcasts { groups[b.info.channelID, default: []].append(b) }
        return groups.keys.sorted().map { groups[$0]! }
    }

    /// The sendable broadcasts, re-read when notified or every second (rates, pauses, new ones).
    private func activeBroadcasts(pool: PostgresPool) async throws -> [PreparedBroadcast] {
        let now = ContinuousClock.now
        let cached = broadcasts.withLock { c -> [PreparedBroadcast]? in
            if !c.dirty, let at = c.fetchedAt, now - at < .seconds(1) { return c.prepared }
            return nil
        }
        if let cached { return cached }
        broadcasts.withLock { $0.dirty = false }
        let rows = try await pool.withConnection { try await self.store.activeBroadcasts(on: $0, channels: self.configuration.channels) }
        let previous = broadcasts.withLock { c in (c.prepared, c.unusable) }
        var prepared: [PreparedBroadcast] = []
        var unusable: [Int64: String] = [:]
        for info in rows {
            if let old = previous.0.first(where: { $0.info == info }) {
                prepared.append(old)
                continue
            }
            do {
                prepared.append(try PreparedBroadcast(info, environment: providerEnvironment))
            } catch {
                let why = "\(error)"
                unusable[info.id] = why
                if previous.1[info.id] != why {
                    logger.error("cannot send broadcast from this worker", metadata: [
                        "broadcast.id": "\(info.id)", "channel": "\(info.channelName)", "error": "\(why)"])
                }
            }
        }
        broadcasts.withLock { c in
            c.prepared = prepared
            c.unusable = unusable
            c.fetchedAt = now
        }
        let live = Set(rows.map(\.id))
        served.withLock { $0 = $0.filter { live.contains($0.key) } }
        return prepared
    }

    enum BatchResult {
        /// This many jobs were claimed and handled.
        case worked(Int)
        /// Nothing was due.
        case idle
        /// The channel's rate limit allows nothing before this instant.
        case throttled(until: ContinuousClock.Instant)
    }

    /// Claims, sends and records one batch of a broadcast.
    private func runBatch(_ broadcast: PreparedBroadcast, pool: PostgresPool, transport: CurlTransport) async throws -> BatchResult {
        // Read before the claim, so the lease (counted from the database's clock during the
        // claim) ends no earlier than `claimedAt + lease` on this clock.
        let claimedAt = ContinuousClock.now
        let claim = try await pool.withConnection {
            try await self.store.claim(on: $0, broadcastID: broadcast.info.id, channelID: broadcast.info.channelID,
                                       kind: broadcast.info.kind, limit: self.configuration.batchSize,
                                       lease: self.configuration.lease, owner: self.configuration.workerID,
                                       attributeKeys: broadcast.attributeKeys)
        }
        let jobs = claim.jobs
        let channel = broadcast.info.channelName, provider = broadcast.info.provider
        if claim.granted == 0 {
            let wait = claim.retryAfter
            metrics.rateLimiterWait(channel: channel,
                                    seconds: Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18)
            let until = ContinuousClock.now + wait
            channelHolds.withLock { $0[broadcast.info.channelID] = until }
            return .throttled(until: until)
        }
        guard !jobs.isEmpty else { return .idle }
        metrics.claimed(channel: channel, provider: provider, count: jobs.count)
        let outcomes = await deliver(jobs, broadcast, transport: transport, startingBy: sendDeadline(claimedAt: claimedAt))
        let applied = try await record(outcomes, pool: pool, leaseEnds: claimedAt + configuration.lease)
        countOutcomes(outcomes, channel: channel, provider: provider)
        if applied < outcomes.count {
            logger.warning("some outcomes were not recorded: their lease had expired", metadata: [
                "broadcast.id": "\(broadcast.info.id)", "lost": "\(outcomes.count - applied)"])
        }
        logger.debug("batch done", metadata: ["broadcast.id": "\(broadcast.info.id)", "jobs.count": "\(jobs.count)"])
        // A provider that asked us to slow down pauses the whole channel, for every worker.
        if let pause = rateLimitPause(outcomes) {
            try await pool.withConnection { try await self.store.throttle(channelID: broadcast.info.channelID, for: pause, on: $0) }
            channelHolds.withLock { $0[broadcast.info.channelID] = ContinuousClock.now + pause }
            logger.notice("provider asked to slow down; channel paused", metadata: [
                "channel": "\(broadcast.info.channelName)", "pause.ms": "\(pause.components.seconds * 1000 + pause.components.attoseconds / 1_000_000_000_000_000)"])
        }
        return .worked(jobs.count)
    }

    /// Records a batch's outcomes, trying again on a fresh connection while the lease lasts.
    ///
    /// The sends have happened: outcomes lost to a dropped connection or a database restart
    /// would leave the jobs leased, and once the lease ran out they would be sent a second time.
    /// Recording is safe to repeat (a job already finished is simply not found again).
    private func record(_ outcomes: [JobOutcome], pool: PostgresPool, leaseEnds: ContinuousClock.Instant) async throws -> Int {
        var delay = Duration.milliseconds(100)
        var failures = 0
        while true {
            do {
                return try await pool.withConnection {
                    try await self.store.record(outcomes, owner: self.configuration.workerID, on: $0)
                }
            } catch {
                failures += 1
                if error is CancellationError || ContinuousClock.now + delay >= leaseEnds { throw error }
                logger.warning("could not record a batch's outcomes; trying again", metadata: [
                    "jobs.count": "\(outcomes.count)", "failures": "\(failures)", "error": "\(error)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }

    private func countOutcomes(_ outcomes: [JobOutcome], channel: String, provider: String) {
        var sent = 0, failed = 0, retried = 0, skipped = 0, cancelled = 0, handedBack = 0
        for o in outcomes {
            switch o.result {
            case .sent: sent += 1
            case .failed: failed += 1
            case .retry: retried += 1
            case .skipped: skipped += 1
            case .cancelled: cancelled += 1
            case .handBack: handedBack += 1
            }
        }
        if sent > 0 { metrics.sent(channel: channel, provider: provider, count: sent) }
        if failed > 0 { metrics.failed(channel: channel, provider: provider, count: failed) }
        if retried > 0 { metrics.retried(channel: channel, provider: provider, count: retried) }
        if skipped > 0 { metrics.skipped(channel: channel, provider: provider, count: skipped) }
        if cancelled > 0 { metrics.cancelled(channel: channel, provider: provider, count: cancelled) }
        if handedBack > 0 { metrics.handedBack(channel: channel, provider: provider, count: handedBack) }
    }

    /// The longest pause asked for by rate-limit answers in a batch (Retry-After, else 2 s).
    private func rateLimitPause(_ outcomes: [JobOutcome]) -> Duration? {
        var pause: Duration?
        for outcome in outcomes where outcome.rateLimitedFor != nil {
            pause = max(pause ?? .zero, outcome.rateLimitedFor!)
        }
        return pause
    }

    // MARK: Delivery

    /// The last instant a send of a batch claimed at `claimedAt` may start: late enough to use
    /// most of the lease, early enough that the send times out (``WorkerConfiguration/requestTimeout``)
    /// a second before the lease ends. Past it, another worker may hold the job, so a send
    /// started later could go out twice; such jobs are handed back unsent instead. (With a lease
    /// too short for that margin, the first quarter of the lease is used; `herald worker`
    /// refuses such settings.)
    func sendDeadline(claimedAt: ContinuousClock.Instant) -> ContinuousClock.Instant {
        let window = configuration.lease - configuration.requestTimeout - .seconds(1)
        return claimedAt + max(window, configuration.lease / 4)
    }

    /// Renders every job of a batch, hands all the provider requests to the transport in one
    /// call (one suspension per batch, not a task per message), and turns the answers into
    /// outcomes, in the order of `jobs`. Requests the transport did not start by `deadline` (or
    /// at all, on shutdown) come back as hand-backs, not as attempts.
    private func deliver(_ jobs: [ClaimedJob], _ broadcast: PreparedBroadcast, transport: CurlTransport,
                         startingBy deadline: ContinuousClock.Instant) async -> [JobOutcome] {
        let now = Date()
        var outcomes: [JobOutcome?] = Array(repeating: nil, count: jobs.count)
        var requests: [TransportRequest] = []
        /// Per transport request: its job's index, SMS segments, and the provider request it carries.
        var sends: [(job: Int, segments: Int?, request: ProviderRequest)] = []
        requests.reserveCapacity(jobs.count)
        sends.reserveCapacity(jobs.count)
        var simulated: [(job: Int, segments: Int?, request: ProviderRequest, outcome: DeliveryOutcome)] = []
        var simulatedLatency = Duration.zero
        for (index, job) in jobs.enumerated() {
            switch broadcast.outgoing(for: job, now: now) {
            case .failure(.skip(let reason)):
                outcomes[index] = JobOutcome(messageID: job.messageID, result: .skipped(reason: reason.rawValue))
            case .failure(.fail(let why)):
                outcomes[index] = JobOutcome(messageID: job.messageID, result: .failed(errorCode: nil, error: why, failureKind: nil))
            case .success(let (message, segments)):
                do {
                    let request = try broadcast.channel.request(for: message)
                    switch request {
                    case .http(let http):
                        requests.append(.http(http))
                        sends.append((index, segments, request))
                    case .mail(let mail):
                        requests.append(.smtp(mail.envelope))
                        sends.append((index, segments, request))
                    case .simulated(let latency, let outcome):
                        simulatedLatency = max(simulatedLatency, latency)
                        simulated.append((index, segments, request, outcome))
                    }
                } catch {
                    outcomes[index] = recordable(.permanent(code: nil, message: error.description), job: job,
                                                 broadcast: broadcast, segments: segments, now: now)
                }
            }
        }
        if !simulated.isEmpty {
            // Simulated sends of a batch happen side by side, as real ones would.
            if simulatedLatency > .zero { try? await Task.sleep(for: simulatedLatency) }
            for send in simulated {
                observeLatency(simulatedLatency, broadcast)
                let delivery = broadcast.channel.classify(.simulated(send.outcome), for: send.request, now: now)
                outcomes[send.job] = recordable(delivery, job: jobs[send.job], broadcast: broadcast, segments: send.segments, now: now)
            }
        }
        let answers = await transport.perform(requests, startingBy: deadline)
        // Retry times count from the answer, not from before the batch went out (a batch can
        // take up to the request timeout).
        let answeredAt = Date()
        for (send, answer) in zip(sends, answers) {
            if case .failure(let error) = answer.result, error.isNotStarted {
                outcomes[send.job] = JobOutcome(messageID: jobs[send.job].messageID, result: .handBack, segments: send.segments)
                continue
            }
            observeLatency(answer.elapsed, broadcast)
            let providerAnswer: ProviderAnswer
            switch (send.request, answer.result) {
            case (.mail, .success): providerAnswer = .mailAccepted
            case (_, .success(let response)): providerAnswer = .http(response)
            case (_, .failure(let error)): providerAnswer = .transportFailed(error)
            }
            let delivery = broadcast.channel.classify(providerAnswer, for: send.request, now: answeredAt)
            outcomes[send.job] = recordable(delivery, job: jobs[send.job], broadcast: broadcast, segments: send.segments,
                                            now: answeredAt)
        }
        return outcomes.map { $0! }
    }

    private func observeLatency(_ took: Duration, _ broadcast: PreparedBroadcast) {
        metrics.providerLatency(channel: broadcast.info.channelName, provider: broadcast.info.provider,
                                seconds: Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18)
    }

    /// The outcome to record for a provider's answer, with the channel pause a rate-limit answer asks for.
    private func recordable(_ delivery: DeliveryOutcome, job: ClaimedJob, broadcast: PreparedBroadcast,
                            segments: Int?, now: Date) -> JobOutcome {
        var recorded = JobOutcome(messageID: job.messageID, result: result(of: delivery, job: job, broadcast: broadcast, now: now),
                                  segments: segments)
        if case .retry(_, _, let retryAfter, _, true) = delivery {
            recorded.rateLimitedFor = retryAfter ?? .seconds(2)
        }
        return recorded
    }

    /// Turns a provider's answer into what to record: retries until the channel's `max_attempts`.
    private func result(of outcome: DeliveryOutcome, job: ClaimedJob, broadcast: PreparedBroadcast, now: Date) -> JobOutcome.Result {
        switch outcome {
        case .accepted(let id):
            return .sent(providerMessageID: id)
        case .permanent(let code, let message):
            return .failed(errorCode: code, error: message, failureKind: nil)
        case .retry(let code, let message, let retryAfter, let ambiguous, _):
            let attempt = job.attempts + 1
            let kind = (ambiguous ? FailureKind.ambiguous : .notSent).rawValue
            if ambiguous && !broadcast.channel.policy.retryAmbiguous,
               case .permanent(_, let why) = outcome.applying(retryAmbiguous: false) {
                return .failed(errorCode: code, error: why, failureKind: kind)
            }
            if attempt >= broadcast.channel.policy.maxAttempts {
                return .failed(errorCode: code, error: "\(message) (gave up after \(attempt) attempts)", failureKind: kind)
            }
            var rng = SystemRandomNumberGenerator()
            var delay = configuration.backoff.delay(afterAttempt: attempt, using: &rng)
            if let retryAfter, retryAfter > delay { delay = retryAfter }
            let seconds = Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
            return .retry(at: now.addingTimeInterval(seconds), errorCode: code, error: message, failureKind: kind)
        }
    }
}
