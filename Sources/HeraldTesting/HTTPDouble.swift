import Foundation
import Hummingbird
import NIOCore

/// Request context that keeps the channel, to learn the client's port (one per connection) and
/// to close the connection when a fault says so.
struct DoubleRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// The HTTP half of ``ProviderDouble``: Meta's and Twilio's answers, byte for byte in shape.
enum HTTPDouble {
    static let maxBody = 16 << 20

    static func respond(to request: Request, context: DoubleRequestContext, state: DoubleState) async -> Response {
        var request = request
        let receivedAt = ContinuousClock.now
        let receivedDate = Date()
        let body: [UInt8]
        do {
            body = Array(try await request.collectBody(upTo: maxBody).readableBytesView)
        } catch {
            return rawResponse(status: 413, headers: [:], body: "")
        }
        var headers: [String: String] = [:]
        for field in request.headers {
            let name = field.name.canonicalName
            headers[name] = headers[name].map { "\($0), \(field.value)" } ?? field.value
        }
        let path = request.uri.path
        let components = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let endpoint = endpoint(method: request.method.rawValue, components: components)
        let contentType = headers["content-type"]?.lowercased() ?? ""
        let received = ReceivedRequest(
            endpoint: endpoint, receivedAt: receivedAt, receivedDate: receivedDate,
            method: request.method.rawValue, path: path, query: request.uri.query ?? "",
            headers: headers, body: body,
            json: contentType.contains("json") || body.first == UInt8(ascii: "{") ? ReceivedJSON(parsing: body) : nil,
            form: contentType.contains("x-www-form-urlencoded") ? parseForm(body) : [:],
            clientPort: context.channel.remoteAddress?.port, responseStatus: nil)

        let (index, script, latency) = state.withLock { inner -> (Int, ProviderDouble.Fault?, Duration) in
            inner.requests.append(received)
            if let port = received.clientPort { inner.httpConnections.insert(port) }
            var script: ProviderDouble.Fault?
            if let endpoint, var queue = inner.scripts[endpoint], !queue.isEmpty {
                script = queue.removeFirst()
                inner.scripts[endpoint] = queue
            }
            return (inner.requests.count - 1, script, inner.latency)
        }

        var fault = script
        if fault == nil, let endpoint, let recipient = recipient(of: received, endpoint: endpoint) {
            fault = state.withLock { $0.recipientRules[endpoint]?[DoubleState.digits(recipient)] }
        }
        let delay = fault?.delay ?? latency
        if delay > .zero {
            try? await Task.sleep(for: delay)
        }

        let answer: Answer
        switch fault?.action {
        case .closeConnection?:
            context.channel.close(promise: nil)
            return rawResponse(status: 500, headers: [:], body: "")
        case .raw(let status, let headers, let body)?:
            answer = Answer(status: status, headers: headers, body: body)
        case .providerError(let code, let status, let message)?:
            answer = providerError(endpoint, code: code, status: status, message: message)
        case .rateLimited(let retryAfter)?:
            var limited = providerError(endpoint, code: endpoint == .twilio ? 20429 : 130429, status: 429, message: nil)
            if let retryAfter { limited.headers["Retry-After"] = "\(retryAfter)" }
            answer = limited
        case .serverError(let status)?:
            answer = providerError(endpoint, code: endpoint == .twilio ? 20000 + status : 131000, status: status, message: nil)
        case .respond?, nil:
            switch endpoint {
            case .whatsApp?: answer = WhatsAppDouble.answer(received, components: components, configuration: state.configuration,
                                                            templates: state.withLock { $0.whatsAppTemplates })
            case .twilio?: answer = TwilioDouble.answer(received, components: components, configuration: state.configuration)
            case nil: answer = notFound(path: path)
            }
        }
        state.withLock { inner in
            if inner.requests.indices.contains(index) { inner.requests[index].responseStatus = answer.status }
        }
        return rawResponse(status: answer.status, headers: answer.headers, body: answer.body)
    }

    static func endpoint(method: String, components: [String]) -> ProviderDouble.Endpoint? {
        guard method == "POST" else { return nil }
        if components.count == 4, components[0] == "2010-04-01", components[1] == "Accounts",
           components[3] == "Messages.json" {
            return .twilio
        }
        if components.count >= 2, components.last == "messages" {
            return .whatsApp
        }
        return nil
    }

