import Foundation
import HeraldCore
import HeraldPostgres
import HeraldProviders
import HeraldStore
import Logging
import ServiceLifecycle
import Synchronization

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
    private let writersBell = Wakeup()
    private let applierBell = Wakeup()
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
            if accepted { writersBell.signal() } else { c.resume(throwing: Closed()) }
        }
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for _ in 0..<max(1, configuration.writers) {
                    group.addTask {
                        await self.writer()
                        if self.writersLeft.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { self.applierBell.signal() }
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
        writersBell.signal()
        applierBell.signal()
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
            if !q.waiting.isEmpty { writersBell.signal() } // more for another writer
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
        applierBell.signal()
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
