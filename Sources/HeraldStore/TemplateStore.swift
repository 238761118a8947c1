import Foundation
import HeraldCore
import HeraldPostgres

/// Every SQL statement that keeps `templates` in step with Meta (contract section 4): the sync's
/// upsert and the status webhook's update. Rows are never deleted (broadcasts refer to them).
public struct TemplateStore: Sendable {
    public init() {}

    /// What one channel's sync changed.
    public struct SyncCounts: Sendable, Equatable {
        public var inserted = 0
        public var updated = 0
        /// Rows Meta no longer lists, now `disabled`.
        public var disabled = 0
        public init(inserted: Int = 0, updated: Int = 0, disabled: Int = 0) {
            self.inserted = inserted
            self.updated = updated
            self.disabled = disabled
        }
    }

    /// The `whatsapp` channels, or the one named `name` whatever its kind (the caller says
    /// what is wrong with it), in name order.
    public func whatsAppChannels(named name: String?, on connection: PostgresConnection) async throws -> [ChannelRow] {
        try await connection.query("""
            SELECT id, name, kind, provider, settings::text AS settings, enabled FROM herald.channels
            WHERE CASE WHEN \(name)::text IS NULL THEN kind = 'whatsapp' ELSE name = \(name)::text END
            ORDER BY name
            """).map { try ChannelRow($0) }
    }

    /// Brings a channel's `templates` in step with Meta's complete list, in one transaction:
    /// a row whose Meta id now has another name or language is renamed (never duplicated); each
    /// listed template is inserted or, when something differs, updated (matched by channel, name
    /// and language); a row Meta no longer lists becomes `disabled` with a `status_reason`
    /// saying so. A paused or disabled row keeps its reason (from the webhook) while Meta's list
    /// gives none and its status stays the same.
    ///
    /// - Parameter templates: the whole list; each (name, language) at most once.
    public func sync(channelID: Int64, templates: [MetaTemplate], on connection: PostgresConnection) async throws -> SyncCounts {
        let names = templates.map(\.name), languages = templates.map(\.language), bodies = templates.map(\.body)
        let statuses = templates.map(\.status.rawValue), categories = templates.map(\.category)
        let headerFormats = templates.map(\.headerFormat.rawValue), headerTexts = templates.map(\.headerText)
        let buttons = templates.map(\.buttonsJSON), ids = templates.map { $0.id.isEmpty ? nil : $0.id }, reasons = templates.map(\.reason)
        return try await connection.transaction { c in
            let renamed = try c.query("""
                UPDATE herald.templates x SET name = t.name, language = t.language
                FROM unnest(\(ids)::text[], \(names)::text[], \(languages)::text[]) AS t(meta_id, name, language)
                WHERE x.channel_id = \(channelID) AND t.meta_id IS NOT NULL AND x.meta_template_id = t.meta_id
                  AND (x.name, x.language) <> (t.name, t.language)
                  AND NOT EXISTS (SELECT 1 FROM herald.templates y
                                  WHERE y.channel_id = \(channelID) AND y.name = t.name AND y.language = t.language)
                RETURNING x.id
                """).map { try $0.decode(Int64.self, "id") }
            let rows = try c.query("""
                WITH before AS (
                    SELECT id, status FROM herald.templates WHERE channel_id = \(channelID)
                ), t AS (
                    SELECT * FROM unnest(\(names)::text[], \(languages)::text[], \(bodies)::text[], \(statuses)::text[],
                                         \(categories)::text[], \(headerFormats)::text[], \(headerTexts)::text[],
                                         \(buttons)::text[], \(ids)::text[], \(reasons)::text[])
                        AS t(name, language, body, status, category, header_format, header_text, buttons, meta_id, reason)
                ), upserted AS (
                    INSERT INTO herald.templates AS x (channel_id, name, language, body, status, category, header_format,
                                                       header_text, buttons, meta_template_id, status_reason)
                    SELECT \(channelID), name, language, body, status, category, header_format, header_text, buttons::jsonb,
                           meta_id, reason
                    FROM t
                    ON CONFLICT (channel_id, name, language) DO UPDATE SET
                        body = EXCLUDED.body, status = EXCLUDED.status, category = EXCLUDED.category,
                        header_format = EXCLUDED.header_format, header_text = EXCLUDED.header_text,
                        buttons = EXCLUDED.buttons, meta_template_id = EXCLUDED.meta_template_id,
                        status_reason = CASE WHEN EXCLUDED.status_reason IS NOT NULL THEN EXCLUDED.status_reason
                                             WHEN EXCLUDED.status = x.status AND x.status IN ('paused', 'disabled', 'rejected')
                                                 THEN x.status_reason END
                    WHERE (x.body, x.status, x.category, x.header_format, x.header_text, x.buttons, x.meta_template_id)
                              IS DISTINCT FROM
                          (EXCLUDED.body, EXCLUDED.status, EXCLUDED.category, EXCLUDED.header_format, EXCLUDED.header_text,
                           EXCLUDED.buttons, EXCLUDED.meta_template_id)
                       OR x.status_reason IS DISTINCT FROM
                          CASE WHEN EXCLUDED.status_reason IS NOT NULL THEN EXCLUDED.status_reason
                               WHEN EXCLUDED.status = x.status AND x.status IN ('paused', 'disabled', 'rejected')
                                   THEN x.status_reason END
                    RETURNING x.id, (xmax = 0) AS inserted, x.name, x.language, x.status, x.status_reason
                ), gone AS (
                    UPDATE herald.templates x SET status = 'disabled', status_reason = 'no longer listed by Meta'
                    WHERE x.channel_id = \(channelID) AND x.status <> 'disabled'
                      AND NOT EXISTS (SELECT 1 FROM t WHERE t.name = x.name AND t.language = x.language)
                    RETURNING x.id, x.name, x.language, x.status, x.status_reason
                ), paused AS (
                    \(unescaped: Self.pauseBroadcasts(of: "(SELECT id, name, language, status, status_reason FROM upserted UNION ALL SELECT id, name, language, status, status_reason FROM gone)"))
                )
                SELECT id, CASE WHEN inserted THEN 'inserted' ELSE 'updated' END AS change FROM upserted
                UNION ALL SELECT id, 'disabled' FROM gone
                """)
            var counts = SyncCounts()
            var updated = Set(renamed)
            for r in rows {
                switch try r.decode(String.self, "change") {
                case "inserted": counts.inserted += 1
                case "updated": updated.insert(try r.decode(Int64.self, "id"))
                default: counts.disabled += 1
                }
            }
            counts.updated = updated.count
            return counts
        }
    }

