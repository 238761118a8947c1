import HeraldCore
import Synchronization

/// Counts sends claimed and not yet answered, overall and per channel, so claims never take
/// more than the transport and the providers should hold (``WorkerConfiguration/maxInFlight``,
/// ``WorkerConfiguration/maxInFlightPerChannel``).
///
/// A lane reserves room before it claims (so concurrent lanes cannot overshoot), gives back
/// what the claim did not use, and the completer gives back one slot per answer.
final class InFlightWindow: Sendable {
    private struct State {
        var total = 0
        var perChannel: [Int64: Int] = [:]
    }

    let limit: Int
    let perChannelLimit: Int
    private let state = Mutex(State())
    /// Signalled when room frees up after the window was full.
    let roomFreed: Wakeup
    /// Told the sends in flight after every change, under the window's lock (so in order): the
    /// worker's `herald_worker_in_flight` gauge.
    private let observe: (@Sendable (Int) -> Void)?

    init(limit: Int, perChannelLimit: Int, clock: any HeraldClock = ContinuousClock(),
         observe: (@Sendable (Int) -> Void)? = nil) {
        roomFreed = Wakeup(clock: clock)
        self.limit = max(1, limit)
        self.perChannelLimit = max(1, min(perChannelLimit, limit))
        self.observe = observe
    }

    /// Reserves up to `wanted` slots for `channel`; returns how many (0 when full).
    /// - Parameter channelLimit: a lower bound than ``perChannelLimit`` for this claim (sends
    ///   that each hold much memory, such as mails with attachments).
    func reserve(_ wanted: Int, channel: Int64, channelLimit: Int? = nil) -> Int {
        state.withLock { s in
            let perChannel = min(perChannelLimit, channelLimit ?? perChannelLimit)
            let room = min(wanted, limit - s.total, perChannel - s.perChannel[channel, default: 0])
            guard room > 0 else { return 0 }
            s.total += room
            s.perChannel[channel, default: 0] += room
            observe?(s.total)
            return room
        }
    }

    /// Gives back `count` slots of `channel`.
    func release(_ count: Int, channel: Int64) {
        guard count > 0 else { return }
        state.withLock { s in
            s.total -= count
            let left = s.perChannel[channel, default: 0] - count
            s.perChannel[channel] = left > 0 ? left : nil
            observe?(s.total)
        }
        roomFreed.signal()
    }

    /// Sends in flight now.
    var inFlight: Int { state.withLock { $0.total } }

    /// Whether `channel` may claim at all now.
    func hasRoom(channel: Int64) -> Bool {
        state.withLock { s in s.total < limit && s.perChannel[channel, default: 0] < perChannelLimit }
    }
}
