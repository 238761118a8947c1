import Foundation

/// A file attached to every mail of a broadcast, encoded once for all of them.
///
/// The base64 body (76-character lines, CRLF) is computed in `init`, so a broadcast of a million
/// mails encodes each file once per worker, not once per mail.
public struct MailAttachment: Sendable, Equatable {
    /// The name the recipient sees (any Unicode; written with RFC 2231 when not plain ASCII).
    public let filename: String
    /// `type/subtype`, with a `charset` parameter when the source gave one.
    public let contentType: String
    /// The file's size before encoding.
    public let size: Int
    /// The base64 body: lines of at most 76 characters, each ended by CRLF.
    let encodedBody: [UInt8]
    /// Bytes this file adds to every mail (its encoded body), for memory budgets.
    public var encodedSize: Int { encodedBody.count }

    public init(filename: String, contentType: String, bytes: [UInt8]) {
        self.filename = filename
        self.contentType = contentType
        self.size = bytes.count
        let base64 = Array(Data(bytes).base64EncodedString().utf8)
        var body: [UInt8] = []
        body.reserveCapacity(base64.count + base64.count / 76 * 2 + 2)
        var start = 0
        while start < base64.count {
            let end = min(start + 76, base64.count)
            body.append(contentsOf: base64[start..<end])
            body.append(contentsOf: [0x0D, 0x0A])
            start = end
        }
        encodedBody = body
    }

    /// The content type a fetched file is attached with: the server's `Content-Type` when it is a
    /// usable media type (not `application/octet-stream`), else one guessed from the file name's
    /// extension, else `application/octet-stream`. Only `type/subtype` and a `charset` parameter
    /// are kept, so nothing a server sends can break the mail's headers.
    public static func contentType(answered: String?, filename: String) -> String {
        if let answered, let clean = cleanMediaType(answered), !clean.hasPrefix("application/octet-stream") {
            return clean
        }
        let ext = filename.split(separator: ".").count > 1 ? filename.split(separator: ".").last!.lowercased() : ""
        return typesByExtension[ext] ?? "application/octet-stream"
    }

    /// The name a URL's file is attached under when `media[].filename` is not given: the last
    /// path segment, percent-decoded, or `attachment` when there is none.
    public static func filename(fromURL url: String) -> String {
        var path = Substring(url)
        if let scheme = path.range(of: "://") { path = path[scheme.upperBound...] }
        if let end = path.firstIndex(where: { $0 == "?" || $0 == "#" }) { path = path[..<end] }
        guard let slash = path.firstIndex(of: "/") else { return "attachment" }
        let last = path[slash...].split(separator: "/").last.map(String.init) ?? ""
        let decoded = last.removingPercentEncoding ?? last
        let cleaned = sanitizedFilename(decoded)
        return cleaned.isEmpty ? "attachment" : cleaned
    }

    /// A name without control characters or path separators.
    public static func sanitizedFilename(_ name: String) -> String {
        let scalars = name.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F && $0 != "/" && $0 != "\\" }
        return String(String.UnicodeScalarView(scalars)).trimmingCharacters(in: .whitespaces)
    }

    private static let typesByExtension: [String: String] = [
        "pdf": "application/pdf", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg",
        "gif": "image/gif", "webp": "image/webp", "svg": "image/svg+xml", "txt": "text/plain",
        "csv": "text/csv", "html": "text/html", "htm": "text/html", "ics": "text/calendar",
        "zip": "application/zip", "json": "application/json", "mp4": "video/mp4", "mp3": "audio/mpeg",
        "ogg": "audio/ogg", "doc": "application/msword",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls": "application/vnd.ms-excel",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt": "application/vnd.ms-powerpoint",
        "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ]

    private static func isToken(_ s: Substring) -> Bool {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~".unicodeScalars)
        return !s.isEmpty && s.unicodeScalars.allSatisfy { allowed.contains($0) }
    }

    private static func cleanMediaType(_ value: String) -> String? {
        let parts = value.lowercased().split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let type = parts.first else { return nil }
        let halves = type.split(separator: "/", omittingEmptySubsequences: false)
        guard halves.count == 2, isToken(halves[0]), isToken(halves[1]) else { return nil }
        var result = type
        for parameter in parts.dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0] == "charset" {
                let charset = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                if isToken(Substring(charset)) { result += "; charset=\(charset)" }
            }
        }
        return result
    }
}

extension MIMEWriter {
    /// Writes one attachment as a body part (after its boundary line): `Content-Type` with `name`,
    /// `Content-Disposition: attachment` with `filename`, base64.
    ///
    /// A plain ASCII name of at most 60 characters is a quoted string. Any other name is written
    /// as RFC 2231 `filename*` (UTF-8, percent-encoded, in continuations of at most 48 characters
    /// so lines stay short), with RFC 2047 words in the legacy `name` parameter for older readers.
    mutating func attachment(_ file: MailAttachment) {
        let name = file.filename
        let plain = name.utf8.count <= 60 && name.unicodeScalars.allSatisfy {
            $0.value >= 0x20 && $0.value < 0x7F && $0 != "\"" && $0 != "\\"
        } && !name.contains("=?")
        if plain {
            line("Content-Type: \(file.contentType); name=\"\(name)\"")
            line("Content-Transfer-Encoding: base64")
            line("Content-Disposition: attachment; filename=\"\(name)\"")
        } else {
            line("Content-Type: \(file.contentType);")
            line(" name=\"\(MIME.encodedWords(name).joined(separator: "\r\n "))\"")
            line("Content-Transfer-Encoding: base64")
            let chunks = Self.rfc2231Chunks(name)
            if chunks.count == 1 {
                line("Content-Disposition: attachment;")
                line(" filename*=utf-8''\(chunks[0])")
            } else {
                line("Content-Disposition: attachment;")
                for (index, chunk) in chunks.enumerated() {
                    let prefix = index == 0 ? "utf-8''" : ""
                    line(" filename*\(index)*=\(prefix)\(chunk)\(index == chunks.count - 1 ? "" : ";")")
                }
            }
        }
        line("")
        append(file.encodedBody)
    }

    /// RFC 2231 `attr-char`s, everything else `%XX`, cut into pieces of at most 48 characters (with ` filename*NN*=utf-8''` and `;`, a line stays inside 78)
    /// without splitting an escape.
    static func rfc2231Chunks(_ name: String) -> [String] {
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&+-.^_`|~".utf8)
        let hex = Array("0123456789ABCDEF".utf8)
        var chunks: [String] = []
        var current = ""
        for byte in name.utf8 {
            let piece = safe.contains(byte) ? String(UnicodeScalar(byte))
                : "%" + String(UnicodeScalar(hex[Int(byte >> 4)])) + String(UnicodeScalar(hex[Int(byte & 0x0F)]))
            if current.utf8.count + piece.utf8.count > 48 {
                chunks.append(current)
                current = ""
            }
            current += piece
        }
        if !current.isEmpty || chunks.isEmpty { chunks.append(current) }
        return chunks
    }
}
