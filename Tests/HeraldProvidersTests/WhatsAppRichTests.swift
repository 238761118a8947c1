import Foundation
import Testing
@testable import HeraldProviders

/// Golden bodies of WhatsApp template messages with headers and buttons, and of free-form media
/// messages, byte for byte as Meta's Cloud API takes them.
@Suite struct WhatsAppRichTests {
    private func body(_ content: OutgoingMessage.Content) throws -> String {
        String(decoding: try WhatsAppCloud.body(for: OutgoingMessage(messageID: 42, to: "+2348031234567", content: content)),
               as: UTF8.self)
    }

    private static let head = #"{"messaging_product":"whatsapp","recipient_type":"individual","to":"+2348031234567","#
    private static let tail = #","biz_opaque_callback_data":"42"}"#

    @Test("text header with its placeholder, then the body's")
    func textHeader() throws {
        let json = try body(.whatsAppTemplate(name: "sale", language: "en_US", parameters: ["Ada"], header: .text("Ọlá & co")))
        #expect(json == Self.head + #""type":"template","template":{"name":"sale","language":{"code":"en_US"},"components":[{"type":"header","parameters":[{"type":"text","text":"Ọlá & co"}]},{"type":"body","parameters":[{"type":"text","text":"Ada"}]}]}"# + Self.tail)
    }

    @Test("image header by link")
    func imageHeaderByLink() throws {
        let json = try body(.whatsAppTemplate(name: "sale", language: "en_US", parameters: [],
                                              header: .media(OutgoingMedia(kind: .image, source: .link("https://cdn.example/a%20b.png")))))
        #expect(json == Self.head + #""type":"template","template":{"name":"sale","language":{"code":"en_US"},"components":[{"type":"header","parameters":[{"type":"image","image":{"link":"https://cdn.example/a%20b.png"}}]}]}"# + Self.tail)
    }

    @Test("video header by media id")
    func videoHeaderByID() throws {
        let json = try body(.whatsAppTemplate(name: "clip", language: "en", parameters: ["x"],
                                              header: .media(OutgoingMedia(kind: .video, source: .whatsAppMediaID("1013859600285441")))))
        #expect(json == Self.head + #""type":"template","template":{"name":"clip","language":{"code":"en"},"components":[{"type":"header","parameters":[{"type":"video","video":{"id":"1013859600285441"}}]},{"type":"body","parameters":[{"type":"text","text":"x"}]}]}"# + Self.tail)
    }

    @Test("document header carries its filename")
    func documentHeader() throws {
        let json = try body(.whatsAppTemplate(name: "catalogue", language: "en_US", parameters: [],
                                              header: .media(OutgoingMedia(kind: .document, source: .link("https://cdn.example/c.pdf"),
                                                                           filename: "Catalogue 2026.pdf"))))
        #expect(json == Self.head + #""type":"template","template":{"name":"catalogue","language":{"code":"en_US"},"components":[{"type":"header","parameters":[{"type":"document","document":{"link":"https://cdn.example/c.pdf","filename":"Catalogue 2026.pdf"}}]}]}"# + Self.tail)
    }

    @Test("url, quick_reply and copy_code buttons: sub_type, index as a string, parameter type")
    func buttons() throws {
        let json = try body(.whatsAppTemplate(name: "promo", language: "en_US", parameters: ["Ada"], buttons: [
            WhatsAppTemplateButton(kind: .url, index: 1, value: "order/NG-42"),
            WhatsAppTemplateButton(kind: .quickReply, index: 2, value: "stop-promos"),
            WhatsAppTemplateButton(kind: .copyCode, index: 3, value: "ADA25"),
        ]))
        #expect(json == Self.head + #""type":"template","template":{"name":"promo","language":{"code":"en_US"},"components":[{"type":"body","parameters":[{"type":"text","text":"Ada"}]},{"type":"button","sub_type":"url","index":"1","parameters":[{"type":"text","text":"order/NG-42"}]},{"type":"button","sub_type":"quick_reply","index":"2","parameters":[{"type":"payload","payload":"stop-promos"}]},{"type":"button","sub_type":"copy_code","index":"3","parameters":[{"type":"coupon_code","coupon_code":"ADA25"}]}]}"# + Self.tail)
    }

    @Test("buttons alone make a components array")
    func buttonsWithoutBody() throws {
        let json = try body(.whatsAppTemplate(name: "p", language: "en", parameters: [],
                                              buttons: [WhatsAppTemplateButton(kind: .quickReply, index: 0, value: "yes")]))
        #expect(json == Self.head + #""type":"template","template":{"name":"p","language":{"code":"en"},"components":[{"type":"button","sub_type":"quick_reply","index":"0","parameters":[{"type":"payload","payload":"yes"}]}]}"# + Self.tail)
    }

    @Test("free-form image with the body as caption")
    func freeFormImage() throws {
        let json = try body(.whatsAppMedia(OutgoingMedia(kind: .image, source: .link("https://cdn.example/p.jpg")), caption: "Hi \"Ada\""))
        #expect(json == Self.head + #""type":"image","image":{"link":"https://cdn.example/p.jpg","caption":"Hi \"Ada\""}"# + Self.tail)
    }

