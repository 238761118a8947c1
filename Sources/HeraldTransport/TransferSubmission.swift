/// Transfers handed to the transport together (``CurlTransport/submit(_:startingBy:onCompletion:)``):
/// their start deadline and who hears about each one as it ends.
///
/// `onCompletion` runs exactly once per transfer, on the transport's thread (or, for transfers the
/// transport refused outright, on the submitting thread before `submit` returns); it must be
/// short: append the outcome somewhere and signal, never block.
final class TransferSubmission: Sendable {
    /// The last instant a transfer of the submission may start; nil: no limit.
    let deadline: ContinuousClock.Instant?
    let onCompletion: @Sendable (Int, TransportOutcome) -> Void

    init(deadline: ContinuousClock.Instant?, onCompletion: @escaping @Sendable (Int, TransportOutcome) -> Void) {
        self.deadline = deadline
        self.onCompletion = onCompletion
    }
}
