import Foundation
import Hummingbird

/// Reads the body of a provider's webhook request, or refuses it, as cheaply as the refusal allows.
///
/// What is known from the head alone is decided before a byte of the body is read: a signature
/// header that cannot be a valid signature (401) and a declared `Content-Length` over the limit
/// (413). A body without a declared length is still cut at the limit while it is read (413).
/// Large bodies are read under ``BodyAdmission`` (503 with `Retry-After` when too many wait) and
/// at the pace of ``ReadPace``.
///
/// A refusal whose body was not read completely is answered with `Connection: close`, and the
/// connection is closed once the answer is written (see ``RequestEndObserver``): otherwise the
/// server would read (and throw away) the rest of the body to reach the next request on that
/// connection, which is the very work the refusal saves. What a client sent before it saw the
/// answer is still read and dropped for up to 2 s, so that it gets the answer, not a reset.
struct WebhookBodyReader: Sendable {
    /// Why a body was not read.
    enum Refusal: Error, Equatable {
        /// The signature header cannot be a signature of this provider (401).
        case malformedSignature
        /// Declared or found larger than the limit (413).
        case tooLarge(declared: Int?)
        /// Too many large bodies wait to be read (503).
        case busy
        /// The connection failed while the body was read (400).
        case unreadable

        /// How the refusal is counted in `herald_webhook_requests_total`.
        var outcome: WebhookOutcome {
            switch self {
            case .malformedSignature: .unauthorized
            case .tooLarge: .tooLarge
            case .busy: .busy
            case .unreadable: .badRequest
            }
        }
    }

    let maxBodyBytes: Int
    let admission: BodyAdmission
    /// Paces the reading of large bodies, all together (see ``ReadPace``).
    let pace: ReadPace
    /// What a client is told to wait before it sends a refused-as-busy body again.
    var retryAfterSeconds = 1

    /// Reads the body (after the checks of the head) under admission, and runs `verify` on it
    /// while the permit is held: hashing a large body is part of the cost admission bounds.
    func read<T: Sendable>(_ request: Request, signatureWellFormed: Bool,
                           verify: ([UInt8]) -> T) async -> Result<(body: [UInt8], verified: T), Refusal> {
        guard signatureWellFormed else { return .failure(.malformedSignature) }
        let declared = Self.declaredLength(request)
        if let declared, declared > maxBodyBytes { return .failure(.tooLarge(declared: declared)) }
        let large = declared.map { $0 > admission.smallBodyBytes } ?? true
        let outcome = await admission.run(declaredLength: declared) { () async -> Result<(body: [UInt8], verified: T), Refusal> in
            do {
                let body = try await collect(request, paced: large)
                return .success((body, verify(body)))
            } catch let refusal as Refusal {
                return .failure(refusal)
            } catch {
                return .failure(.unreadable)
            }
        }
        return outcome ?? .failure(.busy)
    }

    /// The body, cut at ``maxBodyBytes`` while it is read (a chunked body declares no length);
    /// a large one at the pace of ``pace``.
    private func collect(_ request: Request, paced: Bool) async throws -> [UInt8] {
        var body: [UInt8] = []
        for try await chunk in request.body {
            guard body.count + chunk.readableBytes <= maxBodyBytes else { throw Refusal.tooLarge(declared: nil) }
            body.append(contentsOf: chunk.readableBytesView)
            if paced { await pace.spend(chunk.readableBytes) }
        }
        return body
    }

    /// The answer to a refusal, and a line for the operator.
    func response(to refusal: Refusal) -> (status: HTTPResponse.Status, why: String, headers: HTTPFields) {
        var headers = HTTPFields()
        switch refusal {
        case .malformedSignature:
            headers[.connection] = "close"
            return (.unauthorized, "malformed signature", headers)
        case .tooLarge(let declared):
            headers[.connection] = "close"
            let size = declared.map { "of \($0) bytes declared" } ?? "read"
            return (.contentTooLarge, "body \(size), over the limit of \(maxBodyBytes) bytes", headers)
        case .busy:
            headers[.connection] = "close"
            headers[.retryAfter] = String(retryAfterSeconds)
            return (.serviceUnavailable, "too many large bodies waiting to be read", headers)
        case .unreadable:
            return (.badRequest, "body unreadable", headers)
        }
    }

    /// The request's `Content-Length`, when it declares one.
    static func declaredLength(_ request: Request) -> Int? {
        request.headers[.contentLength].flatMap { Int($0) }
    }

    /// Whether `header` has the form of Meta's `X-Hub-Signature-256` (`sha256=` and 64 hex
    /// digits, as ``WebhookSignature/verifyMeta(header:body:appSecret:)`` reads it).
    static func isMetaSignature(_ header: String) -> Bool {
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        let prefix = "sha256="
        guard trimmed.utf8.count == prefix.utf8.count + 64, trimmed.lowercased().hasPrefix(prefix) else { return false }
        return trimmed.utf8.dropFirst(prefix.utf8.count).allSatisfy { Character(Unicode.Scalar($0)).isHexDigit }
    }

    /// Whether `header` has the form of Twilio's `X-Twilio-Signature` (base64 of a 20-byte HMAC-SHA1).
    static func isTwilioSignature(_ header: String) -> Bool {
        Data(base64Encoded: header.trimmingCharacters(in: .whitespaces))?.count == 20
    }
}
