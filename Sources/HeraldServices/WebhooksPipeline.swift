import Foundation
import HeraldCore
import HeraldPostgres
import HeraldProviders
import HeraldStore
import Logging
import ServiceLifecycle
import Synchronization

// MARK: - Channels and their webhook secrets

/// The channels that receive webhooks, with the secrets their settings name, re-read from the
/// database every few seconds (the admin tool may add a channel at any time) and on demand when a
/// request names a secret, phone number or account that is not known yet.
///
/// On-demand refreshes are single-flight (concurrent callers wait for the one in flight) and
/// negatively cached (at most one per ``WebhooksConfiguration/refreshOnDemandAfter``, whether it
/// found anything or failed): a burst of requests naming unknown channels, signed or not, costs
/// the pool one query, not one per request.
final class WebhookDirectory: Sendable {
    struct WhatsApp: Sendable {
        var channelID: Int64
        var phoneNumberID: String
        /// nil: `app_secret_env` unset, or names an unset variable: nothing can be verified.
        var appSecret: String?
        var verifyToken: String?
    }

    struct Twilio: Sendable {
        var channelID: Int64
        var accountSID: String
        /// The URL Twilio signs: `status_callback_url`, else `HERALD_PUBLIC_URL` + `/webhooks/twilio`.
        var callbackURL: String?
        var authToken: String?
    }

    struct Snapshot: Sendable {
        var whatsApp: [WhatsApp] = []
        var twilio: [Twilio] = []
        /// Each distinct app secret once, with the channels that use it.
        var byAppSecret: [(secret: String, channels: [WhatsApp])] = []
        /// Incremented by every successful load: tells a caller whether a refresh brought news.
        var generation = 0

        init() {}

        init(whatsApp: [WhatsApp], twilio: [Twilio], generation: Int) {
            self.whatsApp = whatsApp
            self.twilio = twilio
            self.generation = generation
            var index: [String: Int] = [:]
            for c in whatsApp {
                guard let secret = c.appSecret else { continue }
                if let i = index[secret] {
                    byAppSecret[i].channels.append(c)
                } else {
                    index[secret] = byAppSecret.count
                    byAppSecret.append((secret, [c]))
                }
            }
        }
    }

    private struct Flight {
        var running = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        /// When the last load started (successful or not): the negative cache.
        var attemptedAt: ContinuousClock.Instant?
        var refreshes = 0
    }

    private let state = Mutex(Snapshot())
    private let flight = Mutex(Flight())
    private let problems = Mutex<[Int64: String]>([:])
    private let environment: [String: String]
    private let publicURL: String?
    private let logger: Logger

    init(environment: [String: String], publicURL: String?, logger: Logger) {
        self.environment = environment
        self.publicURL = publicURL
        self.logger = logger
    }

    var snapshot: Snapshot { state.withLock { $0 } }

    /// Database loads so far (tests: a burst must not multiply them).
    var refreshCount: Int { flight.withLock { $0.refreshes } }

