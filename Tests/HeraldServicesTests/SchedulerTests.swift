import Foundation
import HeraldPostgres
import HeraldProviders
import HeraldServices
import HeraldStore
import HeraldTesting
import Logging
import Testing

/// Shared set-up for the scheduler's tests: admin-tool writes, and a scheduler run in-process.
enum SchedulerFixtures {
    static let quietLogger = Logger(label: "herald.test.scheduler") { _ in SwiftLogNoOpLogHandler() }

    /// The secrets the tests' channels name, as the scheduler's environment holds them.
    static let providerEnvironment = ProviderEnvironment(variables: [
        "WA_TOKEN": "wa-token", "TW_TOKEN": "tw-token", "T": "t", "TW": "tw", "HERALD_ALLOWED_HOSTS": "127.0.0.1,h",
    ])

    /// Runs a ``SchedulerService`` against `db` while `body` runs, then cancels it and waits for it.
    static func withScheduler<T: Sendable>(_ db: TestDatabase, chunk: Int64 = SchedulerConfiguration.defaultExpansionChunk,
                                           claimable: SchedulerConfiguration.Claimable = .fromFirstChunk(SchedulerConfiguration.defaultFirstExpansionChunk),
                                           environment: ProviderEnvironment = providerEnvironment,
                                           maintenanceInterval: Duration = .seconds(1),
                                           _ body: @Sendable () async throws -> T) async throws -> T {
        var configuration = SchedulerConfiguration(connectionString: db.url, expansionChunk: chunk,
                                                   maintenanceInterval: maintenanceInterval,
                                                   leadership: Leadership(retryInterval: .milliseconds(200)),
                                                   providerEnvironment: environment)
        configuration.claimable = claimable
        let service = SchedulerService(configuration: configuration, logger: quietLogger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await service.run(); return nil }
            do {
                let value = try await body()
                group.cancelAll()
                while try await group.next() != nil {}
                return value
            } catch {
                group.cancelAll()
                throw error
            }
        }
    }

    /// Runs a scheduler until broadcast `id` leaves `scheduled` (validated and started, or failed).
    static func runSchedulerUntilStarted(_ db: TestDatabase, _ c: PostgresConnection, _ id: Int64,
                                         environment: ProviderEnvironment = providerEnvironment) async throws {
        try await withScheduler(db, environment: environment) {
            try await waitUntil("it starts", timeout: .seconds(30)) { try await status(c, id) != "scheduled" }
        }
    }

    /// Polls `condition` every 20 ms until it holds; fails the test after `timeout`.
    static func waitUntil(_ what: String, timeout: Duration = .seconds(20),
                          _ condition: () async throws -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("timed out waiting until \(what)")
        throw TimedOut()
    }

    struct TimedOut: Error {}

    @discardableResult
    static func channel(_ c: PostgresConnection, name: String = "sms", kind: String = "sms", provider: String = "sandbox",
                        settings: String = "{}", enabled: Bool = true) async throws -> Int64 {
        try await c.query("""
            INSERT INTO herald.channels (name, kind, provider, settings, enabled)
            VALUES (\(name), \(kind), \(provider), \(settings)::jsonb, \(enabled)) RETURNING id
            """)[0].decode(Int64.self, at: 0)
    }

    static func contact(_ c: PostgresConnection, phone: String? = "+2348031234567", email: String? = "ada@example.com",
                        lastInboundAgo: String? = nil) async throws -> Int64 {
        try await c.query("""
            INSERT INTO herald.contacts (first_name, phone, email, last_inbound_at)
            VALUES ('Ada', \(phone), \(email), now() - \(lastInboundAgo)::interval) RETURNING id
            """)[0].decode(Int64.self, at: 0)
    }

    /// Inserts `count` contacts, each the default of ``contact(_:phone:email:lastInboundAgo:)``.
    static func contacts(_ c: PostgresConnection, count: Int) async throws -> [Int64] {
        var ids: [Int64] = []
        for _ in 0..<count { ids.append(try await contact(c)) }
        return ids
    }

    /// Runs `body` in a database of its own holding an SMS sandbox channel (``channel(_:name:kind:provider:settings:enabled:)``)
    /// and `count` default contacts: the opening most scheduler tests share.
    static func withChannel(contacts count: Int,
                            _ body: (TestDatabase, PostgresConnection, _ channel: Int64, _ contacts: [Int64]) async throws -> Void) async throws {
        try await withTestConnection { db, c in
            let channel = try await channel(c)
            try await body(db, c, channel, try await contacts(c, count: count))
        }
    }

    /// ``withChannel(contacts:_:)`` with one contact, passed on its own.
    static func withChannelAndContact(_ body: (TestDatabase, PostgresConnection, _ channel: Int64, _ contact: Int64) async throws -> Void) async throws {
        try await withChannel(contacts: 1) { db, c, channel, contacts in try await body(db, c, channel, contacts[0]) }
    }

    /// Writes a broadcast to `contacts` on `channel` and runs a scheduler (``withScheduler(_:chunk:claimable:environment:maintenanceInterval:_:)``);
    /// `body` runs, with the broadcast's id, once the scheduler has started it (`sending`).
    /// Returns the id, for checks after the scheduler has stopped.
    @discardableResult
    static func whileSending(_ db: TestDatabase, _ c: PostgresConnection, channel: Int64, contacts: [Int64],
                             _ body: @escaping @Sendable (_ broadcast: Int64) async throws -> Void) async throws -> Int64 {
        let id = try await broadcast(c, channel: channel, contacts: contacts)
        try await withScheduler(db) {
            try await waitUntil("it sends") { try await status(c, id) == "sending" }
            try await body(id)
        }
        return id
    }

    static func group(_ c: PostgresConnection, _ name: String, members: [Int64]) async throws -> Int64 {
        let id = try await c.query("INSERT INTO herald.groups (name) VALUES (\(name)) RETURNING id")[0].decode(Int64.self, at: 0)
        try await c.execute("INSERT INTO herald.group_members (group_id, contact_id) SELECT \(id), unnest(\(members)::bigint[])")
        return id
    }

    /// Writes a broadcast with its audience, `scheduled` unless told otherwise.
    static func broadcast(_ c: PostgresConnection, channel: Int64, body: String? = "Hi {{ first_name }}",
                          subject: String? = nil, htmlBody: String? = nil, template: Int64? = nil,
                          templateParams: String? = nil, sendAt: String? = nil, status: String = "scheduled",
                          groups: [Int64] = [], contacts: [Int64] = []) async throws -> Int64 {
        // Audience first, status last, as the admin tool does.
        let id = try await c.query("""
            INSERT INTO herald.broadcasts (name, channel_id, subject, body, html_body, template_id, template_params, send_at, status)
            VALUES ('b', \(channel), \(subject), \(body), \(htmlBody), \(template), \(templateParams)::jsonb,
                    now() + \(sendAt)::interval, 'draft')
            RETURNING id
            """)[0].decode(Int64.self, at: 0)
        try await c.execute("INSERT INTO herald.broadcast_groups SELECT \(id), unnest(\(groups)::bigint[])")
        try await c.execute("INSERT INTO herald.broadcast_contacts SELECT \(id), unnest(\(contacts)::bigint[])")
        if status != "draft" { try await c.execute("UPDATE herald.broadcasts SET status = \(status) WHERE id = \(id)") }
        return id
    }

    static func status(_ c: PostgresConnection, _ broadcast: Int64) async throws -> String {
        try await c.query("SELECT status FROM herald.broadcasts WHERE id = \(broadcast)")[0].decode(String.self, at: 0)
    }

    /// Whether the broadcast's whole audience is expanded (`expanded_at` set). With streaming
    /// expansion, `sending` only means that its first chunk is written.
    static func expanded(_ c: PostgresConnection, _ broadcast: Int64) async throws -> Bool {
        try await c.query("SELECT expanded_at IS NOT NULL FROM herald.broadcasts WHERE id = \(broadcast)")[0].decode(Bool.self, at: 0)
    }

    static func error(_ c: PostgresConnection, _ broadcast: Int64) async throws -> String? {
        try await c.query("SELECT error FROM herald.broadcasts WHERE id = \(broadcast)")[0].decode(String?.self, at: 0)
    }

    static func count(_ c: PostgresConnection, _ query: PostgresQuery) async throws -> Int {
        try await c.query(query)[0].decode(Int.self, at: 0)
    }

    static func messageCount(_ c: PostgresConnection, _ broadcast: Int64) async throws -> Int {
        try await count(c, "SELECT count(*) FROM herald.messages WHERE broadcast_id = \(broadcast)")
    }

    static func jobCount(_ c: PostgresConnection, _ broadcast: Int64) async throws -> Int {
        try await count(c, "SELECT count(*) FROM herald.jobs WHERE broadcast_id = \(broadcast)")
    }

    /// Messages of a broadcast by contact: (status, skip_reason, address).
    static func messages(_ c: PostgresConnection, _ broadcast: Int64) async throws -> [Int64: (String, String?, String?)] {
        var out: [Int64: (String, String?, String?)] = [:]
        for row in try await c.query("SELECT contact_id, status, skip_reason, address FROM herald.messages WHERE broadcast_id = \(broadcast)") {
            out[try row.decode(Int64.self, at: 0)] = (try row.decode(String.self, at: 1), try row.decode(String?.self, at: 2),
                                                      try row.decode(String?.self, at: 3))
        }
        return out
    }
}

