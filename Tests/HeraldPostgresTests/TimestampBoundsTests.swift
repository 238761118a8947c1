import Foundation
import HeraldPostgres
import Testing

/// Issue 16, finding 4: a retry time far in the future (from a provider's huge `Retry-After`)
/// used to trap when converted to microseconds for its bind.
@Suite struct TimestampBoundsTests {
    @Test("dates outside the years 1...9999 bind as infinity or -infinity instead of trapping")
    func outOfRange() {
        #expect(Date(timeIntervalSince1970: 1e13).postgresText == "infinity")
        #expect(Date(timeIntervalSince1970: .infinity).postgresText == "infinity")
        #expect(Date(timeIntervalSince1970: .nan).postgresText == "infinity")
        #expect(Date(timeIntervalSince1970: -1e13).postgresText == "-infinity")
        #expect(Date(timeIntervalSince1970: 0).postgresText == "1970-01-01T00:00:00.000000Z")
        #expect(Date(timeIntervalSince1970: 253_402_300_799).postgresText == "9999-12-31T23:59:59.000000Z")
    }
}
