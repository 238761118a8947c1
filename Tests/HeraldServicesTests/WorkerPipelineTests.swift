import Foundation
import HeraldPostgres
import HeraldServices
import HeraldTesting
import Synchronization
import Testing

@Suite("Worker pipeline: pause stops sends within a second; a hung provider slows no other channel")
struct WorkerPipelineTests {
    @Test("pausing a broadcast with hundreds in flight stops new sends within 1 s; nothing is sent twice or kept leased")
    func pauseStopsSendsWithinASecond() async throws {
        try await WorkerFixtures.withPromo(to: 3000, latency: .milliseconds(500)) { s async throws in
            let (double, db, c, b) = (s.double, s.db, s.c, s.broadcast)
            var config = WorkerFixtures.configuration(db)
            config.maxInFlight = 400
            config.requestTimeout = .seconds(5)
            let stop = StopFlag()
            async let run = WorkerFixtures.runWorker(config, timeout: .seconds(30)) { stop.isSet }
            #expect(await double.waitForRequests(500, timeout: .seconds(15)))
            try await c.execute("UPDATE herald.broadcasts SET status = 'paused' WHERE id = \(b)")
            // The claim in progress at the pause and its sends may still go: give them the second.
            // Real time on purpose: what is pinned is "no send starts later than 1 s after the
            // pause", measured over the 2 s after it.
            try await Task.sleep(for: .seconds(1))
            let atOneSecond = double.requestCount
            try await Task.sleep(for: .seconds(2))
            #expect(double.requestCount == atOneSecond, "sends started more than 1 s after the pause")
            stop.set()
            _ = try await run
            let sent = double.received(.whatsApp).compactMap { $0.json?["biz_opaque_callback_data"]?.string }
            #expect(Set(sent).count == sent.count, "a message went out twice")
            let statuses = try await WorkerFixtures.statuses(c, broadcast: b)
            #expect(statuses["sent", default: 0] == sent.count)
            #expect(statuses["sent", default: 0] + statuses["queued", default: 0] == 3000)
            let held = try await c.query("SELECT count(*) FROM herald.jobs WHERE lease_owner IS NOT NULL")[0].decode(Int.self, at: 0)
            #expect(held == 0, "jobs still leased after the worker stopped")
        }
    }

    @Test("a provider that stops answering on one channel does not slow two healthy channels limited to 30/s")
    func hungChannelIsolated() async throws {
        try await ProviderDouble.with { hung in
            try await ProviderDouble.with { healthy in
                hung.latency = .seconds(30)
                healthy.latency = .milliseconds(5)
                try await withTestConnection { db, c in
                    let stuck = try await WorkerFixtures.whatsAppChannel(c, double: hung, name: "hung")
                    let a = try await WorkerFixtures.whatsAppChannel(c, double: healthy, name: "a")
                    let z = try await WorkerFixtures.whatsAppChannel(c, double: healthy, name: "z")
                    try await c.execute("UPDATE herald.channels SET rate_per_second = 30, burst = 5 WHERE id IN (\(a), \(z))")
                    let many = try await WorkerFixtures.contacts(c, count: 2000)
                    _ = try await WorkerFixtures.sendingBroadcast(c, channel: stuck, contacts: many, template: ("promo", ["x"]))
                    let few = Array(many.prefix(60))
                    let ba = try await WorkerFixtures.sendingBroadcast(c, channel: a, contacts: few, template: ("promo_a", ["x"]))
                    let bz = try await WorkerFixtures.sendingBroadcast(c, channel: z, contacts: few, template: ("promo_z", ["x"]))
                    var config = WorkerFixtures.configuration(db)
                    config.maxInFlight = 300
                    config.maxInFlightPerChannel = 150
                    // Plain HTTP: once its sends are seen to hold no TLS connection each, the hung
                    // channel has the window's share, not the one of these few TLS connections.
                    config.maxTLSConnections = 8
                    config.requestTimeout = .seconds(20)
                    config.shutdownGrace = .seconds(1)
                    let doneA = WorkerFixtures.allDone(db, broadcast: ba), doneZ = WorkerFixtures.allDone(db, broadcast: bz)
                    let clock = ContinuousClock()
                    let start = clock.now
                    // 60 messages at 30/s with a burst of 5: about 2 s each, side by side.
                    let finished = try await WorkerFixtures.runWorker(config, timeout: .seconds(8)) {
                        let a = try await doneA()
                        let z = try await doneZ()
                        return a && z
                    }
                    #expect(finished, "the healthy channels did not finish within 8 s")
                    #expect(clock.now - start < .seconds(8))
                    let hungGotItsShare = await hung.waitForRequests(150, timeout: .seconds(1))
                    #expect(hungGotItsShare, "the hung channel had its share of sends")
                }
            }
        }
    }
}