    @Test("free-form document by media id, caption and filename")
    func freeFormDocument() throws {
        let json = try body(.whatsAppMedia(OutgoingMedia(kind: .document, source: .whatsAppMediaID("77"), filename: "menu.pdf"),
                                           caption: "Our menu"))
        #expect(json == Self.head + #""type":"document","document":{"id":"77","caption":"Our menu","filename":"menu.pdf"}"# + Self.tail)
    }

    @Test("free-form video; an empty caption is left out")
    func freeFormVideo() throws {
        let json = try body(.whatsAppMedia(OutgoingMedia(kind: .video, source: .link("https://cdn.example/v.mp4")), caption: ""))
        #expect(json == Self.head + #""type":"video","video":{"link":"https://cdn.example/v.mp4"}"# + Self.tail)
    }

    @Test("audio never carries a caption")
    func audio() throws {
        let json = try body(.whatsAppMedia(OutgoingMedia(kind: .audio, source: .link("https://cdn.example/a.ogg")), caption: "ignored"))
        #expect(json == Self.head + #""type":"audio","audio":{"link":"https://cdn.example/a.ogg"}"# + Self.tail)
    }

    @Test("every rich body is JSON that reads back what went in")
    func parsesBack() throws {
        let json = try body(.whatsAppTemplate(name: "promo", language: "en_US", parameters: ["a\"b"],
                                              header: .media(OutgoingMedia(kind: .image, source: .whatsAppMediaID("9"))),
                                              buttons: [WhatsAppTemplateButton(kind: .copyCode, index: 0, value: "C\\1")]))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let components = try #require((object["template"] as? [String: Any])?["components"] as? [[String: Any]])
        #expect(components.count == 3)
        let coupon = (components[2]["parameters"] as? [[String: Any]])?.first?["coupon_code"] as? String
        #expect(coupon == "C\\1")
    }

    @Test("an audio with a caption is two messages: the audio without it, then the caption as text; other media keep theirs")
    func audioParts() throws {
        let audio = OutgoingMedia(kind: .audio, source: .link("https://cdn.example/v.ogg"))
        let parts = WhatsAppCloud.parts(of: OutgoingMessage(messageID: 42, to: "+2348031234567",
                                                            content: .whatsAppMedia(audio, caption: "Listen, Ada")))
        let bodies = try parts.map { String(decoding: try WhatsAppCloud.body(for: $0), as: UTF8.self) }
        let head = #"{"messaging_product":"whatsapp","recipient_type":"individual","to":"+2348031234567","#
        let tail = #","biz_opaque_callback_data":"42"}"#
        #expect(bodies == [
            head + #""type":"audio","audio":{"link":"https://cdn.example/v.ogg"}"# + tail,
            head + #""type":"text","text":{"preview_url":false,"body":"Listen, Ada"}"# + tail,
        ])
        for caption in [nil, ""] as [String?] {
            #expect(WhatsAppCloud.parts(of: OutgoingMessage(messageID: 42, to: "+1", content: .whatsAppMedia(audio, caption: caption))).count == 1)
        }
        let image = OutgoingMessage(messageID: 42, to: "+1",
                                    content: .whatsAppMedia(OutgoingMedia(kind: .image, source: .link("https://cdn.example/a.png")), caption: "Hi"))
        #expect(WhatsAppCloud.parts(of: image) == [image])
    }
}

@Suite struct TwilioMMSTests {
    let settings = TwilioSettings(accountSID: "AC123", authTokenEnv: "TW", sender: .number("+15005550006"))

    @Test("MMS: one MediaUrl field per item, in order, after Body; values form-encoded")
    func severalMedia() throws {
        let request = try Twilio.request(
            for: OutgoingMessage(messageID: 9, to: "+2348031234567", content: .sms(body: "Hi Ada", mediaURLs: [
                "https://cdn.example/a.png", "https://cdn.example/b%20c.jpg?x=1&y=2", "https://cdn.example/%E1%BB%8C.gif",
            ])),
            settings: settings, credentials: TwilioCredentials(authToken: "t"))
        #expect(String(decoding: request.body, as: UTF8.self)
            == "To=%2B2348031234567&From=%2B15005550006&Body=Hi+Ada&MediaUrl=https%3A%2F%2Fcdn.example%2Fa.png&MediaUrl=https%3A%2F%2Fcdn.example%2Fb%2520c.jpg%3Fx%3D1%26y%3D2&MediaUrl=https%3A%2F%2Fcdn.example%2F%25E1%25BB%258C.gif")
    }

    @Test("more than 10 media items cannot be written")
    func tooMany() {
        let urls = (0..<11).map { "https://cdn.example/\($0).png" }
        #expect(throws: MessageBuildError.self) {
            try Twilio.request(for: OutgoingMessage(messageID: 1, to: "+1", content: .sms(body: "x", mediaURLs: urls)),
                               settings: settings, credentials: TwilioCredentials(authToken: "t"))
        }
    }
}
