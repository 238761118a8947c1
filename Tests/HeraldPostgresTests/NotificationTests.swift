import Foundation
import HeraldPostgres
import HeraldTesting
import Testing

@Suite("LISTEN/NOTIFY wakes waiters from the socket")
struct NotificationTests {
    /// A database of the test's own and a connection listening on `herald_test`.
    static func withListener(_ body: (TestDatabase, PostgresConnection) async throws -> Void) async throws {
        try await withTestDatabase(migrated: false) { db in
            let listener = try await db.connect()
            try await listener.listen("herald_test")
            try await body(db, listener)
        }
    }

    @Test("a waiter wakes within 100 ms of a NOTIFY from another connection")
    func wakesQuickly() async throws {
        try await Self.withListener { db, listener in
            let sender = try await db.connect()
            let clock = ContinuousClock()
            // The whole suite runs in parallel on two cores, so one trial can lose the CPU for a
            // while; the best of three shows what the wake-up path itself costs.
            var latencies: [Duration] = []
            for trial in 0..<3 {
                async let received = listener.waitForNotifications(timeout: .seconds(10))
                try await Task.sleep(for: .milliseconds(100))
                let sentAt = clock.now
                try await sender.execute("SELECT pg_notify('herald_test', \("payload ✓ \(trial)"))")
                let notifications = try await received
                latencies.append(clock.now - sentAt)
                #expect(notifications.map(\.payload) == ["payload ✓ \(trial)"])
                #expect(notifications.first?.channel == "herald_test")
            }
            #expect(latencies.min()! < .milliseconds(100), "woke after \(latencies)")
        }
    }

    @Test("a cancelled waiter returns promptly")
    func cancellation() async throws {
        try await Self.withListener { db, listener in
            let clock = ContinuousClock()
            let start = clock.now
            let task = Task { try await listener.waitForNotifications(timeout: .seconds(30)) }
            try await Task.sleep(for: .milliseconds(100))
            task.cancel()
            let result = await task.result
            #expect(throws: CancellationError.self) { try result.get() }
            #expect(clock.now - start < .seconds(2))
            // The connection is still usable afterwards.
            #expect(try await listener.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)
        }
    }

    @Test("a timeout returns no notifications, and the blocked thread leaves other tasks alone")
    func timeout() async throws {
        try await Self.withListener { db, listener in
            let other = try await db.connect()
            async let waited = listener.waitForNotifications(timeout: .milliseconds(500))
            // While the listener's thread sleeps in poll(2), another connection keeps working.
            let clock = ContinuousClock()
            let start = clock.now
            for _ in 0..<10 { _ = try await other.query("SELECT 1") }
            #expect(clock.now - start < .milliseconds(400))
            #expect(try await waited.isEmpty)
        }
    }
}