@Suite("Scheduler: send later")
struct SchedulerTimingTests {
    typealias F = SchedulerFixtures

    @Test("a broadcast due in 2 s starts within 1 s after send_at, not before")
    func dueInTwoSeconds() async throws {
        try await F.withChannelAndContact { db, c, channel, contact in
            try await F.withScheduler(db) {
                let id = try await F.broadcast(c, channel: channel, sendAt: "2 seconds", contacts: [contact])
                // "Not before" is pinned by `started_at` below, which the scheduler stamps itself.
                try await F.waitUntil("it starts") { try await F.status(c, id) == "sending" }
                let row = try await c.query("""
                    SELECT extract(epoch FROM started_at - send_at)::float8 FROM herald.broadcasts WHERE id = \(id)
                    """)[0]
                let late = try row.decode(Double.self, at: 0)
                #expect(late >= 0, "started \(-late) s before send_at")
                #expect(late < 1, "started \(late) s after send_at")
            }
        }
    }

    @Test("a broadcast whose send_at is past, or null, starts at once")
    func pastAndNull() async throws {
        try await F.withChannelAndContact { db, c, channel, contact in
            let past = try await F.broadcast(c, channel: channel, sendAt: "-1 hour", contacts: [contact])
            // Maintenance only every 60 s: a start within seconds is the insert's notification
            // waking the scheduler, not its periodic pass (and a loaded machine has room).
            try await F.withScheduler(db, maintenanceInterval: .seconds(60)) {
                try await F.waitUntil("the past one starts", timeout: .seconds(10)) { try await F.status(c, past) == "sending" }
                let now = try await F.broadcast(c, channel: channel, contacts: [contact])
                let clock = ContinuousClock()
                let start = clock.now
                try await F.waitUntil("the null one starts", timeout: .seconds(20)) { try await F.status(c, now) == "sending" }
                #expect(clock.now - start < .seconds(10))
            }
        }
    }

