import Foundation
import HeraldTesting
@testable import HeraldTransport
import Logging
import Synchronization
import Testing

@Suite("CurlTransport: submissions report each transfer as it ends; queued ones can be withdrawn")
struct CurlTransportStreamingTests {
    @Test("a fast answer is reported while a slow one of the same submission is still out")
    func completionsArriveOneByOne() async throws {
        try await withTransport(maxInFlight: 4) { double, transport in
            // A warm connection first: until libcurl has seen the server answer in HTTP/1.1,
            // CURLOPT_PIPEWAIT holds the second transfer back for the first connection.
            _ = await transport.perform([.http(whatsAppRequest(double))])
            // The slow answer waits long enough that even a loaded machine answers the fast one
            // well before it.
            double.enqueue(.delayed(by: .seconds(8)), for: .whatsApp)
            let (stream, continuation) = AsyncStream.makeStream(of: (Int, TransportOutcome).self)
            let clock = ContinuousClock()
            let start = clock.now
            // The slow one is the WhatsApp request whichever reaches the double first; the fast one
            // goes to its Twilio endpoint.
            transport.submit([.http(whatsAppRequest(double)), .http(twilioRequest(double))]) { index, outcome in
                continuation.yield((index, outcome))
            }
            var iterator = stream.makeAsyncIterator()
            let first = try #require(await iterator.next())
            // Only the second request is answered at once; the first waits 8 s at the double.
            #expect(first.0 == 1)
            #expect(clock.now - start < .seconds(6), "the fast answer did not wait for the slow one")
            #expect(try first.1.result.get().status == 201)  // Twilio's "created"
            let second = try #require(await iterator.next())
            #expect(second.0 == 0)
            #expect(try second.1.result.get().status == 200)
        }
    }

    @Test("withdrawing a submission takes back its queued transfers unsent; the one under way finishes")
    func withdrawQueued() async throws {
        try await withTransport(maxInFlight: 1) { double, transport in
            let warm = await transport.perform([.http(whatsAppRequest(double))])
            #expect(warm[0].result.failure == nil)
            let before = double.received(.whatsApp).count
            double.latency = .milliseconds(800)
            let outcomes = Outcomes()
            let ticket = transport.submit((0..<3).map { _ in .http(whatsAppRequest(double)) }) { index, outcome in
                outcomes.add(index, outcome)
            }
            #expect(await double.waitForRequests(before + 1))
            transport.withdrawQueued(ticket)
            #expect(await outcomes.wait(count: 3))
            let all = outcomes.all
            #expect(try all[0]?.result.get().status == 200)
            for index in 1...2 {
                let error = try #require(all[index]?.result.failure)
                #expect(error.isNotStarted)
                #expect(error.curlCode == TransportError.withdrawnCode)
            }
            #expect(double.received(.whatsApp).count == before + 1)
        }
    }

    @Test("each transfer reports once, before its outcome, whether its request left: sent ones yes, withdrawn ones no")
    func departures() async throws {
        try await withTransport(maxInFlight: 1) { double, transport in
            _ = await transport.perform([.http(whatsAppRequest(double))])
            let before = double.received(.whatsApp).count
            double.latency = .milliseconds(800)
            let events = Mutex<[String]>([])
            let outcomes = Outcomes()
            let ticket = transport.submit((0..<3).map { _ in .http(whatsAppRequest(double)) },
                                          onDeparture: { index, departed in events.withLock { $0.append("\(index) left: \(departed)") } },
                                          onCompletion: { index, outcome in
                                              events.withLock { $0.append("\(index) ended") }
                                              outcomes.add(index, outcome)
                                          })
            #expect(await double.waitForRequests(before + 1))
            #expect(events.withLock { $0 } == ["0 left: true"], "the first left when its request went, long before its answer")
            transport.withdrawQueued(ticket)
            #expect(await outcomes.wait(count: 3))
            let all = events.withLock { $0 }
            #expect(all.count == 6)
            for index in 0..<3 {
                let left = all.firstIndex(of: "\(index) left: \(index == 0)"), ended = all.firstIndex(of: "\(index) ended")
                #expect(left != nil && ended != nil && left! < ended!, "transfer \(index): \(all)")
            }
        }
    }

