import Synchronization

/// Which request bodies `herald webhooks` reads now. Real receipts are small (a Meta notification
/// with one status is about 1 KiB); a large body is either a big batch or an attempt to make the
/// server read and hash a mebibyte for nothing. Small bodies are read at once; large ones (or
/// ones whose length is not declared) take one of ``atOnce`` permits first, in arrival order, so
/// unsigned 1 MiB floods queue behind each other instead of beside the receipts that matter. A
/// waiting request's body is not read, so its sender is held back by TCP. When ``maxWaiting``
/// already wait, a new large body is refused (503 with `Retry-After`: providers retry later).
final class BodyAdmission: Sendable {
    private struct State {
        var free: Int
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private enum Entry { case now, wait, refused }

    let smallBodyBytes: Int
    let atOnce: Int
    let maxWaiting: Int
    private let state: Mutex<State>

    init(smallBodyBytes: Int, atOnce: Int, maxWaiting: Int) {
        self.smallBodyBytes = smallBodyBytes
        self.atOnce = max(1, atOnce)
        self.maxWaiting = maxWaiting
        self.state = Mutex(State(free: self.atOnce))
    }

    /// Runs `work` once a body of `declaredLength` bytes (nil: not declared) may be read; nil,
    /// without running it, when too many large bodies wait already.
    func run<T: Sendable>(declaredLength: Int?, _ work: () async -> T) async -> T? {
        if let declaredLength, declaredLength <= smallBodyBytes { return await work() }
        let entry = state.withLock { s -> Entry in
            if s.free > 0 { s.free -= 1; return .now }
            return s.waiting.count < maxWaiting ? .wait : .refused
        }
        switch entry {
        case .refused:
            return nil
        case .wait:
            // A permit is handed over directly by `release()` (the count stays taken).
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.free > 0 { s.free -= 1; return true }
                    s.waiting.append(c)
                    return false
                }
                if now { c.resume() }
            }
        case .now:
            break
        }
        defer { release() }
        return await work()
    }

    /// Large bodies being read now, and waiting to be (tests watch these fill and drain).
    var counts: (reading: Int, waiting: Int) {
        state.withLock { s in (atOnce - s.free, s.waiting.count) }
    }

    private func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiting.isEmpty { s.free += 1; return nil }
            return s.waiting.removeFirst()
        }
        next?.resume()
    }
}
