/// A channel setting that would send a secret where it must not go: a ``ChannelConfigError``,
/// so the one validator reports it like any other setting. Its description never holds a
/// secret: only variable names and hosts. A refused host reads `host not allowed: <host> …`.
public typealias DestinationRefusal = ChannelConfigError

/// Where a channel may send its secrets (the contract's "Where secrets may go").
///
/// - A `*_env` setting never names Herald's own configuration: `DATABASE_URL`, `PG*`, `HERALD_*`.
/// - An HTTP provider reaches its official host over https on the default port
///   (`graph.facebook.com`, `api.twilio.com`), or a host ops list in `HERALD_ALLOWED_HOSTS`
///   (then `http://` is allowed too: the doubles of tests and benchmarks run on loopback).
/// - An SMTP relay must be listed there, whatever the scheme.
///
/// `HERALD_ALLOWED_HOSTS` is comma-separated; each entry is `host` (any port) or `host:port`
/// (that port only), an IPv6 literal in brackets (`[::1]:8025`). Hosts compare case-insensitively
/// and without a trailing dot.
///
/// A pure value: the one validator (a provider's `configure`) calls it for every setting that
/// names a variable or a URL, before any request is built, so no byte leaves for a refused host.
///
/// ```swift
/// let policy = DestinationPolicy(allowedHostsVariable: environment["HERALD_ALLOWED_HOSTS"])
/// try policy.checkSecretVariable(settings.accessTokenEnv, setting: "access_token_env")
/// try policy.checkURL(settings.baseURL, officialHost: "graph.facebook.com", setting: "base_url")
/// try policy.checkMailURL(settings.url, setting: "url")
/// ```
public struct DestinationPolicy: Sendable, Equatable {
    /// One `HERALD_ALLOWED_HOSTS` entry.
    public struct AllowedHost: Sendable, Equatable, CustomStringConvertible {
        /// Lowercase, without brackets or trailing dot.
        public var host: String
        /// nil: any port.
        public var port: Int?

        public var description: String {
            let h = host.contains(":") ? "[\(host)]" : host
            return port.map { "\(h):\($0)" } ?? h
        }
    }

    /// The official hosts of the HTTP providers.
    public static let whatsAppCloudHost = "graph.facebook.com"
    public static let twilioHost = "api.twilio.com"

    /// The parsed entries of `HERALD_ALLOWED_HOSTS`.
    public let allowedHosts: [AllowedHost]
    /// Entries that are not a `host` or `host:port` (a scheme, a path…): ignored; worth a warning
    /// at start-up (``init(allowedHostsVariable:)`` never throws so one typo cannot stop a worker).
    public let invalidEntries: [String]

    /// - Parameter allowedHostsVariable: the value of `HERALD_ALLOWED_HOSTS`, nil when unset.
    public init(allowedHostsVariable: String?) {
        var hosts: [AllowedHost] = []
        var invalid: [String] = []
        for raw in (allowedHostsVariable ?? "").split(separator: ",") {
            let entry = raw.trimmingSpaces()
            if entry.isEmpty { continue }
            if let parsed = HostAndPort.parse(Substring(entry)) {
                hosts.append(AllowedHost(host: parsed.host, port: parsed.port))
            } else {
                invalid.append(entry)
            }
        }
        self.allowedHosts = hosts
        self.invalidEntries = invalid
    }

    // MARK: Secrets

    /// Refuses a `*_env` setting that names Herald's own configuration (`DATABASE_URL`, `PG*`,
    /// `HERALD_*`, in any case) or nothing at all.
    /// - Throws: ``DestinationRefusal`` naming the setting and the variable.
    public func checkSecretVariable(_ name: String, setting: String) throws(DestinationRefusal) {
        let upper = name.uppercased()
        if name.isEmpty {
            throw DestinationRefusal(setting: setting, "must name an environment variable")
        }
        if upper == "DATABASE_URL" || upper.hasPrefix("PG") || upper.hasPrefix("HERALD_") {
            throw DestinationRefusal(setting: setting,
                "names \(name), which is Herald's own configuration "
                + "(DATABASE_URL, PG*, HERALD_*), not a provider secret: name a variable of its own")
        }
    }

