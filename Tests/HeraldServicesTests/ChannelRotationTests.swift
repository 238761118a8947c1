@testable import HeraldServices
import Synchronization
import Testing

/// The lanes' shared rotation over the channels: turns in order, taken whole, never skipped.
@Suite("Channel rotation: every channel's turn comes once a round, and is taken whole")
struct ChannelRotationTests {
    /// A channel as the rotation sees it: a name and the room its whole claim needs.
    struct Channel: Equatable, Sendable {
        var name: String
        var room: Int
    }

    /// Turns taken, by channel name, from any task.
    final class Tally: Sendable {
        private let state = Mutex<[String: Int]>([:])
        func count(_ name: String) { state.withLock { $0[name, default: 0] += 1 } }
        var counts: [String: Int] { state.withLock { $0 } }
    }

    static let channels = [Channel(name: "a", room: 20), Channel(name: "b", room: 20), Channel(name: "c", room: 5)]

    @Test("with room to spare, the turns go round in order")
    func inOrder() {
        let rotation = ChannelRotation()
        let turns = (0..<7).compactMap { _ in rotation.next(of: Self.channels, freeRoom: { 100 }, room: \.room)?.name }
        #expect(turns == ["a", "b", "c", "a", "b", "c", "a"])
    }

    @Test("a turn the window has no room for stays with its channel, which goes first once room frees up")
    func turnWaitsInPlace() {
        let rotation = ChannelRotation()
        #expect(rotation.next(of: Self.channels, freeRoom: { 100 }, room: \.room)?.name == "a")
        // b needs 20; 12 are free. c would fit, but it is b's turn.
        #expect(rotation.next(of: Self.channels, freeRoom: { 12 }, room: \.room) == nil)
        #expect(rotation.next(of: Self.channels, freeRoom: { 19 }, room: \.room) == nil)
        #expect(rotation.next(of: Self.channels, freeRoom: { 20 }, room: \.room)?.name == "b")
        #expect(rotation.next(of: Self.channels, freeRoom: { 5 }, room: \.room)?.name == "c")
    }

    @Test("lanes taking turns at once take each turn once: no channel is skipped or served twice in a round")
    func concurrentLanesShareTheRounds() async {
        let rotation = ChannelRotation()
        let channels = (0..<7).map { Channel(name: "ch\($0)", room: 1) }
        let tally = Tally()
        await withTaskGroup(of: Void.self) { lanes in
            for _ in 0..<4 {
                lanes.addTask {
                    for _ in 0..<700 {
                        let turn = rotation.next(of: channels, freeRoom: { 1 }, room: \.room)!
                        tally.count(turn.name)
                    }
                }
            }
        }
        // 2,800 turns over 7 channels: 400 rounds, each channel once in each.
        #expect(tally.counts == Dictionary(uniqueKeysWithValues: channels.map { ($0.name, 400) }))
    }

    @Test("a turn waits for a whole claim: the channel's burst, a batch when smaller, a quarter of a narrow window")
    func roomForTurn() {
        #expect(ChannelClaimer.roomForTurn(burst: 20, batchSize: 200, windowLimit: 4608) == 20)
        #expect(ChannelClaimer.roomForTurn(burst: 1000, batchSize: 200, windowLimit: 4608) == 200)
        #expect(ChannelClaimer.roomForTurn(burst: 20, batchSize: 200, windowLimit: 8) == 2,
                "a window narrower than a burst still turns")
        #expect(ChannelClaimer.roomForTurn(burst: 20, batchSize: 200, windowLimit: 2) == 1)
        #expect(ChannelClaimer.roomForTurn(burst: 0, batchSize: 200, windowLimit: 4608) == 1)
    }
}
