import Synchronization

/// Whose turn it is among a worker's channels. The claiming lanes share one rotation, so every
/// channel's turn comes once a round, whichever lane takes it.
///
/// A turn is taken whole or not at all: when the in-flight window lacks room for the next
/// channel's whole claim, ``next(of:freeRoom:room:)`` returns nil and the turn stays with that
/// channel, which claims first once room frees up.
///
/// Why: claimed in part, a channel keeps the rest of its bucket's tokens only up to the bucket's
/// capacity until its next turn, a round later. Under a full window, the channels whose turns came
/// while it filled fell behind the others, and a broadcast spread over many channels ended on the
/// slowest of them: at 1,000 channels the last channel finished up to 5 s after the first, against
/// 0.8 s with whole turns (BENCHMARKS.md, "Every channel's turn, whole").
final class ChannelRotation: Sendable {
    private let position = Atomic<Int>(0)

    init() {}

    /// The channel whose turn it is, the rotation moved past it; nil, the rotation unmoved, when
    /// `freeRoom()` is less than `room(channel)`.
    /// - Parameters:
    ///   - channels: Not empty; the same list (in the same order) from call to call, as far as
    ///     the caller knows it: a list that changed length moves the turn to another channel.
    ///   - freeRoom: The window's room now, read once per look.
    ///   - room: The room a channel's whole claim needs (see ``ChannelClaimer/roomForTurn(burst:batchSize:windowLimit:)``).
    func next<Channel>(of channels: [Channel], freeRoom: () -> Int, room: (Channel) -> Int) -> Channel? {
        precondition(!channels.isEmpty, "a rotation over no channels")
        while true {
            let current = position.load(ordering: .relaxed)
            let channel = channels[Int(UInt(bitPattern: current) % UInt(channels.count))]
            guard freeRoom() >= room(channel) else { return nil }
            if position.compareExchange(expected: current, desired: current &+ 1, ordering: .relaxed).exchanged {
                return channel
            }
            // Another lane took this turn meanwhile: look at the next one.
        }
    }
}
