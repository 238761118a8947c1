import HeraldCore
import HeraldPostgres

/// What validation reads of a due broadcast, and failing a broadcast that cannot be sent.
extension SchedulerStore {
    // MARK: Validation input

    /// A broadcast with its channel and template, as validation needs them.
    public struct BroadcastDefinition: Sendable {
        public var id: Int64
        public var name: String
        public var channelID: Int64
        public var subject: String?
        public var body: String?
        public var htmlBody: String?
        public var templateID: Int64?
        /// `template_params` as JSON text, nil when the column is null.
        public var templateParams: String?
        /// Nil when the channel row does not exist.
        public var channel: ChannelRow?
        /// Nil when there is no `template_id` or the template row does not exist.
        public var template: Template?
        /// Rows of `broadcast_groups` and `broadcast_contacts`.
        public var groupCount: Int
        public var pickedCount: Int
        /// Items of `media` (0 when null).
        public var mediaCount: Int = 0
        /// The broadcast's delivery timing columns.
        public var timing: Timing = Timing()

        /// `send_window`, `local_send_at` and `time_zone` (the contract's "Delivery timing").
        public struct Timing: Sendable, Equatable {
            /// `send_window` as JSON text (its shape is checked by the table), nil when null.
            public var sendWindow: String?
            public var localSendAt: Bool
            /// `time_zone`, nil when null (UTC).
            public var timeZone: String?
            /// Whether PostgreSQL knows `time_zone` (true when it is null).
            public var timeZoneKnown: Bool

            public init(sendWindow: String? = nil, localSendAt: Bool = false, timeZone: String? = nil, timeZoneKnown: Bool = true) {
                self.sendWindow = sendWindow
                self.localSendAt = localSendAt
                self.timeZone = timeZone
                self.timeZoneKnown = timeZoneKnown
            }
        }

        /// `template_header_params`, `template_button_params` and `media` as JSON text (nil when null).
        public var templateHeaderParams: String? = nil
        public var templateButtonParams: String? = nil
        public var media: String? = nil

        public struct Template: Sendable {
            public var id: Int64
            public var channelID: Int64
            public var name: String
            public var language: String
            public var status: String
            public var body: String
            /// `header_format` as stored (a ``TemplateHeaderFormat`` spelling; validation reads it).
            public var headerFormat = TemplateHeaderFormat.none.rawValue
            /// Items of `buttons` (0 when null).
            public var buttonCount: Int = 0
            /// `header_text` (with `{{1}}` when the header takes a value).
            public var headerText: String? = nil
            /// `buttons` as JSON text.
            public var buttons: String? = nil
        }
    }

    /// Loads a broadcast for validation; nil when its status is not one of `statuses`
    /// (by default: no longer `scheduled`; nil: any status, as `herald preview` looks at drafts too).
    public func definition(of id: Int64, statuses: [String]? = ["scheduled"]) async throws -> BroadcastDefinition? {
        let rows = try await connection.query("""
            SELECT b.id, b.name, b.channel_id, b.subject, b.body, b.html_body, b.template_id,
                   b.template_params::text AS template_params,
                   c.id AS c_id, c.name AS c_name, c.kind AS c_kind, c.provider AS c_provider,
                   c.settings::text AS c_settings, c.enabled AS c_enabled,
                   t.id AS found_template_id, t.channel_id AS template_channel_id, t.name AS template_name,
                   t.language AS template_language, t.status AS template_status, t.body AS template_body,
                   (SELECT count(*) FROM herald.broadcast_groups bg WHERE bg.broadcast_id = b.id) AS group_count,
                   (SELECT count(*) FROM herald.broadcast_contacts bc WHERE bc.broadcast_id = b.id) AS picked_count,
                   coalesce(jsonb_array_length(b.media), 0) AS media_items,
                   t.header_format, coalesce(jsonb_array_length(t.buttons), 0) AS template_buttons,
                   b.send_window::text AS send_window, b.local_send_at, b.time_zone,
                   (b.time_zone IS NULL OR herald.time_zone_known(b.time_zone)) AS time_zone_known,
                   t.header_text, t.buttons::text AS buttons_json,
                   b.template_header_params::text AS template_header_params,
                   b.template_button_params::text AS template_button_params, b.media::text AS media
            FROM herald.broadcasts b
            LEFT JOIN herald.channels c ON c.id = b.channel_id
            LEFT JOIN herald.templates t ON t.id = b.template_id
            WHERE b.id = \(id) AND (\(statuses)::text[] IS NULL OR b.status = ANY(\(statuses)::text[]))
            """)
        guard let row = rows.first else { return nil }
        let channel = try row.decode(Int64?.self, "c_id") == nil ? nil : try ChannelRow(row, prefix: "c_")
        var template: BroadcastDefinition.Template?
        if let templateID = try row.decode(Int64?.self, "found_template_id") {
            template = .init(id: templateID, channelID: try row.decode(Int64.self, "template_channel_id"),
                             name: try row.decode(String.self, "template_name"),
                             language: try row.decode(String.self, "template_language"), status: try row.decode(String.self, "template_status"),
                             body: try row.decode(String.self, "template_body"),
                             headerFormat: try row.decode(String.self, "header_format"),
                             buttonCount: try row.decode(Int.self, "template_buttons"),
                             headerText: try row.decode(String?.self, "header_text"),
                             buttons: try row.decode(String?.self, "buttons_json"))
        }
        return BroadcastDefinition(
            id: try row.decode(Int64.self, "id"), name: try row.decode(String.self, "name"),
            channelID: try row.decode(Int64.self, "channel_id"), subject: try row.decode(String?.self, "subject"),
            body: try row.decode(String?.self, "body"), htmlBody: try row.decode(String?.self, "html_body"),
            templateID: try row.decode(Int64?.self, "template_id"), templateParams: try row.decode(String?.self, "template_params"),
            channel: channel, template: template,
            groupCount: try row.decode(Int.self, "group_count"), pickedCount: try row.decode(Int.self, "picked_count"),
            mediaCount: try row.decode(Int.self, "media_items"),
            timing: .init(sendWindow: try row.decode(String?.self, "send_window"), localSendAt: try row.decode(Bool.self, "local_send_at"),
                          timeZone: try row.decode(String?.self, "time_zone"), timeZoneKnown: try row.decode(Bool.self, "time_zone_known")),
            templateHeaderParams: try row.decode(String?.self, "template_header_params"),
            templateButtonParams: try row.decode(String?.self, "template_button_params"),
            media: try row.decode(String?.self, "media"))
    }

