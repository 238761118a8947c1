import HeraldStore

/// One claimed job handed to the transport, with what the completer needs to judge the answer.
struct SentJob: Sendable {
    let job: ClaimedJob
    let broadcast: PreparedBroadcast
    let segments: Int?
    /// The Message-ID of a mail (SMTP answers carry none).
    let mailID: String?
}
