import HeraldCore
import Testing

@Suite struct BoundedDurationTests {
    @Test("clampedSeconds: NaN, negatives and infinities never trap; results stay within 0...max")
    func edges() {
        let hour = Duration.seconds(3600)
        #expect(Duration.clampedSeconds(.nan) == .zero)
        #expect(Duration.clampedSeconds(-1) == .zero)
        #expect(Duration.clampedSeconds(-.infinity) == .zero)
        #expect(Duration.clampedSeconds(.infinity) == hour)
        #expect(Duration.clampedSeconds(1e20) == hour, "QueueStore's wait of 1e20 s used to trap in Int64(...)")
        #expect(Duration.clampedSeconds(1e300, max: .seconds(Int64.max)) == .seconds(Int64.max))
        #expect(Duration.clampedSeconds(0.25) == .milliseconds(250))
        #expect(Duration.clampedSeconds(12, max: .seconds(10)) == .seconds(10))
        #expect(Duration.clampedSeconds(5, max: .seconds(-3)) == .zero)
        #expect(Duration.clampedMilliseconds(1500) == .milliseconds(1500))
        #expect(Duration.seconds(90).secondsValue == 90)
    }

    @Test("clampedSeconds over seeded random doubles, bit patterns included")
    func random() {
        var state: UInt64 = 0xB0_0DED
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        for _ in 0..<100_000 {
            let value = Double(bitPattern: next())
            let limit = Duration.seconds(Int64(next() % 100_000))
            let d = Duration.clampedSeconds(value, max: limit)
            #expect(d >= .zero && d <= limit)
        }
    }
}
