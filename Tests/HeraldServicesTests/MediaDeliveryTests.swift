import Foundation
import HeraldPostgres
import HeraldServices
import HeraldTesting
import Testing

/// What the worker puts on the wire for media and rich templates, byte for byte at the double.
@Suite("Worker: media, template headers and buttons on the wire")
struct MediaDeliveryTests {
    typealias W = WorkerFixtures

    /// A contact whose name needs percent-encoding in a URL: spaces, `&`, `+`, non-Latin letters.
    static func trickyContact(_ c: PostgresConnection, lastInbound: Bool = true) async throws -> Int64 {
        try await W.contact(c, first: "Ada & Bob+Co", last: "Ọlá 東京", phone: "+2348031234567",
                            attributes: #"{"order":"NG-42"}"#, lastInbound: lastInbound)
    }

    static let encodedName = "Ada%20%26%20Bob%2BCo%20%E1%BB%8Cl%C3%A1%20%E6%9D%B1%E4%BA%AC"

    /// Sets the header and buttons of a broadcast's template. The broadcast's own media and
    /// parameter columns are written when it is created (``WorkerFixtures/sendingBroadcast``):
    /// changing them on a `sending` broadcast is an edit the scheduler must validate first.
    static func shapeTemplate(_ c: PostgresConnection, broadcast: Int64, header: String = "none", headerText: String? = nil,
                              buttons: String? = nil) async throws {
        try await c.execute("""
            UPDATE herald.templates t SET header_format = \(header), header_text = \(headerText), buttons = \(buttons)::jsonb
            FROM herald.broadcasts b WHERE b.id = \(broadcast) AND t.id = b.template_id
            """)
    }

    static func messageID(_ c: PostgresConnection, _ broadcast: Int64) async throws -> Int64 {
        try await c.query("SELECT id FROM herald.messages WHERE broadcast_id = \(broadcast)")[0].decode(Int64.self, at: 0)
    }

    /// Runs a worker until the broadcast's one message is done; returns its status and error code.
    static func deliver(_ db: TestDatabase, _ c: PostgresConnection, _ broadcast: Int64) async throws -> (String, String?) {
        #expect(try await W.runWorker(W.configuration(db), until: W.allDone(db, broadcast: broadcast)))
        let row = try await c.query("SELECT status, error_code FROM herald.message_status WHERE broadcast_id = \(broadcast)")[0]
        return (try row.decode(String.self, at: 0), try row.decode(String?.self, at: 1))
    }

    @Test("image header by a personalized link, body params, url, quick_reply and copy_code buttons")
    func imageHeaderAndButtons() async throws {
        try await WorkerFixtures.withChannel(.whatsApp) { double in
            double.register(.init(name: "spring_sale", header: .image, bodyPlaceholders: 2,
                                  buttons: [.url(dynamic: true), .phoneNumber, .quickReply, .copyCode]))
        } body: { double, db, c, channel in
            let ada = try await Self.trickyContact(c)
            let b = try await W.sendingBroadcast(c, channel: channel, contacts: [ada],
                                                 template: ("spring_sale", ["{{ first_name }}", "20%"]),
                                                 media: #"[{"type": "image", "url": "https://cdn.example/cards/{{ name }}.png?o={{ attributes.order }}"}]"#,
                                                 buttonParams: #"["{{ attributes.order }}", "stop-{{ contact_id }}", "ADA25"]"#)
            try await Self.shapeTemplate(c, broadcast: b, header: "image", buttons: """
                [{"type": "url", "text": "Track", "url": "https://shop.example/o/{{1}}"}, {"type": "phone_number", "text": "Call"},
                 {"type": "quick_reply", "text": "Stop"}, {"type": "copy_code", "text": "Copy"}]
                """)
            let (status, _) = try await Self.deliver(db, c, b)
            #expect(status == "sent")
            let request = try #require(double.received(.whatsApp).first)
            let id = try await Self.messageID(c, b)
            #expect(request.bodyText == #"{"messaging_product":"whatsapp","recipient_type":"individual","to":"+2348031234567","type":"template","template":{"name":"spring_sale","language":{"code":"en_US"},"components":[{"type":"header","parameters":[{"type":"image","image":{"link":"https://cdn.example/cards/\#(Self.encodedName).png?o=NG-42"}}]},{"type":"body","parameters":[{"type":"text","text":"Ada & Bob+Co"},{"type":"text","text":"20%"}]},{"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"NG-42"}]},{"type":"button","sub_type":"quick_reply","index":"2","parameters":[{"type":"payload","payload":"stop-\#(ada)"}]},{"type":"button","sub_type":"copy_code","index":"3","parameters":[{"type":"coupon_code","coupon_code":"ADA25"}]}]},"biz_opaque_callback_data":"\#(id)"}"#)
        }
    }

    @Test("text header with its personalized placeholder")
    func textHeader() async throws {
        try await WorkerFixtures.withChannel(.whatsApp) { double in
            double.register(.init(name: "hello", header: .text(placeholders: 1), bodyPlaceholders: 1))
        } body: { double, db, c, channel in
            let ada = try await Self.trickyContact(c)
            let b = try await W.sendingBroadcast(c, channel: channel, contacts: [ada], template: ("hello", ["x"]),
                                                 headerParams: #"["{{ last_name }}"]"#)
            try await Self.shapeTemplate(c, broadcast: b, header: "text", headerText: "For {{1}}")
            #expect(try await Self.deliver(db, c, b).0 == "sent")
            let request = try #require(double.received(.whatsApp).first)
            let id = try await Self.messageID(c, b)
            #expect(request.bodyText == #"{"messaging_product":"whatsapp","recipient_type":"individual","to":"+2348031234567","type":"template","template":{"name":"hello","language":{"code":"en_US"},"components":[{"type":"header","parameters":[{"type":"text","text":"Ọlá 東京"}]},{"type":"body","parameters":[{"type":"text","text":"x"}]}]},"biz_opaque_callback_data":"\#(id)"}"#)
        }
    }

    @Test("document header by WhatsApp media id, with its filename")
    func documentHeaderByID() async throws {
        try await WorkerFixtures.withChannel(.whatsApp) { double in
            double.register(.init(name: "catalogue", header: .document, bodyPlaceholders: 1))
        } body: { double, db, c, channel in
            let ada = try await Self.trickyContact(c)
            let b = try await W.sendingBroadcast(c, channel: channel, contacts: [ada], template: ("catalogue", ["x"]),
                                                 media: #"[{"type": "document", "whatsapp_media_id": "1013859600285441", "filename": "Catalogue 2026.pdf"}]"#)
            try await Self.shapeTemplate(c, broadcast: b, header: "document")
            #expect(try await Self.deliver(db, c, b).0 == "sent")
            let request = try #require(double.received(.whatsApp).first)
            let id = try await Self.messageID(c, b)
            #expect(request.bodyText == #"{"messaging_product":"whatsapp","recipient_type":"individual","to":"+2348031234567","type":"template","template":{"name":"catalogue","language":{"code":"en_US"},"components":[{"type":"header","parameters":[{"type":"document","document":{"id":"1013859600285441","filename":"Catalogue 2026.pdf"}}]},{"type":"body","parameters":[{"type":"text","text":"x"}]}]},"biz_opaque_callback_data":"\#(id)"}"#)
        }
    }

    @Test("free-form image inside the 24-hour window, the rendered body as caption")
    func freeFormImage() async throws {
        try await WorkerFixtures.withChannel(.whatsApp) { double, db, c, channel in
            let ada = try await Self.trickyContact(c)
            let b = try await W.sendingBroadcast(c, channel: channel, contacts: [ada], body: "New in, {{ first_name }}!",
                                                 media: #"[{"type": "image", "url": "https://cdn.example/{{ name }}.jpg"}]"#)
            #expect(try await Self.deliver(db, c, b).0 == "sent")
            let request = try #require(double.received(.whatsApp).first)
            let id = try await Self.messageID(c, b)
            #expect(request.bodyText == #"{"messaging_product":"whatsapp","recipient_type":"individual","to":"+2348031234567","type":"image","image":{"link":"https://cdn.example/\#(Self.encodedName).jpg","caption":"New in, Ada & Bob+Co!"},"biz_opaque_callback_data":"\#(id)"}"#)
        }
    }

    @Test("Twilio MMS: several MediaUrls with the body, tags percent-encoded inside each URL")
    func mms() async throws {
        try await WorkerFixtures.withChannel(.twilio) { double, db, c, channel in
            let ada = try await Self.trickyContact(c)
            let b = try await W.sendingBroadcast(c, channel: channel, contacts: [ada], body: "Coupon for {{ first_name }}", media: """
                [{"type": "image", "url": "https://cdn.example/c/{{ name }}.png"},
                 {"type": "image", "url": "https://cdn.example/static/b.gif"},
                 {"type": "video", "url": "https://cdn.example/v.mp4?who={{ first_name }}"}]
                """)
            #expect(try await Self.deliver(db, c, b).0 == "sent")
            let request = try #require(double.received(.twilio).first)
            #expect(request.formValues("MediaUrl") == [
                "https://cdn.example/c/\(Self.encodedName).png", "https://cdn.example/static/b.gif",
                "https://cdn.example/v.mp4?who=Ada%20%26%20Bob%2BCo",
            ])
            #expect(request.bodyText == "To=%2B2348031234567&From=%2B15005550006&Body=Coupon+for+Ada+%26+Bob%2BCo"
                + "&MediaUrl=https%3A%2F%2Fcdn.example%2Fc%2FAda%2520%2526%2520Bob%252BCo%2520%25E1%25BB%258Cl%25C3%25A1%2520%25E6%259D%25B1%25E4%25BA%25AC.png"
                + "&MediaUrl=https%3A%2F%2Fcdn.example%2Fstatic%2Fb.gif"
                + "&MediaUrl=https%3A%2F%2Fcdn.example%2Fv.mp4%3Fwho%3DAda%2520%2526%2520Bob%252BCo")
        }
    }

    /// A template whose row in Herald disagrees with what Meta approved: Meta refuses the send.
    struct Mismatch: Sendable, CustomTestStringConvertible {
        var name: String
        var atMeta: ProviderDouble.WhatsAppTemplate
        var header: String
        var buttons: String?
        var media: String?
        var buttonParams: String?
        var code: String
        var testDescription: String { name }
    }

    static let mismatches: [Mismatch] = [
        Mismatch(name: "header parameter missing (131008)", atMeta: .init(name: "m", header: .image, bodyPlaceholders: 1),
                 header: "none", code: "131008"),
        Mismatch(name: "media header on a text template (132012)",
                 atMeta: .init(name: "m", header: .text(placeholders: 0), bodyPlaceholders: 1),
                 header: "image", media: #"[{"type": "image", "url": "https://cdn.example/a.png"}]"#, code: "132012"),
        Mismatch(name: "button index out of range (131009)", atMeta: .init(name: "m", bodyPlaceholders: 1),
                 header: "none", buttons: #"[{"type": "quick_reply", "text": "Stop"}]"#, buttonParams: #"["stop"]"#, code: "131009"),
    ]

    @Test("the double refuses what Meta refuses, in Meta's error shape, and the message fails with the code",
          arguments: mismatches)
    func metaRefuses(_ mismatch: Mismatch) async throws {
        try await WorkerFixtures.withChannel(.whatsApp, configure: { double in double.register(mismatch.atMeta) }) { double, db, c, channel in
            let ada = try await Self.trickyContact(c)
            let b = try await W.sendingBroadcast(c, channel: channel, contacts: [ada], template: ("m", ["x"]),
                                                 media: mismatch.media, buttonParams: mismatch.buttonParams)
            try await Self.shapeTemplate(c, broadcast: b, header: mismatch.header, buttons: mismatch.buttons)
            let (status, code) = try await Self.deliver(db, c, b)
            #expect(status == "failed")
            #expect(code == mismatch.code)
            let answer = try #require(double.received(.whatsApp).first)
            #expect(answer.responseStatus == 400)
        }
    }
}
