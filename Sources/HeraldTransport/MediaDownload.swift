import CCurl
import Foundation

/// Fetches one file over http(s) with a size limit enforced while it downloads.
///
/// For the few files of a broadcast (email attachments), fetched once when the broadcast starts:
/// one easy handle on a thread of its own (the transfer blocks; the cooperative pool must not),
/// not the shared multi engine built for thousands of small requests. Redirects are followed to
/// https only (at most 5), so a redirect cannot lead to a plain-http host nobody allowed.
public enum MediaDownload {
    /// Downloads `url`.
    ///
    /// - Parameters:
    ///   - url: An `https://` URL (or `http://` to a host the caller allowed).
    ///   - maxBytes: The transfer stops as soon as the body would exceed this.
    ///   - timeout: The whole transfer, connection included.
    /// - Throws: ``MediaDownloadError``.
    public static func fetch(_ url: String, maxBytes: Int, timeout: Duration) async throws(MediaDownloadError) -> DownloadedMedia {
        let result: Result<DownloadedMedia, MediaDownloadError> = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: perform(url, maxBytes: maxBytes, timeout: timeout))
            }
            thread.name = "herald-media-download"
            thread.start()
        }
        return try result.get()
    }

    /// The body collected by the write callback, and whether it overflowed.
    private final class Sink {
        var bytes: [UInt8] = []
        var overflowed = false
        /// The last response's `Content-Length` (a redirect's answer is replaced by the next one's).
        var announced: Int64?
        let limit: Int
        init(limit: Int) { self.limit = limit }
    }

    private static let write: ccurl_data_callback = { buffer, size, count, context in
        let length = size * count
        guard let context else { return 0 }
        let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
        guard sink.bytes.count + length <= sink.limit else {
            sink.overflowed = true
            return 0  // aborts the transfer (CURLE_WRITE_ERROR)
        }
        if let buffer, length > 0 {
            buffer.withMemoryRebound(to: UInt8.self, capacity: length) {
                sink.bytes.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
            }
        }
        return length
    }

    private static let header: ccurl_data_callback = { buffer, size, count, context in
        let length = size * count
        guard let context, let buffer else { return length }
        let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
        let line = buffer.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(decoding: UnsafeBufferPointer(start: $0, count: min(length, 256)), as: UTF8.self)
        }
        let lower = line.lowercased()
        if lower.hasPrefix("http/") {
            sink.announced = nil
        } else if lower.hasPrefix("content-length:") {
            sink.announced = Int64(lower.dropFirst(15).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return length
    }

    private static func perform(_ url: String, maxBytes: Int, timeout: Duration) -> Result<DownloadedMedia, MediaDownloadError> {
        guard CurlGlobal.initialized, let easy = curl_easy_init() else {
            return .failure(MediaDownloadError(.unreachable, "could not be fetched: libcurl did not start"))
        }
        defer { curl_easy_cleanup(easy) }
        let sink = Sink(limit: max(0, maxBytes))
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        defer { errorBuffer.deallocate() }

        var setup = CurlSetup(easy: easy)
        setup.long(CURLOPT_NOSIGNAL, 1)
        setup.string(CURLOPT_URL, url)
        setup.string(CURLOPT_PROTOCOLS_STR, "http,https")
        setup.long(CURLOPT_FOLLOWLOCATION, 1)
        setup.long(CURLOPT_MAXREDIRS, 5)
        setup.string(CURLOPT_REDIR_PROTOCOLS_STR, "https")
        setup.string(CURLOPT_USERAGENT, "herald")
        setup.string(CURLOPT_ACCEPT_ENCODING, "")  // any encoding curl can decode; the limit counts decoded bytes
        // Refused before the body starts when the server announces a larger Content-Length.
        setup.offset(CURLOPT_MAXFILESIZE_LARGE, Int64(max(0, maxBytes)))
        setup.timeout(timeout)
        setup.pointer(CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer))
        setup.result(ccurl_setopt_write_callback(easy, write))
        let context = Unmanaged.passUnretained(sink).toOpaque()
        setup.pointer(CURLOPT_WRITEDATA, context)
        setup.result(ccurl_setopt_header_callback(easy, header))
        setup.pointer(CURLOPT_HEADERDATA, context)
        guard setup.code == CURLE_OK else {
            return .failure(MediaDownloadError(.unreachable, "could not be fetched: \(String(cString: curl_easy_strerror(setup.code)))"))
        }

        let code = withExtendedLifetime(sink) { curl_easy_perform(easy) }
        if sink.overflowed || code == CURLE_FILESIZE_EXCEEDED {
            let size: Int64? = sink.announced.flatMap { $0 > Int64(maxBytes) ? $0 : nil }
            return .failure(MediaDownloadError(.tooLarge(size: size), size.map { "is \(mebibytes($0))" } ?? "is more than \(mebibytes(Int64(maxBytes)))"))
        }
        guard code == CURLE_OK else {
            let detail = String(cString: errorBuffer)
            let reason = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            return .failure(MediaDownloadError(.unreachable, "could not be fetched: \(reason)"))
        }
        var status = 0
        _ = ccurl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        guard (200...299).contains(status) else {
            return .failure(MediaDownloadError(.httpStatus(status), "could not be fetched: the server answered HTTP \(status)"))
        }
        var type: UnsafePointer<CChar>?
        _ = ccurl_getinfo_string(easy, CURLINFO_CONTENT_TYPE, &type)
        return .success(DownloadedMedia(bytes: sink.bytes, contentType: type.map { String(cString: $0) }))
    }

    /// `12.3 MiB`, `10 MiB`, `512 KiB`, `3000 bytes`: sizes as people read them, exact below 1 MiB.
    public static func mebibytes(_ bytes: Int64) -> String {
        if bytes < 1 << 20 {
            return bytes >= 1024 && bytes % 1024 == 0 ? "\(bytes / 1024) KiB" : "\(bytes) bytes"
        }
        let mib = Double(bytes) / Double(1 << 20)
        return mib == mib.rounded() ? "\(Int(mib)) MiB" : String(format: "%.1f MiB", mib)
    }
}

/// A file fetched by ``MediaDownload``.
public struct DownloadedMedia: Sendable, Equatable {
    public var bytes: [UInt8]
    /// The answer's `Content-Type` as sent (parameters included), nil when it had none.
    public var contentType: String?

    public init(bytes: [UInt8], contentType: String? = nil) {
        self.bytes = bytes
        self.contentType = contentType
    }
}

/// Why ``MediaDownload`` gave up; `description` is a phrase to follow a URL
/// (`"is more than 10 MiB"`, `"answered HTTP 404"`).
public struct MediaDownloadError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// The file is larger than the limit; `size` when the server said how large.
        case tooLarge(size: Int64?)
        /// The server answered with a status other than 2xx.
        case httpStatus(Int)
        /// No answer: DNS, connection, TLS, timeout.
        case unreachable
    }

    public var code: Code
    public var description: String

    public init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}