    // MARK: URLs

    /// Checks an HTTP provider's URL (`base_url`, `status_callback_url`, a media URL).
    ///
    /// Allowed: `https://` to `officialHost` on port 443; `https://` or `http://` to a listed host.
    /// - Parameters:
    ///   - officialHost: the provider's own host, or nil when only listed hosts may be reached.
    /// - Returns: the URL's parts, as parsed.
    /// - Throws: ``DestinationRefusal``: `host not allowed: <host>`, or why the URL is not one.
    @discardableResult
    public func checkURL(_ url: String, officialHost: String?, setting: String) throws(DestinationRefusal) -> ParsedURL {
        let parsed = try parse(url, setting: setting, schemes: ["https", "http"])
        if parsed.scheme == "https", let officialHost, parsed.host == Self.normalize(officialHost), parsed.port == 443 {
            return parsed
        }
        try requireListed(parsed, setting: setting)
        return parsed
    }

    /// Checks an SMTP relay's `url` (`smtp://` or `smtps://`): its host must be listed.
    /// - Throws: ``DestinationRefusal``: `host not allowed: <host>`, or why the URL is not one.
    @discardableResult
    public func checkMailURL(_ url: String, setting: String) throws(DestinationRefusal) -> ParsedURL {
        let parsed = try parse(url, setting: setting, schemes: ["smtps", "smtp"])
        try requireListed(parsed, setting: setting)
        return parsed
    }

    /// Whether `host` (and `port`) is listed in `HERALD_ALLOWED_HOSTS`.
    public func isListed(host: String, port: Int) -> Bool {
        let host = Self.normalize(host)
        return allowedHosts.contains { $0.host == host && ($0.port == nil || $0.port == port) }
    }

    private func requireListed(_ url: ParsedURL, setting: String) throws(DestinationRefusal) {
        guard isListed(host: url.host, port: url.port) else {
            throw DestinationRefusal(setting: setting, message:
                "host not allowed: \(url.hostForDisplay) (channel setting \"\(setting)\"; ops may list it in HERALD_ALLOWED_HOSTS)")
        }
    }

    private func parse(_ url: String, setting: String, schemes: [String]) throws(DestinationRefusal) -> ParsedURL {
        let scheme = url.prefix(while: { $0 != ":" }).lowercased()
        guard url.contains(":"), schemes.contains(scheme) else {
            throw DestinationRefusal(setting: setting,
                "must start with " + schemes.map { "\($0)://" }.joined(separator: " or "))
        }
        do {
            let parsed = try ParsedURL(url)
            guard schemes.contains(parsed.scheme) else {
                throw DestinationRefusal(setting: setting,
                    "must start with " + schemes.map { "\($0)://" }.joined(separator: " or "))
            }
            return parsed
        } catch let problem as ParsedURL.Problem {
            throw DestinationRefusal(setting: setting, "is not a usable URL: \(problem.why)")
        } catch let refusal as DestinationRefusal {
            throw refusal
        } catch {
            throw DestinationRefusal(setting: setting, "is not a usable URL")
        }
    }

    static func normalize(_ host: String) -> String {
        var h = host.lowercased()
        if h.hasSuffix(".") { h.removeLast() }
        return h
    }

    // MARK: Identifiers that go into URL paths

    /// `phone_number_id`: digits only (1 to 32), as Meta issues them.
    public static func checkPhoneNumberID(_ id: String, setting: String = "phone_number_id") throws(DestinationRefusal) {
        guard (1...32).contains(id.utf8.count), id.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else {
            throw DestinationRefusal(setting: setting, "must be Meta's numeric phone number id (digits only)")
        }
    }

