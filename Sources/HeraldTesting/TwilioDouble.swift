import Foundation

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
