/// A message's status, as in `herald.message_status.status`.
///
/// The contract: a status only moves forward along ``queued`` → ``sending`` → ``sent`` →
/// ``delivered`` → ``read``; a ``failed`` receipt ends a message that is not yet ``read``;
/// ``failed``, ``skipped`` and ``cancelled`` are final, and so is ``read``. A replayed or late
/// receipt changes nothing. One place decides this: the SQL of `ReceiptStore.apply` (pinned
/// status by status by `ReceiptFoldTests`). ``sending`` is not stored: `message_status` shows a
/// queued message under a live lease so.
public enum MessageStatus: String, Sendable, CaseIterable {
    /// Waiting to be claimed by a worker.
    case queued
    /// Held by a worker, being handed to the provider.
    case sending
    /// Accepted by the provider.
    case sent
    /// Delivered to the handset or mailbox.
    case delivered
    /// Read by the contact (WhatsApp read receipts).
    case read
    /// Not delivered: permanent error, retries spent, or a `failed` receipt.
    case failed
    /// Never sent: the contact was ineligible (see `skip_reason`).
    case skipped
    /// Never sent: the broadcast was cancelled first.
    case cancelled
}

/// A delivery status reported by a provider, after mapping its vocabulary to Herald's.
public enum ReceiptStatus: String, Sendable, CaseIterable {
    /// The provider handed the message on.
    case sent
    /// The message reached the handset or mailbox.
    case delivered
    /// The contact read it.
    case read
    /// The message could not be delivered.
    case failed

    /// Maps a WhatsApp Cloud API status (`statuses[].status` of a webhook).
    ///
    /// - Parameter whatsApp: `sent`, `delivered`, `read` or `failed`; anything else (such as
    ///   `deleted` or `warning`) gives `nil`, a receipt that changes nothing.
    public init?(whatsApp: String) {
        switch whatsApp {
        case "sent": self = .sent
        case "delivered": self = .delivered
        case "read": self = .read
        case "failed": self = .failed
        default: return nil
        }
    }

    /// Maps Twilio's `MessageStatus` callback parameter.
    ///
    /// - Parameter twilio: `sent`, `delivered`, `read` map to themselves; `undelivered` and
    ///   `failed` map to ``failed``. Interim or other statuses (`queued`, `accepted`, `sending`,
    ///   `scheduled`, `canceled`, inbound ones…) give `nil`: no change.
    public init?(twilio: String) {
        switch twilio {
        case "sent": self = .sent
        case "delivered": self = .delivered
        case "read": self = .read
        case "undelivered", "failed": self = .failed
        default: return nil
        }
    }
}
