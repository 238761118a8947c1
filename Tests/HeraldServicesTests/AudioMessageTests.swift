import Foundation
import HeraldPostgres
import HeraldServices
import HeraldStore
import HeraldTesting
import Testing

/// A free-form WhatsApp audio with a body goes as two requests (audio takes no caption): the
/// audio, then the body as text, one per claim, the first never sent again once accepted.
@Suite("Worker: WhatsApp audio, then its body as a text")
struct AudioMessageTests {
    typealias W = WorkerFixtures
    typealias M = MediaDeliveryTests

    static let audio = #"[{"type": "audio", "url": "https://cdn.example/voice/{{ first_name }}.ogg"}]"#

    /// A one-contact broadcast inside the 24-hour window with `audio` as media; returns (broadcast, message).
    static func audioBroadcast(_ c: PostgresConnection, double: ProviderDouble, body: String?) async throws -> (Int64, Int64) {
        let channel = try await W.whatsAppChannel(c, double: double)
        let ada = try await M.trickyContact(c)
        // Media written with the broadcast: an edit of a running one is re-validated first (0016).
        let b = try await W.sendingBroadcast(c, channel: channel, contacts: [ada], body: body, media: audio)
        return (b, try await M.messageID(c, b))
    }

    static func audioBody(_ id: Int64) -> String {
        #"{"messaging_product":"whatsapp","recipient_type":"individual","to":"+2348031234567","type":"audio","audio":{"link":"https://cdn.example/voice/Ada%20%26%20Bob%2BCo.ogg"},"biz_opaque_callback_data":"\#(id)"}"#
    }

    static func textBody(_ id: Int64) -> String {
        #"{"messaging_product":"whatsapp","recipient_type":"individual","to":"+2348031234567","type":"text","text":{"preview_url":false,"body":"Listen, Ada & Bob+Co!"},"biz_opaque_callback_data":"\#(id)"}"#
    }

    /// The message's view row and its recorded parts.
    static func message(_ c: PostgresConnection, _ id: Int64) async throws -> (status: String, attempts: Int, error: String?, providerID: String?, parts: [String]) {
        let r = try await c.query("""
            SELECT s.status, s.attempts, s.error, s.provider_message_id, coalesce(m.part_provider_message_ids, '{}')
            FROM herald.message_status s JOIN herald.messages m ON m.id = \(id)
            WHERE s.broadcast_id = m.broadcast_id AND s.contact_id = m.contact_id
            """)[0]
        return (try r.decode(String.self, at: 0), try r.decode(Int.self, at: 1), try r.decode(String?.self, at: 2),
                try r.decode(String?.self, at: 3), try r.decode([String?].self, at: 4).compactMap { $0 })
    }

    /// Starts the double (its first answers as `faults` says), makes the one-contact audio
    /// broadcast, runs a worker until its message is done, then hands over for the checks: the
    /// connection, the double, the message's id and its (status, error code).
    static func deliverAudio(body: String?, faults: [ProviderDouble.Fault] = [],
                             _ check: (PostgresConnection, ProviderDouble, Int64, (String, String?)) async throws -> Void) async throws {
        try await ProviderDouble.with { double in
            double.enqueue(faults, for: .whatsApp)
            try await withTestConnection { db, c in
                let (b, id) = try await audioBroadcast(c, double: double, body: body)
                try await check(c, double, id, try await M.deliver(db, c, b))
            }
        }
    }

    static let body = "Listen, {{ first_name }}!"

    @Test("audio with a body: the audio by link without caption, then the rendered body as text, in that order")
    func audioThenText() async throws {
        try await Self.deliverAudio(body: Self.body) { c, double, id, result in
            #expect(result.0 == "sent")
            #expect(double.received(.whatsApp).map(\.bodyText) == [Self.audioBody(id), Self.textBody(id)])
            let m = try await Self.message(c, id)
            #expect(m.attempts == 1)
            #expect(m.parts.count == 1)
            #expect(m.providerID != nil && m.providerID != m.parts.first)
        }
    }

    @Test("audio without a body: the audio alone")
    func audioAlone() async throws {
        try await Self.deliverAudio(body: nil) { c, double, id, result in
            #expect(result.0 == "sent")
            #expect(double.received(.whatsApp).map(\.bodyText) == [Self.audioBody(id)])
            let parts = try await Self.message(c, id).parts
            #expect(parts.isEmpty)
        }
    }

    @Test("a transient failure of the text after the audio was accepted retries the text only")
    func textRetriedAlone() async throws {
        try await Self.deliverAudio(body: Self.body, faults: [.succeed, .error(code: 131000)]) { c, double, id, result in
            #expect(result.0 == "sent")
            #expect(double.received(.whatsApp).map(\.bodyText) == [Self.audioBody(id), Self.textBody(id), Self.textBody(id)])
            let m = try await Self.message(c, id)
            #expect(m.attempts == 2)
            #expect(m.parts.count == 1)
        }
    }

    @Test("a permanent failure of the text fails the message with the reason")
    func textFailsForGood() async throws {
        try await Self.deliverAudio(body: Self.body, faults: [.succeed, .error(code: 131026, message: "Message undeliverable")]) { c, double, id, result in
            #expect(result.0 == "failed")
            #expect(result.1 == "131026")
            #expect(double.received(.whatsApp).map(\.bodyText) == [Self.audioBody(id), Self.textBody(id)])
            let error = try #require(try await Self.message(c, id).error)
            #expect(error.hasPrefix("Message undeliverable"))
            #expect(error.hasSuffix("(part 2 of 2; the parts before it were sent)"))
        }
    }

    @Test("receipts of both parts find the message; it follows the text's, and the audio's only when it failed")
    func receiptsOfBothParts() async throws {
        try await Self.deliverAudio(body: Self.body) { c, _, id, result in
            #expect(result.0 == "sent")
            let m = try await Self.message(c, id)
            let audioID = try #require(m.parts.first), textID = try #require(m.providerID)
            let channel = try await c.query("SELECT channel_id FROM herald.messages WHERE id = \(id)")[0].decode(Int64.self, at: 0)
            func apply(_ pid: String, _ status: String) async throws {
                let receipt = NewReceipt(provider: "whatsapp_cloud", providerMessageID: pid, status: status, effect: status,
                                         errorCode: status == "failed" ? "131053" : nil,
                                         error: status == "failed" ? "Media upload error" : nil,
                                         callbackMessageID: id, channelID: channel)
                let stored = try await ReceiptStore().insert([receipt], on: c)
                #expect(try await ReceiptStore().apply(ids: stored, on: c).applied == 1)
            }
            try await apply(audioID, "delivered")
            #expect(try await Self.message(c, id).status == "sent")
            try await apply(textID, "delivered")
            #expect(try await Self.message(c, id).status == "delivered")
            #expect(try await Self.message(c, id).providerID == textID)
            try await apply(audioID, "failed")
            let after = try await Self.message(c, id)
            #expect(after.status == "failed")
            #expect(after.error == "Media upload error")
            let unmatched = try await c.query("SELECT count(*) FROM herald.delivery_receipts WHERE message_id IS NULL")[0]
            #expect(try unmatched.decode(Int.self, at: 0) == 0)
        }
    }
}
