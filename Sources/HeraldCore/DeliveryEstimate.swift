import Foundation

/// Estimates when a broadcast's messages go out, given the channel's rate, its `daily_limit` and
/// each recipient group's send windows: an event-driven simulation, exact for the model below.
///
/// The model: the channel sends `ratePerSecond` messages per second, shared by every group that
/// is sendable (it has messages left, its first due instant has passed, and its window is open),
/// the earliest-due groups first; a `dailyLimit` allows that many messages per 24 hours counted
/// from the first send (the provider's rolling window, approximated by consecutive blocks, which
/// is what a broadcast that reaches its limit meets). Provider latency, retries and other
/// broadcasts sharing the channel are not modelled.
public struct DeliveryEstimate: Sendable, Equatable {
    /// Recipients who share a first due instant and a send window (one time zone, in practice).
    public struct Group: Sendable, Equatable {
        public var messages: Int
        /// When the first of them is due (`jobs.run_at` at expansion).
        public var dueAt: Date
        /// The window's openings from `dueAt` on, in order, each `[opens, closes)`; nil when the
        /// broadcast has no window.
        public var windows: [Range<Date>]?

        public init(messages: Int, dueAt: Date, windows: [Range<Date>]?) {
            self.messages = messages
            self.dueAt = dueAt
            self.windows = windows
        }
    }

    /// When the first message goes; nil when there is nothing to send.
    public var firstSendAt: Date?
    /// When the last message goes; nil when nothing is sent or not all of it fits in the windows given.
    public var lastSendAt: Date?
    /// Messages that could not be placed in the windows given (0 normally).
    public var unplaced: Int

    /// Runs the simulation.
    public static func estimate(groups: [Group], ratePerSecond: Double, dailyLimit: Int?) -> DeliveryEstimate {
        let pending = groups.filter { $0.messages > 0 }.sorted { $0.dueAt < $1.dueAt }
        var left = pending.map { Double($0.messages) }
        guard !pending.isEmpty, ratePerSecond > 0 else { return DeliveryEstimate(firstSendAt: nil, lastSendAt: nil, unplaced: 0) }
        var t = pending[0].dueAt
        var first: Date?
        var last: Date?
        var blockStart: Date?
        var sentInBlock = 0.0
        let epsilon = 1e-9

        func isOpen(_ g: Group, at t: Date) -> Bool {
            guard t >= g.dueAt else { return false }
            guard let windows = g.windows else { return true }
            return windows.contains { $0.contains(t) }
        }
        /// The next instant after `t` at which the sendable set can change.
        func nextEvent(after t: Date) -> Date? {
            var next: Date?
            func consider(_ d: Date) { if d > t, next.map({ d < $0 }) ?? true { next = d } }
            for (i, g) in pending.enumerated() where left[i] > epsilon {
                consider(g.dueAt)
                for w in g.windows ?? [] where w.upperBound > t {
                    consider(w.lowerBound)
                    consider(w.upperBound)
                    break
                }
            }
            if let blockStart, dailyLimit != nil { consider(blockStart.addingTimeInterval(86_400)) }
            return next
        }

        for _ in 0..<1_000_000 {
            if let b = blockStart, t >= b.addingTimeInterval(86_400) { blockStart = t; sentInBlock = 0 }
            let open = pending.indices.filter { left[$0] > epsilon && isOpen(pending[$0], at: t) }
            let next = nextEvent(after: t)
            if open.isEmpty {
                guard let next else { break }
                t = next
                continue
            }
            var quota = Double.infinity
            if let dailyLimit { quota = Double(dailyLimit) - sentInBlock }
            if quota <= epsilon {
                // The day's quota is spent: wait for the block to end.
                guard let b = blockStart else { break }
                t = b.addingTimeInterval(86_400)
                continue
            }
            if blockStart == nil { blockStart = t }
            if first == nil { first = t }
            let wanted = min(open.reduce(0) { $0 + left[$1] }, quota)
            let span = next.map { $0.timeIntervalSince(t) } ?? .infinity
            let sendable = min(wanted, ratePerSecond * span)
            var budget = sendable
            for i in open where budget > epsilon {
                let n = min(left[i], budget)
                left[i] -= n
                budget -= n
            }
            sentInBlock += sendable
            t = t.addingTimeInterval(sendable / ratePerSecond)
            last = t
            if left.allSatisfy({ $0 <= epsilon }) { break }
        }
        let unplaced = Int(left.reduce(0, +).rounded())
        return DeliveryEstimate(firstSendAt: first, lastSendAt: unplaced == 0 ? last : nil, unplaced: unplaced)
    }
}
