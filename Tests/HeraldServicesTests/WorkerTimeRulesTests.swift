@testable import HeraldServices
import Testing

/// The worker's rules that time decides, driven with explicit instants: no clock is read and
/// nothing sleeps. (Leases, rate buckets, `run_at` and send windows run on the database's clock
/// and are pinned by the tests that drive the database.)
@Suite("Worker time rules: holds, rests and send deadlines on explicit instants")
struct WorkerTimeRulesTests {
    let t0 = ContinuousClock.now

    @Test("a held channel is skipped until its hold ends; the later of two holds wins")
    func channelHolds() {
        let holds = ChannelHolds()
        holds.hold(7, until: t0 + .seconds(5))
        holds.hold(7, until: t0 + .seconds(2))  // earlier: the 5 s hold stays
        #expect(holds.begin(7, now: t0 + .seconds(3)) == t0 + .seconds(5))
        #expect(holds.begin(8, now: t0 + .seconds(3)) == nil, "another channel is not held")
        holds.end(8)
        #expect(holds.begin(7, now: t0 + .seconds(5) + .milliseconds(1)) == nil, "the hold has ended")
        holds.end(7)
    }

    @Test("a channel one lane is claiming is skipped by the others until that claim ends")
    func oneLanePerChannel() {
        let holds = ChannelHolds()
        #expect(holds.begin(3, now: t0) == nil)
        #expect(holds.begin(3, now: t0) == t0, "look again at once, after the other lane")
        holds.end(3)
        #expect(holds.begin(3, now: t0) == nil)
    }

    @Test("pruning forgets only the holds that have ended")
    func pruneHolds() {
        let holds = ChannelHolds()
        holds.hold(1, until: t0 + .seconds(1))
        holds.hold(2, until: t0 + .seconds(10))
        holds.prune(now: t0 + .seconds(5))
        #expect(holds.begin(1, now: t0 + .seconds(5)) == nil)
        #expect(holds.begin(2, now: t0 + .seconds(5)) == t0 + .seconds(10))
    }

    @Test("a resting broadcast rests until its time, or until it is woken")
    func broadcastRests() {
        let rests = BroadcastRests()
        rests.rest(11, until: t0 + .seconds(1))
        rests.rest(12, until: t0 + .seconds(1))
        #expect(rests.restingUntil(11, now: t0 + .milliseconds(500)) == t0 + .seconds(1))
        #expect(rests.restingUntil(11, now: t0 + .seconds(1)) == nil, "the rest has ended")
        #expect(rests.restingUntil(13, now: t0) == nil, "never rested")
        rests.wake([11])
        #expect(rests.restingUntil(11, now: t0) == nil)
        #expect(rests.restingUntil(12, now: t0) == t0 + .seconds(1), "only the woken one")
        rests.wakeAll()
        #expect(rests.restingUntil(12, now: t0) == nil)
    }

    @Test("a send must start by lease - request timeout - 1 s after its claim, or a quarter of a short lease")
    func sendDeadline() {
        var config = WorkerConfiguration(databaseURL: nil)
        config.lease = .seconds(60)
        config.requestTimeout = .seconds(15)
        #expect(config.sendDeadline(claimedAt: t0) == t0 + .seconds(44))
        config.lease = .seconds(10)
        config.requestTimeout = .seconds(15)
        #expect(config.sendDeadline(claimedAt: t0) == t0 + .milliseconds(2500))
    }
}
