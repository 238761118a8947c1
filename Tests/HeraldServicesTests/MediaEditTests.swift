import Foundation
import HeraldPostgres
import HeraldServices
import HeraldTesting
import Testing

/// Issue 16: an edit of a running broadcast's media is validated before it is used, like an edit
/// of its body (migration 0016), with a scheduler and a worker running and messages going out.
@Suite("Scheduler and worker: media edits of a sending broadcast")
struct MediaEditTests {
    typealias F = SchedulerFixtures
    typealias W = WorkerFixtures

    static let firstMedia = "https://cdn.example/coupons/spring.png"

    /// A Twilio MMS broadcast to ten contacts at two messages a second (so it is still sending
    /// when the test edits it), media written before it is scheduled, as the admin tool does.
    static func slowMMS(_ c: PostgresConnection, double: ProviderDouble) async throws -> Int64 {
        let channel = try await W.twilioChannel(c, double: double)
        try await c.execute("UPDATE herald.channels SET rate_per_second = 2, burst = 1 WHERE id = \(channel)")
        let contacts = try await W.contacts(c, count: 10)
        let id = try await F.broadcast(c, channel: channel, body: "Coupon for {{ first_name }}", status: "draft", contacts: contacts)
        try await c.execute("""
            UPDATE herald.broadcasts SET media = jsonb_build_array(jsonb_build_object('type', 'image', 'url', \(firstMedia)::text)),
                   status = 'scheduled'
            WHERE id = \(id)
            """)
        return id
    }

    /// Replaces the broadcast's media with one image at `url`; returns whether the write was
    /// stamped for re-validation (the trigger sets the stamp inside the same UPDATE).
    static func editMedia(_ c: PostgresConnection, _ id: Int64, url: String) async throws -> Bool {
        try await c.query("""
            UPDATE herald.broadcasts SET media = jsonb_build_array(jsonb_build_object('type', 'image', 'url', \(url)::text))
            WHERE id = \(id) RETURNING definition_changed_at IS NOT NULL
            """)[0].decode(Bool.self, at: 0)
    }

    /// Runs `body` beside a worker that stops once `broadcast` has ended (`failed` or
    /// `completed`) with no job left, and waits for both.
    static func withWorker(_ db: TestDatabase, broadcast: Int64, _ body: @escaping @Sendable () async throws -> Void) async throws {
        let ended: @Sendable () async throws -> Bool = {
            let c = try await db.connect()
            let done = try await c.query("""
                SELECT status IN ('failed', 'completed') AND NOT EXISTS (SELECT 1 FROM herald.jobs WHERE broadcast_id = \(broadcast))
                FROM herald.broadcasts WHERE id = \(broadcast)
                """)[0].decode(Bool.self, at: 0)
            await c.close()
            return done
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await body() }
            let drained = try await W.runWorker(W.configuration(db), timeout: .seconds(60), until: ended)
            try await group.waitForAll()
            #expect(drained, "the broadcast ended and the worker drained its jobs")
        }
    }

    /// Runs the broadcast with a scheduler and a worker; once its first message has gone out,
    /// replaces its media with one image at `url` (expecting the write to be stamped), then runs
    /// `afterEdit` while both still run, and waits for the broadcast to end.
    static func editMidSend(_ db: TestDatabase, _ c: PostgresConnection, double: ProviderDouble, _ id: Int64, url: String,
                            afterEdit: @escaping @Sendable () async throws -> Void) async throws {
        try await F.withScheduler(db) {
            try await withWorker(db, broadcast: id) {
                try await F.waitUntil("the first message goes out") { !double.received(.twilio).isEmpty }
                #expect(try await editMedia(c, id, url: url), "a media edit of a sending broadcast waits for re-validation")
                try await afterEdit()
            }
        }
    }

    @Test("an http media URL written into a sending broadcast fails it with the rule named; nothing goes out with it, nothing more is sent")
    func invalidMediaEdit() async throws {
        try await ProviderDouble.with { double in
            try await withTestConnection { db, c in
                let id = try await Self.slowMMS(c, double: double)
                try await Self.editMidSend(db, c, double: double, id, url: "http://cdn.example/coupons/spring.png") {
                    try await F.waitUntil("the edit is rejected") { try await F.status(c, id) == "failed" }
                }
                #expect(try await F.error(c, id)
                        == "edit rejected: media[0].url must be an https URL (plain http only to a host in HERALD_ALLOWED_HOSTS)")
                let requests = double.received(.twilio)
                #expect(requests.allSatisfy { $0.formValues("MediaUrl") == [Self.firstMedia] }, "only the validated media went out")
                let sent = try await F.count(c, "SELECT count(*) FROM herald.messages WHERE broadcast_id = \(id) AND status = 'sent'")
                let failed = try await F.count(c, """
                    SELECT count(*) FROM herald.messages WHERE broadcast_id = \(id) AND status = 'failed'
                      AND error LIKE 'broadcast failed: edit rejected%'
                    """)
                #expect(requests.count == sent, "every request is a sent message: none after the broadcast failed")
                #expect(sent + failed == 10 && failed > 0, "sent \(sent), failed \(failed)")
            }
        }
    }

    @Test("a valid media edit of a sending broadcast is accepted: it keeps sending, the rest go with the new media")
    func validMediaEdit() async throws {
        try await ProviderDouble.with { double in
            let newMedia = "https://cdn.example/coupons/summer.png"
            try await withTestConnection { db, c in
                let id = try await Self.slowMMS(c, double: double)
                try await Self.editMidSend(db, c, double: double, id, url: newMedia) {
                    try await F.waitUntil("the edit is accepted") {
                        try await F.count(c, "SELECT count(*) FROM herald.broadcasts WHERE id = \(id) AND definition_changed_at IS NULL") == 1
                    }
                    #expect(try await F.status(c, id) == "sending")
                }
                let requests = double.received(.twilio)
                #expect(requests.count == 10)
                #expect(requests.last?.formValues("MediaUrl") == [newMedia])
                #expect(requests.allSatisfy { [[Self.firstMedia], [newMedia]].contains($0.formValues("MediaUrl")) })
                #expect(try await F.count(c, "SELECT count(*) FROM herald.messages WHERE broadcast_id = \(id) AND status = 'sent'") == 10)
            }
        }
    }
}
