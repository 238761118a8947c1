import Foundation
import HeraldPostgres
import HeraldStore
import HeraldTesting
import Testing

/// Recording outcomes must cost the same per outcome whatever the batch. A plan that scans
/// `jobs` and probes the batch once per job is quadratic: with thousands of sends in flight it
/// took 75 ms a statement and made PostgreSQL the bottleneck (BENCHMARKS.md, "The record
/// statement's plan").
@Suite("Queue: recording outcomes never probes the batch once per job")
struct RecordPlanTests {
    @Test("with statistics that say the worker holds no job, 1,500 outcomes of a short queue are joined through the key, never by a loop over the batch")
    func noLoopOverTheBatch() async throws {
        try await WorkerFixtures.withSandboxBroadcast(to: 30000, channel: "recorded") { db, c, channel, _, b in
            // A queue that was long and is short now (the tail of a broadcast): the table keeps
            // its pages, and statistics taken while no job was leased make
            // `lease_owner = 'w1'` look like one row.
            try await c.execute("DELETE FROM herald.jobs WHERE message_id > (SELECT min(message_id) + 2999 FROM herald.jobs)")
            try await c.execute("ANALYZE herald.jobs")
            let store = QueueStore()
            var claimed: [ClaimedJob] = []
            while claimed.count < 3000 {
                let claim = try await store.claim(on: c, broadcastID: b, channelID: channel, kind: .sms, limit: 200,
                                                  scanLimit: 200, lease: .seconds(60), owner: "w1", attributeKeys: [])
                claimed += claim.jobs
            }
            let outcomes = claimed.prefix(1500).map {
                JobOutcome(messageID: $0.messageID, result: .sent(providerMessageID: "p-\($0.messageID)"))
            }
            // Both statements: the one for batches of sent outcomes only, and the general one.
            let statements = [("sent only", try #require(QueueStore.recordSentStatement(outcomes, owner: "w1"))),
                              ("general", QueueStore.recordAnyStatement(outcomes, owner: "w1"))]
            for (which, statement) in statements {
                // Where a loop and a hash join cost about the same, the planner may pick either (the
                // benchmark's short queue got the loop). Without hash and merge joins it must loop:
                // the loop must then be driven by the outcomes through the key, never over the batch.
                try await c.execute("SET enable_hashjoin = off")
                try await c.execute("SET enable_mergejoin = off")
                // The plan for these values (what the first executions of the prepared statement
                // get), then the generic plan (what later ones may get: it cannot know the batch).
                let custom = try await c.query(PostgresQuery(unsafeSQL: "EXPLAIN (FORMAT JSON) " + statement.sql,
                                                             binds: statement.binds))
                try await c.execute(PostgresQuery(unsafeSQL: "PREPARE record_outcomes AS " + statement.sql))
                try await c.execute("SET plan_cache_mode = force_generic_plan")
                let values = statement.binds.map { $0.map { "'" + $0.replacingOccurrences(of: "'", with: "''") + "'" } ?? "NULL" }
                let generic = try await c.query(PostgresQuery(
                    unsafeSQL: "EXPLAIN (FORMAT JSON) EXECUTE record_outcomes(\(values.joined(separator: ", ")))"))
                try await c.execute("RESET plan_cache_mode")
                try await c.execute("RESET enable_hashjoin")
                try await c.execute("RESET enable_mergejoin")
                try await c.execute("DEALLOCATE record_outcomes")
                for (name, explained) in [("custom", custom), ("generic", generic)] {
                    let plan = try JSONSerialization.jsonObject(with: Data(try explained[0].decode(String.self, at: 0).utf8))
                    let loops = Self.loopsOverAScan(plan)
                    #expect(loops.isEmpty, "\(which), \(name) plan: nested loops whose inner side is re-read per outer row: \(loops)")
                }
            }

            #expect(try await store.record(outcomes, owner: "w1", on: c) == 1500)
            #expect(try await WorkerFixtures.statuses(c, broadcast: b)["sent"] == 1500)
        }
    }

    /// The nested loops of an `EXPLAIN (FORMAT JSON)` plan whose inner side scans something
    /// whole (a CTE, a function's rows, a table) for every row of the outer side, as
    /// "outer node > inner node" descriptions. An index scan (or a memoized one) as the inner
    /// side is the cheap kind and is not listed.
    static func loopsOverAScan(_ plan: Any) -> [String] {
        var found: [String] = []
        func visit(_ node: [String: Any]) {
            let children = node["Plans"] as? [[String: Any]] ?? []
            if node["Node Type"] as? String == "Nested Loop", children.count == 2 {
                let inner = children[1]
                let kind = inner["Node Type"] as? String ?? ""
                if ["CTE Scan", "Function Scan", "Seq Scan", "Materialize"].contains(kind) {
                    found.append("\(describe(children[0])) > \(describe(inner))")
                }
            }
            children.forEach(visit)
        }
        func describe(_ node: [String: Any]) -> String {
            [node["Node Type"], node["Relation Name"] ?? node["CTE Name"]].compactMap { $0 as? String }.joined(separator: " ")
        }
        for entry in plan as? [[String: Any]] ?? [] {
            if let root = entry["Plan"] as? [String: Any] { visit(root) }
        }
        return found
    }
}
