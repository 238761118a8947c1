import HeraldCore
import HeraldPostgres
@testable import HeraldServices
import HeraldStore
import HeraldTesting
import Logging
import Testing

/// How the completer batches what it writes: it waits a little for a fuller statement, on the
/// clock it is given. A statement's `now()` is its transaction's start, so outcomes written by
/// one statement share their `sent_at`, and outcomes written by two do not.
@Suite("Outcome completer")
struct OutcomeCompleterTests {
    /// Two queued messages of a sandbox broadcast whose jobs `config`'s worker holds, a completer
    /// on `clock` writing into that database, and what `body` does with them; the completer is
    /// finished and drained afterwards.
    private static func withCompleter(
        _ configure: (inout WorkerConfiguration) -> Void, clock: ManualClock,
        _ body: (OutcomeCompleter, PreparedBroadcast, [Int64], PostgresConnection) async throws -> Void
    ) async throws {
        try await WorkerFixtures.withSandboxBroadcast(to: 2) { db, c, _, _, _ in
            var config = WorkerFixtures.configuration(db)
            configure(&config)
            try await c.execute("UPDATE herald.jobs SET lease_owner = \(config.workerID), run_at = now() + interval '5 minutes'")
            let messages = try await c.query("SELECT message_id FROM herald.jobs ORDER BY message_id").map { try $0.decode(Int64.self, at: 0) }
            var logger = Logger(label: "test.completer")
            logger.logLevel = .error
            let completer = OutcomeCompleter(configuration: config, rules: OutcomeRules(backoff: config.backoff), holds: ChannelHolds(),
                                             rests: BroadcastRests(), metrics: HeraldMetrics(), clock: clock, logger: logger)
            // Any prepared broadcast does: the statement reads only message ids and the owner.
            let broadcast = try PreparedBroadcast(InFlightWindowTests.mailBroadcast(rate: 1000, burst: 100),
                                                  environment: InFlightWindowTests.environment)
            let pool = PostgresPool(connectionString: db.url, maxConnections: 2, applicationName: "test-completer", logger: logger)
            async let writing: Void = completer.run(pool: pool)
            do {
                try await body(completer, broadcast, messages, c)
            } catch {
                completer.finish()
                await writing
                await pool.close()
                throw error
            }
            completer.finish()
            await writing
            await pool.close()
        }
    }

    private static func sentAt(_ c: PostgresConnection, _ messages: [Int64]) async throws -> [String?] {
        try await c.query("SELECT sent_at::text FROM herald.messages WHERE id = ANY(\(messages)::bigint[]) ORDER BY id")
            .map { try $0.decode(String?.self, at: 0) }
    }

    @Test("outcomes that arrive while the completer waits for a fuller batch are written by one statement")
    func gathersWhileItWaits() async throws {
        let clock = ManualClock()
        try await Self.withCompleter({ $0.recordLinger = .milliseconds(10) }, clock: clock) { completer, broadcast, messages, c in
            completer.decided([JobOutcome(messageID: messages[0], result: .sent(providerMessageID: "first"))], broadcast: broadcast)
            try #require(await clock.waitForSleep(lasting: .milliseconds(10)), "the completer wrote one outcome without waiting for more")
            #expect(try await Self.sentAt(c, messages) == [nil, nil], "written before the wait ended")

            completer.decided([JobOutcome(messageID: messages[1], result: .sent(providerMessageID: "second"))], broadcast: broadcast)
            clock.advance(by: .milliseconds(10))
            let written = try await eventually { try await Self.sentAt(c, messages).allSatisfy { $0 != nil } }
            try #require(written, "the outcomes were not written once the wait ended")
            let stamps = try await Self.sentAt(c, messages)
            #expect(stamps[0] == stamps[1], "two statements wrote them: sent_at \(stamps)")
        }
    }

    @Test("with no wait configured, each outcome is written as it arrives, without the clock moving")
    func writesAtOnceWithoutALinger() async throws {
        let clock = ManualClock()
        try await Self.withCompleter({ $0.recordLinger = .zero }, clock: clock) { completer, broadcast, messages, c in
            completer.decided([JobOutcome(messageID: messages[0], result: .sent(providerMessageID: "first"))], broadcast: broadcast)
            let first = try await eventually { try await Self.sentAt(c, messages)[0] != nil }
            try #require(first, "the outcome waited for the clock")
            completer.decided([JobOutcome(messageID: messages[1], result: .sent(providerMessageID: "second"))], broadcast: broadcast)
            let second = try await eventually { try await Self.sentAt(c, messages)[1] != nil }
            try #require(second, "the second outcome waited for the clock")
            let stamps = try await Self.sentAt(c, messages)
            #expect(stamps[0] != stamps[1], "one statement wrote both: sent_at \(stamps)")
        }
    }
}
