import Foundation
import HeraldPostgres
import HeraldServices
import HeraldTesting
import HeraldTransport
import Testing

@Suite("Worker: exactly once, retries, failures, pause, cancel, opt-out, crash and shutdown")
struct WorkerReliabilityTests {
    /// Expects the WhatsApp double to have seen each of the broadcast's `count` messages (Herald's
    /// id in `biz_opaque_callback_data`), all of them `sent`, and as many requests as attempts
    /// recorded; `because` starts the message of that last check.
    static func expectEachSentOnce(_ count: Int, _ double: ProviderDouble, _ c: PostgresConnection, broadcast b: Int64,
                                   else because: String) async throws {
        let sent = double.received(.whatsApp).compactMap { $0.json?["biz_opaque_callback_data"]?.string }
        #expect(Set(sent).count == count)
        #expect(try await WorkerFixtures.statuses(c, broadcast: b) == ["sent": count])
        let attempts = try await WorkerFixtures.recordedAttempts(c, broadcast: b)
        #expect(sent.count == attempts, "\(because): \(sent.count) requests, \(attempts) recorded attempts")
    }

    @Test("two workers on one queue send every job exactly once")
    func twoWorkersExactlyOnce() async throws {
        try await WorkerFixtures.withChannel(.whatsApp, configure: { double in double.latency = .milliseconds(2) }) { double, db, c, channel in
            let contacts = try await WorkerFixtures.contacts(c, count: 600)
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: contacts, template: ("promo", ["{{ first_name }}"]))
            // A generous request timeout: this test is about claims, and under the parallel test
            // load a 2-second timeout made a few sends ambiguous, retried by design (at least once).
            var one = WorkerFixtures.configuration(db, id: "worker-one")
            one.batchSize = 50
            one.requestTimeout = .seconds(30)
            var two = WorkerFixtures.configuration(db, id: "worker-two")
            two.batchSize = 50
            two.requestTimeout = .seconds(30)
            async let a = WorkerFixtures.runWorker(one, until: WorkerFixtures.allDone(db, broadcast: b))
            async let z = WorkerFixtures.runWorker(two, until: WorkerFixtures.allDone(db, broadcast: b))
            #expect(try await a)
            #expect(try await z)
            let requests = double.received(.whatsApp)
            let opaque = requests.compactMap { $0.json?["biz_opaque_callback_data"]?.string }
            let retried = try await c.query("""
                SELECT count(*) FILTER (WHERE attempts > 1), coalesce(string_agg(DISTINCT error, '; '), '')
                FROM herald.messages WHERE broadcast_id = \(b)
                """)[0]
            let retriedCount = try retried.decode(Int.self, at: 0), retriedErrors = try retried.decode(String.self, at: 1)
            #expect(requests.count == 600, "retried: \(retriedCount) (\(retriedErrors))")
            #expect(Set(opaque).count == 600)
            #expect(try await WorkerFixtures.statuses(c, broadcast: b) == ["sent": 600])
        }
    }

    @Test("a provider too slow for the lease: sends that could outlive it are handed back unstarted; each job goes out once")
    func slowProviderLeaseSafety() async throws {
        try await WorkerFixtures.withPromo(to: 20, latency: .milliseconds(400)) { s async throws in
            let (double, db, c, b) = (s.double, s.db, s.c, s.broadcast)
            // One transfer at a time and 400 ms each: a claimed batch of 20 would need 8 s, far
            // beyond its 5 s lease, and the other worker takes over expired leases at once. Sends
            // may start only in the first 2 s of a claim (lease − request timeout − 1 s).
            func configuration(_ id: String) -> WorkerConfiguration {
                var config = WorkerFixtures.configuration(db, id: id)
                config.batchSize = 20
                config.lanes = 1
                config.maxInFlight = 1
                config.lease = .seconds(5)
                config.requestTimeout = .seconds(2)
                return config
            }
            async let one = WorkerFixtures.runWorker(configuration("slow-one"), until: WorkerFixtures.allDone(db, broadcast: b))
            async let two = WorkerFixtures.runWorker(configuration("slow-two"), until: WorkerFixtures.allDone(db, broadcast: b))
            #expect(try await one)
            #expect(try await two)
            // Every request the provider saw is an attempt recorded under a valid lease: a send
            // made after its lease had passed to the other worker could not be recorded (and a
            // handed-back job counted as an attempt would tip the sum the other way). A send
            // that timed out under load is a recorded attempt, retried by design.
            try await Self.expectEachSentOnce(20, double, c, broadcast: b, else: "no send outside its lease")
        }
    }

    @Test("the worker's database connections dropped while a batch is out: its outcomes are still recorded, nothing goes twice")
    func recordSurvivesDroppedConnections() async throws {
        try await WorkerFixtures.withPromo(to: 20, latency: .milliseconds(1500)) { s async throws in
            let (double, db, c, b) = (s.double, s.db, s.c, s.broadcast)
            // The record has the rest of the lease to reach the database again; 20 s leaves a
            // busy machine (the parallel test pass) time to reconnect, where 6 s did not.
            var config = WorkerFixtures.configuration(db, lease: .seconds(20), requestTimeout: .seconds(4))
            // One lane: no other lane's idle claim finds the dropped connections first, so the
            // record is what meets them.
            config.lanes = 1
            async let done = WorkerFixtures.runWorker(config, until: WorkerFixtures.allDone(db, broadcast: b))
            #expect(await double.waitForRequests(20, timeout: .seconds(10)))
            // Every connection the worker has goes away while its sends are in flight (a database
            // restart or failover looks like this to it). Only this test's database: the other
            // tests' workers share the server and the application name.
            let dropped = try await c.query("""
                SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                WHERE application_name = 'herald-worker' AND datname = current_database()
                """)[0].decode(Int.self, at: 0)
            #expect(dropped > 0)
            #expect(try await done)
            // Without the record's retry the batch's outcomes are lost, its lease runs out and all
            // 20 go out again (40 requests, 20 recorded attempts). A send that timed out under
            // load is a recorded attempt, retried by design, and keeps the two equal.
            try await Self.expectEachSentOnce(20, double, c, broadcast: b, else: "the outcomes were recorded, nothing sent again")
        }
    }

    @Test("a first-attempt 500 and a 429 with Retry-After end sent with more than one attempt")
    func transientFailuresRetry() async throws {
        try await WorkerFixtures.withChannel(.whatsApp, configure: { double in double.enqueue([.serverError(500), .rateLimited(retryAfter: 1)], for: .whatsApp) }) { double, db, c, channel in
            let who = try await WorkerFixtures.contact(c, first: "Ada", phone: "+2348031234567")
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: [who], template: ("promo", ["{{ first_name }}"]))
            let start = ContinuousClock.now
            #expect(try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), until: WorkerFixtures.allDone(db, broadcast: b)))
            let elapsed = ContinuousClock.now - start
            let row = try await c.query("SELECT status, attempts, error_code FROM herald.messages WHERE broadcast_id = \(b)")[0]
            #expect(try row.decode(String.self, at: 0) == "sent")
            #expect(try row.decode(Int.self, at: 1) == 3)
            #expect(double.received(.whatsApp).map { $0.responseStatus } == [500, 429, 200])
            #expect(elapsed >= .seconds(1), "Retry-After: 1 was honoured")
        }
    }

    @Test("a retry is timed from the answer, not from when the batch went out")
    func retryCountsFromTheAnswer() async throws {
        try await WorkerFixtures.withChannel(.whatsApp) { double in
            // A slow 503 asking for one second: the retry is due one second after the answer
            // (2.5 s after the first request), not one second after the send (already past).
            double.enqueue(ProviderDouble.Fault(delay: .milliseconds(1500), action: .raw(
                status: 503, headers: ["Retry-After": "1", "Content-Type": "application/json"],
                body: #"{"error":{"code":131016,"message":"Service unavailable"}}"#)), for: .whatsApp)
        } body: { double, db, c, channel in
            let who = try await WorkerFixtures.contact(c, first: "Ada", phone: "+2348031234567")
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: [who], template: ("promo", ["{{ first_name }}"]))
            // Far above the 1.5 s answer: under the parallel suite's load a 2 s timeout sometimes
            // fired first, and the timeout's own quick retry is not what this test is about.
            var config = WorkerFixtures.configuration(db)
            config.requestTimeout = .seconds(10)
            #expect(try await WorkerFixtures.runWorker(config, until: WorkerFixtures.allDone(db, broadcast: b)))
            let requests = double.received(.whatsApp)
            #expect(requests.map { $0.responseStatus } == [503, 200])
            let error = try await c.query("SELECT error FROM herald.messages WHERE broadcast_id = \(b)")[0].decode(String?.self, at: 0)
            #expect(error?.contains("131016") == true || error?.contains("503") == true || error?.contains("unavailable") == true,
                    "the retry came from the 503, not from a timeout: \(error ?? "nil")")
            if requests.count == 2 {
                #expect(requests[1].receivedAt - requests[0].receivedAt >= .milliseconds(2500))
            }
        }
    }

    @Test("a permanent rejection ends failed at once with the provider's code")
    func permanentFailure() async throws {
        try await WorkerFixtures.withChannel(.whatsApp, rejecting: "+2348031234567", with: .error(code: 131026)) { double, db, c, channel in
            let bad = try await WorkerFixtures.contact(c, first: "Ada", phone: "+2348031234567")
            let good = try await WorkerFixtures.contact(c, first: "Bola", phone: "+2348031234568")
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: [bad, good], template: ("promo", ["{{ first_name }}"]))
            #expect(try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), until: WorkerFixtures.allDone(db, broadcast: b)))
            let row = try await c.query("SELECT status, attempts, error_code, error, failed_at IS NOT NULL FROM herald.message_status WHERE contact_id = \(bad)")[0]
            #expect(try row.decode(String.self, at: 0) == "failed")
            #expect(try row.decode(Int.self, at: 1) == 1)
            #expect(try row.decode(String.self, at: 2) == "131026")
            #expect(try row.decode(String.self, at: 3).isEmpty == false)
            #expect(try row.decode(Bool.self, at: 4))
            #expect(try await WorkerFixtures.statuses(c, broadcast: b) == ["failed": 1, "sent": 1])
        }
    }

    @Test("a timeout is retried (ambiguous) and recorded as such; with retry_ambiguous false it fails")
    func timeouts() async throws {
        try await WorkerFixtures.withChannel(.whatsApp, configure: { double in double.enqueue(.delayed(by: .seconds(4)), times: 1, for: .whatsApp) }) { double, db, c, channel in
            let who = try await WorkerFixtures.contact(c, first: "Ada", phone: "+2348031234567")
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: [who], template: ("promo", ["{{ first_name }}"]))
            var config = WorkerFixtures.configuration(db)
            config.requestTimeout = .milliseconds(500)
            #expect(try await WorkerFixtures.runWorker(config, until: WorkerFixtures.allDone(db, broadcast: b)))
            let row = try await c.query("SELECT status, attempts, failure_kind FROM herald.messages WHERE broadcast_id = \(b)")[0]
            #expect(try row.decode(String.self, at: 0) == "sent")
            #expect(try row.decode(Int.self, at: 1) == 2)
            #expect(try row.decode(String?.self, at: 2) == "ambiguous")

            double.enqueue(.delayed(by: .seconds(4)), times: 1, for: .whatsApp)
            let strict = try await WorkerFixtures.whatsAppChannel(c, double: double, name: "strict", extra: #","retry_ambiguous":false"#)
            let b2 = try await WorkerFixtures.sendingBroadcast(c, channel: strict, contacts: [who], template: ("promo2", ["x"]))
            #expect(try await WorkerFixtures.runWorker(config, until: WorkerFixtures.allDone(db, broadcast: b2)))
            let row2 = try await c.query("SELECT status, attempts, failure_kind FROM herald.messages WHERE broadcast_id = \(b2)")[0]
            #expect(try row2.decode(String.self, at: 0) == "failed")
            #expect(try row2.decode(Int.self, at: 1) == 1)
            #expect(try row2.decode(String?.self, at: 2) == "ambiguous")
        }
    }

    @Test("retries stop at the channel's max_attempts, then failed")
    func maxAttempts() async throws {
        try await WorkerFixtures.withChannel(.whatsApp, extra: #","max_attempts":3"#) { double in
            double.enqueue(.serverError(503), times: 10, for: .whatsApp)
        } body: { double, db, c, channel in
            let who = try await WorkerFixtures.contact(c, first: "Ada", phone: "+2348031234567")
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: [who], template: ("promo", ["x"]))
            #expect(try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), until: WorkerFixtures.allDone(db, broadcast: b)))
            let row = try await c.query("SELECT status, attempts, error FROM herald.messages WHERE broadcast_id = \(b)")[0]
            #expect(try row.decode(String.self, at: 0) == "failed")
            #expect(try row.decode(Int.self, at: 1) == 3)
            #expect(try row.decode(String.self, at: 2).contains("gave up after 3 attempts"))
        }
    }

    @Test("a paused broadcast is not sent; a cancelled one neither; a late opt-out is skipped")
    func pauseCancelOptOut() async throws {
        try await WorkerFixtures.withSandboxBroadcast(to: 20, body: "p") { db, c, channel, contacts, paused in
            let cancelled = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: contacts, body: "c")
            let live = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: contacts, body: "l")
            try await c.execute("UPDATE herald.broadcasts SET status = 'paused' WHERE id = \(paused)")
            try await c.execute("UPDATE herald.broadcasts SET status = 'cancelled' WHERE id = \(cancelled)")
            try await c.execute("INSERT INTO herald.opt_outs (contact_id, channel_kind) VALUES (\(contacts[0]), 'sms'), (\(contacts[1]), 'email')")
            #expect(try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), until: WorkerFixtures.allDone(db, broadcast: live)))
            #expect(try await WorkerFixtures.statuses(c, broadcast: paused) == ["queued": 20])
            #expect(try await WorkerFixtures.statuses(c, broadcast: cancelled) == ["queued": 20])
            #expect(try await WorkerFixtures.statuses(c, broadcast: live) == ["sent": 19, "skipped": 1])
            let reason = try await c.query("SELECT skip_reason FROM herald.messages WHERE broadcast_id = \(live) AND contact_id = \(contacts[0])")[0]
            #expect(try reason.decode(String.self, at: 0) == "opted_out")

            // Resuming the paused broadcast sends the rest.
            try await c.execute("UPDATE herald.broadcasts SET status = 'sending' WHERE id = \(paused)")
            #expect(try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), until: WorkerFixtures.allDone(db, broadcast: paused)))
            #expect(try await WorkerFixtures.statuses(c, broadcast: paused) == ["sent": 19, "skipped": 1])
        }
    }

    @Test("a worker killed with SIGKILL mid-batch: another sends its jobs after the lease; none lost")
    func killedWorker() async throws {
        let bin = try #require(ProcessInfo.processInfo.environment["HERALD_BIN"], "scripts/test sets HERALD_BIN")
        try await WorkerFixtures.withChannel(.whatsApp, configure: { double in double.latency = .milliseconds(300) }) { double, db, c, channel in
            let contacts = try await WorkerFixtures.contacts(c, count: 100)
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: contacts, template: ("promo", ["{{ first_name }}"]))
            let env = WorkerFixtures.environment
            let victim = try HeraldProcess.start(bin, ["worker", "--lease-seconds", "5", "--request-timeout", "2", "--batch-size", "40", "--log-level", "error"],
                                                 databaseURL: db.url, environment: env)
            #expect(await double.waitForRequests(1, timeout: .seconds(20)))
            victim.signal(SIGKILL)
            _ = await victim.wait()
            let held = try await c.query("SELECT count(*) FROM herald.jobs WHERE lease_owner IS NOT NULL AND run_at > now()")[0].decode(Int.self, at: 0)
            #expect(held > 0, "the killed worker held claims")
            double.latency = .zero
            // The test's PostgreSQL started moments ago: without `--restart-grace-seconds 0` the
            // lapsed leases would wait for the grace after a restart (WorkerFaultTests pins that).
            let rescuer = try HeraldProcess.start(bin, ["worker", "--restart-grace-seconds", "0", "--log-level", "error"],
                                                  databaseURL: db.url, environment: env)
            let done = WorkerFixtures.allDone(db, broadcast: b)
            #expect(try await eventually(within: .seconds(30), every: .milliseconds(100)) { try await done() },
                    "the rescuer did not finish the killed worker's jobs")
            rescuer.signal(SIGTERM)
            #expect(await rescuer.wait() == 0)
            #expect(try await WorkerFixtures.statuses(c, broadcast: b) == ["sent": 100])
            let distinct = Set(double.received(.whatsApp).compactMap { $0.json?["biz_opaque_callback_data"]?.string })
            #expect(distinct.count == 100)
        }
    }

    @Test("herald worker refuses a lease that a request could outlast, with one error naming both flags")
    func leaseShorterThanTimeout() async throws {
        let bin = try #require(ProcessInfo.processInfo.environment["HERALD_BIN"], "scripts/test sets HERALD_BIN")
        // Refused before any connection is tried: the database URL points nowhere.
        let worker = try HeraldProcess.start(bin, ["worker", "--lease-seconds", "10", "--request-timeout", "9"],
                                             databaseURL: "postgresql://nobody@127.0.0.1:1/none")
        #expect(await worker.wait() == 64)
        let error = worker.stderr.split(separator: "\n").first.map(String.init) ?? ""
        #expect(error.contains("--lease-seconds (10)") && error.contains("--request-timeout (9)"), "stderr: \(worker.stderr)")
        // Two seconds of room is enough.
        let accepted = try HeraldProcess.start(bin, ["worker", "--lease-seconds", "11", "--request-timeout", "9"],
                                               databaseURL: "postgresql://nobody@127.0.0.1:1/none")
        #expect(await accepted.wait() != 64, "valid flags reach the database check: \(accepted.stderr)")
        #expect(accepted.stderr.contains("cannot connect to the database"))
    }

    @Test("herald worker refuses absurd flag values with one error naming the flag and its range",
          arguments: [
              (["--lease-seconds", "1000000000000"], "--lease-seconds must be between 5 and 86400"),
              (["--request-timeout", "100000"], "--request-timeout must be between 1 and 3600"),
              (["--shutdown-grace", "99999999"], "--shutdown-grace must be between 0 and 3600"),
              (["--max-in-flight-per-channel", "1000000"], "--max-in-flight-per-channel must be between 1 and 100000"),
              (["--max-connections-per-host", "0"], "--max-connections-per-host must be between 1 and 1000"),
              (["--max-tls-connections", "0"], "--max-tls-connections must be between 1 and 100000"),
              (["--admission-floor", "0"], "--admission-floor must be off or between 1 and 100000"),
              (["--admission-floor", "none"], "--admission-floor must be off or between 1 and 100000"),
              (["--restart-grace-seconds", "99999"], "--restart-grace-seconds must be between 0 and 3600"),
          ])
    func absurdFlags(flags: [String], message: String) async throws {
        let bin = try #require(ProcessInfo.processInfo.environment["HERALD_BIN"], "scripts/test sets HERALD_BIN")
        let worker = try HeraldProcess.start(bin, ["worker"] + flags, databaseURL: "postgresql://nobody@127.0.0.1:1/none")
        #expect(await worker.wait() == 64)
        #expect(worker.stderr.contains(message), "stderr: \(worker.stderr)")
    }

    @Test("herald worker: a wider --max-in-flight widens one channel's share with it, unless --max-in-flight-per-channel is given",
          arguments: [([String](), "4445"), (["--max-in-flight-per-channel", "100"], "100")])
    func channelShareFollowsTheWindow(flags: [String], perChannel: String) async throws {
        let bin = try #require(ProcessInfo.processInfo.environment["HERALD_BIN"], "scripts/test sets HERALD_BIN")
        let ours = try #require(OpenFileLimit.current())
        try #require(ours.hard >= 6000, "this test needs a hard open-file limit of 6000 or more; it is \(ours.hard)")
        try await withTestDatabase { db in
            // A limit of 6,000 holds the window of 5,000 whole (see OpenFileLimit), whatever the machine's.
            let (worker, line) = try await startWorker("/bin/sh", ["-c", "ulimit -n 6000 && exec \"$0\" \"$@\"", bin, "worker",
                                                                   "--max-in-flight", "5000", "--log-level", "info"] + flags, db: db)
            defer { worker.signal(SIGKILL) }
            #expect(line.contains("max_in_flight=5000"), "\(line)")
            #expect(line.contains("max_in_flight_per_channel=\(perChannel)"), "\(line)")
            worker.signal(SIGTERM)
            #expect(await worker.wait() == 0, "stderr: \(worker.stderr)")
        }
    }

    @Test("herald worker runs on mimalloc, which it links, and its start line says so")
    func startLineNamesTheAllocator() async throws {
        let bin = try #require(ProcessInfo.processInfo.environment["HERALD_BIN"], "scripts/test sets HERALD_BIN")
        try await withTestDatabase { db in
            let (worker, line) = try await startWorker(bin, ["worker", "--log-level", "info"], db: db)
            defer { worker.signal(SIGKILL) }
            #expect(line.contains("allocator=mimalloc"), "\(line)")
            // The test process itself does not link mimalloc: the check tells the two apart.
            #expect(TransportMemory.allocator == .glibc)
            worker.signal(SIGTERM)
            #expect(await worker.wait() == 0, "stderr: \(worker.stderr)")
        }
    }

    @Test("herald worker lets 128 sends a transport thread into libcurl unless told otherwise, and its start line says how many",
          arguments: [([String](), "admission_floor=128"), (["--admission-floor", "512"], "admission_floor=512"),
                      (["--admission-floor", "off"], "admission_floor=off")])
    func startLineNamesTheAdmissionFloor(flags: [String], expected: String) async throws {
        let bin = try #require(ProcessInfo.processInfo.environment["HERALD_BIN"], "scripts/test sets HERALD_BIN")
        try await withTestDatabase { db in
            let (worker, line) = try await startWorker(bin, ["worker", "--log-level", "info"] + flags, db: db)
            defer { worker.signal(SIGKILL) }
            #expect(line.contains(expected), "\(line)")
            worker.signal(SIGTERM)
            #expect(await worker.wait() == 0, "stderr: \(worker.stderr)")
        }
    }

    /// Starts `executable` with `arguments` (a `herald worker`, directly or through a shell) on
    /// `db`, and returns it with its "worker started" line once it has printed it ("" if it did
    /// not within 20 s, which the caller's expectations then report).
    private func startWorker(_ executable: String, _ arguments: [String], db: TestDatabase) async throws -> (HeraldProcess, String) {
        let worker = try HeraldProcess.start(executable, arguments, databaseURL: db.url, environment: WorkerFixtures.environment)
        let started = try await eventually(within: .seconds(20), every: .milliseconds(20)) {
            worker.stderr.contains("worker started")
        }
        #expect(started, "stderr: \(worker.stderr)")
        let line = worker.stderr.split(separator: "\n").first { $0.contains("worker started") } ?? ""
        return (worker, String(line))
    }

    @Test("SIGTERM: exit 0 with nothing left claimed")
    func sigterm() async throws {
        let bin = try #require(ProcessInfo.processInfo.environment["HERALD_BIN"], "scripts/test sets HERALD_BIN")
        try await WorkerFixtures.withPromo(to: 300, latency: .milliseconds(200)) { s async throws in
            let (double, db, c, b) = (s.double, s.db, s.c, s.broadcast)
            let worker = try HeraldProcess.start(bin, ["worker", "--batch-size", "50", "--log-level", "error"],
                                                 databaseURL: db.url, environment: WorkerFixtures.environment)
            #expect(await double.waitForRequests(1, timeout: .seconds(20)))
            worker.signal(SIGTERM)
            #expect(await worker.wait() == 0, "stderr: \(worker.stderr)")
            let held = try await c.query("SELECT count(*) FROM herald.jobs WHERE lease_owner IS NOT NULL")[0].decode(Int.self, at: 0)
            #expect(held == 0)
            let s = try await WorkerFixtures.statuses(c, broadcast: b)
            #expect(s["sending"] == nil)
            #expect((s["sent"] ?? 0) + (s["queued"] ?? 0) == 300)
            #expect((s["sent"] ?? 0) == double.received(.whatsApp).count, "every request that reached the provider is recorded")
        }
    }
}
