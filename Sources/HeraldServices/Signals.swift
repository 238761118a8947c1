import HeraldCore
import Synchronization

/// Wakes tasks that wait for "something may have changed" (a NOTIFY, an answer, room in the
/// window, a shutdown request).
///
/// ``wait(timeout:)`` returns at the next ``signal()`` or after `timeout`, whichever comes first.
/// A signal that finds nobody waiting is kept, and the next wait returns at once: a loop that
/// checked its condition and is about to wait cannot sleep through a signal sent in between (the
/// classic lost wake-up). With several waiters, a signal wakes those waiting and is kept for no
/// one else, so waiters still re-check their condition (fetch work) before waiting again, which
/// Herald's loops do; a kept signal costs at most one extra look.
///
/// ``close()`` is for shutdown: every wait, now and later, returns at once.
///
/// Every wait has a timeout on the injected clock. A lost wake-up would only cost that timeout
/// on the real clock, but on a test's ``ManualClock`` it would last forever, so the rule above
/// is what makes the worker's shutdown deterministic in tests.
final class Wakeup: Sendable {
    private struct State {
        var next = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        /// A signal arrived while nobody waited: the next wait returns at once.
        var pending = false
        /// Closed: every wait returns at once.
        var closed = false

        /// Consumes a kept signal; true when the caller should not wait.
        mutating func takeSignal() -> Bool {
            if closed { return true }
            defer { pending = false }
            return pending
        }
    }
    private let state = Mutex(State())
    /// What timeouts are measured on.
    private let clock: any HeraldClock

    init(clock: any HeraldClock = ContinuousClock()) {
        self.clock = clock
    }

    /// Resumes every current waiter, or, when nobody waits, lets the next wait return at once.
    func signal() {
        let waiters = state.withLock { s in
            let w = s.waiters
            s.waiters.removeAll()
            if w.isEmpty { s.pending = true }
            return w
        }
        for (_, c) in waiters { c.resume() }
    }

    /// Resumes every current waiter, and every later wait returns at once.
    func close() {
        let waiters = state.withLock { s in
            s.closed = true
            let w = s.waiters
            s.waiters.removeAll()
            return w
        }
        for (_, c) in waiters { c.resume() }
    }

    /// How many tasks wait for a signal now.
    var waiterCount: Int { state.withLock { $0.waiters.count } }

    /// Waits for a signal, at most `timeout`; returns early when the task is cancelled.
    func wait(timeout: Duration) async {
        if state.withLock({ $0.takeSignal() }) { return }
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
                    if Task.isCancelled || s.takeSignal() { return true }
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
