/// Herald's typed states. Each `rawValue` is the value's one SQL spelling: the schema's CHECK
/// constraints list exactly these (`DomainSpellingTests` compares them), and Swift code never
/// writes the strings itself.

/// What a channel sends (`channels.kind`, `opt_outs.channel_kind`).
public enum ChannelKind: String, Sendable, CaseIterable, Hashable {
    case whatsapp
    case sms
    case email
}

/// A broadcast's life cycle (`broadcasts.status`), see the contract's life-cycle table.
public enum BroadcastStatus: String, Sendable, CaseIterable, Hashable {
    /// Being written by the admin tool; Herald never touches it.
    case draft
    /// Waiting for `send_at`; the scheduler validates and expands it then.
    case scheduled
    /// Workers claim its messages.
    case sending
    /// Held by the admin tool (or by Herald when Meta paused its template).
    case paused
    /// Stopped for good by the admin tool.
    case cancelled
    /// Every message reached an end state.
    case completed
    /// Could not be sent; `error` says why.
    case failed
}

/// Why a message was never sent (`messages.skip_reason`).
public enum SkipReason: String, Sendable, CaseIterable, Hashable {
    /// The contact opted out of the channel's kind.
    case optedOut = "opted_out"
    /// No usable address for the kind: a phone not in E.164, an email that is not an address.
    case invalidAddress = "invalid_address"
    /// A WhatsApp message without a template, and the contact wrote last more than 24 hours ago.
    case outsideWhatsAppWindow = "outside_whatsapp_window"
    /// The contact was deleted after the broadcast was expanded (an erasure request, a clean-up):
    /// decided at claim, so nothing goes to someone no longer in the address book.
    case contactDeleted = "contact_deleted"
}

/// Whether a failed or retried send may have reached the provider (`messages.failure_kind`).
public enum FailureKind: String, Sendable, CaseIterable, Hashable {
    /// The provider provably never got the request (refused connection, DNS, TLS, 429).
    case notSent = "not_sent"
    /// The request may have arrived (a timeout after it left, a gateway error): a retry risks a
    /// duplicate, since neither Meta nor Twilio takes idempotency keys.
    case ambiguous
}
