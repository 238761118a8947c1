import Foundation
import HeraldPostgres
import HeraldStore
import HeraldTesting
import Testing

/// One claim statement serves several channels: each request gets what its own bucket and its
/// own broadcast allow, as if it had been claimed alone.
@Suite("Queue: a claim for several channels")
struct ClaimRequestsTests {
    @Test("each request is granted by its own bucket, takes its own broadcast's jobs, and comes back in the caller's order")
    func requestsAreIndependent() async throws {
        try await withTestConnection { _, c in
            let contacts = try await WorkerFixtures.contacts(c, count: 30)
            // Three channels: a roomy one, one whose bucket holds 2.5 tokens and refills about once
            // in 17 minutes, and one with nothing due whose bucket holds 12.5 and refills as slowly.
            let roomy = try await WorkerFixtures.sandboxChannel(c, name: "roomy")
            let tight = try await WorkerFixtures.sandboxChannel(c, name: "tight")
            try await c.execute("UPDATE herald.channels SET rate_per_second = 0.001, burst = 3 WHERE id = \(tight)")
            try await c.execute("INSERT INTO herald.rate_buckets (channel_id, tokens, refreshed_at) VALUES (\(tight), 2.5, now())")
            let idle = try await WorkerFixtures.sandboxChannel(c, name: "idle")
            try await c.execute("UPDATE herald.channels SET rate_per_second = 0.001, burst = 20 WHERE id = \(idle)")
            try await c.execute("INSERT INTO herald.rate_buckets (channel_id, tokens, refreshed_at) VALUES (\(idle), 12.5, now())")
            let roomyBroadcast = try await WorkerFixtures.sendingBroadcast(c, channel: roomy, contacts: contacts, body: "a")
            let tightBroadcast = try await WorkerFixtures.sendingBroadcast(c, channel: tight, contacts: contacts, body: "b")
            let idleBroadcast = try await WorkerFixtures.sendingBroadcast(c, channel: idle, contacts: [], body: "c")
            // Out of channel order on purpose: the statement locks in channel order, the answer follows the caller's.
            let requests = [
                QueueStore.ClaimRequest(broadcastID: idleBroadcast, channelID: idle, kind: .sms, limit: 10, attributeKeys: []),
                QueueStore.ClaimRequest(broadcastID: tightBroadcast, channelID: tight, kind: .sms, limit: 10, attributeKeys: []),
                QueueStore.ClaimRequest(broadcastID: roomyBroadcast, channelID: roomy, kind: .sms, limit: 10, attributeKeys: []),
            ]
            let claims = try await QueueStore().claim(on: c, requests: requests, lease: .seconds(30), owner: "w1")
            #expect(claims.count == 3)
            #expect(claims[0].jobs.isEmpty && claims[0].granted == 10, "the idle channel's tokens were granted, then returned")
            #expect(claims[1].granted == 2 && claims[1].jobs.count == 2, "the tight channel gets its bucket's 2")
            #expect(claims[2].granted == 10 && claims[2].jobs.count == 10)

            let leased = try await c.query("""
                SELECT m.broadcast_id, count(*) FROM herald.jobs j JOIN herald.messages m ON m.id = j.message_id
                WHERE j.lease_owner = 'w1' GROUP BY 1
                """).reduce(into: [Int64: Int]()) { $0[try $1.decode(Int64.self, at: 0)] = try $1.decode(Int.self, at: 1) }
            #expect(leased == [tightBroadcast: 2, roomyBroadcast: 10])
            let claimedIDs = Set(claims[2].jobs.map(\.messageID))
            let ofRoomy = Set(try await c.query("SELECT id FROM herald.messages WHERE broadcast_id = \(roomyBroadcast)")
                .map { try $0.decode(Int64.self, at: 0) })
            #expect(claimedIDs.isSubset(of: ofRoomy), "every job comes back under its own request")

            // The idle channel's unused tokens went back to its bucket; the tight one holds half a token.
            let tokens = try await c.query("SELECT channel_id, tokens FROM herald.rate_buckets WHERE channel_id IN (\(idle), \(tight))")
                .reduce(into: [Int64: Double]()) { $0[try $1.decode(Int64.self, at: 0)] = try $1.decode(Double.self, at: 1) }
            #expect((12.4...12.6).contains(tokens[idle] ?? 0), "idle bucket \(tokens[idle] ?? -1): 12.5 less 10 taken plus 10 returned")
            #expect((0.4...0.6).contains(tokens[tight] ?? 99), "tight bucket \(tokens[tight] ?? -1): 2.5 less the 2 claimed")
            let again = try await QueueStore().claim(on: c, requests: [requests[1]], lease: .seconds(30), owner: "w1")
            #expect(again[0].granted == 0, "granted \(again[0].granted)")
            #expect(again[0].jobs.isEmpty, "jobs \(again[0].jobs.count)")
            #expect(again[0].retryAfter > .zero, "retry after \(again[0].retryAfter)")
        }
    }
}