    /// Applies one `message_template_status_update`: the template of a channel among
    /// `channelIDs` whose `waba_id` is `wabaID`, found by Meta's template id or else by name and
    /// language, takes `status` and `reason` (nil clears it).
    /// - Returns: rows changed.
    @discardableResult
    public func applyStatus(_ status: TemplateStatus, reason: String?, wabaID: String, metaTemplateID: String?,
                            name: String?, language: String?, channelIDs: [Int64],
                            on connection: PostgresConnection) async throws -> Int {
        guard !channelIDs.isEmpty else { return 0 }
        return try await connection.query("""
            WITH before AS (
                SELECT x.id, x.status FROM herald.templates x JOIN herald.channels c ON c.id = x.channel_id
                WHERE c.id = ANY(\(channelIDs)::bigint[])
            ), changed AS (
            UPDATE herald.templates x
            SET status = \(status.rawValue), status_reason = \(reason),
                meta_template_id = coalesce(x.meta_template_id, \(metaTemplateID)::text)
            FROM herald.channels c
            WHERE c.id = ANY(\(channelIDs)::bigint[]) AND c.kind = 'whatsapp'
              AND btrim(c.settings->>'waba_id') = \(wabaID) AND x.channel_id = c.id
              AND (x.meta_template_id = \(metaTemplateID)::text
                   OR (x.name = \(name)::text AND x.language = \(language)::text
                       AND (x.meta_template_id IS NULL OR \(metaTemplateID)::text IS NULL)))
              AND (x.status, x.status_reason) IS DISTINCT FROM (\(status.rawValue)::text, \(reason)::text)
            RETURNING x.id, x.name, x.language, x.status, x.status_reason
            ), paused AS (
                \(unescaped: Self.pauseBroadcasts(of: "changed"))
            )
            SELECT count(*)::int AS changed FROM changed
            """)[0].decode(Int.self, "changed")
    }

    /// A data-modifying CTE body: the `sending` broadcasts of the templates in `changedTemplates`
    /// (a relation with `id, name, language, status, status_reason`) that have just become
    /// `paused` or `disabled` (their status in the CTE `before` was another) are set `paused`
    /// with the reason in `error` (contract section 4: Meta paused or disabled the broadcast's
    /// template), so they stop before Meta refuses their sends one by one. Only from `sending`:
    /// a broadcast the admin tool paused, cancelled or resumed meanwhile is left as it is.
    static func pauseBroadcasts(of changedTemplates: String) -> String {
        """
        UPDATE herald.broadcasts b
        SET status = 'paused',
            error = format('Meta %s the template %s (%s)%s; resume the broadcast once Meta approves the template again',
                           s.status, s.name, s.language, coalesce(': ' || s.status_reason, ''))
        FROM \(changedTemplates) s
        LEFT JOIN before ON before.id = s.id
        WHERE b.template_id = s.id AND b.status = 'sending' AND s.status IN ('paused', 'disabled')
          AND before.status IS DISTINCT FROM s.status
        RETURNING b.id
        """
    }
}
