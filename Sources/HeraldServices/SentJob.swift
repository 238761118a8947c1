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
    /// Which of the message's requests this is (0-based) and how many there are (see
    /// `ConfiguredChannel.requests(for:)`): an accepted part that is not the last is recorded as
    /// such, and the next claim sends the next one.
    var part = 0
    var parts = 1
}