    /// Ends a `scheduled` broadcast as `failed` with `error`.
    ///
    /// A row written before migration 0008 may hold values its checks (NOT VALID while such rows
    /// exist) refuse on any update, which would make failing it impossible: such a
    /// `template_params` or infinite `send_at` is cleared in the same write and named in `error`.
    ///
    /// Normally nothing was expanded yet. If an interrupted expansion had already written some
    /// messages (validation runs again when it resumes, and the admin tool may have changed the
    /// channel meanwhile), the same statement deletes their jobs and ends their queued messages as
    /// `failed` with `broadcast failed: <error>` (as ``endUnsent(limit:)`` does), so nothing of a
    /// failed broadcast lingers in the queue. A broadcast whose expansion is under way (`sending`
    /// or `paused` past its first chunk, `expanded_at` null: streaming) is failed the same way;
    /// its jobs under a live lease are left to their workers, and maintenance ends the rest once
    /// those leases lapse.
    /// - Returns: false when the broadcast was no longer `scheduled` or being expanded (the admin
    ///   tool's change wins).
    @discardableResult
    public func fail(_ id: Int64, error: String) async throws -> Bool {
        let rows = try await connection.query("""
            WITH failed AS (
                UPDATE herald.broadcasts
                SET status = 'failed', finished_at = now(),
                    error = \(error) || CASE WHEN template_params IS NULL OR herald.is_string_array(template_params)
                                                  OR strpos(\(error), 'template_params') > 0 THEN ''
                                             ELSE ' (template_params ' || left(template_params::text, 200) || ' cleared: not an array of strings)' END
                                     || CASE WHEN send_at IS NULL OR isfinite(send_at) OR strpos(\(error), 'send_at') > 0 THEN ''
                                             ELSE ' (send_at ' || send_at::text || ' cleared)' END,
                    template_params = CASE WHEN template_params IS NULL OR herald.is_string_array(template_params)
                                           THEN template_params END,
                    send_at = CASE WHEN isfinite(send_at) THEN send_at END
                WHERE id = \(id) AND (status = 'scheduled' OR (status IN ('sending', 'paused') AND expanded_at IS NULL AND expansion_cursor IS NOT NULL))
                RETURNING id, error
            ), gone AS (
                DELETE FROM herald.jobs j USING failed f
                WHERE j.broadcast_id = f.id AND NOT (j.lease_owner IS NOT NULL AND j.run_at > now())
                RETURNING j.message_id
            ), ended AS (
                UPDATE herald.messages m
                SET status = 'failed', error = 'broadcast failed: ' || f.error, failed_at = now()
                FROM gone g, failed f
                WHERE m.id = g.message_id AND m.status = 'queued'
            )
            SELECT count(*) AS failed FROM failed
            """)
        return try rows[0].decode(Int.self, "failed") == 1
    }
}
