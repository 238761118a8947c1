import Foundation
@testable import HeraldCore
import HeraldTransport
import Testing
@testable import HeraldProviders

/// Meta's template list (`GET /{waba_id}/message_templates`), its template status notifications,
/// and the send answers that mean the template was paused or disabled: no network, Meta's wire
/// format as documented.
@Suite("WhatsApp templates: list, status notifications, paused-template answers")
struct WhatsAppTemplateListTests {
    let settings = WhatsAppCloudSettings(baseURL: "https://graph.facebook.com/v21.0", phoneNumberID: "106540352242922",
                                         accessTokenEnv: "WA_TOKEN", wabaID: "102290129340398")
    let credentials = WhatsAppCloudCredentials(accessToken: "EAAG-token")

    static func response(_ status: Int, _ body: String) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: Array(body.utf8))
    }

    @Test("the list request: GET with the fields, a page size, the bearer token, and the after cursor percent-encoded")
    func request() {
        let first = WhatsAppTemplateList.request(settings: settings, credentials: credentials, wabaID: "102290129340398",
                                                 after: nil, timeout: .seconds(5))
        #expect(first.method == "GET")
        #expect(first.url == "https://graph.facebook.com/v21.0/102290129340398/message_templates?fields=name,language,status,category,components,id,rejected_reason&limit=100")
        #expect(first.headers.map(\.name) == ["Authorization"])
        #expect(first.headers.first?.value == "Bearer EAAG-token")
        #expect(first.body.isEmpty)
        let next = WhatsAppTemplateList.request(settings: settings, credentials: credentials, wabaID: "102290129340398",
                                                after: "QVFIUk+/x=", timeout: .seconds(5))
        #expect(next.url.hasSuffix("&limit=100&after=QVFIUk%2B%2Fx%3D"))
    }

    @Test("a page: every component read into the row's columns, Meta's statuses mapped, the after cursor only while paging.next is given")
    func page() throws {
        let body = #"""
        {"data":[
          {"name":"spring_sale","components":[
             {"type":"HEADER","format":"IMAGE","example":{"header_handle":["https://x"]}},
             {"type":"BODY","text":"Hi {{1}}, {{2}} off"},
             {"type":"FOOTER","text":"Reply STOP"},
             {"type":"BUTTONS","buttons":[{"type":"URL","text":"Shop","url":"https://shop.example/p/{{1}}"},
                                          {"type":"QUICK_REPLY","text":"Stop"},
                                          {"type":"PHONE_NUMBER","text":"Call","phone_number":"+15550001"},
                                          {"type":"COPY_CODE","text":"Copy offer code"}]}],
           "language":"en_US","status":"APPROVED","category":"MARKETING","id":"1407680676729941"},
          {"name":"welcome","components":[{"type":"HEADER","format":"TEXT","text":"Hello {{1}}"},{"type":"BODY","text":"Welcome"}],
           "language":"pt_BR","status":"REJECTED","category":"UTILITY","rejected_reason":"INVALID_FORMAT","id":"2"},
          {"name":"in_appeal","components":[],"language":"en","status":"IN_APPEAL","category":"MARKETING","rejected_reason":"NONE","id":"3"},
          {"name":"going","components":[],"language":"en","status":"PENDING_DELETION","category":"SOMETHING_NEW","id":"4"},
          {"name":"Bad Name","components":[],"language":"en","status":"APPROVED","id":"5"}],
         "paging":{"cursors":{"before":"QVFIUa","after":"QVFIUb"},"next":"https://graph.facebook.com/v21.0/1/message_templates?after=QVFIUb"}}
        """#
        let page = try WhatsAppTemplateList.parse(Self.response(200, body))
        #expect(page.after == "QVFIUb")
        #expect(page.skipped == ["Bad Name (en): name or language not as Meta spells them"])
        #expect(page.templates == [
            MetaTemplate(id: "1407680676729941", name: "spring_sale", language: "en_US", status: .approved, category: "marketing",
                         body: "Hi {{1}}, {{2}} off", headerFormat: .image, headerText: nil,
                         buttonsJSON: #"[{"type":"url","text":"Shop","url":"https://shop.example/p/{{1}}"},{"type":"quick_reply","text":"Stop"},{"type":"phone_number","text":"Call","phone_number":"+15550001"},{"type":"copy_code","text":"Copy offer code"}]"#),
            MetaTemplate(id: "2", name: "welcome", language: "pt_BR", status: .rejected, category: "utility", body: "Welcome",
                         headerFormat: .text, headerText: "Hello {{1}}", reason: "INVALID_FORMAT"),
            MetaTemplate(id: "3", name: "in_appeal", language: "en", status: .pending, category: "marketing"),
            MetaTemplate(id: "4", name: "going", language: "en", status: .disabled, category: nil),
        ])
        let last = try WhatsAppTemplateList.parse(Self.response(200, #"{"data":[],"paging":{"cursors":{"before":"a","after":"b"}}}"#))
        #expect(last.after == nil)
        #expect(last.templates.isEmpty)
    }

    @Test("an error answer becomes Meta's own message and code; an answer without data says so")
    func errors() {
        #expect(throws: TemplateListError("Meta answered 401: Invalid OAuth access token - Cannot parse access token, code 190")) {
            try WhatsAppTemplateList.parse(Self.response(401, #"{"error":{"message":"Invalid OAuth access token - Cannot parse access token","type":"OAuthException","code":190,"fbtrace_id":"A"}}"#))
        }
        #expect(throws: TemplateListError("Meta's answer has no \"data\" array of templates")) {
            try WhatsAppTemplateList.parse(Self.response(200, #"{"templates":[]}"#))
        }
        #expect(throws: TemplateListError("Meta answered 502: Bad gateway")) {
            try WhatsAppTemplateList.parse(HTTPResponse(status: 502, body: Array("Bad gateway".utf8)))
        }
    }

    @Test("waba_id is read from the settings and must be digits")
    func wabaSetting() throws {
        let ok = try WhatsAppCloudSettings(SettingsReader(json: #"{"phone_number_id":"1","access_token_env":"T","waba_id":" 42 "}"#))
        #expect(ok.wabaID == "42")
        let none = try WhatsAppCloudSettings(SettingsReader(json: #"{"phone_number_id":"1","access_token_env":"T"}"#))
        #expect(none.wabaID == nil)
        #expect(throws: ChannelConfigError(setting: "waba_id", "must be Meta's numeric WhatsApp Business Account id (digits only)")) {
            try WhatsAppCloudSettings(SettingsReader(json: #"{"phone_number_id":"1","access_token_env":"T","waba_id":"../me"}"#))
        }
    }

    @Test("status notification: each event mapped as the contract says, the reason kept unless NONE, large ids exact, other fields ignored")
    func statusNotifications() {
        let body = #"""
        {"object":"whatsapp_business_account","entry":[{"id":"102290129340398","time":1,"changes":[
          {"field":"message_template_status_update","value":{"event":"APPROVED","message_template_id":12345678901234567,"message_template_name":"a","message_template_language":"en_US","reason":"NONE"}},
          {"field":"message_template_status_update","value":{"event":"REJECTED","message_template_id":2,"message_template_name":"b","message_template_language":"en","reason":"INCORRECT_CATEGORY"}},
          {"field":"message_template_status_update","value":{"event":"PAUSED","message_template_id":3,"message_template_name":"c","message_template_language":"en","reason":null,"other_info":{"title":"FIRST_PAUSE","description":"Paused for 3 hours: low quality"}}},
          {"field":"message_template_status_update","value":{"event":"DISABLED","message_template_id":4,"message_template_name":"d","message_template_language":"en","reason":"NONE"}},
          {"field":"message_template_status_update","value":{"event":"PENDING","message_template_id":5,"message_template_name":"e","message_template_language":"en"}},
          {"field":"message_template_status_update","value":{"event":"IN_APPEAL","message_template_id":6,"message_template_name":"f","message_template_language":"en"}},
          {"field":"message_template_status_update","value":{"event":"FLAGGED","message_template_id":7,"message_template_name":"g","message_template_language":"en"}},
          {"field":"messages","value":{"metadata":{"phone_number_id":"1"},"statuses":[]}}]}]}
        """#
        let updates = WhatsAppTemplateStatusUpdate.parse(Array(body.utf8))
        #expect(updates.map(\.status) == [.approved, .rejected, .paused, .disabled, .pending, .pending])
        #expect(updates.map(\.templateID) == ["12345678901234567", "2", "3", "4", "5", "6"])
        #expect(updates.map(\.reason) == [nil, "INCORRECT_CATEGORY", "Paused for 3 hours: low quality", nil, nil, nil])
        #expect(Set(updates.map(\.wabaID)) == ["102290129340398"])
        #expect(updates[0].name == "a" && updates[0].language == "en_US")
    }

    @Test("132015 and 132016 are retries (the message goes back; the broadcast pauses), not permanent failures")
    func pausedTemplateAnswers() {
        for code in [132015, 132016] {
            let answer = Self.response(400, #"{"error":{"message":"(#\#(code)) Template is Paused","type":"OAuthException","code":\#(code),"error_data":{"messaging_product":"whatsapp","details":"Template is paused due to low quality"},"fbtrace_id":"A"}}"#)
            let outcome = WhatsAppCloud.classify(answer)
            guard case .retry(let c, let message, _, let ambiguous, let rateLimited) = outcome else {
                Issue.record("\(code) gave \(outcome)")
                continue
            }
            #expect(c == String(code))
            #expect(message.contains("Template is paused due to low quality"))
            #expect(!ambiguous && !rateLimited)
        }
    }
}
