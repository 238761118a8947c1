import Foundation

/// A mail as a standard MIME parser reads it: Python's `email` package (`policy.default`), run
/// as `/usr/bin/python3`, so tests check Herald's MIME against a parser Herald did not write.
public struct ParsedMail: Decodable, Sendable {
    /// One part, in `walk()` order (multiparts included, with an empty body).
    public struct Part: Decodable, Sendable {
        /// `type/subtype`, lower-cased.
        public var type: String
        public var filename: String?
        /// `attachment`, `inline` or nil.
        public var disposition: String?
        /// The decoded body, base64 again for transport to Swift.
        public var base64: String
        /// A text part's decoded text, line breaks as `\n`.
        public var text: String?

        /// The decoded body.
        public var bytes: [UInt8] { [UInt8](Data(base64Encoded: base64) ?? Data()) }
    }

    /// The top-level `type/subtype`.
    public var type: String
    public var parts: [Part]
    /// The longest line of the raw message, without its CRLF.
    public var longestLine: Int

    struct ParseError: Error, CustomStringConvertible {
        var description: String
    }

    /// Parses `message`.
    /// - Throws: When Python fails or prints something else than expected.
    public static func parse(_ message: [UInt8]) throws -> ParsedMail {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("herald-mail-\(UUID().uuidString).eml")
        try Data(message).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let script = """
            import base64, email, json, sys
            from email import policy
            raw = open(sys.argv[1], 'rb').read()
            m = email.message_from_bytes(raw, policy=policy.default)
            parts = []
            for p in m.walk():
                if p.is_multipart():
                    parts.append({'type': p.get_content_type(), 'base64': ''})
                    continue
                body = p.get_payload(decode=True)
                text = p.get_content().replace('\\r\\n', '\\n') if p.get_content_maintype() == 'text' else None
                parts.append({'type': p.get_content_type(), 'filename': p.get_filename(),
                              'disposition': p.get_content_disposition(),
                              'base64': base64.b64encode(body).decode(), 'text': text})
            print(json.dumps({'type': m.get_content_type(), 'parts': parts,
                              'longestLine': max(len(l) for l in raw.split(b'\\r\\n'))}))
            """
        let output = try ChildProcess.pipe()
        let process: ChildProcess
        do {
            process = try ChildProcess("/usr/bin/python3", ["-c", script, file.path],
                                       environment: ProcessInfo.processInfo.environment, stdout: .descriptor(output.write))
        } catch {
            close(output.read)
            close(output.write)
            throw error
        }
        close(output.write)
        let data = FileHandle(fileDescriptor: output.read, closeOnDealloc: true).readDataToEndOfFile()
        let status = process.waitBlocking()
        guard status == 0 else { throw ParseError(description: "python3 exited with \(status)") }
        return try JSONDecoder().decode(ParsedMail.self, from: data)
    }
}
