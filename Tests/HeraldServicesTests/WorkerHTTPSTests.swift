import Foundation
import HeraldPostgres
import HeraldServices
import HeraldTesting
import Testing

/// The worker against a provider that speaks HTTPS with HTTP/2, as Meta's Graph API does, or
/// HTTPS over HTTP/1.1 only: a real nginx whose certificate a private CA signed, trusted through
/// `HERALD_PROVIDER_CA_FILE`.
@Suite("Worker over HTTPS")
struct WorkerHTTPSTests {
    /// A WhatsApp channel at a local nginx over HTTPS that answers every send with `answer`, a
    /// broadcast of it to `count` contacts already `sending`, and a worker configuration that
    /// trusts nginx's private CA; `body` runs the worker and checks.
    func withHTTPSBroadcast(to count: Int, answer: String, http2: Bool,
                            _ body: (TestDatabase, PostgresConnection, Int64, WorkerConfiguration) async throws -> Void) async throws {
        let server = try await NginxHTTP2Server.start(body: answer, http2: http2)
        let authority = try TestCertificates.writeAuthority()
        defer {
            server.stop()
            try? FileManager.default.removeItem(atPath: authority)
        }
        try await withTestConnection { db, c in
            let channel = try await WorkerFixtures.whatsAppChannel(c, baseURL: server.baseURL)
            let contacts = try await WorkerFixtures.contacts(c, count: count)
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: contacts, body: "Hello {{ first_name }}")
            var config = WorkerFixtures.configuration(db)
            config.providerAuthorityFile = authority
            try await body(db, c, b, config)
        }
    }

    @Test("thirty WhatsApp messages through a window of four all go out over HTTP/2, with a private CA")
    func whatsAppOverHTTP2() async throws {
        try await withHTTPSBroadcast(to: 30, answer: #"{"messaging_product":"whatsapp","messages":[{"id":"wamid.$request_id"}]}"#,
                                     http2: true) { db, c, b, config async throws in
            var config = config
            // Handles are reused long before thirty sends are done.
            config.maxInFlight = 4
            config.maxInFlightPerChannel = 4
            #expect(try await WorkerFixtures.runWorker(config, until: WorkerFixtures.allDone(db, broadcast: b)))
            #expect(try await WorkerFixtures.statuses(c, broadcast: b) == ["sent": 30])
            // Each on its first try: a transfer that cannot be set up on a reused handle is
            // retried, so the statuses alone could hide it.
            #expect(try await WorkerFixtures.recordedAttempts(c, broadcast: b) == 30)
        }
    }

    @Test("sends that each need a TLS connection hold at most maxTLSConnections of them, and all go out")
    func tlsConnectionsAreCapped() async throws {
        // The connection's serial number in every answer's message id: which connection carried each send.
        try await withHTTPSBroadcast(to: 40, answer: #"{"messaging_product":"whatsapp","messages":[{"id":"wamid.$connection.$request_id"}]}"#,
                                     http2: false) { db, c, b, config async throws in
            var config = config
            config.httpVersion = .http1
            // The window would let all forty go at once, each on a TLS connection of its own.
            config.maxInFlight = 64
            config.maxInFlightPerChannel = 64
            config.maxTLSConnections = 3
            #expect(try await WorkerFixtures.runWorker(config, until: WorkerFixtures.allDone(db, broadcast: b)))
            #expect(try await WorkerFixtures.statuses(c, broadcast: b) == ["sent": 40])
            let connections = try await c.query("""
                SELECT count(DISTINCT split_part(provider_message_id, '.', 2)) FROM herald.messages WHERE broadcast_id = \(b)
                """)[0].decode(Int.self, at: 0)
            #expect((1...3).contains(connections), "\(connections) TLS connections carried 40 sends with a cap of 3")
        }
    }
}
