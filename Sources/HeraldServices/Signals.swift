import HeraldCore
import Synchronization

/// Wakes tasks that wait for "something may have changed" (a NOTIFY, a shutdown request).
///
/// ``wait(timeout:)`` returns at the next ``signal()`` or after `timeout`, whichever comes first;
/// a signal with nobody waiting is not remembered, so waiters should re-check their condition
/// (fetch work) before waiting again, which Herald's loops do.
final class Wakeup: Sendable {
    private struct State {
        var next = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }
    private let state = Mutex(State())
    /// What timeouts are measured on.
    private let clock: any HeraldClock

    init(clock: any HeraldClock = ContinuousClock()) {
        self.clock = clock
    }

    /// Resumes every current waiter.
    func signal() {
        let waiters = state.withLock { s in
            let w = s.waiters
            s.waiters.removeAll()
            return w
        }
        for (_, c) in waiters { c.resume() }
    }

    /// Waits for a signal, at most `timeout`; returns early when the task is cancelled.
    func wait(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForSignal() }
            group.addTask { try? await self.clock.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForSignal() async {
        let id = state.withLock { s in
            s.next += 1
            return s.next
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if Task.isCancelled { return true }
                    s.waiters[id] = c
                    return false
                }
                if resumeNow { c.resume() }
            }
        } onCancel: {
            let c = state.withLock { $0.waiters.removeValue(forKey: id) }
            c?.resume()
        }
    }
}

/// A flag that is set once and can be awaited (shutdown requested).
final class Latch: Sendable {
    private let state = Mutex<(set: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    var isSet: Bool { state.withLock { $0.set } }

    func set() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            guard !s.set else { return [] }
            s.set = true
            let w = s.waiters
            s.waiters.removeAll()
            return w
        }
        for c in waiters { c.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.set { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }
}
