@testable import HeraldServices
import HeraldTesting
import Testing

/// ``Wakeup`` on a ``ManualClock``: its timeouts never pass unless the test moves the clock, so a
/// wait that should return at once and does not is seen as a wait that never ends (bounded here
/// by a real-time guard that cancels it).
@Suite("Wakeup: signals are not lost between a check and a wait")
struct WakeupTests {
    /// A Wakeup whose timeouts pass only when the test advances its clock.
    static func onManualClock() -> (ManualClock, Wakeup) {
        let clock = ManualClock()
        return (clock, Wakeup(clock: clock))
    }

    /// Whether `wait` returns within `limit` of real time; cancels it when it does not.
    static func returns(within limit: Duration = .seconds(10), _ wait: @escaping @Sendable () async -> Void) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await wait(); return true }
            group.addTask { try? await Task.sleep(for: limit); return false }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    @Test("a signal that finds nobody waiting is kept: the next wait returns at once")
    func keptSignal() async {
        let (clock, wakeup) = Self.onManualClock()
        wakeup.signal()
        #expect(await Self.returns { await wakeup.wait(timeout: .seconds(1)) })
        #expect(clock.sleeps(lasting: .seconds(1)) == 0, "it did not even start a timeout")
    }

    @Test("a kept signal serves one wait: the one after sleeps until its timeout passes")
    func keptSignalIsConsumed() async {
        let (clock, wakeup) = Self.onManualClock()
        wakeup.signal()
        wakeup.signal()
        await wakeup.wait(timeout: .seconds(1))
        let second = Task { await wakeup.wait(timeout: .seconds(1)) }
        #expect(await clock.waitForSleep(lasting: .seconds(1)), "the second wait sleeps")
        clock.advance(by: .seconds(1))
        #expect(await Self.returns { await second.value })
    }

    @Test("a signal wakes the tasks waiting now and is not kept for later ones")
    func signalWakesCurrentWaiters() async {
        let (clock, wakeup) = Self.onManualClock()
        let first = Task { await wakeup.wait(timeout: .seconds(5)) }
        let second = Task { await wakeup.wait(timeout: .seconds(5)) }
        #expect(await clock.waitForSleep(lasting: .seconds(5), after: 1), "both wait")
        // Each waiter registers for the signal before or after its timeout; wait for both.
        #expect(await waitUntil { wakeup.waiterCount == 2 })
        wakeup.signal()
        #expect(await Self.returns { await first.value; await second.value })
        let later = Task { await wakeup.wait(timeout: .seconds(5)) }
        #expect(await clock.waitForSleep(lasting: .seconds(5), after: 2), "a later wait sleeps: the signal was spent")
        clock.advance(by: .seconds(5))
        #expect(await Self.returns { await later.value })
    }

    @Test("close wakes every waiter, and every later wait returns at once")
    func close() async {
        let (_, wakeup) = Self.onManualClock()
        let waiting = Task { await wakeup.wait(timeout: .seconds(5)) }
        #expect(await waitUntil { wakeup.waiterCount == 1 })
        wakeup.close()
        #expect(await Self.returns { await waiting.value })
        for _ in 0..<3 {
            #expect(await Self.returns { await wakeup.wait(timeout: .seconds(5)) })
        }
    }

    @Test("a cancelled wait returns at once and leaves no waiter behind")
    func cancelled() async {
        let (_, wakeup) = Self.onManualClock()
        let waiting = Task { await wakeup.wait(timeout: .seconds(5)) }
        #expect(await waitUntil { wakeup.waiterCount == 1 })
        waiting.cancel()
        #expect(await Self.returns { await waiting.value })
        #expect(wakeup.waiterCount == 0)
    }

    /// Polls a condition in real time (at most 10 s).
    func waitUntil(_ condition: @Sendable () -> Bool) async -> Bool {
        (try? await eventually(within: .seconds(10), every: .milliseconds(2)) { condition() }) ?? false
    }
}
