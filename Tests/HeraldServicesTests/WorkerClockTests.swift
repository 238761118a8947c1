import HeraldCore
import HeraldPostgres
@testable import HeraldServices
import HeraldTesting
import Logging
import Testing

/// The worker's own time rules run on the clock it is given: with a ``ManualClock`` a test
/// decides when the shutdown grace has passed, instead of sleeping through it.
@Suite("Worker on a manual clock")
struct WorkerClockTests {
    @Test("on shutdown the worker waits for a hung provider until its clock passes the grace, then stops and records")
    func shutdownGraceOnTheWorkersClock() async throws {
        try await WorkerFixtures.withChannel(.whatsApp, configure: { hung in hung.latency = .seconds(120) }) { hung, db, c, channel in
            let broadcast = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: try await WorkerFixtures.contacts(c, count: 3),
                                                                      template: ("promo", ["x"]))
            var config = WorkerFixtures.configuration(db)
            config.shutdownGrace = .seconds(30)
            config.requestTimeout = .seconds(100)  // libcurl's timeout runs on real time: out of the way
            config.lease = .seconds(300)
            let clock = ManualClock()
            var logger = Logger(label: "test.worker")
            logger.logLevel = .error
            let worker = Worker(configuration: config, logger: logger, clock: clock)
            let stopped = StopFlag()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await worker.run()
                    stopped.set()
                }
                try #require(await hung.waitForRequests(3, timeout: .seconds(20)), "the three sends did not reach the provider")
                worker.requestStop()
                try #require(await clock.waitForSleep(lasting: Worker.drainPoll), "the worker did not start draining")

                // 29 s later on its clock, the worker looks at its sends again and keeps waiting.
                let looks = clock.sleeps(lasting: Worker.drainPoll)
                clock.advance(by: .seconds(29))
                try #require(await clock.waitForSleep(lasting: Worker.drainPoll, after: looks), "the drain did not look again")
                #expect(!stopped.isSet, "the worker gave up before its grace period")

                // Past the grace it abandons the sends at once, though 120 s have not passed anywhere.
                clock.advance(by: .seconds(2))
                let stoppedPastGrace = try await eventually(within: .seconds(20)) { stopped.isSet }
                #expect(stoppedPastGrace, "the worker did not stop once its clock passed the grace")
                // A failure must not hang the suite: cancelled, the worker abandons its sends.
                if !stoppedPastGrace { group.cancelAll() }
                try await group.waitForAll()
            }
            // The abandoned sends were recorded (ambiguous), and nothing is left leased.
            let leased = try await c.query("SELECT count(*) FROM herald.jobs WHERE lease_owner IS NOT NULL")[0].decode(Int.self, at: 0)
            #expect(leased == 0)
            let statuses = try await WorkerFixtures.statuses(c, broadcast: broadcast)
            #expect(statuses["queued", default: 0] + statuses["failed", default: 0] == 3, "statuses: \(statuses)")
        }
    }
}