    @Test("broadcasts for the same second all start; one far ahead waits")
    func sameSecondAndFarAhead() async throws {
        try await F.withChannelAndContact { db, c, channel, contact in
            try await F.withScheduler(db) {
                var ids: [Int64] = []
                for _ in 0..<5 { ids.append(try await F.broadcast(c, channel: channel, sendAt: "1 second", contacts: [contact])) }
                let later = try await F.broadcast(c, channel: channel, sendAt: "1 day", contacts: [contact])
                try await F.waitUntil("all start", timeout: .seconds(3)) {
                    try await F.count(c, "SELECT count(*) FROM herald.broadcasts WHERE id = ANY(\(ids)::bigint[]) AND status = 'sending'") == 5
                }
                #expect(try await F.status(c, later) == "scheduled")
            }
        }
    }

    @Test("a draft is never touched")
    func draftUntouched() async throws {
        try await F.withChannelAndContact { db, c, channel, contact in
            let draft = try await F.broadcast(c, channel: channel, status: "draft", contacts: [contact])
            let invalidDraft = try await F.broadcast(c, channel: channel, body: nil, status: "draft", contacts: [contact])
            try await F.withScheduler(db) {
                let other = try await F.broadcast(c, channel: channel, contacts: [contact])
                try await F.waitUntil("the scheduled one starts") { try await F.status(c, other) == "sending" }
                // The signal that the scheduler has been past the drafts in a maintenance pass too:
                // with its jobs gone, that pass ends the other broadcast `completed`.
                try await F.waitUntil("the other one is expanded") {
                    try await c.query("SELECT expanded_at IS NOT NULL FROM herald.broadcasts WHERE id = \(other)")[0].decode(Bool.self, at: 0)
                }
                try await c.execute("DELETE FROM herald.jobs WHERE broadcast_id = \(other)")
                try await F.waitUntil("a maintenance pass completes the other one") { try await F.status(c, other) == "completed" }
            }
            for id in [draft, invalidDraft] {
                let row = try await c.query("SELECT status, error, started_at, finished_at, expansion_cursor FROM herald.broadcasts WHERE id = \(id)")[0]
                #expect(try row.decode(String.self, at: 0) == "draft")
                #expect(try row.decode(String?.self, at: 1) == nil)
                #expect(try row.decode(Date?.self, at: 2) == nil)
                #expect(try row.decode(Date?.self, at: 3) == nil)
                #expect(try row.decode(Int64?.self, at: 4) == nil)
                #expect(try await F.messageCount(c, id) == 0)
            }
        }
    }
}
