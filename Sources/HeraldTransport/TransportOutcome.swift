/// How one transfer ended.
public struct TransportOutcome: Sendable {
    /// The response (any HTTP status), or why there is none.
    public var result: Result<HTTPResponse, TransportError>
    /// libcurl's total time for the transfer, from start to the last byte; zero when it never
    /// reached libcurl.
    public var elapsed: Duration

    public init(result: Result<HTTPResponse, TransportError>, elapsed: Duration = .zero) {
        self.result = result
        self.elapsed = elapsed
    }
}

