import HeraldCore
import HeraldPostgres

/// The audience of one chunk and its eligibility, as SQL: the one definition that expansion
/// (``SchedulerStore/expandChunk(of:channelID:eligibility:previousCursor:low:high:)``) and
/// `herald preview` (``PreviewStore/candidates(of:eligibility:low:high:attributeKeys:)``) both
/// build their statements from, so what preview predicts and what expansion writes cannot drift.
extension SchedulerStore {
    /// The CTEs `audience` (distinct contact ids of the broadcast's groups and picked contacts with
    /// ids in `low...high`) and `opted_out` (contacts of that range opted out of the channel's
    /// kind), as the start of a `WITH` list: the caller continues with `, next_cte AS (…)`.
    ///
    /// A statement built on it selects from `audience au JOIN herald.contacts c` with
    /// ``addressSQL`` and `LEFT JOIN opted_out o`, and classifies rows with ``skipReasonSQL(_:)``.
    static func audienceCTEs(of id: Int64, eligibility: Eligibility, low: Int64, high: Int64) -> PostgresQuery {
        """
        WITH audience AS (
            SELECT gm.contact_id
            FROM herald.broadcast_groups bg
            JOIN herald.group_members gm ON gm.group_id = bg.group_id
            WHERE bg.broadcast_id = \(id) AND gm.contact_id BETWEEN \(low) AND \(high)
            UNION
            SELECT bc.contact_id
            FROM herald.broadcast_contacts bc
            WHERE bc.broadcast_id = \(id) AND bc.contact_id BETWEEN \(low) AND \(high)
        ), opted_out AS (
            SELECT DISTINCT o.contact_id
            FROM herald.opt_outs o
            WHERE o.channel_kind = \(eligibility.kind.rawValue) AND o.contact_id BETWEEN \(low) AND \(high)
        )
        """
    }

    /// The `FROM` items after `audience au`: the contact `c`, its address `a.address` for the
    /// channel's kind (`email` for email, `phone` otherwise) and its opt-out `o`.
    static func audienceJoinsSQL(_ eligibility: Eligibility) -> String {
        """
        JOIN herald.contacts c ON c.id = au.contact_id
        CROSS JOIN LATERAL (SELECT \(eligibility.kind == .email ? "c.email" : "c.phone") AS address) a
        LEFT JOIN opted_out o ON o.contact_id = c.id
        """
    }
}

extension PostgresQuery {
    /// `parts` as one statement, each part's `$n` placeholders renumbered after the binds of the
    /// parts before it. Only for Herald's own SQL text, where `$` followed by a digit is always a
    /// placeholder (no dollar quoting, no `$1` inside string literals).
    static func joined(_ parts: [PostgresQuery]) -> PostgresQuery {
        var sql = ""
        var binds: [String?] = []
        for part in parts {
            let offset = binds.count
            var text = Substring(part.sql)
            while let dollar = text.firstIndex(of: "$") {
                sql += text[..<dollar]
                let digits = text[text.index(after: dollar)...].prefix(while: \.isNumber)
                if let n = Int(digits) {
                    sql += "$\(n + offset)"
                } else {
                    sql += "$"
                }
                text = text[text.index(after: dollar)...].dropFirst(digits.count)
            }
            sql += text
            binds += part.binds
        }
        return PostgresQuery(unsafeSQL: sql, binds: binds)
    }
}
