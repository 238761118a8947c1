import Foundation

/// Date formatting and parsing for mail and HTTP headers, in UTC, without `DateFormatter`
/// (no locale or time-zone database involved, and the output is byte-stable for golden tests).
enum HTTPDate {
    private static let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// The last second of 9999-12-31: HTTP and mail dates have four-digit years.
    static let latestSecond: Int64 = 253_402_300_799

    /// RFC 5322 §3.3 date-time in UTC: `Tue, 01 Jul 2025 12:00:00 +0000`. A date outside
    /// 1970...9999 (or not finite) is clamped to that range rather than trapping.
    static func rfc5322(_ date: Date) -> String {
        let raw = date.timeIntervalSince1970
        let seconds = raw.isNaN ? 0 : Int64(min(max(raw, 0), Double(latestSecond)).rounded(.down))
        let days = floorDiv(seconds, 86_400)
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = civil(fromDays: days)
        let weekday = Int(((days % 7) + 11) % 7) // 1970-01-01 was a Thursday (index 4)
        return "\(weekdays[weekday]), \(pad2(day)) \(months[month - 1]) \(year) "
            + "\(pad2(Int(secondOfDay / 3600))):\(pad2(Int(secondOfDay / 60 % 60))):\(pad2(Int(secondOfDay % 60))) +0000"
    }

    /// Parses an HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, RFC 850 or asctime form, into seconds
    /// since 1970; nil when it is none of them. Years are four digits in all three forms, so a
    /// year after 9999 (`Fri, 01 Jan 99999999999 00:00:00 GMT`) is not an HTTP-date: nil, never
    /// an overflow. The result is at most ``latestSecond``.
    static func parse(_ text: String) -> Int64? {
        let separators: Set<Character> = [" ", ",", "-"]
        var tokens = text.split(whereSeparator: { separators.contains($0) }).map(String.init)
        guard tokens.count >= 4 else { return nil }
        if let first = tokens.first, first.first?.isLetter == true, monthIndex(first) == nil {
            tokens.removeFirst() // the weekday; its value is not checked
        }
        var day: Int?, month: Int?, year: Int?, time: String?
        if let m = monthIndex(tokens[0]) {
            // asctime: Nov 6 08:49:37 1994
            guard tokens.count == 4 else { return nil }
            month = m; day = Int(tokens[1]); time = tokens[2]; year = Int(tokens[3])
        } else {
            // IMF-fixdate: 06 Nov 1994 08:49:37 GMT; RFC 850: 06 Nov 94 08:49:37 GMT
            guard tokens.count == 5, tokens[4] == "GMT" || tokens[4] == "UTC" else { return nil }
            day = Int(tokens[0]); month = monthIndex(tokens[1]); year = Int(tokens[2]); time = tokens[3]
            if let y = year, tokens[2].count == 2 { year = y < 70 ? 2000 + y : 1900 + y }
        }
        guard let day, let month, let year, let time, (1...31).contains(day), (1970...9999).contains(year) else { return nil }
        let parts = time.split(separator: ":").compactMap { Int($0) }
        guard parts.count == 3, (0...23).contains(parts[0]), (0...59).contains(parts[1]),
              (0...60).contains(parts[2]) else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        return days * 86_400 + Int64(parts[0] * 3600 + parts[1] * 60 + parts[2])
    }

    private static func monthIndex(_ token: String) -> Int? {
        months.firstIndex(of: token).map { $0 + 1 }
    }

    private static func pad2(_ value: Int) -> String {
        value < 10 ? "0\(value)" : "\(value)"
    }

    private static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }

    /// Howard Hinnant's `civil_from_days`: proleptic Gregorian date of a day count since 1970.
    private static func civil(fromDays days: Int64) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        return (Int(year), Int(month), Int(day))
    }

    /// Howard Hinnant's `days_from_civil`.
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = floorDiv(y, 400)
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
