import HeraldCore

/// Transfers handed to the transport together (``CurlTransport/submit(_:startingBy:onDeparture:onCompletion:)``):
/// their start deadline, the clock it is read on, and who hears about each one as it leaves and
/// as it ends.
///
/// `onCompletion` runs exactly once per transfer, on the transport's thread (or, for transfers the
/// transport refused outright, on the submitting thread before `submit` returns); it must be
/// short: append the outcome somewhere and signal, never block.
final class TransferSubmission: Sendable {
    /// The last instant a transfer of the submission may start; nil: no limit.
    let deadline: ContinuousClock.Instant?
    /// The engine's clock: whoever computed `deadline` measured it on this one.
    let clock: any HeraldClock
    /// Told once per transfer, on the transport's thread: `true` when its connection is ready
    /// and the request is about to be sent (the moment a provider's rate limit counts), `false`
    /// when it ends without having got that far (withdrawn, cancelled, past its start deadline,
    /// no connection). It always comes before the transfer's `onCompletion`.
    let onDeparture: (@Sendable (Int, Bool) -> Void)?
    let onCompletion: @Sendable (Int, TransportOutcome) -> Void

    init(deadline: ContinuousClock.Instant?, clock: any HeraldClock, onDeparture: (@Sendable (Int, Bool) -> Void)? = nil,
         onCompletion: @escaping @Sendable (Int, TransportOutcome) -> Void) {
        self.deadline = deadline
        self.clock = clock
        self.onDeparture = onDeparture
        self.onCompletion = onCompletion
    }

    /// Whether libcurl must call back just before each request goes (`curlPrereqCallback`).
    var watchesDepartures: Bool { deadline != nil || onDeparture != nil }

    /// Whether a transfer of the submission may no longer start: checked when it would be handed
    /// to libcurl and again when libcurl is about to send it (`curlPrereqCallback`).
    var deadlinePassed: Bool {
        guard let deadline else { return false }
        return clock.now >= deadline
    }
}
