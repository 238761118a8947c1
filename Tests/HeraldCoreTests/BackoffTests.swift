import HeraldCore
import Testing

@Suite struct BackoffTests {
    @Test("delays stay in [d/2, d] with d = min(cap, base * 2^(attempt-1))", arguments: [
        (1, 1_000), (2, 2_000), (3, 4_000), (9, 256_000), (10, 300_000), (50, 300_000), (Int.max, 300_000),
        (0, 1_000), (-3, 1_000),
    ] as [(Int, Int64)])
    func bounds(attempt: Int, ceilingMilliseconds: Int64) {
        var rng = SplitMix64(seed: UInt64(truncatingIfNeeded: attempt) &+ 7)
        let backoff = Backoff()
        let high = Duration.milliseconds(ceilingMilliseconds)
        let low = high / 2
        var seen = Set<Duration>()
        for _ in 0..<2_000 {
            let delay = backoff.delay(afterAttempt: attempt, using: &rng)
            #expect(delay >= low && delay <= high, "attempt \(attempt): \(delay)")
            seen.insert(delay)
        }
        #expect(seen.count > 1_900, "jitter should spread delays")
    }

    @Test("jitter covers the whole range")
    func spread() {
        var rng = SplitMix64(seed: 1)
        let delays = (0..<10_000).map { _ in Backoff().delay(afterAttempt: 4, using: &rng) }
        #expect(delays.min()! < .milliseconds(4_100))
        #expect(delays.max()! > .milliseconds(7_900))
    }

    @Test("the same seed gives the same delays")
    func deterministic() {
        var a = SplitMix64(seed: 42), b = SplitMix64(seed: 42)
        let backoff = Backoff(base: .milliseconds(250), cap: .seconds(60))
        let first = (1...20).map { backoff.delay(afterAttempt: $0, using: &a) }
        let second = (1...20).map { backoff.delay(afterAttempt: $0, using: &b) }
        #expect(first == second)
        #expect(first.allSatisfy { $0 <= .seconds(60) })
        #expect(first[0] >= .milliseconds(125) && first[0] <= .milliseconds(250))
    }

    @Test("custom base and cap, and degenerate policies")
    func custom() {
        var rng = SplitMix64(seed: 9)
        let small = Backoff(base: .milliseconds(10), cap: .milliseconds(35))
        for _ in 0..<500 {
            let d3 = small.delay(afterAttempt: 3, using: &rng)
            #expect(d3 >= .milliseconds(17.5) && d3 <= .milliseconds(35))
        }
        #expect(Backoff(base: .zero, cap: .seconds(5)).delay(afterAttempt: 10, using: &rng) == .zero)
        let capBelowBase = Backoff(base: .seconds(10), cap: .seconds(2)).delay(afterAttempt: 1, using: &rng)
        #expect(capBelowBase >= .seconds(1) && capBelowBase <= .seconds(2))
        let huge = Backoff(base: .seconds(1), cap: .seconds(Int64.max)).delay(afterAttempt: 200, using: &rng)
        #expect(huge > .zero)
    }

    @Test("defaults are 1 s base and 300 s cap")
    func defaults() {
        #expect(Backoff().base == .seconds(1))
        #expect(Backoff().cap == .seconds(300))
    }

    @Test("an injected RandomSource decides the jitter: all one bits give the longest delay, the same draws the same delays")
    func injectedSource() {
        // All ones, not all zeros: Swift's bounded draw rejects zero bits for most ranges and
        // would ask again forever.
        var ones = RandomSource { .max }.generator
        #expect(Backoff().delay(afterAttempt: 3, using: &ones) == .seconds(4))
        var a = RandomSource.seeded(42).generator, b = RandomSource.seeded(42).generator
        let first = (1...8).map { Backoff().delay(afterAttempt: $0, using: &a) }
        let second = (1...8).map { Backoff().delay(afterAttempt: $0, using: &b) }
        #expect(first == second)
    }
}
