import Foundation
import HeraldDemo
import Synchronization
import Testing

/// ``PrivateCluster`` stopped from another thread (as `herald demo`'s signal handler does) at
/// any moment of its start leaves nothing behind: no directory, no process naming it.
@Suite("Private PostgreSQL: stop during start")
struct PrivateClusterTests {
    @Test("stop() at any moment while initdb is being started ends start() and leaves no process or directory",
          arguments: [0, 100, 200, 300, 400, 500, 700, 1_000, 1_500, 2_000, 3_000, 5_000, 8_000, 20_000])
    func stopDuringStart(afterMicroseconds delay: Int) async throws {
        // initdb never gets past its gate, so every stop lands somewhere in start().
        let gated = try DemoTests.gatedPostgresBin()
        defer {
            DemoTests.openGate(gated)
            try? FileManager.default.removeItem(atPath: gated)
        }
        // A few tries per delay: the moment a stop lands also depends on scheduling.
        for _ in 0..<4 {
            let cluster = try PrivateCluster(prefix: "herald-stop-test", binDirectory: gated)
            // The stopper counts its delay from the moment start() begins, on a thread of its own
            // as a signal handler's queue would be. The sleep below is not a wait for something to
            // happen: it is this test's parameter, where in start() the stop lands (no signal
            // marks "n µs into start()"; the arguments spread the stops over initdb's launch).
            let began = DispatchSemaphore(value: 0)
            let stopper = Task.detached {
                await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                    Thread {
                        began.wait()
                        usleep(useconds_t(delay))
                        cluster.stop()
                        done.resume()
                    }.start()
                }
            }
            let start = Task {
                began.signal()
                return try await cluster.start()
            }
            await stopper.value
            // A child that slipped past the stop would keep start() waiting at the gate (opened
            // when the test ends), so its end is awaited with a bound.
            let ended = Atomic(false)
            Task { _ = await start.result; ended.store(true, ordering: .releasing) }
            try await DemoTests.waitUntil("start() ends after stop() (delay \(delay) µs)", timeout: .seconds(20)) {
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
