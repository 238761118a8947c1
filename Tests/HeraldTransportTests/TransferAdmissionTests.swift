import Foundation
import HeraldCore
import HeraldTesting
@testable import HeraldTransport
import Logging
import Testing

/// The rule by which an engine lets transfers into libcurl: few while they are answered quickly,
/// more while they wait on slow providers.
@Suite("TransferAdmission: the rule")
struct TransferAdmissionRuleTests {
    let t0 = ContinuousClock.now
    let slow = Duration.milliseconds(50)

    @Test("it starts at the floor and doubles while transfers wait behind one out for slowAfter, once a check, up to the ceiling")
    func growsWhileSlow() {
        var admission = TransferAdmission(floor: 16, ceiling: 100, slowAfter: slow)
        #expect(admission.limit == 16)
        var limits: [Int] = []
        for check in 0..<5 {
            let now = t0 + .milliseconds(25 * check)
            admission.update(now: now, oldestInFlight: .milliseconds(60), waiting: true)
            // A second look within the same half period changes nothing.
            admission.update(now: now + .milliseconds(10), oldestInFlight: .milliseconds(70), waiting: true)
            limits.append(admission.limit)
        }
        #expect(limits == [32, 64, 100, 100, 100])
    }

    @Test("it stays at the floor while nothing waits, however old the oldest transfer", arguments: [false, true])
    func holdsWithoutWaitingOrAge(waiting: Bool) {
        var admission = TransferAdmission(floor: 16, ceiling: 100, slowAfter: slow)
        for check in 0..<8 {
            // Waiting, but the oldest is younger than half slowAfter; or old, and nothing waits.
            admission.update(now: t0 + .milliseconds(25 * check), oldestInFlight: waiting ? .milliseconds(24) : .seconds(30),
                             waiting: waiting)
        }
        #expect(admission.limit == 16)
    }

    @Test("while transfers wait behind one out between half slowAfter and slowAfter, it doubles once four more checks say so than say quick")
    func growsForAProviderInBetween() {
        // A 30 ms provider: every check sees a transfer out 30–39 ms.
        var steady = TransferAdmission(floor: 16, ceiling: 100, slowAfter: slow)
        var limits: [Int] = []
        for check in 0..<12 {
            steady.update(now: t0 + .milliseconds(25 * check), oldestInFlight: .milliseconds(30 + check % 10), waiting: true)
            limits.append(steady.limit)
        }
        #expect(limits == [16, 16, 16, 32, 32, 32, 32, 64, 64, 64, 64, 100])
        // The same provider seen just after a batch of answers every fourth check: slower, still up.
        var batched = TransferAdmission(floor: 16, ceiling: 100, slowAfter: slow)
        for check in 0..<16 {
            let age: Duration = check % 4 == 3 ? .milliseconds(10) : .milliseconds(35)
            batched.update(now: t0 + .milliseconds(25 * check), oldestInFlight: age, waiting: true)
        }
        #expect(batched.limit == 64)
        // A quick provider with the engine's thread off its core every third check opens nothing.
        var quick = TransferAdmission(floor: 16, ceiling: 100, slowAfter: slow)
        for check in 0..<24 {
            let age: Duration = check % 3 == 2 ? .milliseconds(40) : .milliseconds(3)
            quick.update(now: t0 + .milliseconds(25 * check), oldestInFlight: age, waiting: true)
        }
        #expect(quick.limit == 16)
    }

    @Test("it halves back to the floor after every four checks in a row whose oldest transfer is younger than half slowAfter; with none out it stays")
    func shrinksWhenQuick() {
        var admission = TransferAdmission(floor: 16, ceiling: 128, slowAfter: slow)
        for check in 0..<3 { admission.update(now: t0 + .milliseconds(25 * check), oldestInFlight: .milliseconds(80), waiting: true) }
        #expect(admission.limit == 128)
        for check in 3..<6 { admission.update(now: t0 + .milliseconds(25 * check), oldestInFlight: nil, waiting: false) }
        #expect(admission.limit == 128)
        var limits: [Int] = []
        for check in 6..<20 {
            admission.update(now: t0 + .milliseconds(25 * check), oldestInFlight: .milliseconds(10), waiting: true)
            limits.append(admission.limit)
        }
        #expect(limits == [128, 128, 128, 64, 64, 64, 64, 32, 32, 32, 32, 16, 16, 16])
    }

    @Test("one check between half slowAfter and slowAfter holds the limit where it is")
    func holdsInBetween() {
        var admission = TransferAdmission(floor: 16, ceiling: 128, slowAfter: slow)
        admission.update(now: t0, oldestInFlight: .milliseconds(50), waiting: true)
        #expect(admission.limit == 32)
        admission.update(now: t0 + .milliseconds(25), oldestInFlight: .milliseconds(30), waiting: true)
        admission.update(now: t0 + .milliseconds(50), oldestInFlight: .milliseconds(49), waiting: false)
        #expect(admission.limit == 32)
    }

