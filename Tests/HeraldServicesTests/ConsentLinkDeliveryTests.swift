import Foundation
import HeraldPostgres
import HeraldProviders
import HeraldServices
import HeraldTesting
import Testing

/// `{{ unsubscribe_url }}` as the provider double receives it, and validation without the variables.
@Suite("Consent: unsubscribe links in sent messages")
struct ConsentLinkDeliveryTests {
    static let publicURL = "https://hooks.example.com"
    static let secret = "unsubscribe-secret"
    static var links: UnsubscribeLinks { UnsubscribeLinks(publicURL: publicURL, secret: secret) }

    static func configuration(_ db: TestDatabase) -> WorkerConfiguration {
        var config = WorkerFixtures.configuration(db)
        config.environment["HERALD_UNSUBSCRIBE_SECRET"] = secret
        config.publicURL = publicURL
        return config
    }

    @Test("an SMS body's {{ unsubscribe_url }} is this message's signed link")
    func smsLink() async throws {
        try await WorkerFixtures.withChannel(.twilio) { double, db, c, channel in
            let who = try await WorkerFixtures.contact(c, first: "Ada", phone: "+2348031234567")
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: [who], body: "Sale! Opt out: {{ unsubscribe_url }}")
            #expect(try await WorkerFixtures.runWorker(Self.configuration(db), until: WorkerFixtures.allDone(db, broadcast: b)))
            let message = try await c.query("SELECT id FROM herald.messages WHERE broadcast_id = \(b)")[0].decode(Int64.self, at: 0)
            let request = try #require(double.received(.twilio).first)
            let form = try FormURLEncoded.parse(request.body)
            let body = try #require(form.first { $0.name == "Body" }?.value)
            #expect(body == "Sale! Opt out: " + Self.links.url(messageID: message))
        }
    }

    @Test("an email channel without its own unsubscribe_url sends Herald's link as one-click List-Unsubscribe")
    func emailListUnsubscribe() async throws {
        try await ProviderDouble.with { double in
            try await withTestConnection { db, c in
                let settings = #"{"url":"\#(double.smtpURL)","from":"Shop <news@shop.example>"}"#
                let channel = try await c.query("""
                    INSERT INTO herald.channels (name, kind, provider, settings, rate_per_second, burst)
                    VALUES ('mail', 'email', 'smtp', \(settings)::jsonb, 1000, 100) RETURNING id
                    """)[0].decode(Int64.self, at: 0)
                let who = try await WorkerFixtures.contact(c, first: "Tom", email: "tom@example.com")
                let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: [who], body: "Hello", subject: "Offers")
                #expect(try await WorkerFixtures.runWorker(Self.configuration(db), until: WorkerFixtures.allDone(db, broadcast: b)))
                let message = try await c.query("SELECT id FROM herald.messages WHERE broadcast_id = \(b)")[0].decode(Int64.self, at: 0)
                let text = try #require(double.receivedMails().first).text
                #expect(text.contains("List-Unsubscribe: <\(Self.links.url(messageID: message))>"))
                #expect(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"))
            }
        }
    }

    @Test("a broadcast using {{ unsubscribe_url }} fails validation while HERALD_UNSUBSCRIBE_SECRET is missing")
    func validation() async throws {
        typealias F = SchedulerFixtures
        try await F.withChannelAndContact { db, c, channel, contact in
            let id = try await F.broadcast(c, channel: channel, body: "Bye: {{ unsubscribe_url }}", contacts: [contact])
            try await F.withScheduler(db) {
                try await F.waitUntil("it fails", timeout: .seconds(30)) { try await F.status(c, id) != "scheduled" }
            }
            #expect(try await F.status(c, id) == "failed")
            #expect(try await F.error(c, id) == UnsubscribeLinks.notConfigured)
        }
    }

    @Test("with both variables set, the same broadcast passes validation")
    func validationPasses() async throws {
        typealias F = SchedulerFixtures
        try await F.withChannelAndContact { db, c, channel, contact in
            let id = try await F.broadcast(c, channel: channel, body: "Bye: {{ unsubscribe_url }}", contacts: [contact])
            var variables = F.providerEnvironment.variables
            variables["HERALD_UNSUBSCRIBE_SECRET"] = Self.secret
            let environment = ProviderEnvironment(variables: variables, publicURL: Self.publicURL)
            try await F.runSchedulerUntilStarted(db, c, id, environment: environment)
            #expect(try await F.status(c, id) == "sending")
        }
    }
}
