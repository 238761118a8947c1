import Foundation
import HeraldCore
import HeraldProviders
import Testing

/// Meta's and Twilio's webhook payloads (shaped as their documentation shows them) and signatures.
@Suite("Webhooks: payloads and signatures")
struct WebhookTests {
    // MARK: Fixtures, as documented

    /// Meta's "messages" webhook with statuses: two entries (a batch), a `sent` with conversation and
    /// pricing, a `read`, and a `failed` with `errors[]`.
    static let metaStatuses = #"""
    {
      "object": "whatsapp_business_account",
      "entry": [
        {
          "id": "102290129340398",
          "changes": [
            {
              "value": {
                "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242922" },
                "statuses": [
                  {
                    "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3NTg1QjQ2QTAxMjBCNTJERAA=",
                    "status": "sent",
                    "timestamp": "1750263773",
                    "recipient_id": "16505551234",
                    "biz_opaque_callback_data": "42",
                    "conversation": {
                      "id": "6ceb9d929c9d6a6b9ba1e6eef9c4d3f6",
                      "expiration_timestamp": "1750350180",
                      "origin": { "type": "marketing" }
                    },
                    "pricing": { "billable": true, "pricing_model": "PMP", "category": "marketing", "type": "regular" }
                  },
                  {
                    "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJBRUVFMjAwQTFENUZBQ0I4QjgA",
                    "status": "read",
                    "timestamp": "1750263790",
                    "recipient_id": "16505551234"
                  }
                ]
              },
              "field": "messages"
            }
          ]
        },
        {
          "id": "102290129340399",
          "changes": [
            {
              "value": {
                "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550783882", "phone_number_id": "106540352242923" },
                "statuses": [
                  {
                    "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA",
                    "status": "failed",
                    "timestamp": "1750263800",
                    "recipient_id": "16505551235",
                    "biz_opaque_callback_data": "43",
                    "errors": [
                      {
                        "code": 131026,
                        "title": "Message undeliverable",
                        "message": "Message undeliverable",
                        "error_data": { "details": "Message could not be delivered" },
                        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
                      }
                    ]
                  }
                ]
              },
              "field": "messages"
            }
          ]
        }
      ]
    }
    """#

    /// Meta's incoming text message notification.
    static let metaInbound = #"""
    {
      "object": "whatsapp_business_account",
      "entry": [{
        "id": "102290129340398",
        "changes": [{
          "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242922" },
            "contacts": [{ "profile": { "name": "Sheena Nelson" }, "wa_id": "16505551234" }],
            "messages": [{
              "from": "16505551234",
              "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
              "timestamp": "1749416383",
              "type": "text",
              "text": { "body": "Does it come in another color?" }
            }]
          },
          "field": "messages"
        }]
      }]
    }
    """#

    /// Twilio's status callback parameters for an undelivered SMS.
    static let twilioUndelivered: [FormField] = [
        FormField("ErrorCode", "30003"), FormField("SmsSid", "SMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
        FormField("SmsStatus", "undelivered"), FormField("MessageStatus", "undelivered"),
        FormField("To", "+15558675310"), FormField("MessagingServiceSid", "MGXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
        FormField("MessageSid", "SMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"), FormField("AccountSid", "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
        FormField("From", "+15017122661"), FormField("ApiVersion", "2010-04-01"),
    ]

    // MARK: Meta payloads

    @Test("Meta statuses: batched entries, ids, statuses, times, callback data, errors")
    func metaStatuses() throws {
        let n = try WhatsAppNotification.parse(Array(Self.metaStatuses.utf8))
        #expect(n.phoneNumberIDs == ["106540352242922", "106540352242923"])
        #expect(n.statuses.map(\.status) == ["sent", "read", "failed"])
        #expect(n.statuses.map(\.receipt) == [.sent, .read, .failed])
        let sent = n.statuses[0]
        #expect(sent.messageID == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3NTg1QjQ2QTAxMjBCNTJERAA=")
        #expect(sent.phoneNumberID == "106540352242922")
        #expect(sent.timestamp == Date(timeIntervalSince1970: 1_750_263_773))
        #expect(sent.recipientID == "16505551234")
        #expect(sent.heraldMessageID == 42)
        #expect(sent.errorCode == nil)
        #expect(n.statuses[1].heraldMessageID == nil)
        let failed = n.statuses[2]
        #expect(failed.phoneNumberID == "106540352242923")
        #expect(failed.errorCode == "131026")
        #expect(failed.errorText == "Message undeliverable: Message could not be delivered")
        #expect(failed.heraldMessageID == 43)
        #expect(n.inbound.isEmpty)
    }

    @Test("the stored payload is the status object, as jsonb-safe JSON with numbers kept as written")
    func metaPayload() throws {
        let n = try WhatsAppNotification.parse(Array(Self.metaStatuses.utf8))
        #expect(n.statuses[2].payload.contains(#""code":131026"#))
        #expect(n.statuses[0].payload.hasPrefix(#"{"id":"wamid."#))
        #expect(n.statuses[0].payload.contains(#""billable":true"#))
        // NUL, which jsonb refuses, is replaced; other control characters are escaped.
        let odd = #"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"1"},"statuses":[{"id":"w\u0000x","status":"sent","note":"a\u0001b\"c"}]}}]}]}"#
        let s = try WhatsAppNotification.parse(Array(odd.utf8)).statuses[0]
        #expect(s.messageID == "w\u{0}x")
        #expect(s.payload == #"{"id":"w\#u{FFFD}x","status":"sent","note":"a\u0001b\"c"}"#)
    }

    @Test("Meta incoming messages: the sender as E.164")
    func metaInbound() throws {
        let n = try WhatsAppNotification.parse(Array(Self.metaInbound.utf8))
        #expect(n.statuses.isEmpty)
        #expect(n.inbound.count == 1)
        #expect(n.inbound[0].phone == "+16505551234")
        #expect(n.inbound[0].timestamp == Date(timeIntervalSince1970: 1_749_416_383))
    }

    @Test("other webhook fields (template reviews) are ignored")
    func metaOtherFields() throws {
        let body = #"{"object":"whatsapp_business_account","entry":[{"id":"1","time":1,"changes":[{"field":"message_template_status_update","value":{"event":"APPROVED","message_template_id":1}}]}]}"#
        let n = try WhatsAppNotification.parse(Array(body.utf8))
        #expect(n.statuses.isEmpty && n.inbound.isEmpty && n.phoneNumberIDs.isEmpty)
    }

    @Test("malformed Meta bodies are refused", arguments: [
        "", "{", "[]", "null", #"{"entry":{}}"#, #"{"object":"page","entry":[]}"#,
        #"{"entry":[{"changes":[{"field":"messages","value":{"statuses":[]}}]}]}"#,
        #"{"entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"1"},"statuses":[{"status":"sent"}]}}]}]}"#,
        #"{"entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"1"},"statuses":{}}}]}]}"#,
        #"{"entry":[]} x"#, #"{"entry":[01]}"#, #"{"a":"\x"}"#, "{\"a\":\"\u{1}\"}",
    ])
    func metaMalformed(body: String) {
        #expect(throws: WebhookParseError.self) { try WhatsAppNotification.parse(Array(body.utf8)) }
    }

    @Test("deep nesting is refused without exhausting the stack")
    func deepNesting() {
        let body = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: WebhookParseError.self) { try WhatsAppNotification.parse(Array(body.utf8)) }
    }

    // MARK: Meta signature

    @Test("X-Hub-Signature-256: HMAC-SHA256 of the raw body with the app secret")
    func metaSignature() {
        let body = Array(#"{"object":"whatsapp_business_account","entry":[]}"#.utf8)
        // Computed independently (Python's hmac module).
        let golden = "sha256=d3e4f9da0ce6c71ab3dba55929b8eeeee2455349e534924ead19f98d143e904f"
        #expect(WebhookSignature.meta(body: body, appSecret: "app-secret") == golden)
        #expect(WebhookSignature.verifyMeta(header: golden, body: body, appSecret: "app-secret"))
        #expect(WebhookSignature.verifyMeta(header: golden.uppercased().replacingOccurrences(of: "SHA256=", with: "sha256="),
                                            body: body, appSecret: "app-secret"))
        #expect(!WebhookSignature.verifyMeta(header: golden, body: body, appSecret: "other-secret"))
        #expect(!WebhookSignature.verifyMeta(header: golden, body: body + [0x20], appSecret: "app-secret"))
        #expect(!WebhookSignature.verifyMeta(header: nil, body: body, appSecret: "app-secret"))
        #expect(!WebhookSignature.verifyMeta(header: "", body: body, appSecret: "app-secret"))
        #expect(!WebhookSignature.verifyMeta(header: String(golden.dropLast()), body: body, appSecret: "app-secret"))
        #expect(!WebhookSignature.verifyMeta(header: "sha1=" + golden.dropFirst(7), body: body, appSecret: "app-secret"))
        #expect(!WebhookSignature.verifyMeta(header: String(golden.dropLast()) + "g", body: body, appSecret: "app-secret"))
    }

    // MARK: Twilio

    @Test("X-Twilio-Signature: Twilio's documented example")
    func twilioDocumentedExample() {
        let params = [FormField("CallSid", "CA1234567890ABCDE"), FormField("Caller", "+12349013030"), FormField("Digits", "1234"),
                      FormField("From", "+12349013030"), FormField("To", "+18005551212")]
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2"
        #expect(WebhookSignature.twilio(url: url, parameters: params, authToken: "12345") == "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
        #expect(WebhookSignature.verifyTwilio(header: "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url: url, parameters: params.reversed(), authToken: "12345"))
    }

    @Test("X-Twilio-Signature over a status callback: every parameter, sorted; anything changed fails")
    func twilioSignature() {
        let url = "https://hooks.example.com/webhooks/twilio"
        let golden = "6cVv+I/zPffs1k3gYzkb74/Hp/A=" // Python's hmac module
        let params = Self.twilioUndelivered
        #expect(WebhookSignature.twilio(url: url, parameters: params, authToken: "auth-token") == golden)
        #expect(WebhookSignature.verifyTwilio(header: golden, url: url, parameters: params, authToken: "auth-token"))
        #expect(!WebhookSignature.verifyTwilio(header: golden, url: url, parameters: params, authToken: "other"))
        #expect(!WebhookSignature.verifyTwilio(header: golden, url: url + "/", parameters: params, authToken: "auth-token"))
        #expect(!WebhookSignature.verifyTwilio(header: golden, url: url, parameters: params + [FormField("Added", "1")], authToken: "auth-token"))
        #expect(!WebhookSignature.verifyTwilio(header: golden, url: url, parameters: Array(params.dropFirst()), authToken: "auth-token"))
        #expect(!WebhookSignature.verifyTwilio(header: nil, url: url, parameters: params, authToken: "auth-token"))
        #expect(!WebhookSignature.verifyTwilio(header: "not base64!", url: url, parameters: params, authToken: "auth-token"))
    }

    @Test("Twilio status callback: form decoding and the fields Herald reads")
    func twilioCallback() throws {
        let body = FormURLEncoded.encode(Self.twilioUndelivered)
        #expect(body.contains("To=%2B15558675310"))
        let c = try TwilioStatusCallback.parse(Array(body.utf8))
        #expect(c.parameters == Self.twilioUndelivered)
        #expect(c.accountSID == "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX")
        #expect(c.messageSID == "SMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX")
        #expect(c.messageStatus == "undelivered")
        #expect(c.receipt == .failed)
        #expect(c.errorCode == "30003")
        #expect(c.payload.hasPrefix(#"{"ErrorCode":"30003","SmsSid":"#))
        let delivered = try TwilioStatusCallback.parse(Array("AccountSid=AC1&MessageSid=SM1&MessageStatus=delivered&ErrorCode=".utf8))
        #expect(delivered.receipt == .delivered)
        #expect(delivered.errorCode == nil)
        #expect(try TwilioStatusCallback.parse(Array("AccountSid=AC1&SmsSid=SM1&SmsStatus=sent".utf8)).receipt == .sent)
        #expect(try TwilioStatusCallback.parse(Array("AccountSid=AC1&MessageSid=SM1&MessageStatus=queued".utf8)).receipt == nil)
    }

    @Test("form decoding: + is a space, %XX is UTF-8; broken escapes and missing fields are refused")
    func formDecoding() throws {
        let fields = try FormURLEncoded.parse(Array("Body=Hello+w%C3%B6rld%21&Empty=&Flag".utf8))
        #expect(fields == [FormField("Body", "Hello wörld!"), FormField("Empty", ""), FormField("Flag", "")])
        #expect(throws: WebhookParseError.self) { try FormURLEncoded.parse(Array("a=%G1".utf8)) }
        #expect(throws: WebhookParseError.self) { try FormURLEncoded.parse(Array("a=%4".utf8)) }
        #expect(throws: WebhookParseError.self) { try TwilioStatusCallback.parse(Array("MessageSid=SM1&MessageStatus=sent".utf8)) }
        #expect(throws: WebhookParseError.self) { try TwilioStatusCallback.parse(Array("AccountSid=AC1&MessageStatus=sent".utf8)) }
        #expect(throws: WebhookParseError.self) { try TwilioStatusCallback.parse(Array("AccountSid=AC1&MessageSid=SM1".utf8)) }
    }

    @Test("verify tokens compare in constant time and exactly")
    func tokens() {
        #expect(WebhookSignature.constantTimeEquals("token", "token"))
        #expect(!WebhookSignature.constantTimeEquals("token", "tokem"))
        #expect(!WebhookSignature.constantTimeEquals("token", "token2"))
        #expect(!WebhookSignature.constantTimeEquals("", "x"))
    }
}