    /// Re-reads the channels; with `ifOlderThan`, only when the last attempt is older than that.
    /// When a load is already in flight, waits for it instead of starting another.
    func refresh(pool: PostgresPool, ifOlderThan age: Duration? = nil) async throws {
        enum Role { case fresh, lead, follow }
        let role = flight.withLock { f -> Role in
            if f.running { return .follow }
            if let age, let at = f.attemptedAt, ContinuousClock.now - at < age { return .fresh }
            f.running = true
            f.attemptedAt = .now
            f.refreshes += 1
            return .lead
        }
        switch role {
        case .fresh:
            return
        case .follow:
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let parked = flight.withLock { f -> Bool in
                    guard f.running else { return false }
                    f.waiters.append(c)
                    return true
                }
                if !parked { c.resume() }
            }
        case .lead:
            defer {
                let waiters = flight.withLock { f -> [CheckedContinuation<Void, Never>] in
                    f.running = false
                    defer { f.waiters.removeAll() }
                    return f.waiters
                }
                for w in waiters { w.resume() }
            }
            try await load(pool: pool)
        }
    }

    private func load(pool: PostgresPool) async throws {
        let channels = try await pool.withConnection { try await ReceiptStore().webhookChannels(on: $0) }
        var whatsApp: [WhatsApp] = []
        var twilio: [Twilio] = []
        var found: [Int64: String] = [:]
        // A *_env naming Herald's own configuration is never used as a secret (contract section 1).
        let policy = DestinationPolicy(allowedHostsVariable: nil)
        func secret(_ name: String?, setting: String, channel: Int64) -> String? {
            guard let name else { return nil }
            do {
                try policy.checkSecretVariable(name, setting: setting)
            } catch {
                found[channel] = error.description
                return nil
            }
            return environment[name].flatMap { $0.isEmpty ? nil : $0 }
        }
        for channel in channels {
            do {
                let settings = try SettingsReader(json: channel.settingsJSON)
                switch channel.provider {
                case WhatsAppCloudProvider.name:
                    let s = try WhatsAppCloudSettings(settings)
                    let appSecret = secret(s.appSecretEnv, setting: "app_secret_env", channel: channel.id)
                    let token = secret(s.verifyTokenEnv, setting: "verify_token_env", channel: channel.id)
                    if appSecret == nil, found[channel.id] == nil {
                        found[channel.id] = s.appSecretEnv.map { "environment variable \($0) named by \"app_secret_env\" is not set" }
                            ?? "\"app_secret_env\" is not set: its webhooks cannot be verified"
                    }
                    whatsApp.append(WhatsApp(channelID: channel.id, phoneNumberID: s.phoneNumberID, appSecret: appSecret, verifyToken: token))
                case TwilioProvider.name:
                    let s = try TwilioSettings(settings)
                    let token = secret(s.authTokenEnv, setting: "auth_token_env", channel: channel.id)
                    let url = s.statusCallback(publicURL: publicURL)
                    if token == nil, found[channel.id] == nil {
                        found[channel.id] = "environment variable \(s.authTokenEnv) named by \"auth_token_env\" is not set"
                    } else if url == nil {
                        found[channel.id] = "HERALD_PUBLIC_URL is not set (nor \"status_callback_url\"): Twilio callbacks cannot be verified"
                    }
                    twilio.append(Twilio(channelID: channel.id, accountSID: s.accountSID, callbackURL: url, authToken: token))
                default:
                    break
                }
            } catch {
                found[channel.id] = "\(error)"
            }
        }
        state.withLock { $0 = Snapshot(whatsApp: whatsApp, twilio: twilio, generation: $0.generation + 1) }
        // Log each configuration problem once, not at every refresh.
        let new = problems.withLock { old -> [Int64: String] in
            let new = found.filter { old[$0.key] != $0.value }
            old = found
            return new
        }
        for (id, problem) in new.sorted(by: { $0.key < $1.key }) {
            logger.error("channel cannot verify webhooks", metadata: ["channel.id": "\(id)", "problem": "\(problem)"])
        }
    }
}

// MARK: - A doorbell

/// Wakes a loop when work arrives. Unlike ``Wakeup``, a ring with nobody waiting is remembered,
/// so work submitted between a loop's last look and its wait is never left sitting.
final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    func ring() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.rung = true
            let w = s.waiters
            s.waiters.removeAll()
            return w
        }
        for w in waiters { w.resume() }
    }

    /// Returns at once when rung since the last wait, else at the next ring or after `timeout`.
    func wait(timeout: Duration) async {
        if state.withLock({ s in defer { s.rung = false }; return s.rung }) { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let now = self.state.withLock { s -> Bool in
                        if s.rung || Task.isCancelled { return true }
                        s.waiters.append(c)
                        return false
                    }
                    if now { c.resume() }
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
            // The sleeper is cancelled; release a still-parked waiter by ringing our own bell.
            self.ring()
        }
        state.withLock { $0.rung = false }
    }
}

// MARK: - The pipeline

