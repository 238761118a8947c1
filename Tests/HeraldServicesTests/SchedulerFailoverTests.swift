import Foundation
import HeraldPostgres
import HeraldTesting
import Testing

/// Issue 16, finding 5: a leader that stops answering without dying (SIGSTOP) keeps its socket
/// open, so PostgreSQL would keep its session, and the leadership lock, forever. The scheduler's
/// session ends after 10 s idle (`idle_session_timeout`), so a standby takes over within about
/// 12 s (Leadership's stated bound). An extension of `SchedulerProcessTests`, so that it runs in
/// the serial timing pass of scripts/test.
extension SchedulerProcessTests {
    @Test("a SIGSTOPped leader loses leadership: the standby starts the next broadcast within 15 s; the old leader then stands by")
    func stoppedLeader() async throws {
        try await F.withChannelAndContact { db, c, channel, contact in
            let a = try Self.start(db)
            try await F.waitUntil("one leads", timeout: .seconds(10)) { Self.isLeader(a) }
            let b = try Self.start(db)
            defer { a.signal(SIGCONT); a.signal(SIGKILL); b.signal(SIGKILL) }
            try await F.waitUntil("the standby runs", timeout: .seconds(10)) { b.stderr.contains("scheduler started") }

            a.signal(SIGSTOP)
            let clock = ContinuousClock()
            let stoppedAt = clock.now
            let next = try await F.broadcast(c, channel: channel, contacts: [contact])
            try await F.waitUntil("the standby starts the next broadcast", timeout: .seconds(20)) {
                try await F.status(c, next) == "sending"
            }
            let took = clock.now - stoppedAt
            #expect(took < .seconds(15), "took \(took)")
            #expect(Self.isLeader(b))

            // Resumed, the old leader finds its session gone and does not act: it stands by.
            a.signal(SIGCONT)
            try await F.waitUntil("the old leader notices", timeout: .seconds(10)) {
                a.stderr.contains("scheduler database session failed")
            }
            let again = try await F.broadcast(c, channel: channel, contacts: [contact])
            try await F.waitUntil("still one leader starts broadcasts", timeout: .seconds(10)) {
                try await F.status(c, again) == "sending"
            }
            #expect(try await F.messageCount(c, again) == 1)
            for p in [a, b] {
                p.signal(SIGTERM)
                #expect(await p.wait() == 0, "stderr: \(p.stderr)")
            }
        }
    }
}