@Suite("Worker pipeline: a rate-limited channel whose provider stops answering")
struct WorkerHungRateLimitedTests {
    @Test("a channel at 10/s with a burst of 5 and a 1 s allowance holds 15 sends in flight, not its rate's worth")
    func hungChannelHoldsItsRateShare() async throws {
        try await ProviderDouble.with { hung in
            hung.latency = .seconds(30)
            try await withTestConnection { db, c in
                let channel = try await WorkerFixtures.whatsAppChannel(c, double: hung, name: "hung")
                try await c.execute("UPDATE herald.channels SET rate_per_second = 10, burst = 5 WHERE id = \(channel)")
                let contacts = try await WorkerFixtures.contacts(c, count: 100)
                _ = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: contacts, template: ("promo", ["x"]))
                var config = WorkerFixtures.configuration(db)
                config.providerLatencyAllowance = .seconds(1)
                config.requestTimeout = .seconds(20)
                config.shutdownGrace = .seconds(1)
                // 15 go out in about a second (5 at once, then 10/s). Without the bound the
                // channel would go on at 10/s: 40 or more by the end of 4 s.
                let reachedSixteen = try await WorkerFixtures.runWorker(config, timeout: .seconds(4)) {
                    hung.received(.whatsApp).count > 15
                }
                #expect(!reachedSixteen, "\(hung.received(.whatsApp).count) sends in flight to a provider that does not answer")
                #expect(hung.received(.whatsApp).count == 15, "the channel used its share")
            }
        }
    }
}

@Suite("Worker pipeline: many lanes on many slow channels")
struct WorkerManyLanesTests {
    @Test("16 lanes over 40 channels at 20/s with a 200 ms provider: every message goes out exactly once")
    func manyLanesSendEachOnce() async throws {
        try await ProviderDouble.with { double in
            double.latency = .milliseconds(200)
            try await withTestConnection { db, c in
                let contacts = try await WorkerFixtures.contacts(c, count: 30)
                var broadcasts: [Int64] = []
                for i in 0..<40 {
                    let channel = try await WorkerFixtures.whatsAppChannel(c, double: double, name: "wa\(i)")
                    try await c.execute("UPDATE herald.channels SET rate_per_second = 20, burst = 20 WHERE id = \(channel)")
                    broadcasts.append(try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: contacts,
                                                                                template: ("t\(i)", ["x"])))
                }
                var config = WorkerFixtures.configuration(db)
                config.lanes = 16
                let done = broadcasts.map { WorkerFixtures.allDone(db, broadcast: $0) }
                let finished = try await WorkerFixtures.runWorker(config, timeout: .seconds(30)) {
                    for check in done where try await !check() { return false }
                    return true
                }
                #expect(finished)
                let sent = double.received(.whatsApp).compactMap { $0.json?["biz_opaque_callback_data"]?.string }
                #expect(sent.count == 1200, "\(sent.count) requests for 1200 messages")
                #expect(Set(sent).count == sent.count, "\(sent.count - Set(sent).count) messages went out more than once")
            }
        }
    }
}

