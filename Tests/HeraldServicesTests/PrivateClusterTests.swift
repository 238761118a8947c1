import Foundation
import HeraldDemo
import Synchronization
import Testing

/// ``PrivateCluster`` stopped from another thread (as `herald demo`'s signal handler does) at
/// any moment of its start leaves nothing behind: no directory, no process naming it.
@Suite("Private PostgreSQL: stop during start")
struct PrivateClusterTests {
    /// Where the stop lands.
    enum Moment: String, CaseIterable, Sendable {
        /// Before `start()` is called.
        case beforeStart
        /// The moment `start()` begins a step: the stop runs concurrently with that step.
        case writingPasswordFile, startingWatchdog, runningInitdb
        /// While initdb (held at its gate) runs.
        case initdbRunning

        var step: PrivateCluster.StartStep? {
            switch self {
            case .writingPasswordFile: .writingPasswordFile
            case .startingWatchdog: .startingWatchdog
            case .runningInitdb: .runningInitdb
            case .beforeStart, .initdbRunning: nil
            }
        }
    }

    @Test("stop() at any moment while initdb is being started ends start() and leaves no process or directory",
          arguments: Moment.allCases)
    func stopDuringStart(at moment: Moment) async throws {
        // initdb never gets past its gate, so every stop lands somewhere in start().
        let gated = try DemoTests.gatedPostgresBin()
        defer {
            DemoTests.openGate(gated)
            try? FileManager.default.removeItem(atPath: gated)
        }
        // Many tries at a step's start: how far the step has got when the stop lands depends on
        // scheduling, and the races this pins lie inside steps (with spawning and recording a
        // child apart, the stop at `runningInitdb` failed in 3 of 3 runs). A stop while initdb
        // runs lands at the same place each time, and costs runuser's 2 s grace when run as root.
        for _ in 0..<(moment == .initdbRunning ? 4 : 24) {
            let reached = DispatchSemaphore(value: 0)
            let cluster = try PrivateCluster(prefix: "herald-stop-test", binDirectory: gated) { step in
                if step == moment.step { reached.signal() }
            }
            let stopped = Atomic(false)
            let stop: @Sendable () -> Void = {
                cluster.stop()
                stopped.store(true, ordering: .releasing)
            }
            switch moment {
            case .beforeStart:
                stop()
            case .initdbRunning:
                break
            case .writingPasswordFile, .startingWatchdog, .runningInitdb:
                // A thread of its own, as a signal handler's queue would be, that stops the
                // cluster as soon as start() says it begins the step.
                Thread {
                    if reached.wait(timeout: .now() + 20) == .success { stop() }
                }.start()
            }
            let start = Task { try await cluster.start() }
            if moment == .initdbRunning {
                try await DemoTests.waitUntil("initdb runs (\(cluster.directory))", timeout: .seconds(20)) {
                    !DemoTests.processes(mentioning: gated + "/initdb").isEmpty
                }
                Thread { stop() }.start()
            }
            try await DemoTests.waitUntil("stop() returns (\(moment))", timeout: .seconds(20)) {
                stopped.load(ordering: .acquiring)
            }
            // A child that slipped past the stop would keep start() waiting at the gate (opened
            // when the test ends), so its end is awaited with a bound.
            let ended = Atomic(false)
            Task { _ = await start.result; ended.store(true, ordering: .releasing) }
            try await DemoTests.waitUntil("start() ends after stop() (\(moment))", timeout: .seconds(20)) {
                ended.load(ordering: .acquiring)
            }
            let result = await start.result
            #expect(throws: PrivateCluster.Error.self, "start() after stop() fails") { try result.get() }
            // The child ended by stop() is reaped by start(); what is left must be gone at once.
            #expect(!FileManager.default.fileExists(atPath: cluster.directory), "\(cluster.directory) removed")
            #expect(DemoTests.processes(mentioning: cluster.directory).isEmpty, "no process of \(cluster.directory) is left")
        }
    }
}
