import Foundation
import HeraldCore
import HeraldTransport
import Testing
@testable import HeraldProviders

/// A provider and the least a channel of it needs: what every provider in the registry must
/// satisfy, whatever its wire format.
struct ProviderCase: Sendable, CustomTestStringConvertible {
    var name: String
    var kind: ChannelKind
    var minimalSettings: String
    /// A message of the provider's kind.
    var message: OutgoingMessage
    /// Whether requests go over the network (the sandbox's do not).
    var networked: Bool
    var testDescription: String { name }
}

/// One suite every provider passes (River's driver test suite is the model): settings and
/// secrets, the kinds it refuses, requests for content it cannot send, and the reading of
/// transport failures, which mean the same whoever the provider is.
@Suite struct ProviderConformanceTests {
    static let secret = "s3cr3t-value"
    static let environment = ProviderEnvironment(variables: ["TOKEN": secret, "USER": "user", "PASS": secret,
                                                                   "HERALD_ALLOWED_HOSTS": "127.0.0.1"])

    static let cases: [ProviderCase] = [
        ProviderCase(name: "whatsapp_cloud", kind: .whatsapp,
                     minimalSettings: #"{"phone_number_id": "1055", "access_token_env": "TOKEN"}"#,
                     message: OutgoingMessage(messageID: 7, to: "+2348031234567", content: .whatsAppText(body: "hi")),
                     networked: true),
        ProviderCase(name: "twilio", kind: .sms,
                     minimalSettings: #"{"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token_env": "TOKEN", "from": "+15005550006"}"#,
                     message: OutgoingMessage(messageID: 7, to: "+2348031234567", content: .sms(body: "hi")),
                     networked: true),
        ProviderCase(name: "smtp", kind: .email,
                     minimalSettings: #"{"url": "smtp://127.0.0.1:2525", "from": "shop@example.com", "username_env": "USER", "password_env": "PASS"}"#,
                     message: OutgoingMessage(messageID: 7, to: "ada@example.com",
                                              content: .email(subject: "s", text: "hi", html: nil, unsubscribeURL: nil)),
                     networked: true),
        ProviderCase(name: "sandbox", kind: .sms, minimalSettings: "{}",
                     message: OutgoingMessage(messageID: 7, to: "+2348031234567", content: .sms(body: "hi")),
                     networked: false),
    ]

    private func configure(_ p: ProviderCase, settings: String? = nil, kind: String? = nil) throws -> any ConfiguredChannel {
        try ProviderRegistry.standard.configure(provider: p.name, kind: kind ?? p.kind.rawValue,
                                                settingsJSON: settings ?? p.minimalSettings, environment: Self.environment)
    }

    @Test("every provider of the schema is registered and covered here")
    func everyProviderIsCovered() {
        #expect(Set(ProviderRegistry.standard.names) == Set(Self.cases.map(\.name)))
    }

    @Test("minimal settings configure, with the default policy and no secret in the description", arguments: cases)
    func minimalSettings(_ p: ProviderCase) throws {
        let channel = try configure(p)
        #expect(channel.policy == DeliveryPolicy(maxAttempts: 5, retryAmbiguous: true))
        #expect(!String(describing: channel).contains(Self.secret))
    }

    @Test("max_attempts and retry_ambiguous are read by every provider", arguments: cases)
    func policySettings(_ p: ProviderCase) throws {
        var object = p.minimalSettings.dropLast().trimmingCharacters(in: .whitespaces)
        object += object.hasSuffix("{") ? "" : ", "
        let channel = try configure(p, settings: object + #""max_attempts": 2, "retry_ambiguous": false}"#)
        #expect(channel.policy == DeliveryPolicy(maxAttempts: 2, retryAmbiguous: false))
    }

    @Test("an unknown setting is ignored, a setting of the wrong type is named", arguments: cases)
    func unknownAndWrongSettings(_ p: ProviderCase) throws {
        var object = p.minimalSettings.dropLast().trimmingCharacters(in: .whitespaces)
        object += object.hasSuffix("{") ? "" : ", "
        _ = try configure(p, settings: object + #""admin_note": "kept by the admin tool"}"#)
        #expect(throws: ChannelConfigError(setting: "max_attempts", "must be an integer from 1 to 100")) {
            try configure(p, settings: object + #""max_attempts": "5"}"#)
        }
    }

    @Test("a kind the provider does not send is refused", arguments: cases)
    func foreignKind(_ p: ProviderCase) throws {
        let foreign = ChannelKind.allCases.filter { !(ProviderRegistry.standard.provider(named: p.name)!.kinds.contains($0)) }
        for kind in foreign {
            #expect(throws: ChannelConfigError.self) { try configure(p, kind: kind.rawValue) }
        }
        #expect(p.name != "sandbox" || foreign.isEmpty)
    }

    @Test("a message of its kind becomes one request; content of another kind is refused", arguments: cases)
    func requests(_ p: ProviderCase) throws {
        let channel = try configure(p)
        let request = try channel.request(for: p.message)
        switch request {
        case .http, .mail: #expect(p.networked)
        case .simulated: #expect(!p.networked)
        }
        guard p.networked else { return }
        let others: [OutgoingMessage.Content] = [
            .whatsAppText(body: "x"), .sms(body: "x"), .email(subject: "s", text: "x", html: nil, unsubscribeURL: nil),
        ].filter { $0 != p.message.content && !sameKind($0, p.message.content) }
        for content in others {
            #expect(throws: MessageBuildError.self) {
                try channel.request(for: OutgoingMessage(messageID: 7, to: p.message.to, content: content))
            }
        }
    }

    @Test("transport failures: not sent is a plain retry, a lost answer an ambiguous one", arguments: cases.filter(\.networked))
    func transportFailures(_ p: ProviderCase) throws {
        let channel = try configure(p)
        let request = try channel.request(for: p.message)
        let refused = TransportError(kind: .notSent, curlCode: 7, message: "connection refused")
        let timedOut = TransportError(kind: .ambiguous, curlCode: 28, message: "timed out")
        guard case .retry(_, _, _, false, false) = channel.classify(.transportFailed(refused), for: request, now: .now) else {
            Issue.record("a refused connection must be retried as not sent")
            return
        }
        guard case .retry(_, _, _, true, false) = channel.classify(.transportFailed(timedOut), for: request, now: .now) else {
            Issue.record("a timeout after the request left must be retried as ambiguous")
            return
        }
    }

    private func sameKind(_ a: OutgoingMessage.Content, _ b: OutgoingMessage.Content) -> Bool {
        switch (a, b) {
        case (.whatsAppText, .whatsAppText), (.whatsAppText, .whatsAppTemplate), (.whatsAppTemplate, .whatsAppText),
             (.whatsAppTemplate, .whatsAppTemplate), (.sms, .sms), (.email, .email): true
        default: false
        }
    }
}
