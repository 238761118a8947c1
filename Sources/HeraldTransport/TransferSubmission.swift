import HeraldCore

/// Transfers handed to the transport together (``CurlTransport/submit(_:startingBy:onCompletion:)``):
/// their start deadline, the clock it is read on, and who hears about each one as it ends.
///
/// `onCompletion` runs exactly once per transfer, on the transport's thread (or, for transfers the
/// transport refused outright, on the submitting thread before `submit` returns); it must be
/// short: append the outcome somewhere and signal, never block.
final class TransferSubmission: Sendable {
    /// The last instant a transfer of the submission may start; nil: no limit.
    let deadline: ContinuousClock.Instant?
    /// The engine's clock: whoever computed `deadline` measured it on this one.
    let clock: any HeraldClock
    let onCompletion: @Sendable (Int, TransportOutcome) -> Void

    init(deadline: ContinuousClock.Instant?, clock: any HeraldClock,
         onCompletion: @escaping @Sendable (Int, TransportOutcome) -> Void) {
        self.deadline = deadline
        self.clock = clock
        self.onCompletion = onCompletion
    }

    /// Whether a transfer of the submission may no longer start: checked when it would be handed
    /// to libcurl and again when libcurl is about to send it (`curlPrereqCallback`).
    var deadlinePassed: Bool {
        guard let deadline else { return false }
        return clock.now >= deadline
    }
}