    static func recipient(of request: ReceivedRequest, endpoint: ProviderDouble.Endpoint) -> String? {
        switch endpoint {
        case .whatsApp: request.json?["to"]?.string
        case .twilio: request.form["To"]
        }
    }

    struct Answer {
        var status: Int
        var headers: [String: String]
        var body: String
    }

    static func json(_ status: Int, _ object: Any, headers: [String: String] = [:]) -> Answer {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        var headers = headers
        headers["Content-Type"] = "application/json"
        return Answer(status: status, headers: headers, body: String(decoding: data, as: UTF8.self))
    }

    static func providerError(_ endpoint: ProviderDouble.Endpoint?, code: Int, status: Int?, message: String?) -> Answer {
        switch endpoint {
        case .twilio?: TwilioDouble.error(code: code, status: status, message: message)
        case .whatsApp?, nil: WhatsAppDouble.error(code: code, status: status, message: message)
        }
    }

    static func notFound(path: String) -> Answer {
        if path.hasPrefix("/2010-04-01") {
            return TwilioDouble.error(code: 20404, status: 404,
                                      message: "The requested resource \(path) was not found")
        }
        return WhatsAppDouble.error(code: 2500, status: 400, message: "Unknown path components: \(path)")
    }

    static func rawResponse(status: Int, headers: [String: String], body: String) -> Response {
        var fields = HTTPFields()
        for (name, value) in headers {
            if let name = HTTPFields.Element.Name(name) { fields.append(.init(name: name, value: value)) }
        }
        return Response(status: .init(code: status), headers: fields,
                        body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    static func parseForm(_ body: [UInt8]) -> [String: String] {
        var form: [String: String] = [:]
        for pair in String(decoding: body, as: UTF8.self).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (part: Substring) -> String in
                let spaced = part.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            let key = decode(parts[0])
            guard !key.isEmpty else { continue }
            form[key] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return form
    }

    static func randomString(_ alphabet: String, count: Int) -> String {
        let characters = Array(alphabet)
        return String((0..<count).map { _ in characters.randomElement()! })
    }
}

/// Meta's WhatsApp Cloud API, `POST /{version}/{phone_number_id}/messages`.
enum WhatsAppDouble {
    static func answer(_ request: ReceivedRequest, components: [String], configuration: ProviderDouble.Configuration,
                       templates: [String: ProviderDouble.WhatsAppTemplate] = [:]) -> HTTPDouble.Answer {
        guard let authorization = request.header("authorization"), authorization.hasPrefix("Bearer ") else {
            return error(code: 190, status: 401, message: "An active access token must be used to query information about the current user.")
        }
        guard authorization.dropFirst("Bearer ".count) == configuration.whatsAppAccessToken else {
            return error(code: 190, status: 401, message: "Invalid OAuth access token - Cannot parse access token")
        }
        let phoneNumberID = components[components.count - 2]
        if let known = configuration.whatsAppPhoneNumberID, known != phoneNumberID {
            return error(code: 100, status: 400, type: "GraphMethodException", subcode: 33,
                         message: "Unsupported post request. Object with ID '\(phoneNumberID)' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api")
        }
        guard let json = request.json, json.object != nil else {
            return error(code: 100, status: 400, message: "(#100) The parameter messaging_product is required.")
        }
        guard json["messaging_product"]?.string == "whatsapp" else {
            return error(code: 100, status: 400, message: "(#100) The parameter messaging_product is required.")
        }
        guard let to = json["to"]?.string, !to.isEmpty else {
            return error(code: 100, status: 400, message: "(#100) The parameter to is required.")
        }
        let type = json["type"]?.string ?? "text"
        switch type {
        case "text":
            guard let body = json["text"]?["body"]?.string, !body.isEmpty else {
                return error(code: 100, status: 400, message: "(#100) The parameter text['body'] is required.")
            }
            if body.count > 4096 {
                return error(code: 100, status: 400, message: "(#100) Param text['body'] must be at most 4096 characters long.")
            }
        case "template":
            guard json["template"]?["name"]?.string?.isEmpty == false else {
                return error(code: 100, status: 400, message: "(#100) The parameter template['name'] is required.")
            }
            guard json["template"]?["language"]?["code"]?.string?.isEmpty == false else {
                return error(code: 100, status: 400, message: "(#100) The parameter template['language'] is required.")
            }
            if let refused = WhatsAppTemplateCheck.check(json, templates: templates) { return refused }
        case "image", "document", "audio", "video":
            guard let media = json[type], media["link"]?.string?.isEmpty == false || media["id"]?.string?.isEmpty == false else {
                return error(code: 131008, status: 400, message: nil, details: "\(type)['link'] or \(type)['id'] is required")
            }
            if type == "audio", media["caption"] != nil {
                return error(code: 131009, status: 400, message: nil, details: "audio['caption'] is not allowed: audio takes no caption")
            }
        case "sticker", "location", "contacts", "interactive", "reaction":
            break
        default:
            return error(code: 131051, status: 400, message: nil)
        }
        let digits = DoubleState.digits(to)
        guard digits.count >= 7, digits.count <= 15 else {
            return error(code: 131009, status: 400, message: nil, details: "The phone number \(to) is not valid.")
        }
        var message: [String: Any] = ["id": wamid()]
        if type == "template" { message["message_status"] = "accepted" }
        return HTTPDouble.json(200, [
            "messaging_product": "whatsapp",
            "contacts": [["input": to, "wa_id": digits]],
            "messages": [message],
        ])
    }

    /// `wamid.` plus base64, the shape Meta's ids have.
    static func wamid() -> String {
        let bytes = (0..<30).map { _ in UInt8.random(in: 0...255) }
        return "wamid.HBgL" + Data(bytes).base64EncodedString()
    }

    static let titles: [Int: String] = [
        0: "AuthException", 3: "API Method", 4: "Too many calls", 10: "Permission Denied", 100: "Invalid parameter",
        190: "Access token has expired", 200: "Permission Denied", 368: "Temporarily blocked for policies violations",
        80007: "Rate limit issues", 130429: "Rate limit hit", 130472: "User's number is part of an experiment",
        131000: "Something went wrong", 131005: "Access denied", 131008: "Required parameter is missing",
        131009: "Parameter value is not valid", 131016: "Service unavailable", 131021: "Recipient cannot be sender",
        131026: "Message undeliverable", 131030: "Recipient phone number not in allowed list",
        131031: "Business Account locked", 131042: "Business eligibility payment issue",
        131045: "Incorrect certificate", 131047: "Re-engagement message", 131048: "Spam rate limit hit",
        131049: "Meta chose not to deliver.", 131051: "Unsupported message type",
        131053: "Media upload error", 131056: "(Business Account, Consumer Account) pair rate limit hit",
        132000: "Number of parameters does not match the expected number of params",
        132001: "Template name does not exist in the translation", 132005: "Translated text too long",
        132007: "Template Format Character Policy Violated", 132012: "Parameter format does not match format in the created template",
        132015: "Template is Paused", 132016: "Template is Disabled", 133010: "Phone number Not Registered",
    ]

    /// The HTTP status Meta answers an error code with.
    static func status(for code: Int) -> Int {
        switch code {
        case 190, 0: 401
        case 10, 200, 131005, 131031: 403
        case 4, 80007, 130429, 131048, 131056: 429
        case 131000, 1, 2: 500
        case 131016: 503
        case 132001: 404
        default: 400
        }
    }

    static func error(code: Int, status: Int?, type: String = "OAuthException", subcode: Int? = nil,
                      message: String?, details: String? = nil) -> HTTPDouble.Answer {
        let title = titles[code] ?? "Error"
        var error: [String: Any] = [
            "message": message ?? "(#\(code)) \(title)",
            "type": type,
            "code": code,
            "fbtrace_id": HTTPDouble.randomString("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", count: 23),
        ]
        if let subcode { error["error_subcode"] = subcode }
        if code != 190, code != 100 || details != nil {
            error["error_data"] = ["messaging_product": "whatsapp", "details": details ?? "\(title)."]
        }
        return HTTPDouble.json(status ?? Self.status(for: code), ["error": error])
    }
}

/// Twilio's Programmable Messaging API, `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`.
enum TwilioDouble {
    static func answer(_ request: ReceivedRequest, components: [String],
                       configuration: ProviderDouble.Configuration) -> HTTPDouble.Answer {
        let accountSID = components[2]
        guard let credentials = basicCredentials(request.header("authorization")),
              credentials.user == configuration.twilioAccountSID,
              credentials.password == configuration.twilioAuthToken,
              accountSID == configuration.twilioAccountSID
        else {
            return error(code: 20003, status: 401, message: "Authenticate")
        }
        guard request.header("content-type")?.lowercased().contains("application/x-www-form-urlencoded") == true else {
            return error(code: 21602, status: 400, message: "Message body is required.")
        }
        let form = request.form
        guard let to = form["To"], !to.isEmpty else {
            return error(code: 21604, status: 400, message: "A 'To' phone number is required.")
        }
        let from = form["From"].flatMap { $0.isEmpty ? nil : $0 }
        let service = form["MessagingServiceSid"].flatMap { $0.isEmpty ? nil : $0 }
        guard from != nil || service != nil else {
            return error(code: 21603, status: 400, message: "A 'From' phone number is required.")
        }
        let mediaURLs = request.formValues("MediaUrl")
        let body = form["Body"] ?? ""
        guard !body.isEmpty || !mediaURLs.isEmpty else {
            return error(code: 21602, status: 400, message: "Message body is required.")
        }
        guard isE164(to) else {
            return error(code: 21211, status: 400, message: "The 'To' number \(to) is not a valid phone number.")
        }
        if let service, !(service.hasPrefix("MG") && service.count == 34) {
            return error(code: 21701, status: 400, message: "The Messaging Service Sid \(service) is invalid.")
        }
        if body.count > 1600 {
            return error(code: 21617, status: 400, message: "The concatenated message body exceeds the 1600 character limit.")
        }
        let sid = "SM" + HTTPDouble.randomString("0123456789abcdef", count: 32)
        let now = rfc2822(Date())
        let uri = "/2010-04-01/Accounts/\(accountSID)/Messages/\(sid).json"
        return HTTPDouble.json(201, [
            "account_sid": accountSID,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": NSNull(),
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": NSNull(),
            "error_message": NSNull(),
            "from": from.map { $0 as Any } ?? NSNull(),
            "messaging_service_sid": service.map { $0 as Any } ?? NSNull(),
            "num_media": "\(mediaURLs.count)",
            "num_segments": "\(segments(body))",
            "price": NSNull(),
            "price_unit": "USD",
            "sid": sid,
            "status": from == nil ? "accepted" : "queued",
            "subresource_uris": ["media": "/2010-04-01/Accounts/\(accountSID)/Messages/\(sid)/Media.json"],
            "to": to,
            "uri": uri,
        ])
    }

    static func error(code: Int, status: Int?, message: String?) -> HTTPDouble.Answer {
        let defaults: [Int: (Int, String)] = [
            20003: (401, "Authenticate"), 20404: (404, "The requested resource was not found"),
            20429: (429, "Too Many Requests"), 20500: (500, "An internal server error has occurred"),
            20503: (503, "Service is unavailable. Please try again"),
            21211: (400, "The 'To' number is not a valid phone number."),
            21408: (400, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number"),
            21610: (400, "Attempt to send to unsubscribed recipient"),
            21612: (400, "The 'To' phone number is not currently reachable via SMS"),
            21614: (400, "'To' number is not a valid mobile number"),
            30007: (400, "Message filtered"),
        ]
        let known = defaults[code]
        let status = status ?? known?.0 ?? 400
        return HTTPDouble.json(status, [
            "code": code,
            "message": message ?? known?.1 ?? "Error \(code)",
            "more_info": "https://www.twilio.com/docs/errors/\(code)",
            "status": status,
        ])
    }

    static func basicCredentials(_ header: String?) -> (user: String, password: String)? {
        guard let header, header.lowercased().hasPrefix("basic "),
              let data = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
              let decoded = String(data: data, encoding: .utf8),
              let colon = decoded.firstIndex(of: ":")
        else { return nil }
        return (String(decoded[..<colon]), String(decoded[decoded.index(after: colon)...]))
    }

    static func isE164(_ number: String) -> Bool {
        guard number.hasPrefix("+") else { return false }
        let digits = number.dropFirst()
        return digits.count >= 7 && digits.count <= 15 && digits.first != "0"
            && digits.allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// GSM-7 basic set (extension characters count double); anything else makes the message UCS-2.
    static let gsmBasic = Set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà".unicodeScalars)
    static let gsmExtension = Set("^{}\\[~]|€\u{0C}".unicodeScalars)

    static func segments(_ body: String) -> Int {
        let scalars = body.unicodeScalars
        if scalars.allSatisfy({ gsmBasic.contains($0) || gsmExtension.contains($0) }) {
            let septets = scalars.reduce(0) { $0 + (gsmExtension.contains($1) ? 2 : 1) }
            return septets <= 160 ? 1 : (septets + 152) / 153
        }
        let units = body.utf16.count
        return units <= 70 ? 1 : (units + 66) / 67
    }

    static func rfc2822(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        return formatter.string(from: date)
    }
}
