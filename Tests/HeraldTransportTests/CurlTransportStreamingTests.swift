import Foundation
import HeraldTesting
import HeraldTransport
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