@Suite("Worker pipeline: a database slower than the provider")
struct WorkerBacklogTests {
    @Test("while outcomes cannot be written, the worker stops claiming after a window's worth; then sends the rest once")
    func claimsWaitForTheCompleter() async throws {
        try await WorkerFixtures.withPromo(to: 500) { s async throws in
            let (double, db, b) = (s.double, s.db, s.broadcast)
            var config = WorkerFixtures.configuration(db)
            config.maxInFlight = 50
            config.batchSize = 10
            // Outcomes update messages: a lock that lets reads (the claims) through but no
            // writes holds every outcome back, as a primary too busy to keep up would.
            let locker = try await db.connect()
            try await locker.execute("BEGIN")
            try await locker.execute("LOCK TABLE herald.messages IN EXCLUSIVE MODE")
            let done = WorkerFixtures.allDone(db, broadcast: b)
            async let run = WorkerFixtures.runWorker(config, timeout: .seconds(30)) { try await done() }
            #expect(await double.waitForRequests(50, timeout: .seconds(10)))
            // Answered but unwritten: at most a window (50) of them, plus a window in flight and
            // a batch per lane. Without the bound all 500 go out meanwhile.
            let ranAway = await double.waitForRequests(50 + 50 + 4 * 10 + 1, timeout: .seconds(3))
            #expect(!ranAway, "\(double.requestCount) requests while no outcome could be written")
            try await locker.execute("ROLLBACK")
            #expect(try await run)
            let sent = double.received(.whatsApp).compactMap { $0.json?["biz_opaque_callback_data"]?.string }
            #expect(sent.count == 500 && Set(sent).count == 500)
        }
    }
}

/// Set by a test to stop a worker run.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}

@Suite("Worker pipeline: a hung provider whose sends each hold a TLS connection")
struct WorkerHungTLSTests {
    @Test("an HTTPS provider without HTTP/2 that stops answering holds 14 of 16 TLS connections; a healthy channel sends its 60 meanwhile")
    func hungChannelLeavesOthersTLSConnections() async throws {
        try await ProviderDouble.with { hung in
            hung.latency = .seconds(30)
            // One nginx, HTTPS over HTTP/1.1 only: it answers the healthy channel at once and
            // passes the hung channel's sends (under /hung/) to a double that does not answer.
            let server = try await NginxHTTP2Server.start(
                body: #"{"messaging_product":"whatsapp","messages":[{"id":"wamid.$request_id"}]}"#, http2: false,
                proxying: [(prefix: "/hung/", to: hung.baseURL)])
            let authority = try TestCertificates.writeAuthority()
            defer {
                server.stop()
                try? FileManager.default.removeItem(atPath: authority)
            }
            try await withTestConnection { db, c in
                let stuck = try await WorkerFixtures.whatsAppChannel(c, baseURL: "\(server.baseURL)/hung", name: "hung")
                let healthy = try await WorkerFixtures.whatsAppChannel(c, baseURL: server.baseURL, name: "healthy", rate: 30, burst: 5)
                let many = try await WorkerFixtures.contacts(c, count: 500)
                _ = try await WorkerFixtures.sendingBroadcast(c, channel: stuck, contacts: many, body: "Hi {{ first_name }}")
                let b = try await WorkerFixtures.sendingBroadcast(c, channel: healthy, contacts: Array(many.prefix(60)),
                                                                  body: "Hello {{ first_name }}")
                // The hung channel may hold 56 of the window of 64, but only 14 of the 16 TLS
                // connections: the other channels keep 2 (an eighth).
                var config = WorkerFixtures.sixteenTLSConnections(db, authority: authority)
                config.requestTimeout = .seconds(20)
                config.shutdownGrace = .seconds(1)
                let clock = ContinuousClock()
                let start = clock.now
                // 60 messages at 30/s with a burst of 5: about 2 s.
                let finished = try await WorkerFixtures.runWorker(config, timeout: .seconds(8), until: WorkerFixtures.allDone(db, broadcast: b))
                #expect(finished, "the healthy channel did not finish within 8 s")
                #expect(clock.now - start < .seconds(8))
                #expect(try await WorkerFixtures.statuses(c, broadcast: b) == ["sent": 60])
                #expect(await hung.waitForRequests(14, timeout: .seconds(1)), "the hung channel had its share of connections")
                #expect(hung.requestCount == 14, "\(hung.requestCount) sends reached the provider that does not answer")
            }
        }
    }
}

