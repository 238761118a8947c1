import HeraldPostgres

/// The statements that let old history leave `herald.messages` (migration 0010).
public struct HistoryStore: Sendable {
    public init() {}

    /// The finished broadcast (completed, cancelled, failed) whose history is due to go, oldest
    /// first: finished more than `retentionSeconds` ago, not pruned yet, with no job left (a
    /// cancelled broadcast's job under a live lease still belongs to its worker).
    public func nextBroadcastToPrune(retentionSeconds: Double, on connection: PostgresConnection) async throws -> Int64? {
        try await connection.query("""
            SELECT b.id FROM herald.broadcasts b
            WHERE b.history_pruned_at IS NULL AND b.status IN ('completed', 'cancelled', 'failed')
              AND coalesce(b.finished_at, b.created_at) < now() - make_interval(secs => \(retentionSeconds))
              AND NOT EXISTS (SELECT 1 FROM herald.jobs j WHERE j.broadcast_id = b.id)
            ORDER BY coalesce(b.finished_at, b.created_at)
            LIMIT 1
            """).first?.decode(Int64.self, "id")
    }

    /// Deletes up to `limit` messages of one broadcast, keeping its counts in `broadcast_report`.
    /// - Returns: how many were deleted; fewer than `limit` means none is left.
    public func pruneMessages(of broadcast: Int64, limit: Int, on connection: PostgresConnection) async throws -> Int {
        try await connection.query("SELECT herald.prune_broadcast_messages(\(broadcast), \(limit)) AS pruned")[0].decode(Int.self, "pruned")
    }

    /// Records that a broadcast's messages are gone, so it is not looked at again.
    public func markPruned(_ broadcast: Int64, on connection: PostgresConnection) async throws {
        try await connection.execute("UPDATE herald.broadcasts SET history_pruned_at = now() WHERE id = \(broadcast)")
    }
}
