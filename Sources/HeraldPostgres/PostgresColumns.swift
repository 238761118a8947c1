/// The column names of one result, with a name → position table built once and shared by all
/// its rows, so decoding by name costs about what decoding by position does.
///
/// Why not a `[String: Int]`: hashing a `String` (SipHash over its scalars) costs ~100 ns, several
/// times the decode itself, and the worker's claim decodes ~15 columns per row for thousands of
/// rows a second. This table hashes the name's UTF-8 bytes with a few multiplications and
/// confirms the hit with `==`, which for the short names of a result is a 16-byte compare.
public final class PostgresColumns: Sendable {
    /// Column names in order, as the statement named them (`AS` aliases, or PostgreSQL's defaults).
    public let names: [String]
    /// Open addressing: each slot holds a position in `names`, or `empty`; a power of two long.
    private let slots: [Int32]
    /// Positions of names that occur more than once: decoding those by name is an error.
    private let ambiguous: Set<Int>

    private static let empty: Int32 = -1

    init(_ names: [String]) {
        self.names = names
        var size = 8
        while size < names.count * 2 { size *= 2 }
        var slots = [Int32](repeating: Self.empty, count: size)
        var ambiguous: Set<Int> = []
        for (position, name) in names.enumerated() {
            var slot = Self.hash(name) & (size - 1)
            while slots[slot] != Self.empty {
                let other = Int(slots[slot])
                if names[other] == name { ambiguous.insert(other); break }
                slot = (slot + 1) & (size - 1)
            }
            if slots[slot] == Self.empty { slots[slot] = Int32(position) }
        }
        self.slots = slots
        self.ambiguous = ambiguous
    }

    /// The position of the column named `name`.
    /// - Throws: ``PostgresError`` `.decoding` when no column, or more than one, has that name.
    public func position(of name: String) throws(PostgresError) -> Int {
        let mask = slots.count - 1
        var slot = Self.hash(name) & mask
        while true {
            let candidate = slots[slot]
            if candidate == Self.empty {
                throw PostgresError(code: .decoding, message: "no column named \"\(name)\" (the result has \(names.map { "\"\($0)\"" }.joined(separator: ", ")))")
            }
            if names[Int(candidate)] == name {
                if ambiguous.contains(Int(candidate)) {
                    throw PostgresError(code: .decoding, message: "more than one column is named \"\(name)\"; give each its own name with AS")
                }
                return Int(candidate)
            }
            slot = (slot + 1) & mask
        }
    }

    /// A cheap hash of the name's UTF-8 bytes: length, then the first and last eight bytes
    /// (or every byte of a shorter name). Collisions only cost a probe.
    private static func hash(_ name: String) -> Int {
        var name = name
        return name.withUTF8 { bytes in
            var h = UInt64(bytes.count) &* 0x9E37_79B9_7F4A_7C15
            if bytes.count >= 8 {
                let raw = UnsafeRawBufferPointer(bytes)
                h = (h ^ raw.loadUnaligned(as: UInt64.self)) &* 0x9E37_79B9_7F4A_7C15
                h = (h ^ raw.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self)) &* 0x9E37_79B9_7F4A_7C15
            } else {
                for byte in bytes { h = (h ^ UInt64(byte)) &* 0x100_0000_01B3 }
            }
            return Int(truncatingIfNeeded: h ^ (h >> 29))
        }
    }
}
