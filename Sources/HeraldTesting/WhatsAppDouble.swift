import Foundation

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
