import CCurl
import Logging

/// One transfer: owned by the caller until enqueued, then by the engine's thread only.
/// The buffers below are touched only by libcurl callbacks, which run on that thread.
final class Transfer: @unchecked Sendable {
    let id: UInt64
    let request: TransportRequest
    /// Who hears how it ended: the submission, at this transfer's index.
    let submission: TransferSubmission
    let index: Int
    var easy: UnsafeMutableRawPointer?
    /// Which of its engine's multi handles it was added to.
    var lane = 0
    /// When the engine handed it to libcurl (see ``TransferAdmission``).
    var startedAt: ContinuousClock.Instant?
    var headerList: UnsafeMutablePointer<curl_slist>?
    var recipientList: UnsafeMutablePointer<curl_slist>?
    var headers = HTTPHeaders()
    /// SMTP: the server's last 4xx/5xx reply line (libcurl passes SMTP replies to the header
    /// callback).
    var lastReply: String?
    var body: [UInt8] = []
    var upload: [UInt8] = []
    var uploadOffset = 0
    /// The request was about to go after its submission's start deadline, and was stopped
    /// before a byte of it left (see `curlPrereqCallback`).
    var missedStartDeadline = false
    /// The submission's `onDeparture` was told about this transfer.
    private var departureTold = false
    /// libcurl writes its error text here (`CURLOPT_ERRORBUFFER`) at any point of the transfer, so
    /// it is manual memory with a fixed address for the Transfer's whole life, never a Swift
    /// array's storage (whose pointer is only valid inside `withUnsafeMutableBufferPointer`).
    let errorBuffer: UnsafeMutablePointer<CChar> = {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        p.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        return p
    }()
    private var resumed = false

    init(id: UInt64, request: TransportRequest, submission: TransferSubmission, index: Int) {
        self.id = id
        self.request = request
        self.submission = submission
        self.index = index
    }

    func finish(_ result: Result<HTTPResponse, TransportError>, elapsed: Duration = .zero) {
        guard !resumed else { return }
        resumed = true
        tellDeparture(false)
        submission.onCompletion(index, TransportOutcome(result: result, elapsed: elapsed))
    }

    /// Tells the submission whether the request left (see ``TransferSubmission/onDeparture``),
    /// the first time only: libcurl calls back again when it retries on a fresh connection.
    func tellDeparture(_ departed: Bool) {
        guard !departureTold else { return }
        departureTold = true
        submission.onDeparture?(index, departed)
    }

    deinit {
        // The easy handle was reset (or cleaned up) before the last reference went away, so
        // libcurl no longer points here.
        errorBuffer.deallocate()
    }

    func freeLists() {
        if let headerList { curl_slist_free_all(headerList) }
        if let recipientList { curl_slist_free_all(recipientList) }
        headerList = nil
        recipientList = nil
    }
}

extension Transfer {
    /// What the finished transfer came to, read from its handle (`easy`) and what libcurl
    /// ended it with (`code`): the answer, or a ``TransportError`` classified by whether a
    /// connection was made (so callers know if the request may have reached the server).
    func outcome(easy: UnsafeMutableRawPointer, code: CURLcode, logger: Logger) -> Result<HTTPResponse, TransportError> {
        if missedStartDeadline {
            return .failure(TransportError(kind: .notSent, curlCode: TransportError.deadlineCode,
                                           message: "not started: its start deadline passed while it waited for a connection"))
        }
        var responseCode = 0
        _ = ccurl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &responseCode)
        if code == CURLE_OK {
            return .success(HTTPResponse(status: responseCode, headers: headers, body: body))
        }
        var connectTime = 0.0
        var pretransferTime = 0.0
        _ = ccurl_getinfo_double(easy, CURLINFO_CONNECT_TIME, &connectTime)
        _ = ccurl_getinfo_double(easy, CURLINFO_PRETRANSFER_TIME, &pretransferTime)
        let detail = String(cString: errorBuffer)
        let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        let isSMTP: Bool
        if case .smtp = request { isSMTP = true } else { isSMTP = false }
        let error = TransportError.classify(code: code, connected: connectTime > 0 || pretransferTime > 0,
                                            smtpCode: isSMTP ? responseCode : nil, smtpReply: lastReply,
                                            detail: message)
        logger.debug("transfer failed", metadata: [
            "curl.code": "\(code.rawValue)", "curl.error": "\(message)", "transport.kind": "\(error.kind.rawValue)",
            "curl.connect_time": "\(connectTime)", "curl.pretransfer_time": "\(pretransferTime)",
        ])
        return .failure(error)
    }
}