/// Stores receipts in batches and applies them in batches: the part of `herald webhooks` that
/// keeps up with bursts.
///
/// A request handler calls ``store(_:)``, which returns once its receipts are committed (so a 200
/// means stored: the provider will not need to retry). Meanwhile several writer tasks each take
/// whatever has queued up (up to ``WebhooksConfiguration/maxBatch`` receipts) and insert it in
/// one statement; under load, many requests share a round trip and a commit. The inserted ids go
/// to the applier, which applies everything that arrived since its last pass in one statement,
/// every ``WebhooksConfiguration/applyInterval`` at most, and retries receipts still pending
/// (their message not recorded yet) every ``WebhooksConfiguration/retryInterval``.
///
/// On graceful shutdown the HTTP server stops first (it finishes the requests it holds), then
/// this drains: queued receipts are stored and a last apply pass runs.
final class ReceiptPipeline: Service, Sendable {
    struct Closed: Error, CustomStringConvertible {
        var description: String { "the receipt pipeline is shutting down" }
    }

    private struct Waiting {
        var receipts: [NewReceipt]
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct Queue {
        var waiting: [Waiting] = []
        var stopping = false
    }

    private let configuration: WebhooksConfiguration
    private let pool: PostgresPool
    private let directory: WebhookDirectory
    private let metrics: HeraldMetrics
    private let logger: Logger
    private let store = ReceiptStore()
    private let queue = Mutex(Queue())
    private let toApply = Mutex<[Int64]>([])
    private let writersBell = Doorbell()
    private let applierBell = Doorbell()
    private let writersLeft: Atomic<Int>
    private let stopping = Atomic<Bool>(false)

    init(configuration: WebhooksConfiguration, pool: PostgresPool, directory: WebhookDirectory, metrics: HeraldMetrics, logger: Logger) {
        self.configuration = configuration
        self.pool = pool
        self.directory = directory
        self.metrics = metrics
        self.logger = logger
        self.writersLeft = Atomic(max(1, configuration.writers))
    }

