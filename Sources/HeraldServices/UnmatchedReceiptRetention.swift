import Foundation
import HeraldPostgres
import HeraldStore
import Logging

/// How long receipts that never matched a message are kept, and the leader chore that deletes
/// older ones (``ReceiptStore/deleteUnmatched(olderThan:limit:on:)``).
///
/// Set by `HERALD_UNMATCHED_RECEIPT_RETENTION_DAYS` (a positive number of days, default 30).
/// Receipts that matched their message are never deleted: analysts read them.
///
/// The scheduler's leader calls ``prune(on:logger:)`` from its maintenance (a few seconds apart is
/// fine: with nothing old to delete it is one empty index range scan).
public struct UnmatchedReceiptRetention: Sendable, Equatable {
    public static let variable = "HERALD_UNMATCHED_RECEIPT_RETENTION_DAYS"
    public static let defaultDays = 30.0

    /// Unmatched receipts older than this are deleted.
    public var retention: Duration
    /// Rows deleted per statement, and statements per call at most (so one call stays short).
    public var batch: Int = 10_000
    public var maxBatches: Int = 10

    public init(retention: Duration = .seconds(defaultDays * 86_400)) {
        self.retention = retention
    }

    /// Reads ``variable``; an unset, empty, non-numeric or non-positive value is the default.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let days = environment[Self.variable].flatMap(Double.init).flatMap { $0 > 0 && $0.isFinite ? $0 : nil } ?? Self.defaultDays
        self.init(retention: .seconds(days * 86_400))
    }

    /// Deletes unmatched receipts older than ``retention``, a bounded number per call.
    /// - Returns: how many were deleted.
    @discardableResult
    public func prune(on connection: PostgresConnection, logger: Logger) async throws -> Int {
        var deleted = 0
        for _ in 0..<maxBatches {
            let n = try await ReceiptStore().deleteUnmatched(olderThan: retention, limit: batch, on: connection)
            deleted += n
            if n < batch { break }
        }
        if deleted > 0 { logger.debug("deleted old unmatched receipts", metadata: ["receipts.count": "\(deleted)"]) }
        return deleted
    }
}
