import CCurl

/// Which HTTP version the transport speaks to providers.
public enum HTTPVersionPreference: String, Sendable, CaseIterable {
    /// libcurl's default: HTTP/2 over TLS where the server offers it (ALPN), HTTP/1.1 otherwise.
    /// Many requests then share one multiplexed connection per host.
    case automatic
    /// HTTP/1.1 only: one request at a time per connection, connections kept alive and reused.
    case http1
    /// HTTP/2 from the first byte, also over plain `http://` (h2c with prior knowledge): for
    /// test doubles and benchmarks that speak HTTP/2 without TLS.
    case http2PriorKnowledge = "http2-prior-knowledge"

    /// The first libcurl that reuses an h2c connection opened with prior knowledge correctly.
    /// Before it, every request after the first on such a connection fails with "Error in the
    /// HTTP2 framing layer" (curl issue 10634, fixed in 8.0.0); Debian 12 ships 7.88.1.
    static let firstPriorKnowledgeReuse: UInt32 = 0x08_00_00

    /// Why this preference cannot work with libcurl `version` (`0xXXYYZZ`, as
    /// `curl_version_info` gives it), or nil when it can.
    public func problem(libcurlVersion version: UInt32) -> String? {
        guard self == .http2PriorKnowledge, version < Self.firstPriorKnowledgeReuse else { return nil }
        let text = "\(version >> 16).\((version >> 8) & 0xff).\(version & 0xff)"
        return "http2-prior-knowledge needs libcurl 8.0.0 or later; this one is \(text), which fails every request after the first on a reused h2c connection (curl issue 10634). Use automatic (HTTP/2 over TLS) or http1"
    }

    /// The version of the libcurl loaded in this process (`0xXXYYZZ`).
    public static var loadedLibcurlVersion: UInt32 {
        UInt32(ccurl_version_num())
    }
}
