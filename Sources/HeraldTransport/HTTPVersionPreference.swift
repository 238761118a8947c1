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
}
