import Foundation
import HeraldTransport
import Testing
@testable import HeraldProviders

@Suite struct TwilioRequestTests {
    let credentials = TwilioCredentials(authToken: "tw-secret")

    @Test("golden request with From and a status callback from HERALD_PUBLIC_URL carrying Herald's message id")
    func golden() throws {
        let settings = TwilioSettings(accountSID: "AC0123456789abcdef", authTokenEnv: "TW", sender: .number("+15005550006"))
        let request = try Twilio.request(
            for: OutgoingMessage(messageID: 9, to: "+2348031234567", content: .sms(body: "Hi Adé & co: 1+1=2 😀 ~50% off!")),
            settings: settings, credentials: credentials, publicURL: "https://herald.example.com")
        #expect(request.method == "POST")
        #expect(request.url == "https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef/Messages.json")
        #expect(request.headers.map { "\($0.name): \($0.value)" } == ["Content-Type: application/x-www-form-urlencoded"])
        #expect(request.basicAuth?.user == "AC0123456789abcdef")
        #expect(request.basicAuth?.password == "tw-secret")
        #expect(String(decoding: request.body, as: UTF8.self)
            == "To=%2B2348031234567&From=%2B15005550006&Body=Hi+Ad%C3%A9+%26+co%3A+1%2B1%3D2+%F0%9F%98%80+%7E50%25+off%21"
            + "&StatusCallback=https%3A%2F%2Fherald.example.com%2Fwebhooks%2Ftwilio%3Fherald_message_id%3D9")
    }

    @Test("a sender of a messaging service's pool: both From and MessagingServiceSid go")
    func numberOfService() throws {
        let settings = TwilioSettings(accountSID: "AC1", authTokenEnv: "TW", sender: .numberOfService("Acme", sid: "MG1"))
        let request = try Twilio.request(
            for: OutgoingMessage(messageID: 9, to: "+1", content: .sms(body: "hi")), settings: settings, credentials: credentials)
        #expect(String(decoding: request.body, as: UTF8.self) == "To=%2B1&From=Acme&MessagingServiceSid=MG1&Body=hi")
    }

    @Test("messaging service, own callback URL (its query kept, the message id added), no From")
    func messagingService() throws {
        let settings = TwilioSettings(baseURL: "http://127.0.0.1:8089", accountSID: "AC1", authTokenEnv: "TW",
                                      sender: .messagingService(sid: "MG1"), statusCallback: "https://cb.example/t?x=1")
        let request = try Twilio.request(
            for: OutgoingMessage(messageID: 9, to: "+1", content: .sms(body: "a=b")),
            settings: settings, credentials: credentials, publicURL: "https://ignored.example")
        #expect(request.url == "http://127.0.0.1:8089/2010-04-01/Accounts/AC1/Messages.json")
        #expect(String(decoding: request.body, as: UTF8.self)
            == "To=%2B1&MessagingServiceSid=MG1&Body=a%3Db&StatusCallback=https%3A%2F%2Fcb.example%2Ft%3Fx%3D1%26herald_message_id%3D9")
    }

    @Test("no StatusCallback when no URL is known")
    func noCallback() throws {
        let settings = TwilioSettings(accountSID: "AC1", authTokenEnv: "TW", sender: .number("Acme"))
        let request = try Twilio.request(for: OutgoingMessage(messageID: 1, to: "+1", content: .sms(body: "")),
                                         settings: settings, credentials: credentials)
        #expect(String(decoding: request.body, as: UTF8.self) == "To=%2B1&From=Acme&Body=")
    }

    @Test("form encoding round-trips through a standard decoder")
    func roundTrip() {
        let values = ["plain", "a b", "a+b", "a&b=c", "100%", "Ẹ káàbọ̀ 👩🏾‍💻", "line1\nline2\r\n", "*-._~!'()"]
        for value in values {
            let encoded = String(decoding: FormEncoding.encode([("k", value)]), as: UTF8.self)
            let raw = String(encoded.dropFirst(2)).replacingOccurrences(of: "+", with: " ")
            #expect(raw.removingPercentEncoding == value)
            #expect(!encoded.dropFirst(2).contains(where: { "&= ".contains($0) }))
        }
    }

    @Test("email content is refused")
    func wrongContent() {
        #expect(throws: MessageBuildError.self) {
            try Twilio.request(
                for: OutgoingMessage(messageID: 1, to: "a@b.example", content: .email(subject: "", text: "", html: nil, unsubscribeURL: nil)),
                settings: TwilioSettings(accountSID: "AC1", authTokenEnv: "T", sender: .number("+1")), credentials: credentials)
        }
    }
}

