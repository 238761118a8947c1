import HeraldCore
import Synchronization

/// A clock that moves only when a test calls ``advance(by:)``: code that waits on it (a shutdown
/// grace, a channel hold) waits until the test says that much time has passed, however long the
/// machine takes, and never longer.
///
/// Tests also learn when the code under test went to sleep on it (``waitForSleep(lasting:after:within:)``):
/// the positive signal that the code processed everything up to that point and chose to wait,
/// before the test asserts that nothing happened yet.
public final class ManualClock: HeraldClock {
    public typealias Instant = ContinuousClock.Instant
    public typealias Duration = Swift.Duration

    private struct Sleeper {
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }
    private struct State {
        var now: Instant
        var nextID = 0
        var sleepers: [Int: Sleeper] = [:]
        /// How many sleeps began, by how long they were to last from the reading they began at.
        var sleepsBegun: [Duration: Int] = [:]
    }

    private let state: Mutex<State>

    /// - Parameter start: The first reading; the real clock's current instant by default, so
    ///   instants from this clock and from `ContinuousClock` stay comparable in magnitude.
    public init(start: Instant = ContinuousClock.now) {
        state = Mutex(State(now: start))
    }

    public var now: Instant { state.withLock { $0.now } }

    public var minimumResolution: Duration { .nanoseconds(1) }

    /// Returns once the clock reads `deadline` or later; throws `CancellationError` when the
    /// task is cancelled first.
    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let resumeNow = state.withLock { s -> Result<Void, any Error>? in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if deadline <= s.now { return .success(()) }
                    s.sleepers[id] = Sleeper(deadline: deadline, continuation: c)
                    s.sleepsBegun[deadline - s.now, default: 0] += 1
                    return nil
                }
                if let resumeNow { c.resume(with: resumeNow) }
            }
        } onCancel: {
            let sleeper = state.withLock { $0.sleepers.removeValue(forKey: id) }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock forward and wakes every sleeper whose deadline it reaches.
    public func advance(by duration: Duration) {
        let due = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.now = s.now + duration
            let now = s.now
            let due = s.sleepers.filter { $0.value.deadline <= now }
            for id in due.keys { s.sleepers[id] = nil }
            return due.values.map(\.continuation)
        }
        for c in due { c.resume() }
    }

    /// How many sleeps lasting exactly `duration` (from the reading they began at) have begun.
    public func sleeps(lasting duration: Duration) -> Int {
        state.withLock { $0.sleepsBegun[duration, default: 0] }
    }

    /// Waits (in real time, at most `limit`) until more than `count` sleeps lasting exactly
    /// `duration` have begun: the sign that the code under test reached the wait it makes for
    /// that long. Returns false when `limit` passed first.
    public func waitForSleep(lasting duration: Duration, after count: Int = 0, within limit: Duration = .seconds(20)) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while sleeps(lasting: duration) <= count {
            // Polling inside a deadline: sleepers are registered on arbitrary threads, and a
            // short real pause between checks keeps this simple.
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return true
    }

    /// How many tasks are asleep on this clock.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }
}
