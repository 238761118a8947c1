import Synchronization

/// SplitMix64 (Steele, Lea and Flood): a tiny, fast generator whose whole state is one
/// `UInt64`, so a seed reproduces a sequence exactly. Herald uses it where a run must be
/// repeatable (the sandbox's receipts, tests), never where unpredictability matters.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= Self.increment
        return Self.mix(state)
    }

    /// The generator's output function: a well-mixed 64-bit value for any input, usable on its
    /// own as a stateless hash (the `n`th output of seed `s` is `mix(s &+ n &* increment)`).
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The golden-ratio step between states.
    public static let increment: UInt64 = 0x9E37_79B9_7F4A_7C15
}

extension RandomSource {
    /// A source that repeats the same draws for the same seed (SplitMix64), for tests and
    /// reproducible simulations.
    public static func seeded(_ seed: UInt64) -> RandomSource {
        let generator = SeededState(seed: seed)
        return RandomSource { generator.next() }
    }
}

/// A SplitMix64 state behind a lock, in a class because the closure a ``RandomSource`` keeps
/// cannot capture a (non-copyable) `Mutex` itself.
private final class SeededState: Sendable {
    private let state: Mutex<SplitMix64>
    init(seed: UInt64) { state = Mutex(SplitMix64(seed: seed)) }
    func next() -> UInt64 { state.withLock { $0.next() } }
}
