import HeraldPostgres
@testable import HeraldServices
import HeraldStore
import HeraldTesting
import Logging
import Testing

/// A standby scheduler's tries for the lock run on the scheduler's clock: with a ``ManualClock``
/// the test decides when the next try happens, and sees that none happens before.
@Suite("Leadership on a manual clock")
struct LeadershipClockTests {
    @Test("a standby tries again only once its clock has moved by the retry interval, and then leads")
    func standbyRetriesOnItsClock() async throws {
        try await withTestConnection { db, leader in
            let leadership = Leadership(retryInterval: .seconds(5))
            #expect(try await SchedulerStore(leader).tryLeadership(key: leadership.key), "the first session leads")
            let standby = try await db.connect()
            let clock = ManualClock()
            let acquired = StopFlag()
            let waiting = Task {
                try await leadership.acquire(on: SchedulerStore(standby), logger: Logger(label: "test"), clock: clock)
                acquired.set()
            }
            try #require(await clock.waitForSleep(lasting: .seconds(5)), "the standby did not wait for its next try")
            // The lock is free now (unlocked by the statement, not by a session ending, which the
            // server finishes on its own time), but the standby's clock has not moved: no try yet.
            #expect(try await leader.query("SELECT pg_advisory_unlock(\(leadership.key))")[0].decode(Bool.self, at: 0))
            clock.advance(by: .seconds(4))
            #expect(clock.sleeperCount == 1 && !acquired.isSet, "it tried again before its retry interval")
            clock.advance(by: .seconds(1))
            let led = try await eventually(within: .seconds(20)) { acquired.isSet }
            #expect(led, "the standby did not take the free lock on its next try")
            if !led { waiting.cancel() }
            try await waiting.value
            await standby.close()
        }
    }
}
