import Foundation
import HeraldPostgres
import HeraldProviders
@testable import HeraldServices
import HeraldTesting
import HeraldTransport
import Logging
import Testing

/// Requests naming a phone number or an account Herald does not know make it re-read the
/// channels; a burst of them must share one read at a time, not fill the pool.
@Suite("Webhooks: on-demand channel refresh")
struct WebhookRefreshTests {
    typealias Server = WebhookServerTests

    @Test("concurrent receipts naming an unknown phone_number_id or AccountSid share one channel load at a time")
    func singleFlight() async throws {
        // No negative cache: only single-flight stands between the burst and one load per request.
        try await Server.withServer(refreshOnDemandAfter: .zero) { h in
            let directory = h.server.directory
            // Hold every read of herald.channels, so the first load is certainly still in flight
            // when the other requests arrive.
            let blocker = try await h.db.connect()
            try await blocker.execute("BEGIN")
            try await blocker.execute("LOCK TABLE herald.channels IN ACCESS EXCLUSIVE MODE")

            let whatsApp = (0..<4).map { i -> String in
                // Signed by A's secret, naming a number no channel has: A's secret verifies it, the
                // number sends Herald to look for a channel added since.
                Server.metaStatus("wamid.unknown\(i)", "delivered", phoneNumberID: "30000000000000\(i)")
            }
            let twilio = (0..<4).map { i in
                Server.twilioCallback("SMunknown\(i)", "delivered", account: "AC0000000000000000000000000000009\(i)")
            }
            // A client of its own per request: one transport reuses its connections one request
            // at a time, which would serialize the burst in the client.
            func client() -> Server.Harness {
                Server.Harness(base: h.base, db: h.db, c: h.c, transport: CurlTransport(maxInFlight: 1, logger: Logger(label: "test.client")),
                               server: h.server)
            }
            let clients = (0..<(whatsApp.count + twilio.count)).map { _ in client() }
            defer { for c in clients { c.transport.shutdown() } }
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for (body, h) in zip(whatsApp, clients) {
                    group.addTask {
                        try await h.postWhatsApp(body, signature: WebhookSignature.meta(body: Array(body.utf8), appSecret: Server.appSecret)).status
                    }
                }
                for (fields, h) in zip(twilio, clients.suffix(twilio.count)) {
                    group.addTask {
                        try await h.postTwilio(fields, message: nil, signature: WebhookSignature.twilio(url: Server.twilioURL, parameters: fields,
                                                                                                         authToken: Server.authToken)).status
                    }
                }
                // Every request is inside the refresh (the background refresh may be one more).
                let deadline = ContinuousClock.now + .seconds(20)
                while directory.callersInside < whatsApp.count + twilio.count, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(10))
                }
                let arrived = directory.callersInside
                let loadsAtOnce = directory.mostLoadsAtOnce
                try await blocker.execute("ROLLBACK")
                #expect(arrived >= whatsApp.count + twilio.count, "all eight requests reached the channel refresh")
                #expect(loadsAtOnce == 1, "\(loadsAtOnce) channel loads ran at once")
                var statuses: [Int] = []
                for try await s in group { statuses.append(s) }
                return statuses.sorted()
            }
            await blocker.close()
            // A's secret verified the WhatsApp ones (their items ignored); no channel of those
            // accounts can verify the Twilio ones.
            #expect(statuses == [200, 200, 200, 200, 401, 401, 401, 401])
            #expect(directory.mostLoadsAtOnce == 1)
        }
    }
}
