import Foundation
import HeraldTesting
import HeraldTransport
import Testing

/// Mail to relays that speak TLS: STARTTLS on `smtp://` (RFC 3207), implicit TLS on `smtps://`
/// (RFC 8314), and the server's certificate verified against a CA file (`ca_file`).
@Suite("CurlTransport over SMTP with TLS")
struct SMTPTLSTests {
    static let message = CurlTransportSMTPTests.message

    /// Runs `body` with a CA file that trusts the double's certificate, removed afterwards.
    func withAuthority(_ body: (String) async throws -> Void) async throws {
        let path = try TestCertificates.writeAuthority()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await body(path)
    }

    func envelope(_ double: ProviderDouble, caFile: String?, requireTLS: Bool = false,
                  username: String? = nil, password: String? = nil) -> SMTPEnvelope {
        SMTPEnvelope(url: double.smtpURL, mailFrom: "news@herald.test", recipients: ["ada@example.com"],
                     message: Self.message, username: username, password: password,
                     requireTLS: requireTLS, caFile: caFile)
    }

    @Test("smtp:// upgrades with STARTTLS when the server offers it, logs in and delivers inside TLS")
    func startTLS() async throws {
        try await withAuthority { authority in
            try await withTransport(configuration: .init(smtpUsername: "relay", smtpPassword: "s3cret",
                                                         smtpTLS: .startTLS)) { double, transport in
                #expect(double.smtpURL.hasPrefix("smtp://"))
                try await transport.send(envelope(double, caFile: authority, username: "relay", password: "s3cret"))
                let mail = try #require(double.receivedMails().first)
                #expect(mail.tls)
                #expect(mail.authenticatedUser == "relay")
                #expect(mail.data == Self.message)
                // RFC 3207: the client greets again inside TLS.
                #expect(mail.clientName?.isEmpty == false)
            }
        }
    }

    @Test("requireTLS sends when STARTTLS succeeds")
    func requireTLSWithStartTLS() async throws {
        try await withAuthority { authority in
            try await withTransport(configuration: .init(smtpTLS: .startTLS)) { double, transport in
                try await transport.send(envelope(double, caFile: authority, requireTLS: true))
                #expect(double.receivedMails().map(\.tls) == [true])
            }
        }
    }

    @Test("smtps:// speaks TLS from the first byte")
    func implicitTLS() async throws {
        try await withAuthority { authority in
            try await withTransport(configuration: .init(smtpTLS: .implicit)) { double, transport in
                #expect(double.smtpURL.hasPrefix("smtps://"))
                try await transport.send(envelope(double, caFile: authority))
                let mail = try #require(double.receivedMails().first)
                #expect(mail.tls)
                #expect(mail.data == Self.message)
            }
        }
    }

    @Test("a certificate the trust store does not vouch for is notSent, never a plain-text fallback",
          arguments: [ProviderDouble.SMTPTLS.startTLS, .implicit])
    func untrustedCertificate(mode: ProviderDouble.SMTPTLS) async throws {
        try await withTransport(configuration: .init(smtpTLS: mode)) { double, transport in
            // No ca_file: the system's store, which does not know the test CA. Opportunistic
            // STARTTLS (requireTLS false) must still not go on in plain text after a failed handshake.
            let error = await #expect(throws: TransportError.self) {
                try await transport.send(envelope(double, caFile: nil))
            }
            #expect(error?.kind == .notSent)
            #expect(error?.message.lowercased().contains("certificate") == true)
            #expect(double.receivedMails().isEmpty)
        }
    }

    @Test("a ca_file that cannot be read is notSent, and the error names the problem")
    func unreadableAuthority() async throws {
        try await withTransport(configuration: .init(smtpTLS: .implicit)) { double, transport in
            let error = await #expect(throws: TransportError.self) {
                try await transport.send(envelope(double, caFile: "/nonexistent/herald-ca.pem"))
            }
            #expect(error?.kind == .notSent)
            #expect(error?.message.isEmpty == false)
            #expect(double.receivedMails().isEmpty)
        }
    }
}
