import HeraldProviders
import HeraldStore

/// One claimed job handed to the transport, with what the completer needs to judge the answer.
struct SentJob: Sendable {
    let job: ClaimedJob
    let broadcast: PreparedBroadcast
    let segments: Int?
    /// The provider request the transfer carries: the channel classifies its answer against it
    /// (a mail's Message-ID, for one).
    let request: ProviderRequest
}