    /// `account_sid`: `AC` followed by 32 hexadecimal digits, as Twilio issues them.
    public static func checkAccountSID(_ sid: String, setting: String = "account_sid") throws(DestinationRefusal) {
        let bytes = Array(sid.utf8)
        guard bytes.count == 34, bytes[0] == UInt8(ascii: "A"), bytes[1] == UInt8(ascii: "C"),
              bytes[2...].allSatisfy({ HostAndPort.isHexDigit($0) }) else {
            throw DestinationRefusal(setting: setting, "must be \"AC\" followed by 32 hexadecimal digits")
        }
    }
}

/// The parts of an absolute URL that decide where a request goes, parsed strictly
/// (RFC 3986 authority: `scheme://[userinfo@]host[:port]`, then a path, query or fragment).
///
/// Refused: user info (`https://graph.facebook.com@evil.example/` goes to `evil.example`, and a
/// password in a URL would be sent as credentials), percent-escapes or anything but letters,
/// digits, `-` and `.` in a host name, an empty host, a port outside 1...65535, spaces and
/// control characters anywhere.
public struct ParsedURL: Sendable, Equatable {
    struct Problem: Error { var why: String }

    /// Lowercase.
    public var scheme: String
    /// Lowercase, without brackets (IPv6) or a trailing dot.
    public var host: String
    /// The explicit port, else the scheme's default (https 443, http 80, smtps 465, smtp 25).
    public var port: Int

    var hostForDisplay: String { host.contains(":") ? "[\(host)]" : host }

    init(_ text: String) throws {
        guard !text.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F || $0 == "\\" }) else {
            throw Problem(why: "it contains spaces, control characters or a backslash")
        }
        guard let colon = text.firstIndex(of: ":") else { throw Problem(why: "it has no scheme") }
        let scheme = text[..<colon].lowercased()
        guard let first = scheme.first, first.isLetter,
              scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == ".") }) else {
            throw Problem(why: "its scheme is not valid")
        }
        let rest = text[text.index(after: colon)...]
        guard rest.hasPrefix("//") else { throw Problem(why: "it has no host (expected scheme://host)") }
        let afterSlashes = rest.dropFirst(2)
        let authorityEnd = afterSlashes.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? afterSlashes.endIndex
        let authority = afterSlashes[..<authorityEnd]
        guard !authority.contains("@") else { throw Problem(why: "user info (user@ or user:password@) is not allowed in it") }
        let defaultPort: Int
        switch scheme {
        case "https": defaultPort = 443
        case "http": defaultPort = 80
        case "smtps": defaultPort = 465
        case "smtp": defaultPort = 25
        default: defaultPort = 0
        }
        guard let hostAndPort = HostAndPort.parse(authority) else {
            throw Problem(why: "its host or port is not valid")
        }
        guard let port = hostAndPort.port ?? (defaultPort == 0 ? nil : defaultPort) else {
            throw Problem(why: "it has no port")
        }
        self.scheme = scheme
        self.host = hostAndPort.host
        self.port = port
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`: the authority without user info.
enum HostAndPort {
    static func parse(_ text: Substring) -> (host: String, port: Int?)? {
        var host: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
            guard !host.isEmpty, host.contains(":"),
                  host.utf8.allSatisfy({ isHexDigit($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }) else { return nil }
        } else {
            if let colon = text.firstIndex(of: ":") {
                host = text[..<colon]
                portText = text[text.index(after: colon)...]
            } else {
                host = text
            }
            if host.hasSuffix(".") { host = host.dropLast() }
            guard !host.isEmpty, !host.hasPrefix("."), !host.contains(".."),
                  host.utf8.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }) else { return nil }
        }
        var port: Int?
        if let portText {
            guard (1...5).contains(portText.utf8.count), portText.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
                  let value = Int(portText), (1...65535).contains(value) else { return nil }
            port = value
        }
        return (DestinationPolicy.normalize(String(host)), port)
    }

    static func isHexDigit(_ c: UInt8) -> Bool {
        (0x30...0x39).contains(c) || (0x41...0x46).contains(c) || (0x61...0x66).contains(c)
    }

    static func isAlphanumeric(_ c: UInt8) -> Bool {
        (0x30...0x39).contains(c) || (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c)
    }
}

private extension Substring {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
