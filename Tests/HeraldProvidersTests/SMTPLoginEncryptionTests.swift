import Foundation
import HeraldTesting
import HeraldTransport
import Logging
import Testing
@testable import HeraldProviders

/// SMTP credentials never cross the network in plain text: with a login and `smtp://` to a relay
/// that is not on this machine, STARTTLS is required even without `require_tls`.
@Suite struct SMTPLoginEncryptionTests {
    static let login = SMTPCredentials(username: "relay", password: "s3cret")

    func envelope(url: String, credentials: SMTPCredentials = login, requireTLS: Bool = false) throws -> SMTPEnvelope {
        let settings = SMTPSettings(url: url, from: "News <news@herald.test>", usernameEnv: "SMTP_USER",
                                    passwordEnv: "SMTP_PASSWORD", requireTLS: requireTLS)
        let message = OutgoingMessage(messageID: 7, to: "ada@example.com",
                                      content: .email(subject: "Hi", text: "Hello", html: nil, unsubscribeURL: nil))
        return try SMTP.mail(for: message, settings: settings, credentials: credentials, uniqueToken: "t").envelope
    }

    @Test("a login over smtp:// to a remote relay requires STARTTLS",
          arguments: ["smtp://relay.example:587", "smtp://192.0.2.10:25", "smtp://[2001:db8::1]:587", "smtp://127.example:587"])
    func remoteRelay(url: String) throws {
        #expect(try envelope(url: url).requireTLS)
    }

    @Test("a loopback relay, a relay without login, and smtps:// keep their own choice",
          arguments: ["smtp://127.0.0.1:25", "smtp://localhost:25", "smtp://[::1]:25", "smtps://relay.example:465"])
    func exempt(url: String) throws {
        #expect(try envelope(url: url).requireTLS == false)
        #expect(try envelope(url: "smtp://relay.example:587", credentials: SMTPCredentials()).requireTLS == false)
        #expect(try envelope(url: url, requireTLS: true).requireTLS)
    }

    @Test("a relay that withholds STARTTLS never sees the login nor the mail")
    func downgradeRefused() async throws {
        let double = try await ProviderDouble.start(configuration: .init(smtpUsername: "relay", smtpPassword: "s3cret", smtpTLS: .none))
        let transport = CurlTransport(maxInFlight: 4, logger: Logger(label: "herald.tests"))
        defer { transport.shutdown() }
        // The envelope Herald builds for a remote relay, sent to the double (which, like an attacker
        // on the path, offers no STARTTLS).
        var remote = try envelope(url: "smtp://relay.example:587")
        remote.url = double.smtpURL
        let error = await #expect(throws: TransportError.self) { try await transport.send(remote) }
        #expect(error?.kind == .notSent)
        #expect(double.receivedMails().isEmpty)
        // The same login to a loopback relay goes out (the double accepts it): the refusal above
        // came from the encryption rule, not from the double.
        try await transport.send(try envelope(url: double.smtpURL))
        #expect(double.receivedMails().map(\.authenticatedUser) == ["relay"])
        await double.stop()
    }
}
