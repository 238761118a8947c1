@testable import HeraldServices
import HeraldProviders
@testable import HeraldStore
import Testing

@Suite("In-flight window: the worker's sends in flight, overall, per channel, and for mails with attachments")
struct InFlightWindowTests {
    @Test("a claim gets no more than the window, the channel's share, and a claim's own lower limit allow")
    func limits() {
        let window = InFlightWindow(limit: 10, perChannelLimit: 6)
        #expect(window.reserve(8, channel: 1) == 6)
        #expect(window.reserve(8, channel: 2) == 4)
        #expect(window.reserve(1, channel: 3) == 0)
        window.release(6, channel: 1)
        #expect(window.reserve(8, channel: 1, channelLimit: 2) == 2)
        #expect(window.reserve(8, channel: 1, channelLimit: 2) == 0, "the channel holds its 2 already")
        window.release(1, channel: 1)
        #expect(window.reserve(8, channel: 1, channelLimit: 2) == 1)
    }

    @Test("an email broadcast with 10 MiB of attachments keeps few mails in flight; one without keeps the usual window")
    func attachmentsBoundTheWindow() throws {
        let settings = #"{"url":"smtp://127.0.0.1:2525","from":"news@example.com"}"#
        var info = ActiveBroadcast(id: 1, channelID: 1, channelName: "mail", kind: "email", provider: "smtp",
                                   settingsJSON: settings, ratePerSecond: 100, burst: 10, subject: "Hi", body: "Hello",
                                   htmlBody: nil, templateName: nil, templateLanguage: nil, templateParams: [])
        let environment = ProviderEnvironment(variables: ["HERALD_ALLOWED_HOSTS": "127.0.0.1"])
        #expect(try PreparedBroadcast(info, environment: environment).inFlightLimit == nil)

        info.media = #"[{"type":"document","url":"https://example.com/big.pdf"}]"#
        let big = BroadcastAttachment(position: 0, url: "https://example.com/big.pdf", filename: "big.pdf",
                                      contentType: "application/pdf", bytes: [UInt8](repeating: 7, count: 10 << 20))
        let limit = try #require(try PreparedBroadcast(info, attachments: [big], environment: environment).inFlightLimit)
        // 10 MiB encode to about 13.8 MB per mail; 64 MiB of them in flight: 4.
        #expect(limit == 4)
    }
}
