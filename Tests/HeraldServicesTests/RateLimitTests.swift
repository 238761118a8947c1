import Foundation
import HeraldPostgres
import HeraldServices
import HeraldTesting
import Testing

/// Seconds from `origin` to each instant, sorted.
private func offsets(_ instants: [ContinuousClock.Instant], from origin: ContinuousClock.Instant) -> [Double] {
    instants.map { i in
        let d = i - origin
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }.sorted()
}

/// The most requests in any one-second window.
private func worstWindow(_ times: [Double]) -> Int {
    var worst = 0
    var lo = 0
    for hi in times.indices {
        while times[hi] - times[lo] >= 1.0 { lo += 1 }
        worst = max(worst, hi - lo + 1)
    }
    return worst
}

@Suite("Rate limits hold across workers; providers' slow-downs pause a channel", .serialized)
struct RateLimitTests {
    @Test("3 worker processes, 50/s burst 10, 20 s: no second above 60, average within 5% of 50")
    func globalLimitAcrossProcesses() async throws {
        let bin = try #require(ProcessInfo.processInfo.environment["HERALD_BIN"], "scripts/test sets HERALD_BIN")
        try await WorkerFixtures.withChannel(.whatsApp, rate: 50, burst: 10) { double, db, c, channel in
            let contacts = try await WorkerFixtures.contacts(c, count: 1600)
            _ = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: contacts, template: ("promo", ["x"]))
            let workers = try (0..<3).map { _ in
                try HeraldProcess.start(bin, ["worker", "--log-level", "error"], databaseURL: db.url, environment: WorkerFixtures.environment)
            }
            #expect(await double.waitForRequests(1, timeout: .seconds(20)))
            // The rate is measured over the first 20 s of real sending: wait until the double has
            // seen a request at least that long after the first.
            let measured = try await eventually(within: .seconds(60), every: .milliseconds(200)) {
                let instants = double.received(.whatsApp).map(\.receivedAt)
                guard let first = instants.min(), let last = instants.max() else { return false }
                return last - first >= .seconds(20)
            }
            #expect(measured, "the workers sent for less than 20 s")
            for w in workers { w.signal(SIGTERM) }
            for w in workers { #expect(await w.wait() == 0) }
            let instants = double.received(.whatsApp).map(\.receivedAt)
            let origin = try #require(instants.min())
            let times = offsets(instants, from: origin).filter { $0 < 20.0 }
            let worst = worstWindow(times)
            let average = Double(times.count) / 20.0
            #expect(worst <= 60, "worst one-second window: \(worst)")
            #expect(abs(average - 50) <= 2.5, "20 s average: \(average)/s")
        }
    }