@Suite struct TwilioClassificationTests {
    static func errorBody(_ code: Int, _ message: String, status: Int) -> [UInt8] {
        Array(#"{"code": \#(code), "message": "\#(message)", "more_info": "https://www.twilio.com/docs/errors/\#(code)", "status": \#(status)}"#.utf8)
    }

    @Test("201 with sid is accepted")
    func accepted() {
        let body = #"{"account_sid":"AC1","sid":"SM1f0e8ae6ade43cb3c0ce4525424e404f","status":"queued","to":"+2348031234567"}"#
        #expect(Twilio.classify(HTTPResponse(status: 201, body: Array(body.utf8)))
            == .accepted(providerMessageID: "SM1f0e8ae6ade43cb3c0ce4525424e404f"))
        #expect(Twilio.classify(HTTPResponse(status: 201, body: Array("{}".utf8)))
            == .permanent(code: nil, message: "provider answered 201 without a message sid"))
    }

    @Test("4xx errors are permanent with Twilio's code and message", arguments: [
        (400, 21211, "The 'To' number +234 is not a valid phone number."),
        (400, 21610, "Attempt to send to unsubscribed recipient"),
        (400, 21408, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: +999."),
        (401, 20003, "Authenticate"),
        (404, 20404, "The requested resource was not found"),
    ])
    func permanent(status: Int, code: Int, message: String) {
        #expect(Twilio.classify(HTTPResponse(status: status, body: Self.errorBody(code, message, status: status)))
            == .permanent(code: String(code), message: message))
    }

    @Test("429 and 20429 are rate-limited retries honouring Retry-After")
    func rateLimited() {
        #expect(Twilio.classify(HTTPResponse(status: 429, headers: ["retry-after": "5"],
                                             body: Self.errorBody(20429, "Too Many Requests", status: 429)))
            == .retry(code: "20429", message: "Too Many Requests", retryAfter: .seconds(5), ambiguous: false, rateLimited: true))
        #expect(Twilio.classify(HTTPResponse(status: 400, body: Self.errorBody(20429, "Too Many Requests", status: 400)))
            == .retry(code: "20429", message: "Too Many Requests", retryAfter: nil, ambiguous: false, rateLimited: true))
        #expect(Twilio.classify(HTTPResponse(status: 429))
            == .retry(code: "http 429", message: "HTTP 429", retryAfter: nil, ambiguous: false, rateLimited: true))
    }

    @Test("5xx is retried; ambiguous unless 503")
    func serverErrors() {
        #expect(Twilio.classify(HTTPResponse(status: 500, body: Self.errorBody(20500, "Internal Server Error", status: 500)))
            == .retry(code: "20500", message: "Internal Server Error", retryAfter: nil, ambiguous: true, rateLimited: false))
        #expect(Twilio.classify(HTTPResponse(status: 503, body: Self.errorBody(20503, "Service Unavailable", status: 503)))
            == .retry(code: "20503", message: "Service Unavailable", retryAfter: nil, ambiguous: false, rateLimited: false))
        #expect(Twilio.classify(HTTPResponse(status: 504))
            == .retry(code: "http 504", message: "HTTP 504", retryAfter: nil, ambiguous: true, rateLimited: false))
    }
}
