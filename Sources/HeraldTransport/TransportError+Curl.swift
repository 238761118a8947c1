import CCurl

extension TransportError {
    /// ``curlCode`` of an error thrown because the awaiting task was cancelled (not a libcurl code).
    public static let cancelledCode: Int32 = -1
    /// ``curlCode`` of an error thrown because the transport was shut down (not a libcurl code).
    public static let shutdownCode: Int32 = -2
    /// ``curlCode`` of a transfer still queued when its batch's start deadline passed (not a
    /// libcurl code); see ``CurlTransport/perform(_:startingBy:)``.
    public static let deadlineCode: Int32 = -3
    /// ``curlCode`` of a transfer its caller withdrew while it was still queued (not a libcurl
    /// code); see ``CurlTransport/withdrawQueued(_:)``.
    public static let withdrawnCode: Int32 = -4

    /// The transfer was abandoned because its task was cancelled.
    public var isCancelled: Bool { curlCode == Self.cancelledCode }
    /// The transfer was abandoned because the transport was shut down.
    public var isShutdown: Bool { curlCode == Self.shutdownCode }
    /// The transfer never started: cancelled or shut down while queued, refused by a transport
    /// already shut down, or still queued at its batch's start deadline. Nothing left this
    /// process, so it was no attempt at all (unlike `.notSent` from a refused connection).
    public var isNotStarted: Bool {
        kind == .notSent && (curlCode == Self.cancelledCode || curlCode == Self.shutdownCode || curlCode == Self.deadlineCode
                               || curlCode == Self.withdrawnCode)
    }

    /// Classifies a libcurl failure: only errors that happen before a request can have gone out
    /// count as `.notSent`; anything unknown is `.ambiguous`, the safe side for retries.
    /// - Parameters:
    ///   - code: the `CURLcode`.
    ///   - connected: whether the transfer got as far as a connection (reused connections count).
    ///   - smtpCode: the last SMTP reply code, for SMTP transfers.
    ///   - smtpReply: the server's last reply line, e.g. `550 5.1.1 No such user`.
    static func classify(code: CURLcode, connected: Bool, smtpCode: Int?, smtpReply: String? = nil,
                         detail: String) -> TransportError {
        let raw = Int32(bitPattern: code.rawValue)
        if let smtpCode, smtpCode >= 400, smtpCode < 600 {
            let reply = smtpReply.flatMap { $0.hasPrefix("\(smtpCode)") ? $0 : nil } ?? "\(smtpCode)"
            return TransportError(kind: .smtpRejected, curlCode: raw, smtpCode: smtpCode,
                                  message: "SMTP server replied \(reply)")
        }
        let kind: Kind
        switch code {
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_FAILED_INIT, CURLE_URL_MALFORMAT, CURLE_NOT_BUILT_IN,
             CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT,
             CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM,
             CURLE_SSL_CIPHER, CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED,
             CURLE_SSL_ENGINE_INITFAILED, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CRL_BADFILE,
             CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS,
             CURLE_SSL_CLIENTCERT, CURLE_USE_SSL_FAILED, CURLE_LOGIN_DENIED, CURLE_BAD_FUNCTION_ARGUMENT,
             CURLE_UNKNOWN_OPTION, CURLE_SSL_SHUTDOWN_FAILED:
            kind = .notSent
        case CURLE_OPERATION_TIMEDOUT where !connected:
            // Timed out while resolving or connecting: the request cannot have gone out.
            kind = .notSent
        default:
            kind = .ambiguous
        }
        return TransportError(kind: kind, curlCode: raw, message: detail)
    }
}