    @Test("a wide window is split over engines of at most 1,024 transfers, up to 8")
    func shardCounts() {
        #expect([1, 128, 1024, 1025, 2048, 4096, 8192, 100_000].map { CurlTransport.shards(maxInFlight: $0) }
                == [1, 1, 1, 2, 2, 4, 8, 8])
    }

    @Test("submissions spread over the engines run side by side, and a cancel reaches the engine that holds its ticket")
    func shardsRouteTickets() async throws {
        // 2 engines in the pool plain HTTP goes to, always the least loaded (fill level 0). Each
        // numbers its transfers from 1, so a cancel sent to the wrong engine would abort the other
        // submission's transfer instead.
        try await withTransport(maxInFlight: 2048, fillLevel: 0) { double, transport in
            double.latency = .milliseconds(800)
            let kept = Outcomes(), cancelled = Outcomes()
            let before = double.received(.whatsApp).count
            let first = transport.submit([.http(whatsAppRequest(double))]) { kept.add($0, $1) }
            let ticket = transport.submit([.http(whatsAppRequest(double))]) { cancelled.add($0, $1) }
            #expect(ticket.shard != first.shard, "the second submission goes to the engine of its pool with nothing outstanding")
            #expect(await double.waitForRequests(before + 2), "both are under way at once")
            transport.cancel(ticket)
            #expect(await cancelled.wait(count: 1))
            #expect(cancelled.all[0]?.result.failure?.isCancelled == true)
            // The first engine still has its transfer out: the next submission goes to the second.
            let third = transport.submit([.http(whatsAppRequest(double))]) { kept.add(1, $1) }
            #expect(third.shard == ticket.shard)
            #expect(await kept.wait(count: 2))
            let statuses = try (0...1).map { try kept.all[$0]?.result.get().status }
            #expect(statuses == [200, 200], "the first engine's transfer was not touched by the cancel")
            #expect(transport.statistics.transfersCompleted == 2, "both engines' counters are summed (the cancelled one is not counted)")
        }
    }
}

@Suite("CurlTransport: engines fill in order")
struct CurlTransportFillTests {
    @Test("an engine below its fill level takes the next submission; past it, the least loaded does")
    func enginesFillInOrder() async throws {
        try await withTransport(maxInFlight: 2048, fillLevel: 2) { double, transport in
            double.latency = .milliseconds(800)
            let outcomes = Outcomes()
            let first = transport.submit([.http(whatsAppRequest(double))]) { outcomes.add(0, $1) }
            let second = transport.submit([.http(whatsAppRequest(double))]) { outcomes.add(1, $1) }
            #expect(second.shard == first.shard, "the first engine had 1 outstanding, below its fill level of 2")
            let third = transport.submit([.http(whatsAppRequest(double))]) { outcomes.add(2, $1) }
            #expect(third.shard != first.shard, "the first engine was at its fill level: the other, with none, takes it")
            #expect(await outcomes.wait(count: 3))
            let statuses = try (0...2).map { try outcomes.all[$0]?.result.get().status }
            #expect(statuses == [200, 200, 200])
        }
    }
}

/// Outcomes reported on the transport's thread, read by the test.
private final class Outcomes: Sendable {
    private let state = Mutex<[Int: TransportOutcome]>([:])
    func add(_ index: Int, _ outcome: TransportOutcome) { state.withLock { $0[index] = outcome } }
    var all: [Int: TransportOutcome] { state.withLock { $0 } }
    func wait(count: Int, timeout: Duration = .seconds(10)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while all.count < count {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }
}