    @Test("while transfers wait, the engine's wait ends at the next check; otherwise no earlier than it would")
    func waitEndsAtTheNextCheck() {
        var admission = TransferAdmission(floor: 16, ceiling: 128, slowAfter: slow)
        #expect(admission.wait(t0, waiting: false) == nil)
        #expect(admission.wait(t0, waiting: true) == .zero)
        admission.update(now: t0, oldestInFlight: .milliseconds(5), waiting: true)
        #expect(admission.wait(t0 + .milliseconds(5), waiting: true) == .milliseconds(20))
        #expect(admission.wait(t0 + .milliseconds(40), waiting: true) == .zero)
    }

    @Test("a floor at the ceiling is a fixed limit: never due, never waits")
    func fixedWhenFloorIsCeiling() {
        var admission = TransferAdmission(floor: 500, ceiling: 100, slowAfter: slow)
        #expect(admission.limit == 100)
        #expect(!admission.isDue(t0))
        #expect(admission.wait(t0, waiting: true) == nil)
        admission.update(now: t0, oldestInFlight: nil, waiting: false)
        #expect(admission.limit == 100)
    }
}

/// The rule at work in an engine that opens a connection per transfer, against a local HTTP
/// server: what it opens for a quick provider and a slow one, and that a stalled provider does
/// not hold another's transfers in the queue.
@Suite("TransferAdmission: in an engine")
struct TransferAdmissionEngineTests {
    let logger = Logger(label: "herald.transport.tests")

    func engine(window: Int = 1024, floor: Int?, slowAfter: Duration = TransferAdmission.defaultSlowAfter) -> CurlEngine {
        let engine = CurlEngine(maxInFlight: window, httpVersion: .automatic, authorityFile: nil, clock: ContinuousClock(),
                                logger: logger, admissionFloor: floor, admissionSlowAfter: slowAfter)
        engine.start()
        return engine
    }

    /// How many of `outcomes` were answered 200.
    func answered(_ outcomes: [TransportOutcome]) -> Int {
        outcomes.count(where: { (try? $0.result.get().status) == 200 })
    }

    func requests(_ double: ProviderDouble, _ count: Int, timeout: Duration = .seconds(20)) -> [TransportRequest] {
        (0..<count).map { .http(whatsAppRequest(double, to: "+234803\(1_000_000 + $0)", timeout: timeout)) }
    }

    @Test("600 transfers at once to a provider that answers at once open the floor's connections, not one each")
    func quickProviderGetsTheFloor() async throws {
        let double = try await ProviderDouble.start()
        // slowAfter far above what a debug build on a loaded machine takes to answer, so that the
        // floor alone is under test; the one without a floor shows what it prevents.
        let held = engine(floor: 24, slowAfter: .seconds(30))
        let unheld = engine(floor: nil)
        let outcomes = await held.perform(requests(double, 600))
        #expect(answered(outcomes) == 600)
        #expect(held.statistics.connectionsOpened <= 24, "\(held.statistics.connectionsOpened) connections")
        let unheldOutcomes = await unheld.perform(requests(double, 600))
        #expect(answered(unheldOutcomes) == 600)
        #expect(unheld.statistics.connectionsOpened > 100, "without a floor: \(unheld.statistics.connectionsOpened) connections")
        held.shutdown()
        unheld.shutdown()
        await double.stop()
    }

    @Test("transfers to a provider that answers after 300 ms are let in past the floor, most of 400 at once")
    func slowProviderGetsTheWindow() async throws {
        let double = try await ProviderDouble.start()
        double.latency = .milliseconds(300)
        let slowEngine = engine(floor: 16)
        let outcomes = await slowEngine.perform(requests(double, 400))
        #expect(answered(outcomes) == 400)
        // At the floor alone: 16 connections, reused for 25 rounds of 300 ms.
        #expect(slowEngine.statistics.connectionsOpened >= 200, "\(slowEngine.statistics.connectionsOpened) connections")
        slowEngine.shutdown()
        await double.stop()
    }

    @Test("a provider that stops answering does not keep another provider's transfers queued")
    func stalledProviderDoesNotHoldOthers() async throws {
        let stalled = try await ProviderDouble.start()
        let quick = try await ProviderDouble.start()
        stalled.latency = .seconds(3)
        let shared = engine(floor: 8)
        // The stalled provider's transfers take the whole floor first.
        let stalledTicket = shared.submit(requests(stalled, 8), deadline: nil) { _, _ in }
        #expect(try await eventually { stalled.received(.whatsApp).count == 8 })
        // The quick provider's must start well before the stalled ones end (3 s), or miss their start deadline.
        let outcomes = await shared.perform(requests(quick, 20), deadline: ContinuousClock.now + .seconds(2))
        #expect(answered(outcomes) == 20,
                "\(outcomes.compactMap { $0.result.failure?.message }.first ?? "")")
        shared.cancel(stalledTicket)
        shared.shutdown()
        await stalled.stop()
        await quick.stop()
    }
}
