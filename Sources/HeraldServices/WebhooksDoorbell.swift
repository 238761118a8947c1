import Synchronization

/// Wakes a loop when work arrives. Unlike ``Wakeup``, a ring with nobody waiting is remembered,
/// so work submitted between a loop's last look and its wait is never left sitting.
final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    func ring() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.rung = true
            let w = s.waiters
            s.waiters.removeAll()
            return w
        }
        for w in waiters { w.resume() }
    }

    /// Returns at once when rung since the last wait, else at the next ring or after `timeout`.
    func wait(timeout: Duration) async {
        if state.withLock({ s in defer { s.rung = false }; return s.rung }) { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let now = self.state.withLock { s -> Bool in
                        if s.rung || Task.isCancelled { return true }
                        s.waiters.append(c)
                        return false
                    }
                    if now { c.resume() }
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
            // The sleeper is cancelled; release a still-parked waiter by ringing our own bell.
            self.ring()
        }
        state.withLock { $0.rung = false }
    }
}
