/// Builds a message's bytes with CRLF line endings.
struct MIMEWriter {
    private(set) var bytes: [UInt8] = []

    init() {
        bytes.reserveCapacity(2048)
    }

    mutating func header(_ name: String, _ value: String) {
        line("\(name): \(value)")
    }

    mutating func line(_ text: String) {
        bytes.append(contentsOf: text.utf8)
        bytes.append(contentsOf: [0x0D, 0x0A])
    }

    /// Appends bytes already encoded with CRLF line endings.
    mutating func append(_ encoded: [UInt8]) {
        bytes.append(contentsOf: encoded)
    }

    /// Appends the encoded body of a multipart's part and the CRLF that belongs to the next
    /// boundary line (RFC 2046 §5.1.1), so a body ending in a line break keeps it.
    mutating func part(_ encoded: String) {
        bytes.append(contentsOf: encoded.utf8)
        bytes.append(contentsOf: [0x0D, 0x0A])
    }

    /// Appends an encoded body, ending it with CRLF when it does not already end with one.
    mutating func body(_ encoded: String) {
        bytes.append(contentsOf: encoded.utf8)
        if !encoded.hasSuffix("\r\n") { bytes.append(contentsOf: [0x0D, 0x0A]) }
    }
}
