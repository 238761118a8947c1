import Foundation
import HeraldPostgres
import HeraldTesting
import Testing

/// The `herald scheduler` binary, as ops run it: several processes, SIGKILL, SIGTERM.
@Suite("Scheduler: processes")
struct SchedulerProcessTests {
    typealias F = SchedulerFixtures

    /// The binary under test; `scripts/test` sets HERALD_BIN. Fails loudly without it.
    static func binary() throws -> String {
        guard let path = ProcessInfo.processInfo.environment["HERALD_BIN"], !path.isEmpty else {
            Issue.record("HERALD_BIN is not set: run the tests with scripts/test")
            throw F.TimedOut()
        }
        return path
    }

    static func start(_ db: TestDatabase, chunk: Int? = nil, logLevel: String = "info") throws -> HeraldProcess {
        var env: [String: String] = [:]
        if let chunk { env["HERALD_EXPANSION_CHUNK"] = "\(chunk)" }
        return try HeraldProcess.start(try binary(), ["scheduler", "--log-level", logLevel], databaseURL: db.url, environment: env)
    }

    static func isLeader(_ p: HeraldProcess) -> Bool { p.stderr.contains("scheduler leadership acquired") }

    @Test("SIGTERM: a leader and a standby both exit 0")
    func sigterm() async throws {
        try await withTestDatabase { db in
            let a = try Self.start(db)
            try await F.waitUntil("one leads", timeout: .seconds(10)) { Self.isLeader(a) }
            let b = try Self.start(db, logLevel: "debug")
            try await F.waitUntil("the standby waits for the lock", timeout: .seconds(10)) { b.stderr.contains("standing by") }
            for p in [b, a] {
                p.signal(SIGTERM)
                let status = await p.wait()
                #expect(status == 0, "stderr: \(p.stderr)")
            }
            #expect(!Self.isLeader(b))
        }
    }

    @Test("two schedulers: one acts, each broadcast is expanded once; killing the leader hands over")
    func failover() async throws {
        try await F.withChannel(contacts: 3) { db, c, channel, contacts in
            let g = try await F.group(c, "g", members: contacts)
            let a = try Self.start(db)
            let b = try Self.start(db)
            defer { a.signal(SIGKILL); b.signal(SIGKILL) }
            try await F.waitUntil("one leads", timeout: .seconds(10)) { Self.isLeader(a) || Self.isLeader(b) }
            var ids: [Int64] = []
            for _ in 0..<5 { ids.append(try await F.broadcast(c, channel: channel, groups: [g], contacts: [contacts[0]])) }
            try await F.waitUntil("all start") {
                try await F.count(c, "SELECT count(*) FROM herald.broadcasts WHERE status = 'sending'") == 5
            }
            #expect(Self.isLeader(a) != Self.isLeader(b))
            #expect(try await F.count(c, "SELECT count(*) FROM herald.messages") == 15)
            #expect(try await F.count(c, "SELECT count(*) FROM herald.jobs") == 15)

            let (leader, standby) = Self.isLeader(a) ? (a, b) : (b, a)
            leader.signal(SIGKILL)
            _ = await leader.wait()
            let clock = ContinuousClock()
            let killedAt = clock.now
            let next = try await F.broadcast(c, channel: channel, groups: [g])
            try await F.waitUntil("the standby starts the next broadcast", timeout: .seconds(10)) {
                try await F.status(c, next) == "sending"
            }
            #expect(clock.now - killedAt < .seconds(5))
            #expect(Self.isLeader(standby))
            #expect(try await F.messageCount(c, next) == 3)
            standby.signal(SIGTERM)
            #expect(await standby.wait() == 0)
        }
    }

    @Test("killed in the middle of a large expansion and restarted: one message per contact, one job per eligible one")
    func resumeAfterKill() async throws {
        try await withTestConnection { db, c in
            let channel = try await F.channel(c)
            let total = 200_000
            let g = try await SchedulerLifecycleTests.bigGroup(c, total)
            // Every 10th contact has a bad phone, every 7th opted out: skipped messages, no jobs.
            try await c.execute("UPDATE herald.contacts SET phone = 'bad' WHERE id % 10 = 0")
            try await c.execute("INSERT INTO herald.opt_outs (contact_id, channel_kind) SELECT id, 'sms' FROM herald.contacts WHERE id % 7 = 0")
            let eligible = try await F.count(c, "SELECT count(*) FROM herald.contacts WHERE id % 10 <> 0 AND id % 7 <> 0")
            let picked = try await c.query("SELECT min(id) + 5 FROM herald.contacts")[0].decode(Int64.self, at: 0)
            let id = try await F.broadcast(c, channel: channel, groups: [g], contacts: [picked])

            let first = try Self.start(db, chunk: 2_000)
            try await F.waitUntil("expansion is a good way in", timeout: .seconds(30)) {
                try await F.messageCount(c, id) >= 40_000
            }
            first.signal(SIGKILL)
            _ = await first.wait()
            // Streaming: sending since its first chunk, its expansion unfinished.
            #expect(try await F.status(c, id) == "sending")
            #expect(try await F.expanded(c, id) == false, "the expansion finished before the kill; nothing was tested")
            let partial = try await F.messageCount(c, id)
            #expect(partial < total, "the expansion finished before the kill; nothing was tested")

            let second = try Self.start(db, chunk: 2_000)
            try await F.waitUntil("it is expanded", timeout: .seconds(60)) { try await F.expanded(c, id) }
            #expect(try await F.status(c, id) == "sending")
            second.signal(SIGTERM)
            #expect(await second.wait() == 0)

            #expect(try await F.messageCount(c, id) == total)
            #expect(try await F.count(c, "SELECT count(DISTINCT contact_id) FROM herald.messages WHERE broadcast_id = \(id)") == total)
            #expect(try await F.jobCount(c, id) == eligible)
            #expect(try await F.count(c, "SELECT count(*) FROM herald.messages WHERE broadcast_id = \(id) AND status = 'queued'") == eligible)
            #expect(try await F.count(c, """
                SELECT count(*) FROM herald.messages m JOIN herald.jobs j ON j.message_id = m.id
                WHERE m.broadcast_id = \(id) AND m.status = 'queued'
                """) == eligible)
        }
    }
}
