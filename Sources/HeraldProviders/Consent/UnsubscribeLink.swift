import Crypto
import Foundation

/// One-click unsubscribe links: `HERALD_PUBLIC_URL/unsubscribe/TOKEN`, where TOKEN names a message
/// and carries a MAC of it keyed with `HERALD_UNSUBSCRIBE_SECRET`, so that `herald webhooks`
/// needs no lookup table and nobody can unsubscribe someone else by guessing ids.
///
/// TOKEN is `<message id>.<MAC>`: the decimal message id, then the first 12 bytes (96 bits) of
/// HMAC-SHA256 over `herald-unsubscribe:<id>`, base64url without padding (16 characters). About 24
/// characters for realistic ids, so the link fits in an SMS. 96 bits stay far beyond guessing
/// (each try is an HTTP request); the prefix keeps these MACs apart from any other use of the key.
public struct UnsubscribeLinks: Sendable {
    /// Bytes of the MAC kept in a token.
    static let macBytes = 12
    private let base: String
    private let key: SymmetricKey

    /// - Parameters:
    ///   - publicURL: `HERALD_PUBLIC_URL` (a trailing `/` is ignored).
    ///   - secret: `HERALD_UNSUBSCRIBE_SECRET`.
    public init(publicURL: String, secret: String) {
        var base = publicURL
        while base.hasSuffix("/") { base.removeLast() }
        self.base = base
        self.key = SymmetricKey(data: Array(secret.utf8))
    }

    /// The links of a process, or nil unless both `HERALD_PUBLIC_URL` and
    /// `HERALD_UNSUBSCRIBE_SECRET` are set and non-empty.
    public init?(publicURL: String?, secret: String?) {
        guard let publicURL, !publicURL.isEmpty, let secret, !secret.isEmpty else { return nil }
        self.init(publicURL: publicURL, secret: secret)
    }

    /// The signed token of a message.
    public func token(messageID: Int64) -> String {
        "\(messageID)." + mac(messageID)
    }

    /// The full link of a message, rendered by `{{ unsubscribe_url }}`.
    public func url(messageID: Int64) -> String {
        base + "/unsubscribe/" + token(messageID: messageID)
    }

    /// The message a token names, or nil when the token is malformed, truncated or its MAC is
    /// not this secret's. The MAC is compared in constant time.
    public func messageID(fromToken token: Substring) -> Int64? {
        let parts = token.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let first = parts[0].utf8.first, first != UInt8(ascii: "0"),
              parts[0].utf8.count <= 19, parts[0].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let id = Int64(parts[0]), parts[1].utf8.count == 16 else { return nil }
        return WebhookSignature.constantTimeEquals(mac(id), String(parts[1])) ? id : nil
    }

    private func mac(_ messageID: Int64) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Array("herald-unsubscribe:\(messageID)".utf8), using: key)
        return Data(Array(code).prefix(Self.macBytes)).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

extension UnsubscribeLinks {
    /// The tag that renders a message's link.
    public static let tag = "{{ unsubscribe_url }}"
    /// The error when a broadcast uses the tag but the process cannot make links.
    public static let notConfigured = "{{ unsubscribe_url }} needs HERALD_PUBLIC_URL and HERALD_UNSUBSCRIBE_SECRET set (in the scheduler and every worker)"
}

extension ProviderEnvironment {
    /// The process's unsubscribe links: nil unless `HERALD_PUBLIC_URL` and
    /// `HERALD_UNSUBSCRIBE_SECRET` are both set.
    public var unsubscribeLinks: UnsubscribeLinks? {
        UnsubscribeLinks(publicURL: publicURL, secret: variables["HERALD_UNSUBSCRIBE_SECRET"])
    }
}
