import Foundation
import HeraldPostgres
import HeraldStore
import Logging

/// How long finished broadcasts keep their messages, and how fast old ones are removed.
public struct HistoryRetention: Sendable, Equatable {
    /// Messages of broadcasts finished longer ago than this are deleted.
    public var retention: Duration
    /// Messages deleted per step (one short transaction).
    public var batchSize: Int

    public static let defaultBatchSize = 5_000

    public init(retention: Duration, batchSize: Int = HistoryRetention.defaultBatchSize) {
        self.retention = retention
        self.batchSize = max(1, batchSize)
    }

    /// From `HERALD_HISTORY_RETENTION_DAYS` (unset or empty: keep everything, nil) and
    /// `HERALD_HISTORY_PRUNE_BATCH`.
    /// - Throws: ``HistoryRetentionError`` naming the variable when a value is not a positive integer.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> HistoryRetention? {
        guard let days = environment["HERALD_HISTORY_RETENTION_DAYS"], !days.isEmpty else { return nil }
        guard let d = Int(days), d >= 1 else { throw HistoryRetentionError(variable: "HERALD_HISTORY_RETENTION_DAYS", value: days) }
        var batch = defaultBatchSize
        if let text = environment["HERALD_HISTORY_PRUNE_BATCH"], !text.isEmpty {
            guard let b = Int(text), b >= 1 else { throw HistoryRetentionError(variable: "HERALD_HISTORY_PRUNE_BATCH", value: text) }
            batch = b
        }
        return HistoryRetention(retention: .seconds(d * 86_400), batchSize: batch)
    }
}

public struct HistoryRetentionError: Error, CustomStringConvertible {
    public var variable: String
    public var value: String
    public var description: String { "\(variable) must be a positive integer, not \"\(value)\"" }
}

/// Lets old history leave `herald.messages` without hurting the send path: the scheduler's
/// leader calls ``step(on:logger:)`` once per maintenance tick (every second), and each step
/// deletes at most one batch (default 5,000 messages, one short transaction) of the oldest
/// finished broadcast past the retention, so the prune costs a bounded share of the database
/// and never holds a lock a worker or a receipt waits on for long (finished broadcasts have no
/// jobs). The broadcast's counts stay in `broadcast_report`; see migration 0010 for the design and
/// BENCHMARKS.md for its measured cost. Off unless `HERALD_HISTORY_RETENTION_DAYS` is set.
public struct HistoryPruner: Sendable {
    public let retention: HistoryRetention?
    private let store = HistoryStore()

    public init(retention: HistoryRetention?) {
        self.retention = retention
    }

    /// The scheduler's pruner, configured once from the environment; a bad value disables it and
    /// says so once on standard error.
    public static let fromEnvironment: HistoryPruner = {
        do {
            return HistoryPruner(retention: try HistoryRetention.fromEnvironment())
        } catch {
            FileHandle.standardError.write(Data("herald: history prune disabled: \(error)\n".utf8))
            return HistoryPruner(retention: nil)
        }
    }()

    /// One step: deletes up to one batch of the next broadcast's messages.
    /// - Returns: messages deleted (0 when nothing is due or pruning is off).
    @discardableResult
    public func step(on connection: PostgresConnection, logger: Logger) async throws -> Int {
        guard let retention else { return 0 }
        let seconds = Double(retention.retention.components.seconds)
        guard let broadcast = try await store.nextBroadcastToPrune(retentionSeconds: seconds, on: connection) else { return 0 }
        let deleted = try await store.pruneMessages(of: broadcast, limit: retention.batchSize, on: connection)
        if deleted < retention.batchSize {
            try await store.markPruned(broadcast, on: connection)
            logger.info("pruned a finished broadcast's messages", metadata: ["broadcast.id": "\(broadcast)"])
        }
        return deleted
    }
}
