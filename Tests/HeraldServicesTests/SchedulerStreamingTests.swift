import HeraldPostgres
@testable import HeraldServices
import HeraldStore
import HeraldTesting
import Testing

/// Streaming expansion: a broadcast is claimable from its first chunk, and the rest of its
/// audience is expanded while workers send. The leader is driven one pass at a time (each pass
/// writes one chunk of each broadcast being expanded), so every state in between can be looked at.
@Suite("Scheduler: streaming expansion")
struct SchedulerStreamingTests {
    typealias F = SchedulerFixtures
    typealias W = WorkerFixtures

    /// 250 contacts with consecutive ids: passes write 10, 100, 100 and 40 of them.
    static let audience = 250
    static let growth = [10, 110, 210, 250]

    /// A leader with a first chunk of 10 contact ids and chunks of 100, on `c`.
    static func leader(_ c: PostgresConnection) -> LeaderState {
        var configuration = SchedulerConfiguration(connectionString: nil, expansionChunk: 100, providerEnvironment: F.providerEnvironment)
        configuration.claimable = .fromFirstChunk(10)
        return LeaderState(store: SchedulerStore(c), configuration: configuration, logger: F.quietLogger)
    }

    /// A `scheduled` broadcast to ``audience`` new contacts on `channel`.
    static func broadcast(_ c: PostgresConnection, channel: Int64) async throws -> Int64 {
        let g = try await SchedulerLifecycleTests.bigGroup(c, audience)
        return try await F.broadcast(c, channel: channel, groups: [g])
    }

    /// Runs `body` in a database of its own with a ``broadcast(_:channel:)`` on a new SMS channel
    /// and a ``leader(_:)`` on the same connection that has not started it yet.
    static func withBroadcastAndLeader(
        _ body: (TestDatabase, PostgresConnection, _ broadcast: Int64, _ leader: inout LeaderState) async throws -> Void
    ) async throws {
        try await withTestConnection { db, c in
            let id = try await broadcast(c, channel: try await F.channel(c))
            var leader = leader(c)
            try await body(db, c, id, &leader)
        }
    }

    static func count(_ c: PostgresConnection, _ id: Int64, status: String) async throws -> Int {
        try await F.count(c, "SELECT count(*) FROM herald.messages WHERE broadcast_id = \(id) AND status = \(status)")
    }

    @Test("the first chunk's messages are sent while the rest of the audience is not expanded yet")
    func firstChunkIsClaimable() async throws {
        try await withTestConnection { db, c in
            let id = try await Self.broadcast(c, channel: try await W.sandboxChannel(c))
            var leader = Self.leader(c)
            #expect(try await leader.startDueBroadcasts())  // validation, then the first chunk
            #expect(try await F.status(c, id) == "sending")
            #expect(try await F.expanded(c, id) == false)
            #expect(try await F.messageCount(c, id) == 10)

            let firstChunkSent: @Sendable () async throws -> Bool = {
                let w = try await db.connect()
                let sent = try await Self.count(w, id, status: "sent")
                await w.close()
                return sent == 10
            }
            #expect(try await W.runWorker(W.configuration(db), until: firstChunkSent))
            #expect(try await F.expanded(c, id) == false)
            #expect(try await F.messageCount(c, id) == 10)

            while try await leader.startDueBroadcasts() {}
            #expect(try await F.expanded(c, id))
            #expect(try await F.messageCount(c, id) == Self.audience)
            #expect(try await F.jobCount(c, id) == Self.audience - 10)
        }
    }