    @Test("a 429 with Retry-After: 2 pauses that channel about 2 s for all workers; another channel keeps sending")
    func retryAfterPausesChannel() async throws {
        try await WorkerFixtures.withChannel(.whatsApp, configure: { double in double.enqueue(.rateLimited(retryAfter: 2), times: 1, for: .whatsApp) }) { double, db, c, wa in
            let sms = try await WorkerFixtures.twilioChannel(c, double: double)
            try await c.execute("UPDATE herald.channels SET rate_per_second = 20, burst = 1")
            let contacts = try await WorkerFixtures.contacts(c, count: 200)
            let b1 = try await WorkerFixtures.sendingBroadcast(c, channel: wa, contacts: contacts, template: ("promo", ["x"]))
            let b2 = try await WorkerFixtures.sendingBroadcast(c, channel: sms, contacts: contacts, body: "hi")
            _ = (b1, b2)
            var one = WorkerFixtures.configuration(db, id: "w1")
            one.batchSize = 5
            var two = WorkerFixtures.configuration(db, id: "w2")
            two.batchSize = 5
            async let a = WorkerFixtures.runWorker(one, timeout: .seconds(4)) { false }
            async let z = WorkerFixtures.runWorker(two, timeout: .seconds(4)) { false }
            _ = try await (a, z)
            let waRequests = double.received(.whatsApp)
            let throttled = try #require(waRequests.first { $0.responseStatus == 429 })
            let after = waRequests.filter { $0.receivedAt > throttled.receivedAt }.map(\.receivedAt)
            // A send whose token was taken before the 429's answer reached its worker still goes
            // out (it cannot be called back): allow one or two such within 200 ms (20/s would give
            // four), then the pause.
            let inFlight = after.filter { $0 - throttled.receivedAt < .milliseconds(200) }
            #expect(inFlight.count <= 2, "sent right after the 429: \(inFlight.count)")
            let resumed = try #require(after.filter { $0 - throttled.receivedAt >= .milliseconds(200) }.min(),
                                       "WhatsApp resumed after the pause")
            let gap = resumed - throttled.receivedAt
            #expect(gap >= .milliseconds(1900) && gap <= .milliseconds(3000), "paused for \(gap)")
            let smsDuringPause = double.received(.twilio).filter { $0.receivedAt > throttled.receivedAt && $0.receivedAt < resumed }
            #expect(smsDuringPause.count >= 20, "the other channel kept sending: \(smsDuringPause.count)")
        }
    }

    @Test("a pair rate limit (131056) holds back that one message for its Retry-After; the channel keeps sending to everyone else")
    func pairRateLimitSparesTheChannel() async throws {
        try await WorkerFixtures.withChannel(.whatsApp) { double in
            double.enqueue(ProviderDouble.Fault(action: .raw(
                status: 400, headers: ["Retry-After": "8", "Content-Type": "application/json"],
                body: #"{"error":{"message":"(#131056) (Business Account, Consumer Account) pair rate limit hit","type":"OAuthException","code":131056}}"#)),
                for: .whatsApp)
        } body: { double, db, c, wa in
            let contacts = try await WorkerFixtures.contacts(c, count: 10)
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: wa, contacts: contacts, template: ("promo", ["x"]))
            // Batches of two, one after the other: most of the broadcast is claimed after the
            // 131056 is recorded, so a channel-wide pause would hold it back.
            var config = WorkerFixtures.configuration(db)
            config.batchSize = 2
            config.lanes = 1
            #expect(try await WorkerFixtures.runWorker(config, timeout: .seconds(40), until: WorkerFixtures.allDone(db, broadcast: b)))
            let requests = double.received(.whatsApp)
            let limited = try #require(requests.first { $0.responseStatus == 400 })
            let recipient = try #require(limited.json?["to"]?.string)
            let others = requests.filter { $0.json?["to"]?.string != recipient }
            #expect(others.count == 9)
            let lastOther = try #require(others.map(\.receivedAt).max())
            #expect(lastOther - limited.receivedAt < .seconds(4), "the other contacts were not held back: \(lastOther - limited.receivedAt)")
            let retry = try #require(requests.first { $0.json?["to"]?.string == recipient && $0.responseStatus == 200 })
            // The retry's due time is kept in the queue as a wall-clock instant (the worker's
            // `Date()` plus Retry-After, compared with PostgreSQL's `now()`), so the wait is
            // measured on the wall clock too: a step of the machine's clock moves both ends.
            let wallGap = retry.receivedDate.timeIntervalSince(limited.receivedDate)
            #expect(wallGap >= 8, "the limited message waited for Retry-After: \(wallGap) s by the wall clock, \(retry.receivedAt - limited.receivedAt) by the monotonic one")
            let row = try await c.query("""
                SELECT status, attempts FROM herald.messages WHERE broadcast_id = \(b) AND address = \(recipient)
                """)[0]
            #expect(try row.decode(String.self, at: 0) == "sent")
            #expect(try row.decode(Int.self, at: 1) == 2)
            #expect(try await WorkerFixtures.statuses(c, broadcast: b) == ["sent": 10])
        }
    }

    @Test("two concurrent broadcasts on one channel progress together")
    func fairness() async throws {
        try await WorkerFixtures.withChannel(.whatsApp, rate: 100, burst: 10) { double, db, c, wa in
            let contacts = try await WorkerFixtures.contacts(c, count: 300)
            let first = try await WorkerFixtures.sendingBroadcast(c, channel: wa, contacts: contacts, template: ("first", ["a"]))
            let second = try await WorkerFixtures.sendingBroadcast(c, channel: wa, contacts: contacts, template: ("second", ["b"]))
            var config = WorkerFixtures.configuration(db)
            config.batchSize = 20
            _ = try await WorkerFixtures.runWorker(config, timeout: .seconds(3)) { false }
            let names = double.received(.whatsApp).prefix(200).compactMap { $0.json?["template"]?["name"]?.string }
            let a = names.filter { $0 == "first" }.count, b = names.filter { $0 == "second" }.count
            #expect(names.count >= 150)
            #expect(a >= names.count * 2 / 5 && b >= names.count * 2 / 5, "first \(a), second \(b) of \(names.count)")
            _ = (first, second)
        }
    }

    @Test("a broadcast started late shares the channel at once, without taking it over to catch up")
    func lateStartShares() async throws {
        try await WorkerFixtures.withChannel(.whatsApp, rate: 100, burst: 10) { double, db, c, wa in
            let contacts = try await WorkerFixtures.contacts(c, count: 600)
            _ = try await WorkerFixtures.sendingBroadcast(c, channel: wa, contacts: contacts, template: ("early", ["a"]))
            var config = WorkerFixtures.configuration(db)
            config.batchSize = 20
            async let run = WorkerFixtures.runWorker(config, timeout: .seconds(4)) { false }
            #expect(await double.waitForRequests(150, timeout: .seconds(20)), "the early broadcast's head start")
            _ = try await WorkerFixtures.sendingBroadcast(c, channel: wa, contacts: contacts, template: ("late", ["b"]))
            _ = try await run
            let names = double.received(.whatsApp).compactMap { $0.json?["template"]?["name"]?.string }
            let firstLate = try #require(names.firstIndex(of: "late"), "the late broadcast was sent")
            let after = names[firstLate...].prefix(100)
            let late = after.filter { $0 == "late" }.count
            #expect(names[..<firstLate].count >= 100, "the early broadcast had a head start: \(firstLate)")
            #expect(after.count >= 80)
            #expect(late >= after.count * 2 / 5 && late <= after.count * 3 / 5, "late \(late) of the \(after.count) after it started")
        }
    }

    @Test("a rate change applies without restarting the worker")
    func rateChangeApplies() async throws {
        try await WorkerFixtures.withChannel(.whatsApp, rate: 10, burst: 2) { double, db, c, wa in
            let contacts = try await WorkerFixtures.contacts(c, count: 1000)
            _ = try await WorkerFixtures.sendingBroadcast(c, channel: wa, contacts: contacts, template: ("promo", ["x"]))
            let changedAt = Mutex<ContinuousClock.Instant?>(nil)
            let started = ContinuousClock.now
            _ = try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), timeout: .seconds(6)) {
                if ContinuousClock.now - started > .seconds(3), changedAt.withLock({ $0 }) == nil {
                    let c2 = try await db.connect()
                    try await c2.execute("UPDATE herald.channels SET rate_per_second = 100, burst = 10 WHERE id = \(wa)")
                    await c2.close()
                    changedAt.withLock { $0 = ContinuousClock.now }
                }
                return false
            }
            let change = try #require(changedAt.withLock { $0 })
            let instants = double.received(.whatsApp).map(\.receivedAt)
            let origin = try #require(instants.min())
            let before = instants.filter { $0 < change && $0 >= origin + .seconds(1) }.count   // ~2 s at 10/s
            let after = instants.filter { $0 > change + .seconds(1) && $0 < change + .seconds(2) }.count // 1 s at 100/s
            #expect(before >= 15 && before <= 25, "before: \(before) in ~2 s")
            #expect(after >= 70, "after: \(after) in 1 s")
        }
    }
}

import Synchronization
