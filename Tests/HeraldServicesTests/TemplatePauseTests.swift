import Foundation
import HeraldPostgres
import HeraldServices
import HeraldTesting
import Testing

/// Meta refusing sends because the broadcast's template was paused (132015) or disabled (132016):
/// the broadcast pauses with the reason, its messages wait rather than fail, and resuming sends them.
@Suite("Templates: a paused template pauses its broadcast")
struct TemplatePauseTests {
    static func broadcast(_ c: PostgresConnection, _ id: Int64) async throws -> (status: String, error: String?) {
        let r = try await c.query("SELECT status, error FROM herald.broadcasts WHERE id = \(id)")[0]
        return (try r.decode(String.self, at: 0), try r.decode(String?.self, at: 1))
    }

    static func paused(_ db: TestDatabase, _ id: Int64) -> @Sendable () async throws -> Bool {
        { @Sendable in
            let c = try await db.connect()
            let status = try await broadcast(c, id).status
            await c.close()
            return status == "paused"
        }
    }

    @Test("132015 mid-broadcast: paused with the reason in error, no message failed nor charged an attempt; resuming sends them all", arguments: [132015, 132016])
    func pausesThenResumes(code: Int) async throws {
        try await WorkerFixtures.withPromo(to: 6) { s async throws in
            let (double, db, c, b) = (s.double, s.db, s.c, s.broadcast)
            double.enqueue(.error(code: code, status: 400, message: "Template is Paused"), times: 1000, for: .whatsApp)

            #expect(try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), until: Self.paused(db, b)))
            let (status, error) = try await Self.broadcast(c, b)
            #expect(status == "paused")
            #expect(error?.contains("promo (en_US)") == true, "\(error ?? "nil")")
            #expect(error?.contains("error \(code): Template is Paused") == true, "\(error ?? "nil")")
            #expect(try await WorkerFixtures.statuses(c, broadcast: b) == ["queued": 6], "nothing failed; every message waits")
            #expect(try await WorkerFixtures.recordedAttempts(c, broadcast: b) == 0, "refused sends are not attempts")
            #expect(try await c.query("SELECT count(*) FROM herald.jobs WHERE broadcast_id = \(b)")[0].decode(Int.self, at: 0) == 6)

            // Meta approves the template again; the admin tool resumes the broadcast.
            double.resetFaults()
            try await c.execute("UPDATE herald.broadcasts SET status = 'sending' WHERE id = \(b)")
            #expect(try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), until: WorkerFixtures.allDone(db, broadcast: b)))
            #expect(try await WorkerFixtures.statuses(c, broadcast: b) == ["sent": 6])
        }
    }

    @Test("another permanent error still fails the message and leaves the broadcast sending")
    func otherErrors() async throws {
        try await WorkerFixtures.withPromo(to: 2) { s async throws in
            let (double, db, c, b) = (s.double, s.db, s.c, s.broadcast)
            double.enqueue(.error(code: 132001, status: 404, message: "Template name does not exist in the translation"), times: 1000, for: .whatsApp)
            #expect(try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), until: WorkerFixtures.allDone(db, broadcast: b)))
            #expect(try await WorkerFixtures.statuses(c, broadcast: b) == ["failed": 2])
            #expect(try await Self.broadcast(c, b).status == "sending")
        }
    }
}
