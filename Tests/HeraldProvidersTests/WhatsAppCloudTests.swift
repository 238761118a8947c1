import Foundation
import HeraldTransport
import Testing
@testable import HeraldProviders

@Suite struct WhatsAppCloudRequestTests {
    let settings = WhatsAppCloudSettings(phoneNumberID: "106540352242922", accessTokenEnv: "WA_TOKEN")
    let credentials = WhatsAppCloudCredentials(accessToken: "EAAG-token")

    private func body(_ content: OutgoingMessage.Content, to: String = "+2348031234567", id: Int64 = 42) throws -> String {
        let request = try WhatsAppCloud.request(
            for: OutgoingMessage(messageID: id, to: to, content: content), settings: settings, credentials: credentials)
        return String(decoding: request.body, as: UTF8.self)
    }

    @Test("template with parameters: golden body")
    func templateWithParameters() throws {
        let json = try body(.whatsAppTemplate(name: "spring_sale", language: "en_US", parameters: ["Ada", "20%"]))
        #expect(json == #"{"messaging_product":"whatsapp","recipient_type":"individual","to":"+2348031234567","type":"template","template":{"name":"spring_sale","language":{"code":"en_US"},"components":[{"type":"body","parameters":[{"type":"text","text":"Ada"},{"type":"text","text":"20%"}]}]},"biz_opaque_callback_data":"42"}"#)
    }

    @Test("template without parameters has no components")
    func templateWithoutParameters() throws {
        let json = try body(.whatsAppTemplate(name: "hello_world", language: "en", parameters: []), to: "2348031234567", id: 7)
        #expect(json == #"{"messaging_product":"whatsapp","recipient_type":"individual","to":"2348031234567","type":"template","template":{"name":"hello_world","language":{"code":"en"}},"biz_opaque_callback_data":"7"}"#)
    }

    @Test("text: golden body")
    func text() throws {
        let json = try body(.whatsAppText(body: "Hello Ada"))
        #expect(json == #"{"messaging_product":"whatsapp","recipient_type":"individual","to":"+2348031234567","type":"text","text":{"preview_url":false,"body":"Hello Ada"},"biz_opaque_callback_data":"42"}"#)
    }

    @Test("tricky strings: quotes, backslashes, newlines, controls, emoji, Yorùbá diacritics")
    func trickyStrings() throws {
        let tricky = "Ẹ káàbọ̀ \"Adé\" C:\\temp\\n\nline2\r\ttab\u{01}\u{1F}\u{7F} 😀👩🏾‍💻 </script>"
        let json = try body(.whatsAppTemplate(name: "promo", language: "yo", parameters: [tricky, "Ọlá"]))
        #expect(json == #"{"messaging_product":"whatsapp","recipient_type":"individual","to":"+2348031234567","type":"template","template":{"name":"promo","language":{"code":"yo"},"components":[{"type":"body","parameters":[{"type":"text","text":"Ẹ káàbọ̀ \"Adé\" C:\\temp\\n\nline2\r\ttab\u0001\u001f"# + "\u{7F}" + #" 😀👩🏾‍💻 </script>"},{"type":"text","text":"Ọlá"}]}]},"biz_opaque_callback_data":"42"}"#)
        // And any JSON parser reads back exactly what went in.
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        let template = object?["template"] as? [String: Any]
        let components = template?["components"] as? [[String: Any]]
        let parameters = components?.first?["parameters"] as? [[String: Any]]
        #expect(parameters?.first?["text"] as? String == tricky)
    }

    @Test("the escaper writes every control character")
    func escaper() {
        #expect(JSONWriter.escape("\u{00}\u{08}\u{0C}\u{1B}") == #"\u0000\b\f\u001b"#)
        #expect(JSONWriter.escape("/é") == "/é")
    }

    @Test("request line and headers")
    func requestShape() throws {
        let request = try WhatsAppCloud.request(
            for: OutgoingMessage(messageID: 1, to: "+1", content: .whatsAppText(body: "x")),
            settings: settings, credentials: credentials)
        #expect(request.method == "POST")
        #expect(request.url == "https://graph.facebook.com/v21.0/106540352242922/messages")
        #expect(request.headers.map { "\($0.name): \($0.value)" }
            == ["Authorization: Bearer EAAG-token", "Content-Type: application/json"])
        #expect(request.basicAuth == nil)
    }

    @Test("SMS content is refused")
    func wrongContent() {
        #expect(throws: MessageBuildError.self) {
            try WhatsAppCloud.request(for: OutgoingMessage(messageID: 1, to: "+1", content: .sms(body: "x")),
                                      settings: settings, credentials: credentials)
        }
    }
}