    @Test("a broadcast whose every job is done does not complete before its last chunk")
    func completesOnlyAfterLastChunk() async throws {
        try await Self.withBroadcastAndLeader { db, c, id, leader in
            #expect(try await leader.startDueBroadcasts())
            // A worker sends the first chunk: no job of the broadcast is left.
            try await c.execute("UPDATE herald.messages SET status = 'sent', sent_at = now() WHERE broadcast_id = \(id)")
            try await c.execute("DELETE FROM herald.jobs WHERE broadcast_id = \(id)")
            try await leader.maintain()
            #expect(try await F.status(c, id) == "sending")

            while try await leader.startDueBroadcasts() {}
            #expect(try await F.expanded(c, id))
            #expect(try await F.status(c, id) == "sending")  // the later chunks' jobs are left
            try await c.execute("UPDATE herald.messages SET status = 'sent', sent_at = now() WHERE broadcast_id = \(id)")
            try await c.execute("DELETE FROM herald.jobs WHERE broadcast_id = \(id)")
            try await leader.maintain()
            #expect(try await F.status(c, id) == "completed")
        }
    }

    @Test("a new leader continues a streaming expansion from its cursor: no contact twice, none lost")
    func newLeaderResumes() async throws {
        try await withTestConnection { db, c in
            let id = try await Self.broadcast(c, channel: try await F.channel(c))
            try await c.execute("UPDATE herald.contacts SET phone = 'bad' WHERE id % 10 = 0")  // skipped: no job
            let eligible = try await F.count(c, "SELECT count(*) FROM herald.contacts WHERE id % 10 <> 0")

            let old = try await db.connect()
            var first = Self.leader(old)
            for _ in 0..<2 { #expect(try await first.startDueBroadcasts()) }
            await old.close()  // the leader is gone mid-expansion, with what it remembered
            #expect(try await F.messageCount(c, id) == Self.growth[1])
            #expect(try await F.status(c, id) == "sending")

            var second = Self.leader(try await db.connect())
            while try await second.startDueBroadcasts() {}
            #expect(try await F.expanded(c, id))
            #expect(try await F.messageCount(c, id) == Self.audience)
            #expect(try await F.count(c, "SELECT count(DISTINCT contact_id) FROM herald.messages WHERE broadcast_id = \(id)") == Self.audience)
            #expect(try await F.jobCount(c, id) == eligible)
            #expect(try await Self.count(c, id, status: "queued") == eligible)
        }
    }

    @Test("a resumed expansion is validated again: a channel disabled meanwhile fails the broadcast and its unsent messages")
    func resumeValidatesAgain() async throws {
        try await withTestConnection { db, c in
            let channel = try await F.channel(c)
            let id = try await Self.broadcast(c, channel: channel)
            let old = try await db.connect()
            var first = Self.leader(old)
            #expect(try await first.startDueBroadcasts())
            await old.close()
            try await c.execute("UPDATE herald.channels SET enabled = false WHERE id = \(channel)")

            var second = Self.leader(try await db.connect())
            #expect(try await second.startDueBroadcasts() == false)
            #expect(try await F.status(c, id) == "failed")
            #expect(try await F.error(c, id) == #"channel "sms" is disabled"#)
            #expect(try await F.messageCount(c, id) == Self.growth[0])
            #expect(try await F.jobCount(c, id) == 0)
            #expect(try await F.count(c, """
                SELECT count(*) FROM herald.messages
                WHERE broadcast_id = \(id) AND status = 'failed' AND error = 'broadcast failed: channel "sms" is disabled'
                """) == Self.growth[0])
        }
    }

    @Test("cancel during a streaming expansion stops its chunks, even one already on its way; unsent messages end cancelled")
    func cancelStopsChunks() async throws {
        try await Self.withBroadcastAndLeader { db, c, id, leader in
            for _ in 0..<2 { #expect(try await leader.startDueBroadcasts()) }
            let onItsWay = try await SchedulerStore(c).dueBroadcasts()  // read before the cancel
            // A worker sent one message; then the admin tool cancels.
            let sent = try await c.query("SELECT min(id) FROM herald.messages WHERE broadcast_id = \(id)")[0].decode(Int64.self, at: 0)
            try await c.execute("UPDATE herald.messages SET status = 'sent', sent_at = now() WHERE id = \(sent)")
            try await c.execute("DELETE FROM herald.jobs WHERE message_id = \(sent)")
            #expect(try await c.execute("""
                UPDATE herald.broadcasts SET status = 'cancelled' WHERE id = \(id) AND status IN ('scheduled', 'sending', 'paused')
                """) == 1)

            #expect(try await leader.step(try #require(onItsWay.first { $0.id == id })) == false)
            #expect(try await leader.startDueBroadcasts() == false)
            #expect(try await F.messageCount(c, id) == Self.growth[1])
            #expect(try await F.expanded(c, id) == false)
            try await leader.maintain()
            #expect(try await F.status(c, id) == "cancelled")
            #expect(try await F.jobCount(c, id) == 0)
            #expect(try await Self.count(c, id, status: "sent") == 1)
            #expect(try await Self.count(c, id, status: "cancelled") == Self.growth[1] - 1)
        }
    }

    @Test("broadcast_report shows the broadcast sending from its first chunk, its counts growing chunk by chunk")
    func reportGrows() async throws {
        try await Self.withBroadcastAndLeader { db, c, id, leader in
            var seen: [Int] = []
            while try await leader.startDueBroadcasts() {
                let row = try await c.query("""
                    SELECT status, recipients::int, queued::int FROM herald.broadcast_report WHERE broadcast_id = \(id)
                    """)[0]
                #expect(try row.decode(String.self, at: 0) == "sending")
                #expect(try row.decode(Int.self, at: 2) == row.decode(Int.self, at: 1))
                seen.append(try row.decode(Int.self, at: 1))
            }
            #expect(seen == Self.growth)
            #expect(try await F.expanded(c, id))
        }
    }

    @Test("a broadcast paused during its expansion is expanded to the end and stays paused")
    func pausedDuringExpansion() async throws {
        try await Self.withBroadcastAndLeader { db, c, id, leader in
            #expect(try await leader.startDueBroadcasts())
            #expect(try await c.execute("UPDATE herald.broadcasts SET status = 'paused' WHERE id = \(id) AND status = 'sending'") == 1)
            while try await leader.startDueBroadcasts() {}
            try await leader.maintain()
            #expect(try await F.expanded(c, id))
            #expect(try await F.status(c, id) == "paused")
            #expect(try await Self.count(c, id, status: "queued") == Self.audience)
        }
    }

    @Test("an edit during expansion holds the next chunk until it is validated again; later chunks use the new channel")
    func editDuringExpansion() async throws {
        try await withTestConnection { db, c in
            let before = try await F.channel(c, name: "before")
            let after = try await F.channel(c, name: "after")
            let id = try await Self.broadcast(c, channel: before)
            var leader = Self.leader(c)
            #expect(try await leader.startDueBroadcasts())
            let onItsWay = try await SchedulerStore(c).dueBroadcasts()  // read before the edit
            try await c.execute("UPDATE herald.broadcasts SET channel_id = \(after) WHERE id = \(id)")

            #expect(try await leader.step(try #require(onItsWay.first { $0.id == id })) == false)
            #expect(try await leader.startDueBroadcasts() == false)
            #expect(try await F.messageCount(c, id) == Self.growth[0])

            try await leader.revalidateEdits()
            while try await leader.startDueBroadcasts() {}
            #expect(try await F.expanded(c, id))
            let byChannel = try await c.query("""
                SELECT m.channel_id, count(*)::int, count(j.message_id)::int
                FROM herald.messages m LEFT JOIN herald.jobs j ON j.message_id = m.id
                WHERE m.broadcast_id = \(id) GROUP BY 1 ORDER BY 1
                """).map { [try $0.decode(Int64.self, at: 0), Int64(try $0.decode(Int.self, at: 1)), Int64(try $0.decode(Int.self, at: 2))] }
            #expect(byChannel == [[before, 10, 10], [after, 240, 240]])
        }
    }
}
