import HeraldPostgres

/// The scheduler's statements for rows it must set aside or check again: broadcasts whose
/// `send_at` can never fall due, and `sending`/`paused` broadcasts the admin tool edited
/// (migration 0008 stamps them). Kept apart from ``SchedulerStore``'s main flow; same guards:
/// every write names the state it expects, so the admin tool's own change always wins.
extension SchedulerStore {
    /// The error written to a `scheduled` broadcast whose `send_at` is `'infinity'`.
    public static let infiniteSendAt = "send_at is 'infinity': the broadcast would never start; set a real time (or null for now)"

    /// Ends as `failed` every `scheduled` broadcast whose `send_at` is `'infinity'` (only rows
    /// older than migration 0008's check can be so): it would never fall due, and `failed` with a
    /// reason shows the mistake where waiting forever would hide it. `send_at` is cleared in the
    /// same write (the error says what it was): migration 0008's check, NOT VALID while such old
    /// rows exist, still applies to every update of the row.
    /// - Returns: the ids failed.
    @discardableResult
    public func failUnreachableSendAt() async throws -> [Int64] {
        let rows = try await connection.query("""
            UPDATE herald.broadcasts SET status = 'failed', error = \(Self.infiniteSendAt), finished_at = now(), send_at = NULL
            WHERE status = 'scheduled' AND send_at = 'infinity'
            RETURNING id
            """)
        return try rows.map { try $0.decode(Int64.self, "id") }
    }

    // MARK: Edits of running broadcasts

    /// A `sending` or `paused` broadcast whose content the admin tool changed (the trigger of
    /// migrations 0012 and 0016 stamped `definition_changed_at`), waiting to be validated again.
    public struct EditedBroadcast: Sendable, Equatable {
        public var id: Int64
        /// The stamp as PostgreSQL prints it, compared as text so that no rounding can make a
        /// newer edit look like this one.
        public var stamp: String
    }

    /// The edited `sending` and `paused` broadcasts (usually none; a partial index finds them).
    public func editedBroadcasts(limit: Int = 100) async throws -> [EditedBroadcast] {
        let rows = try await connection.query("""
            SELECT id, definition_changed_at::text AS stamp
            FROM herald.broadcasts
            WHERE definition_changed_at IS NOT NULL AND status IN ('sending', 'paused')
            ORDER BY id
            LIMIT \(limit)
            """)
        return try rows.map { EditedBroadcast(id: try $0.decode(Int64.self, "id"), stamp: try $0.decode(String.self, "stamp")) }
    }

    /// Accepts an edit that passed validation: clears the stamp, unless a newer edit came meanwhile.
    /// - Returns: false when the stamp had changed (the newer edit is validated next) or was gone.
    @discardableResult
    public func acceptEdit(_ edit: EditedBroadcast) async throws -> Bool {
        try await connection.execute("""
            UPDATE herald.broadcasts SET definition_changed_at = NULL
            WHERE id = \(edit.id) AND definition_changed_at = \(edit.stamp)::timestamptz
            """) == 1
    }

    /// Ends a `sending` or `paused` broadcast whose edit failed validation as `failed` with
    /// `error`, unless a newer edit came meanwhile (that one is validated next). Its unsent
    /// messages end `failed` in the maintenance pass (``endUnsent(limit:)``), which leaves jobs
    /// under a live lease to their worker.
    /// - Returns: false when nothing matched (a newer edit, or the admin tool changed the status).
    @discardableResult
    public func failEdited(_ edit: EditedBroadcast, error: String) async throws -> Bool {
        try await connection.execute("""
            UPDATE herald.broadcasts
            SET status = 'failed', error = \(error), finished_at = now(), definition_changed_at = NULL,
                template_params = CASE WHEN template_params IS NULL OR herald.is_string_array(template_params)
                                       THEN template_params END
            WHERE id = \(edit.id) AND status IN ('sending', 'paused')
              AND definition_changed_at = \(edit.stamp)::timestamptz
            """) == 1
    }
}
