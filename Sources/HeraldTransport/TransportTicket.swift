/// Names the transfers of one ``CurlTransport/submit(_:startingBy:onDeparture:onCompletion:)`` call, so the
/// caller can later withdraw the ones not yet started (``CurlTransport/withdrawQueued(_:)``) or
/// abort them all (``CurlTransport/cancel(_:)``).
public struct TransportTicket: Sendable, Hashable {
    /// The transport's ids of the submission's transfers, in request order.
    let ids: Range<UInt64>
    /// Which of the transport's engines holds them (see ``CurlTransport``'s shards).
    var shard = 0
    /// Whether each of the submission's transfers holds a TLS connection of its own while in
    /// flight (``CurlTransport``'s `tlsConnectionPerTransfer` pool: HTTPS over HTTP/1.1, SMTP):
    /// of those the transport keeps at most `maxTLSConnections` in flight over all channels, so
    /// the worker holds each channel to a share of them.
    public internal(set) var holdsTLSConnectionEach = false

    /// How many transfers the submission had.
    public var count: Int { ids.count }
}
