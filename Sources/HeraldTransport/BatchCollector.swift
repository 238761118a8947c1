import Synchronization

/// The awaiting side of ``CurlTransport/perform(_:startingBy:)``: gathers a submission's
/// outcomes at their indices and resumes the caller once, when the last one has arrived.
final class BatchCollector: Sendable {
    private struct State {
        var outcomes: [TransportOutcome]
        var remaining: Int
    }

    private let state: Mutex<State>
    private let continuation: CheckedContinuation<[TransportOutcome], Never>

    init(count: Int, continuation: CheckedContinuation<[TransportOutcome], Never>) {
        state = Mutex(State(outcomes: Array(repeating: TransportOutcome(result: .failure(TransportError(
            kind: .notSent, curlCode: TransportError.shutdownCode, message: "not performed"))), count: count),
                            remaining: count))
        self.continuation = continuation
    }

    func finish(_ index: Int, _ outcome: TransportOutcome) {
        let done = state.withLock { s -> [TransportOutcome]? in
            s.outcomes[index] = outcome
            s.remaining -= 1
            return s.remaining == 0 ? s.outcomes : nil
        }
        if let done { continuation.resume(returning: done) }
    }
}
