import HeraldCore
import Synchronization

/// Counts sends claimed and not yet answered, overall and per channel, so claims never take
/// more than the transport and the providers should hold (``WorkerConfiguration/maxInFlight``,
/// ``WorkerConfiguration/maxInFlightPerChannel``).
///
/// A channel whose sends each hold a TLS connection (an HTTPS provider without HTTP/2, SMTP)
/// draws on the transport's smaller pool of them (``WorkerConfiguration/maxTLSConnections``),
/// which queues in order what it cannot start. Such a channel is held to
/// ``tlsConnectionLimitPerChannel``, so that one whose provider stops answering cannot hold every
/// TLS connection while the other channels' sends wait behind its own. Which channels those are
/// the dispatcher learns from each submission (``noteSends(of:holdTLSConnectionEach:)``): the
/// transport decides by the request's URL and by what an origin was seen to speak. A channel
/// nothing was submitted for yet counts as one of them, so even its first claim keeps to the
/// share.
///
/// A lane reserves room before it claims (so concurrent lanes cannot overshoot), gives back
/// what the claim did not use, and the completer gives back one slot per answer.
final class InFlightWindow: Sendable {
    private struct State {
        var total = 0
        var perChannel: [Int64: Int] = [:]
        /// Channels whose latest submission went to sends that do not each hold a TLS connection.
        var withoutTLSConnections: Set<Int64> = []
    }

    let limit: Int
    let perChannelLimit: Int
    /// The most a channel whose sends each hold a TLS connection has in flight.
    let tlsConnectionLimitPerChannel: Int
    private let state = Mutex(State())
    /// Signalled when room frees up after the window was full.
    let roomFreed: Wakeup
    /// Told the sends in flight after every change, under the window's lock (so in order): the
    /// worker's `herald_worker_in_flight` gauge.
    private let observe: (@Sendable (Int) -> Void)?

    /// - Parameter tlsConnections: The transport's TLS connections (see the type's comment); by
    ///   default as many as the window. Each channel's share of them follows
    ///   ``channelShare(perChannel:requested:kept:)``.
    init(limit: Int, perChannelLimit: Int, tlsConnections: Int? = nil, clock: any HeraldClock = ContinuousClock(),
         observe: (@Sendable (Int) -> Void)? = nil) {
        roomFreed = Wakeup(clock: clock)
        self.limit = max(1, limit)
        self.perChannelLimit = max(1, min(perChannelLimit, limit))
        tlsConnectionLimitPerChannel = Self.channelShare(perChannel: self.perChannelLimit, requested: self.limit,
                                                          kept: min(self.limit, max(1, tlsConnections ?? limit)))
        self.observe = observe
    }

    /// One channel's most of a pool of `kept` slots that stands for a window of `requested`
    /// (the open-file limit's window, the transport's TLS connections): `perChannel`, less what
    /// the other channels must keep when one channel's provider stops answering. They keep what
    /// the requested window left them (`requested − perChannel`), up to an eighth of the pool:
    /// the default 4,096 of 4,608 becomes 672 of a pool of 768 and 896 of 1,024, a limit of 100
    /// stays 100, and a limit equal to the window (no share kept by choice) is the whole pool.
    /// At least 1.
    static func channelShare(perChannel: Int, requested: Int, kept: Int) -> Int {
        let othersKeep = min(max(0, requested - perChannel), kept / 8)
        return max(1, min(perChannel, kept - othersKeep))
    }

    /// The limit a claim of `channel` is held to, without a claim's own lower one.
    private func channelLimit(_ channel: Int64, in s: State) -> Int {
        s.withoutTLSConnections.contains(channel) ? perChannelLimit : min(perChannelLimit, tlsConnectionLimitPerChannel)
    }

    /// Reserves up to `wanted` slots for `channel`; returns how many (0 when full).
    /// - Parameter channelLimit: a lower bound than ``perChannelLimit`` for this claim (sends
    ///   that each hold much memory, such as mails with attachments).
    func reserve(_ wanted: Int, channel: Int64, channelLimit: Int? = nil) -> Int {
        state.withLock { s in
            let perChannel = min(self.channelLimit(channel, in: s), channelLimit ?? Int.max)
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

    /// Records whether `channel`'s latest submission holds a TLS connection a send (its
    /// ``HeraldTransport/TransportTicket/holdsTLSConnectionEach``): from its next claim on it is held to
    /// ``tlsConnectionLimitPerChannel`` or not.
    func noteSends(of channel: Int64, holdTLSConnectionEach holds: Bool) {
        state.withLock { s in
            if holds { s.withoutTLSConnections.remove(channel) } else { s.withoutTLSConnections.insert(channel) }
        }
    }

    /// Sends in flight now.
    var inFlight: Int { state.withLock { $0.total } }
}
