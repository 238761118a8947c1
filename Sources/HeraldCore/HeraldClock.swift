/// The clock Herald's loops read "now" from and wait on, wherever time decides behaviour (send
/// deadlines, channel holds, broadcast rests, shutdown grace, the scheduler's holds).
///
/// Production passes `ContinuousClock()`; tests pass `ManualClock` (HeraldTesting), which only
/// moves when the test advances it, so a rule such as "give up after the grace period" is tested
/// without sleeping for it.
///
/// The instant type is fixed to `ContinuousClock.Instant` so that instants cross module
/// boundaries (a send deadline computed by the worker is compared inside the transport) without
/// making every type generic over its clock.
///
/// - Note: swift-clocks (Point-Free) offers a test clock, but it is not among the packages this
///   project may use offline, and its clocks have their own instant types.
public protocol HeraldClock: Clock, Sendable where Instant == ContinuousClock.Instant {}

extension ContinuousClock: HeraldClock {}

/// A random source that can be shared across tasks (`RandomNumberGenerator` is a mutating
/// protocol, so injecting one into `Sendable` types needs a value that hands out generators).
public struct RandomSource: Sendable {
    private let draw: @Sendable () -> UInt64

    /// - Parameter draw: Returns 64 uniformly random bits on each call.
    public init(_ draw: @escaping @Sendable () -> UInt64) {
        self.draw = draw
    }

    /// The system's generator.
    public static let system = RandomSource { UInt64.random(in: .min ... .max) }

    /// A generator drawing from this source, for APIs that take `inout some RandomNumberGenerator`.
    public var generator: Generator { Generator(draw: draw) }

    /// A `RandomNumberGenerator` view of a ``RandomSource``.
    public struct Generator: RandomNumberGenerator {
        fileprivate let draw: @Sendable () -> UInt64
        public mutating func next() -> UInt64 { draw() }
    }
}
