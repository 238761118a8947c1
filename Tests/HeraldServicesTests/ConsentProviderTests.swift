import Foundation
import HeraldPostgres
import HeraldServices
import HeraldStore
import HeraldTesting
import Testing

/// Opt-outs from provider answers (Twilio 21610, Meta 131050) through a real worker and the
/// provider double, and from failed receipts through the applier's statement.
@Suite("Consent: provider opt-outs")
struct ConsentProviderTests {
    static func optOuts(_ c: PostgresConnection, _ contact: Int64) async throws -> [String] {
        try await c.query("""
            SELECT coalesce(source, 'admin') || ':' || channel_kind || ':' || coalesce(broadcast_id::text, '-')
            FROM herald.opt_outs WHERE contact_id = \(contact) ORDER BY 1
            """).map { try $0.decode(String.self, at: 0) }
    }

    static func failure(_ c: PostgresConnection, broadcast: Int64, contact: Int64) async throws -> (String, String?) {
        let r = try await c.query("""
            SELECT status, error_code FROM herald.messages WHERE broadcast_id = \(broadcast) AND contact_id = \(contact)
            """)[0]
        return (try r.decode(String.self, at: 0), try r.decode(String?.self, at: 1))
    }

    /// Runs a worker on a broadcast over a `kind` channel (a body on SMS, a template on WhatsApp)
    /// to Ada and to Bola, whose sends the provider answers with `fault`; expects Bola's message
    /// failed with `code` and Bola opted out of `channelKind` by the provider, for this broadcast,
    /// and Ada not opted out.
    static func expectProviderOptOut(_ kind: WorkerFixtures.DoubleChannel, _ fault: ProviderDouble.Fault,
                                     code: String, channelKind: String) async throws {
        try await WorkerFixtures.withChannel(kind, rejecting: "+2348031234568", with: fault) { double, db, c, channel in
            let good = try await WorkerFixtures.contact(c, first: "Ada", phone: "+2348031234567")
            let stopped = try await WorkerFixtures.contact(c, first: "Bola", phone: "+2348031234568")
            let b = kind == .twilio
                ? try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: [good, stopped], body: "Hi {{ first_name }}")
                : try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: [good, stopped], template: ("promo", ["x"]))
            #expect(try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), until: WorkerFixtures.allDone(db, broadcast: b)))
            #expect(try await Self.failure(c, broadcast: b, contact: stopped) == ("failed", code))
            #expect(try await Self.optOuts(c, stopped) == ["provider:\(channelKind):\(b)"])
            #expect(try await Self.optOuts(c, good) == [])
        }
    }

    @Test("Twilio 21610: the message fails with its code and its contact is opted out of SMS (source provider, the broadcast)")
    func twilio21610() async throws {
        try await Self.expectProviderOptOut(.twilio, .error(code: 21610, status: 400, message: "Attempt to send to unsubscribed recipient"),
                                            code: "21610", channelKind: "sms")
    }

    @Test("Meta 131050: the message fails with its code and its contact is opted out of WhatsApp (source provider, the broadcast)")
    func meta131050() async throws {
        try await Self.expectProviderOptOut(.whatsApp, .error(code: 131050, status: 400), code: "131050", channelKind: "whatsapp")
    }

    @Test("another permanent error opts nobody out")
    func otherCodes() async throws {
        try await WorkerFixtures.withChannel(.twilio, rejecting: "+2348031234568", with: .error(code: 21211, status: 400)) { double, db, c, channel in
            let bad = try await WorkerFixtures.contact(c, first: "Bola", phone: "+2348031234568")
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: [bad], body: "Hi")
            #expect(try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), until: WorkerFixtures.allDone(db, broadcast: b)))
            #expect(try await Self.failure(c, broadcast: b, contact: bad) == ("failed", "21211"))
            #expect(try await Self.optOuts(c, bad) == [])
        }
    }

    @Test("an opt-out arriving mid-broadcast skips that contact's later messages of the kind in every running broadcast")
    func acrossBroadcasts() async throws {
        try await ProviderDouble.with { double in
            double.reject(recipient: "+2348031234568", on: .twilio, with: .error(code: 21610, status: 400))
            try await withTestConnection { db, c in
                let first = try await WorkerFixtures.twilioChannel(c, double: double, name: "sms-a")
                let second = try await WorkerFixtures.twilioChannel(c, double: double, name: "sms-b")
                let good = try await WorkerFixtures.contact(c, first: "Ada", phone: "+2348031234567")
                let stopped = try await WorkerFixtures.contact(c, first: "Bola", phone: "+2348031234568")
                let a = try await WorkerFixtures.sendingBroadcast(c, channel: first, contacts: [good, stopped], body: "A")
                let b = try await WorkerFixtures.sendingBroadcast(c, channel: second, contacts: [good, stopped], body: "B")
                // Both are `sending`; the first channel's worker meets 21610 before anyone sends the second.
                var config = WorkerFixtures.configuration(db)
                config.channels = ["sms-a"]
                #expect(try await WorkerFixtures.runWorker(config, until: WorkerFixtures.allDone(db, broadcast: a)))
                #expect(try await WorkerFixtures.statuses(c, broadcast: b) == ["queued": 2])
                config.channels = ["sms-b"]
                #expect(try await WorkerFixtures.runWorker(config, until: WorkerFixtures.allDone(db, broadcast: b)))
                let r = try await c.query("SELECT status, skip_reason FROM herald.messages WHERE broadcast_id = \(b) AND contact_id = \(stopped)")[0]
                #expect(try r.decode(String.self, at: 0) == "skipped")
                #expect(try r.decode(String?.self, at: 1) == "opted_out")
                #expect(double.received(.twilio).count == 3, "the second broadcast sent only to Ada")
            }
        }
    }

    @Test("a failed status receipt with 21610 opts the contact out; a replay inserts nothing more")
    func failedReceipt() async throws {
        try await withTestConnection { db, c in
            let contact = try await WorkerFixtures.contact(c, first: "Bola", phone: "+2348031234568")
            let (message, broadcast, channel) = try await WorkerFixtures.sentMessage(
                c, to: contact, address: "+2348031234568", channel: "sms", kind: "sms", provider: "twilio", providerMessageID: "SM1")
            let receipt = NewReceipt(provider: "twilio", providerMessageID: "SM1", status: "undelivered", effect: "failed",
                                     errorCode: "21610", error: "unsubscribed", callbackMessageID: message, channelID: channel)
            for _ in 0..<2 {
                let ids = try await ReceiptStore().insert([receipt], on: c)
                _ = try await ReceiptStore().apply(ids: ids, on: c)
            }
            #expect(try await Self.failure(c, broadcast: broadcast, contact: contact) == ("failed", "21610"))
            #expect(try await Self.optOuts(c, contact) == ["provider:sms:\(broadcast)"])
        }
    }
}
