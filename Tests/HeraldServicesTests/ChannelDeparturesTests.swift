import HeraldTesting
import Testing

@testable import HeraldServices

/// ``ChannelDepartures`` on a ``ManualClock``: what a channel's next claim may take, given the
/// sends that left in the last second and those still waiting in the transport.
struct ChannelDeparturesTests {
    @Test("a channel with nothing sent may claim its whole limit")
    func fresh() {
        let departures = ChannelDepartures(clock: ManualClock())
        #expect(departures.room(1, limit: 40) == .jobs(40))
    }

    @Test("sends waiting in the transport and sends of the last second both count against the next claim")
    func waitingAndDeparted() {
        let clock = ManualClock()
        let departures = ChannelDepartures(clock: clock)
        let ledger = departures.submitting(18, of: 1)
        #expect(departures.room(1, limit: 40) == .jobs(22))
        for _ in 0..<10 { ledger.departed() }
        #expect(departures.room(1, limit: 40) == .jobs(22), "a send that left still counts for a while")
        for _ in 0..<8 { ledger.ended() }
        #expect(departures.room(1, limit: 40) == .jobs(30), "a send that never left no longer counts")
        #expect(departures.room(2, limit: 40) == .jobs(40), "another channel is not affected")
    }

    @Test("a departure stops counting once a second has passed, not before")
    func slidesOut() {
        let clock = ManualClock()
        let departures = ChannelDepartures(clock: clock)
        let ledger = departures.submitting(40, of: 1)
        for _ in 0..<40 { ledger.departed() }
        guard case .none(let until) = departures.room(1, limit: 40) else {
            Issue.record("a full second allowed more")
            return
        }
        #expect(until >= clock.now + ChannelDepartures.span, "not before the departures are a span old")
        #expect(until <= clock.now + ChannelDepartures.span + ChannelDepartures.tick * 2)
        clock.advance(by: .milliseconds(990))
        #expect(departures.room(1, limit: 40) == .none(until: until))
        clock.advance(by: until - clock.now)
        #expect(departures.room(1, limit: 40) == .jobs(40))
    }

    @Test("while sends wait in the transport and the limit is reached, the channel is looked at again soon")
    func waitingRechecked() {
        let clock = ManualClock()
        let departures = ChannelDepartures(clock: clock)
        _ = departures.submitting(40, of: 1)
        #expect(departures.room(1, limit: 40) == .none(until: clock.now + ChannelDepartures.waitingRecheck))
    }

    @Test("simulated sends count as departed at once")
    func simulated() {
        let clock = ManualClock()
        let departures = ChannelDepartures(clock: clock)
        departures.departedAtOnce(25, of: 1)
        #expect(departures.room(1, limit: 40) == .jobs(15))
        clock.advance(by: .milliseconds(1020))
        #expect(departures.room(1, limit: 40) == .jobs(40))
    }

    @Test("a channel sending at its full rate may still claim all its bucket grants", arguments: [
        (rate: 1000.0, burst: 100), (rate: 20, burst: 20), (rate: 80, burst: 8), (rate: 200, burst: 8),
    ])
    func steadyState(rate: Double, burst: Int) {
        let clock = ManualClock()
        let departures = ChannelDepartures(clock: clock)
        let limit = ChannelDepartures.limit(ratePerSecond: rate, burst: burst)!
        // What herald.take_tokens grants at most in one claim: its capacity (migration 0021).
        let capacity = Int(max(1.0, Double(burst) / 2, Double(burst) - 0.1 * rate))
        // Two seconds of departures at 0.98 of the rate, one every 1/(0.98 rate) seconds, each
        // claim asking for the whole capacity.
        let every = Duration.seconds(1 / (0.98 * rate))
        var smallest = Int.max
        for _ in 0..<Int(2 * 0.98 * rate) {
            clock.advance(by: every)
            if case .jobs(let free) = departures.room(1, limit: limit) { smallest = min(smallest, free) } else { smallest = 0 }
            departures.departedAtOnce(1, of: 1)
        }
        #expect(smallest >= capacity, "at \(rate)/s with a burst of \(burst) a claim could take only \(smallest) of \(capacity)")
    }

    @Test("the limit is the rate plus the burst, and none for rates beyond any worker")
    func limits() {
        #expect(ChannelDepartures.limit(ratePerSecond: 20, burst: 20) == 40)
        #expect(ChannelDepartures.limit(ratePerSecond: 0.5, burst: 1) == 1)
        #expect(ChannelDepartures.limit(ratePerSecond: 1_000_000, burst: 1_000_000) == nil)
        #expect(ChannelDepartures.limit(ratePerSecond: .infinity, burst: 5) == nil)
    }

    @Test("channels with nothing waiting and nothing in the last second are forgotten")
    func prune() {
        let clock = ManualClock()
        let departures = ChannelDepartures(clock: clock)
        departures.departedAtOnce(5, of: 1)
        _ = departures.submitting(1, of: 2)
        departures.departedAtOnce(2, of: 3)
        clock.advance(by: .milliseconds(1500))
        departures.departedAtOnce(1, of: 3)
        clock.advance(by: .milliseconds(500))
        departures.prune()
        #expect(departures.trackedChannels == 2)
        #expect(departures.room(2, limit: 40) == .jobs(39), "the waiting send still counts")
        #expect(departures.room(3, limit: 40) == .jobs(39), "the departure of half a second ago still counts, the older ones not")
    }
}