/// Sends that waited in the transport leave no faster than the channel's rate allows: the
/// provider counts arrivals, not claims (see ``ChannelDepartures``).
struct WorkerDepartureTests {
    @Test("sends that waited seconds for a TLS connection leave at most rate + burst in any second")
    func waitedSendsKeepToTheRate() async throws {
        try await ProviderDouble.with { slow in
            try await ProviderDouble.with { fast in
                slow.latency = .seconds(4)
                // HTTPS over HTTP/1.1 only, so each send holds one of 16 TLS connections; two
                // channels answered after 4 s take all 16 before the paced channel starts.
                let server = try await NginxHTTP2Server.start(
                    http2: false, proxying: [(prefix: "/slow/", to: slow.baseURL), (prefix: "/fast/", to: fast.baseURL)])
                let authority = try TestCertificates.writeAuthority()
                defer {
                    server.stop()
                    try? FileManager.default.removeItem(atPath: authority)
                }
                try await withTestConnection { db, c in
                    let people = try await WorkerFixtures.contacts(c, count: 100)
                    for name in ["slow-1", "slow-2"] {
                        let channel = try await WorkerFixtures.whatsAppChannel(c, baseURL: "\(server.baseURL)/slow", name: name)
                        _ = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: Array(people.prefix(8)), body: "Hi")
                    }
                    let paced = try await WorkerFixtures.whatsAppChannel(c, baseURL: "\(server.baseURL)/fast", name: "paced",
                                                                         rate: 20, burst: 20)
                    let config = WorkerFixtures.sixteenTLSConnections(db, authority: authority)
                    // The paced channel's broadcast starts once the slow ones hold every connection.
                    let scene = Mutex<(broadcast: Int64?, connectionsTaken: ContinuousClock.Instant?)>((nil, nil))
                    let finished = try await WorkerFixtures.runWorker(config, timeout: .seconds(40)) {
                        guard slow.requestCount >= 16 else { return false }
                        guard let broadcast = scene.withLock({ $0.broadcast }) else {
                            let taken = ContinuousClock.now
                            let starter = try await db.connect()
                            let id = try await WorkerFixtures.sendingBroadcast(starter, channel: paced, contacts: people, body: "Hello")
                            await starter.close()
                            scene.withLock { $0 = (id, taken) }
                            return false
                        }
                        return try await WorkerFixtures.allDone(db, broadcast: broadcast)()
                    }
                    #expect(finished, "the paced channel did not finish")
                    let (broadcast, taken) = scene.withLock { $0 }
                    let arrivals = fast.received().map(\.receivedAt).sorted()
                    #expect(arrivals.count == 100)
                    if let broadcast { #expect(try await WorkerFixtures.statuses(c, broadcast: broadcast) == ["sent": 100]) }
                    // What makes this test: the paced channel's first sends waited for a connection
                    // (the slow answers come 4 s after the slow requests) while its bucket refilled.
                    if let first = arrivals.first, let taken {
                        #expect(first - taken > .seconds(2), "the paced channel's sends did not wait for a connection")
                    }
                    // The worker keeps its departures within any second; the double sees them after
                    // nginx's TLS and proxying, whose delays vary by a few milliseconds on a busy
                    // machine, so its windows are 30 ms shorter. Without the rule: about 50.
                    var worst = 0, start = 0
                    for (end, at) in arrivals.enumerated() {
                        while arrivals[start] <= at - .milliseconds(970) { start += 1 }
                        worst = max(worst, end - start + 1)
                    }
                    #expect(worst <= 40, "\(worst) sends of a channel limited to 20/s with a burst of 20 arrived within 0.97 s")
                }
            }
        }
    }
}