    /// Stores receipts; returns when they are committed.
    /// - Throws: the database's error (the handler answers 503, the provider retries later), or
    ///   ``Closed`` during shutdown.
    func store(_ receipts: [NewReceipt]) async throws {
        guard !receipts.isEmpty else { return }
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let accepted = queue.withLock { q -> Bool in
                if q.stopping { return false }
                q.waiting.append(Waiting(receipts: receipts, continuation: c))
                return true
            }
            if accepted { writersBell.ring() } else { c.resume(throwing: Closed()) }
        }
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for _ in 0..<max(1, configuration.writers) {
                    group.addTask {
                        await self.writer()
                        if self.writersLeft.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { self.applierBell.ring() }
                    }
                }
                group.addTask { await self.applier() }
                group.addTask { await self.maintenance() }
            }
        } onGracefulShutdown: {
            self.stop()
        }
    }

    /// Stops taking receipts; what is queued is still stored.
    func stop() {
        queue.withLock { $0.stopping = true }
        stopping.store(true, ordering: .releasing)
        writersBell.ring()
        applierBell.ring()
    }

    private var isStopping: Bool { stopping.load(ordering: .acquiring) }

    // MARK: Writers

    private func takeBatch() -> (batch: [Waiting], finished: Bool) {
        queue.withLock { q in
            var batch: [Waiting] = []
            var count = 0
            while let first = q.waiting.first, batch.isEmpty || count + first.receipts.count <= configuration.maxBatch {
                batch.append(q.waiting.removeFirst())
                count += first.receipts.count
            }
            if !q.waiting.isEmpty { writersBell.ring() } // more for another writer
            return (batch, q.stopping && batch.isEmpty)
        }
    }

    private func writer() async {
        while true {
            let (batch, finished) = takeBatch()
            if finished || (batch.isEmpty && Task.isCancelled) {
                failRemaining()
                return
            }
            if batch.isEmpty {
                await writersBell.wait(timeout: .milliseconds(250))
                continue
            }
            await write(batch)
        }
    }

    private func write(_ batch: [Waiting]) async {
        let receipts = batch.flatMap(\.receipts)
        do {
            let ids = try await pool.withConnection { try await self.store.insert(receipts, on: $0) }
            for w in batch { w.continuation.resume() }
            for r in receipts { metrics.receipts(provider: r.provider, status: r.status) }
            handOver(ids)
        } catch let error as PostgresError where batch.count > 1 && error.code == .server {
            // One request's data was refused (it should not happen: payloads are sanitized):
            // store each request alone, so only the culprit fails.
            logger.warning("a receipt batch was refused; storing its requests one by one", metadata: ["error": "\(error)"])
            for w in batch { await write([w]) }
        } catch {
            logger.error("cannot store receipts", metadata: ["error": "\(error)", "receipts.count": "\(receipts.count)"])
            for w in batch { w.continuation.resume(throwing: error) }
        }
    }

    private func failRemaining() {
        let left = queue.withLock { q -> [Waiting] in
            let w = q.waiting
            q.waiting.removeAll()
            return w
        }
        for w in left { w.continuation.resume(throwing: Closed()) }
    }

    private func handOver(_ ids: [Int64]) {
        guard !ids.isEmpty else { return }
        toApply.withLock { $0.append(contentsOf: ids) }
        applierBell.ring()
    }

    // MARK: Applier

    private func applier() async {
        var lastRetry = ContinuousClock.now
        var retryCursor: Int64 = 0
        while true {
            let finalPass = isStopping && writersLeft.load(ordering: .acquiring) == 0
            let ids = toApply.withLock { ids -> [Int64] in
                let taken = ids
                ids.removeAll()
                return taken
            }
            var chunkStart = 0
            while chunkStart < ids.count {
                let chunk = Array(ids[chunkStart..<min(ids.count, chunkStart + configuration.maxApplyBatch)])
                chunkStart += chunk.count
                await applyNow(chunk)
            }
            if ContinuousClock.now - lastRetry >= configuration.retryInterval || finalPass {
                lastRetry = .now
                retryCursor = await retryPending(after: retryCursor)
            }
            if finalPass || Task.isCancelled { return }
            // Let a batch gather, then wait for work (or the next retry pass).
            if !ids.isEmpty { try? await Task.sleep(for: configuration.applyInterval) }
            await applierBell.wait(timeout: configuration.retryInterval)
        }
    }

    private func applyNow(_ ids: [Int64]) async {
        do {
            let result = try await pool.withConnection { try await self.store.apply(ids: ids, on: $0) }
            metrics.receiptsApplied(count: result.applied)
        } catch {
            // The receipts are stored; the retry pass applies them later.
            logger.warning("cannot apply receipts now; retrying later", metadata: ["error": "\(error)", "receipts.count": "\(ids.count)"])
        }
    }

    /// One retry pass over pending receipts, round robin by id so a pile of receipts that never
    /// match cannot starve newer ones. Returns the cursor for the next pass.
    private func retryPending(after cursor: Int64) async -> Int64 {
        do {
            let result = try await pool.withConnection {
                try await self.store.applyPending(after: cursor, olderThan: .milliseconds(500),
                                                  window: self.configuration.pendingWindow,
                                                  limit: self.configuration.maxApplyBatch, on: $0)
            }
            metrics.receiptsApplied(count: result.applied)
            return result.examined < configuration.maxApplyBatch ? 0 : (result.lastID ?? 0)
        } catch {
            logger.warning("cannot apply pending receipts; retrying later", metadata: ["error": "\(error)"])
            return cursor
        }
    }

    // MARK: Maintenance

    /// Keeps the channel directory fresh and folds the report counters.
    private func maintenance() async {
        var lastCompaction = ContinuousClock.now
        while !isStopping && !Task.isCancelled {
            do {
                try await directory.refresh(pool: pool, ifOlderThan: configuration.channelRefresh)
            } catch {
                logger.warning("cannot refresh webhook channels", metadata: ["error": "\(error)"])
            }
            if ContinuousClock.now - lastCompaction >= configuration.compactInterval {
                lastCompaction = .now
                do {
                    _ = try await pool.withConnection { try await ReportStore().compactCounts(on: $0) }
                } catch {
                    logger.debug("cannot compact report counters", metadata: ["error": "\(error)"])
                }
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }
}
