import Foundation
import HeraldServices
import HeraldTesting
import Testing

/// The worker against a provider that speaks HTTPS with HTTP/2, as Meta's Graph API does: a real
/// nginx whose certificate a private CA signed, trusted through `HERALD_PROVIDER_CA_FILE`.
@Suite("Worker over HTTPS with HTTP/2")
struct WorkerHTTPSTests {
    @Test("thirty WhatsApp messages through a window of four all go out over HTTP/2, with a private CA")
    func whatsAppOverHTTP2() async throws {
        let server = try await NginxHTTP2Server.start(
            body: #"{"messaging_product":"whatsapp","messages":[{"id":"wamid.$request_id"}]}"#)
        let authority = try TestCertificates.writeAuthority()
        defer {
            server.stop()
            try? FileManager.default.removeItem(atPath: authority)
        }
        try await withTestConnection { db, c in
            let settings = #"{"base_url":"\#(server.baseURL)/v21.0","phone_number_id":"1055","access_token_env":"WA_TOKEN"}"#
            let channel = try await c.query("""
                INSERT INTO herald.channels (name, kind, provider, settings, rate_per_second, burst)
                VALUES ('wa', 'whatsapp', 'whatsapp_cloud', \(settings)::jsonb, 1000, 100) RETURNING id
                """)[0].decode(Int64.self, at: 0)
            let contacts = try await WorkerFixtures.contacts(c, count: 30)
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: contacts, body: "Hello {{ first_name }}")
            var config = WorkerFixtures.configuration(db)
            config.providerAuthorityFile = authority
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
}