@Suite struct WhatsAppCloudClassificationTests {
    static func errorBody(code: String, message: String, details: String? = nil, transient: Bool? = nil) -> [UInt8] {
        var error = #"{"message":"\#(message)","type":"OAuthException","code":\#(code)"#
        if let details { error += #","error_data":{"messaging_product":"whatsapp","details":"\#(details)"}"# }
        if let transient { error += #","is_transient":\#(transient)"# }
        error += #","fbtrace_id":"Az8or2yhqkZfEZ-_4Qn_Bam"}"#
        return Array(#"{"error":\#(error)}"#.utf8)
    }

    enum Expect: Sendable, Equatable {
        case retry, rateLimited, permanent
    }

    @Test("error codes decide, not HTTP status", arguments: [
        (400, "130429", Expect.rateLimited),
        (400, "131056", .retry),
        (400, "80007", .rateLimited),
        (400, "4", .rateLimited),
        (400, "80004", .rateLimited),
        (400, "131048", .rateLimited),
        (500, "131000", .retry),
        (500, "131001", .retry),
        (500, "131002", .retry),
        (503, "131016", .retry),
        (400, "1", .retry),
        (400, "2", .retry),
        (400, "133004", .retry),
        (400, "131047", .permanent),
        (400, "131026", .permanent),
        (400, "131051", .permanent),
        (400, "132000", .permanent),
        (404, "132001", .permanent),
        (400, "100", .permanent),
        (401, "190", .permanent),
        (400, "131050", .permanent),
        (500, "131047", .permanent),
        (400, "999999", .permanent),
        (500, "999999", .retry),
        (429, "999999", .rateLimited),
        (400, #""131056""#, .retry),
    ])
    func codes(status: Int, code: String, expected: Expect) {
        let outcome = WhatsAppCloud.classify(HTTPResponse(status: status, body: Self.errorBody(code: code, message: "(#x) title")))
        switch (outcome, expected) {
        case (.retry(let c, _, _, false, false), .retry): #expect(c == code.replacingOccurrences(of: "\"", with: ""))
        case (.retry(let c, _, _, false, true), .rateLimited): #expect(c == code.replacingOccurrences(of: "\"", with: ""))
        case (.permanent(let c, _), .permanent): #expect(c == code)
        default: Issue.record("\(status) \(code): got \(outcome), expected \(expected)")
        }
    }

    @Test("a pair rate limit (131056) retries that message after 6 s or its Retry-After, without slowing the channel")
    func pairRateLimit() {
        let body = Self.errorBody(code: "131056", message: "(#131056) (Business Account, Consumer Account) pair rate limit hit")
        #expect(WhatsAppCloud.classify(HTTPResponse(status: 400, body: body))
            == .retry(code: "131056", message: "(#131056) (Business Account, Consumer Account) pair rate limit hit",
                      retryAfter: .seconds(6), ambiguous: false, rateLimited: false))
        let later = WhatsAppCloud.classify(HTTPResponse(status: 400, headers: ["Retry-After": "20"], body: body))
        guard case .retry(_, _, let wait, false, false) = later else { Issue.record("got \(later)"); return }
        #expect(wait == .seconds(20))
    }

    @Test("2xx with messages[0].id is accepted")
    func accepted() {
        let body = #"{"messaging_product":"whatsapp","contacts":[{"input":"+2348031234567","wa_id":"2348031234567"}],"messages":[{"id":"wamid.HBgLMjM0ODAzMTIzNDU2NxUCABEYEjdGMDhBQkY","message_status":"accepted"}]}"#
        #expect(WhatsAppCloud.classify(HTTPResponse(status: 200, body: Array(body.utf8)))
            == .accepted(providerMessageID: "wamid.HBgLMjM0ODAzMTIzNDU2NxUCABEYEjdGMDhBQkY"))
    }

    @Test("2xx without a message id fails for good rather than risking a duplicate")
    func acceptedWithoutID() {
        #expect(WhatsAppCloud.classify(HTTPResponse(status: 200, body: Array(#"{"messages":[]}"#.utf8)))
            == .permanent(code: nil, message: "provider answered 200 without a message id"))
        #expect(WhatsAppCloud.classify(HTTPResponse(status: 200))
            == .permanent(code: nil, message: "provider answered 200 without a message id"))
    }

    @Test("the outcome message carries Meta's message and details")
    func message() {
        let body = Self.errorBody(code: "131047", message: "(#131047) Re-engagement message",
                                  details: "Message failed to send because more than 24 hours have passed since the customer last replied to this number.")
        #expect(WhatsAppCloud.classify(HTTPResponse(status: 400, body: body)) == .permanent(
            code: "131047",
            message: "(#131047) Re-engagement message: Message failed to send because more than 24 hours have passed since the customer last replied to this number."))
    }

    @Test("an unknown code flagged is_transient is retried")
    func isTransient() {
        let body = Self.errorBody(code: "777", message: "temporary", transient: true)
        #expect(WhatsAppCloud.classify(HTTPResponse(status: 400, body: body))
            == .retry(code: "777", message: "temporary", retryAfter: nil, ambiguous: false, rateLimited: false))
    }

    @Test("5xx without a readable body is an ambiguous retry, except 503")
    func bareStatus() {
        #expect(WhatsAppCloud.classify(HTTPResponse(status: 502, body: Array("<html>Bad Gateway</html>".utf8)))
            == .retry(code: "http 502", message: "HTTP 502: <html>Bad Gateway</html>", retryAfter: nil, ambiguous: true, rateLimited: false))
        #expect(WhatsAppCloud.classify(HTTPResponse(status: 503))
            == .retry(code: "http 503", message: "HTTP 503", retryAfter: nil, ambiguous: false, rateLimited: false))
        #expect(WhatsAppCloud.classify(HTTPResponse(status: 404, body: Array("Not Found".utf8)))
            == .permanent(code: "http 404", message: "HTTP 404: Not Found"))
    }

    @Test("Retry-After in seconds and as an HTTP-date is honoured")
    func retryAfter() {
        let now = Date(timeIntervalSince1970: 1_445_412_420) // 2015-10-21 07:27:00 UTC
        #expect(WhatsAppCloud.classify(HTTPResponse(status: 429, headers: ["retry-after": "30"]), now: now)
            == .retry(code: "http 429", message: "HTTP 429", retryAfter: .seconds(30), ambiguous: false, rateLimited: true))
        let body = Self.errorBody(code: "130429", message: "(#130429) Rate limit hit")
        #expect(WhatsAppCloud.classify(
            HTTPResponse(status: 400, headers: ["retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"], body: body), now: now)
            == .retry(code: "130429", message: "(#130429) Rate limit hit", retryAfter: .seconds(60), ambiguous: false, rateLimited: true))
    }
}
