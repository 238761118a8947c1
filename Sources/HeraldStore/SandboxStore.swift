import HeraldPostgres

/// What the sandbox's receipt emitter reads: the messages its channels accepted and that have no
/// receipt yet. A real provider knows what it accepted; the sandbox keeps no state of its own, so
/// it asks Herald's table (the emitter is a test and demo double, never part of sending).
public struct SandboxStore: Sendable {
    /// A message the sandbox accepted.
    public struct SentMessage: Sendable, Equatable {
        public var id: Int64
        public var channelID: Int64
        /// `sandbox-{id}`, as the send recorded it.
        public var providerMessageID: String
    }

    public init() {}

    /// Messages of `channels` with an id above `floor`, still `sent` (accepted, no receipt applied
    /// yet), except `excluding` (receipts already posted), lowest ids first.
    ///
    /// `floor` keeps this a primary-key range scan of the run's messages (there is no index by
    /// channel or status): pass the highest message id from before the run.
    public func sent(channels: [Int64], above floor: Int64, excluding: [Int64], limit: Int,
                     on connection: PostgresConnection) async throws -> [SentMessage] {
        try await connection.query("""
            SELECT id, channel_id, provider_message_id FROM herald.messages
            WHERE id > \(floor) AND channel_id = ANY(\(channels)::bigint[]) AND status = 'sent'
              AND provider_message_id IS NOT NULL AND id <> ALL(\(excluding)::bigint[])
            ORDER BY id LIMIT \(limit)
            """).map { r in
            SentMessage(id: try r.decode(Int64.self, "id"), channelID: try r.decode(Int64.self, "channel_id"),
                        providerMessageID: try r.decode(String.self, "provider_message_id"))
        }
    }

    /// The highest message id so far (0 when there is none): a floor for ``sent(channels:above:excluding:limit:on:)``.
    public func highestMessageID(on connection: PostgresConnection) async throws -> Int64 {
        try await connection.query("SELECT coalesce(max(id), 0)::bigint AS highest FROM herald.messages")[0].decode(Int64.self, "highest")
    }
}
