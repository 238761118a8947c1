import Foundation
import HeraldCore

/// A broadcast that workers may send now (status `sending`, channel enabled), with what a worker
/// needs to render and deliver its messages.
public struct ActiveBroadcast: Sendable, Equatable {
    public var id: Int64
    public var channelID: Int64
    public var channelName: String
    /// `whatsapp`, `sms` or `email`.
    public var kind: String
    public var provider: String
    /// `channels.settings` as JSON text.
    public var settingsJSON: String
    public var ratePerSecond: Double
    public var burst: Int
    public var subject: String?
    public var body: String?
    public var htmlBody: String?
    public var templateName: String?
    public var templateLanguage: String?
    public var templateParams: [String]
    /// The template's `header_format`, `header_text` and `buttons` (JSON text); nil without a template.
    public var templateHeaderFormat: String? = nil
    public var templateHeaderText: String? = nil
    public var templateButtons: String? = nil
    /// `template_header_params`, `template_button_params` and `media` as JSON text (nil when null).
    public var templateHeaderParams: String? = nil
    public var templateButtonParams: String? = nil
    public var media: String? = nil
    /// Whether the broadcast has a `send_window`: only then may a claim find due jobs whose
    /// recipient's window has closed, and scan past them (see ``QueueStore/claim``).
    public var hasSendWindow = false
}

/// One claimed job with the contact data needed to render and address its message.
public struct ClaimedJob: Sendable, Equatable {
    public var messageID: Int64
    public var address: String?
    /// Tries recorded so far (not counting the one about to happen).
    public var attempts: Int
    public var contact: Contact
    /// Eligibility re-checked at claim time: opted out of the channel's kind since expansion.
    public var optedOut: Bool
    /// Whether the contact wrote to us within the last 24 hours, by the database's clock (the
    /// one that stamped `last_inbound_at`): WhatsApp allows free-form messages only then.
    public var insideServiceWindow: Bool
    /// Provider ids of the parts of its message already accepted, when the message goes as
    /// several requests (a WhatsApp audio, then its body as text): this claim sends the next part.
    /// Empty for a message not yet started, and for every message sent in one request.
    public var sentParts: [String] = []
    /// The contact was deleted since expansion (its message must not go; its opt-outs went with it).
    public var contactDeleted = false
}

/// What became of one claimed job; recorded in batches by ``QueueStore/record(_:owner:)``.
public struct JobOutcome: Sendable, Equatable {
    public enum Result: Sendable, Equatable {
        /// The provider accepted it.
        case sent(providerMessageID: String)
        /// The provider accepted a part of a message that goes as several requests, not its last:
        /// the job goes back due at once, ahead of the broadcast's other due jobs, with the part
        /// recorded (migration 0017) so that no claim sends it again; the message stays `queued`
        /// and no attempt is counted.
        case partSent(providerMessageID: String)
        /// Try again at `at`; `failureKind` says whether the provider may have received it.
        case retry(at: Date, errorCode: String?, error: String, failureKind: FailureKind?)
        /// Failed for good.
        case failed(errorCode: String?, error: String, failureKind: FailureKind?)
        /// Not sent: ineligible when its turn came.
        case skipped(reason: SkipReason)
        /// Not sent: its broadcast was cancelled.
        case cancelled
        /// Not attempted (never handed to the provider: the batch ran out of time to start it
        /// within its lease, or the worker is shutting down): the job goes back to the queue as
        /// it was, due now, and the message is not touched (no attempt counted).
        case handBack
    }
    public var messageID: Int64
    public var result: Result
    public var segments: Int?
    /// Set when the provider answered "too many requests": how long the channel should pause.
    /// Not stored with the message; the worker throttles the channel with it.
    public var rateLimitedFor: Duration?

    public init(messageID: Int64, result: Result, segments: Int? = nil) {
        self.messageID = messageID
        self.result = result
        self.segments = segments
    }

    /// Whether this outcome counts as a try against the provider (`attempts`).
    var isAttempt: Bool {
        switch result {
        case .sent, .retry, .failed: true
        case .skipped, .cancelled, .handBack, .partSent: false
        }
    }
}
