/// Value types shared by Herald's libcurl-based transport and the providers that build requests.
/// They carry no libcurl types, so providers can be tested without the network.

/// One HTTP request, fully described: method, absolute URL, headers and body.
public struct HTTPRequest: Sendable, Equatable {
    public var method: String
    public var url: String
    /// Header lines in order, e.g. `("Content-Type", "application/json")`.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Basic auth credentials (libcurl's `CURLOPT_USERNAME`/`CURLOPT_PASSWORD`).
    public var basicAuth: (user: String, password: String)?
    /// Whole-transfer timeout.
    public var timeout: Duration

    public init(method: String = "POST", url: String, headers: [(name: String, value: String)] = [],
                body: [UInt8] = [], basicAuth: (user: String, password: String)? = nil,
                timeout: Duration = .seconds(15)) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.basicAuth = basicAuth
        self.timeout = timeout
    }

    public static func == (a: HTTPRequest, b: HTTPRequest) -> Bool {
        a.method == b.method && a.url == b.url && a.body == b.body && a.timeout == b.timeout
            && a.headers.map { "\($0.name): \($0.value)" } == b.headers.map { "\($0.name): \($0.value)" }
            && a.basicAuth?.user == b.basicAuth?.user && a.basicAuth?.password == b.basicAuth?.password
    }
}

/// A complete HTTP answer.
public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    /// Looked up by name, case-insensitively; the last value wins when a header repeats.
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// An answer's header fields, kept as the lines the server sent and looked up on demand.
///
/// The transport appends each header line's bytes as it arrives; a name is only searched for
/// when someone asks (`headers["retry-after"]`). Most answers are read for their status and body
/// alone, and building a dictionary of every header of every answer cost a worker several
/// percent of its CPU at tens of thousands of answers per second.
public struct HTTPHeaders: Sendable, Equatable, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    /// `Name: value` lines, each ending in CRLF.
    private var lines: [UInt8] = []

    public init() {}

    public init(dictionaryLiteral elements: (String, String)...) {
        for (name, value) in elements { append(name: name, value: value) }
    }

    /// Adds one field.
    public mutating func append(name: String, value: String) {
        lines.append(contentsOf: name.utf8)
        lines.append(contentsOf: ": ".utf8)
        lines.append(contentsOf: value.utf8)
        lines.append(contentsOf: "\r\n".utf8)
    }

    /// Adds one raw header line as received (`Name: value`, with or without its line ending).
    public mutating func append(line: UnsafeBufferPointer<UInt8>) {
        // One allocation for a usual answer's few lines, instead of one per doubling.
        if lines.capacity == 0 { lines.reserveCapacity(max(256, line.count + 2)) }
        lines.append(contentsOf: line)
        if line.last != UInt8(ascii: "\n") { lines.append(contentsOf: "\r\n".utf8) }
    }

    /// Forgets every field (a new response begins after a 1xx or a redirect).
    public mutating func removeAll() {
        lines.removeAll(keepingCapacity: true)
    }

    /// The value of the last field called `name` (any case), trimmed; nil when there is none.
    public subscript(name: String) -> String? {
        var found: String?
        forEach { fieldName, value in
            if fieldName.count == name.utf8.count,
               zip(fieldName, name.utf8).allSatisfy({ Self.lowercased($0) == Self.lowercased($1) }) {
                found = String(decoding: value, as: UTF8.self)
            }
        }
        return found
    }

    /// Every field, names lower-cased; the last value wins when a name repeats.
    public var dictionary: [String: String] {
        var all: [String: String] = [:]
        forEach { name, value in
            all[String(decoding: name.map(Self.lowercased), as: UTF8.self)] = String(decoding: value, as: UTF8.self)
        }
        return all
    }

    public var description: String { dictionary.description }

    public static func == (a: HTTPHeaders, b: HTTPHeaders) -> Bool { a.dictionary == b.dictionary }

    private static func lowercased(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c + 0x20 : c }

    /// Calls `body` with each field's trimmed name and value, in order.
    private func forEach(_ body: (ArraySlice<UInt8>, ArraySlice<UInt8>) -> Void) {
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A }
        var start = lines.startIndex
        while start < lines.endIndex {
            let end = lines[start...].firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? lines.endIndex
            defer { start = end }
            guard let colon = lines[start..<end].firstIndex(of: UInt8(ascii: ":")) else { continue }
            var nameStart = start, nameEnd = colon
            while nameStart < nameEnd, isSpace(lines[nameStart]) { nameStart += 1 }
            while nameEnd > nameStart, isSpace(lines[nameEnd - 1]) { nameEnd -= 1 }
            var valueStart = colon + 1, valueEnd = end
            while valueStart < valueEnd, isSpace(lines[valueStart]) { valueStart += 1 }
            while valueEnd > valueStart, isSpace(lines[valueEnd - 1]) { valueEnd -= 1 }
            guard nameEnd > nameStart else { continue }
            body(lines[nameStart..<nameEnd], lines[valueStart..<valueEnd])
        }
    }
}

/// One mail to hand to an SMTP server.
public struct SMTPEnvelope: Sendable, Equatable {
    /// `smtp://host:port` (STARTTLS when offered) or `smtps://host:port` (implicit TLS).
    public var url: String
    public var mailFrom: String
    public var recipients: [String]
    /// The full RFC 5322 message, CRLF line endings.
    public var message: [UInt8]
    public var username: String?
    public var password: String?
    /// Refuse to send unless the connection is encrypted (`CURLUSESSL_ALL`).
    public var requireTLS: Bool
    /// A PEM file of certificate authorities to verify the server against instead of the
    /// system's (`CURLOPT_CAINFO`): a relay with a private CA. The server's certificate is
    /// verified either way; there is no setting to turn verification off.
    public var caFile: String?
    public var timeout: Duration

    public init(url: String, mailFrom: String, recipients: [String], message: [UInt8],
                username: String? = nil, password: String? = nil, requireTLS: Bool = false,
                caFile: String? = nil, timeout: Duration = .seconds(30)) {
        self.url = url
        self.mailFrom = mailFrom
        self.recipients = recipients
        self.message = message
        self.username = username
        self.password = password
        self.requireTLS = requireTLS
        self.caFile = caFile
        self.timeout = timeout
    }
}

/// Why a transfer did not produce a response. The distinction matters to retries: when the
/// request provably never reached the server, a retry cannot duplicate the message.
public struct TransportError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// DNS failure, connection refused, TLS handshake failure: nothing was sent.
        case notSent = "not_sent"
        /// Timeout or reset after the request may have gone out: the server may have acted on it.
        case ambiguous
        /// The SMTP server answered with a code (see ``smtpCode``).
        case smtpRejected = "smtp_rejected"
    }
    public var kind: Kind
    /// libcurl's `CURLcode`, when it came from libcurl.
    public var curlCode: Int32
    /// SMTP reply code from the server, when known (4xx temporary, 5xx permanent).
    public var smtpCode: Int?
    public var message: String

    public init(kind: Kind, curlCode: Int32, smtpCode: Int? = nil, message: String) {
        self.kind = kind
        self.curlCode = curlCode
        self.smtpCode = smtpCode
        self.message = message
    }

    public var description: String { "\(kind.rawValue): \(message)" }
}
