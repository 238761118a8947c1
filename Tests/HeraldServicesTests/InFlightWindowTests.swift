@testable import HeraldServices
import HeraldProviders
@testable import HeraldStore
import Testing

@Suite("In-flight window: the worker's sends in flight, overall, per channel, and for mails with attachments")
struct InFlightWindowTests {
    static let environment = ProviderEnvironment(variables: ["HERALD_ALLOWED_HOSTS": "127.0.0.1"])

    /// An email broadcast on a local SMTP channel limited to `rate` msg/s.
    static func mailBroadcast(rate: Double, burst: Int) -> ActiveBroadcast {
        ActiveBroadcast(id: 1, channelID: 1, channelName: "mail", kind: "email", provider: "smtp",
                        settingsJSON: #"{"url":"smtp://127.0.0.1:2525","from":"news@example.com"}"#,
                        ratePerSecond: rate, burst: burst, subject: "Hi", body: "Hello",
                        htmlBody: nil, templateName: nil, templateLanguage: nil, templateParams: [])
    }

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

    @Test("unless configured, one channel may hold 4,096, or all but a ninth of a wider window; the other channels keep the rest",
          arguments: [(400, 400), (4608, 4096), (5000, 4445), (9216, 8192)])
    func defaultChannelShare(maxInFlight: Int, oneChannel: Int) {
        var config = WorkerConfiguration(databaseURL: nil, environment: [:])
        config.maxInFlight = maxInFlight
        let window = InFlightWindow(limit: config.maxInFlight, perChannelLimit: config.perChannelLimit)
        plainHTTP(window, channels: 1, 2)
        #expect(window.reserve(100_000, channel: 1) == oneChannel)
        #expect(window.reserve(100_000, channel: 2) == maxInFlight - oneChannel)
    }

    @Test("a configured per-channel limit stands whatever the window")
    func configuredChannelShare() {
        var config = WorkerConfiguration(databaseURL: nil, environment: [:])
        config.maxInFlight = 9216
        config.maxInFlightPerChannel = 4096
        let window = InFlightWindow(limit: config.maxInFlight, perChannelLimit: config.perChannelLimit)
        plainHTTP(window, channels: 1)
        #expect(window.reserve(100_000, channel: 1) == 4096)
    }

    /// Marks `channels` as sending over plain HTTP, so the TLS connections' share does not apply.
    private func plainHTTP(_ window: InFlightWindow, channels: Int64...) {
        for channel in channels { window.noteSends(of: channel, holdTLSConnectionEach: false) }
    }

    @Test("a channel holds at most its share of the TLS connections until its sends are seen not to need one each")
    func tlsConnectionShare() {
        // A window of 64, 56 of it for one channel, 16 TLS connections: the others keep 2 of them.
        let window = InFlightWindow(limit: 64, perChannelLimit: 56, tlsConnections: 16)
        #expect(window.tlsConnectionLimitPerChannel == 14)
        #expect(window.reserve(100, channel: 1) == 14, "nothing submitted yet: the TLS share")
        window.noteSends(of: 1, holdTLSConnectionEach: true)
        #expect(window.reserve(100, channel: 1) == 0)
        window.noteSends(of: 2, holdTLSConnectionEach: false)
        #expect(window.reserve(100, channel: 2) == 50, "plain HTTP or HTTP/2: the window's own share (56, 14 taken)")
        window.release(50, channel: 2)
        window.noteSends(of: 1, holdTLSConnectionEach: false)
        #expect(window.reserve(100, channel: 1) == 42, "now over HTTP/2: up to 56")
        window.noteSends(of: 1, holdTLSConnectionEach: true)
        window.release(50, channel: 1)
        #expect(window.reserve(100, channel: 1) == 8, "back to the TLS share of 14 (6 in flight)")
    }

    @Test("the others keep what the requested window left them, up to an eighth of the pool")
    func channelShares() {
        #expect(InFlightWindow.channelShare(perChannel: 4096, requested: 4608, kept: 1024) == 896)
        #expect(InFlightWindow.channelShare(perChannel: 4096, requested: 4608, kept: 4608) == 4096)
        #expect(InFlightWindow.channelShare(perChannel: 100, requested: 4608, kept: 1024) == 100)
        #expect(InFlightWindow.channelShare(perChannel: 4608, requested: 4608, kept: 1024) == 1024, "no share kept by choice")
        #expect(InFlightWindow.channelShare(perChannel: 4096, requested: 4608, kept: 3) == 3, "an eighth of 3 is nothing")
        #expect(InFlightWindow(limit: 4608, perChannelLimit: 4096, tlsConnections: 1024).tlsConnectionLimitPerChannel == 896)
        #expect(InFlightWindow(limit: 512, perChannelLimit: 448, tlsConnections: 1024).tlsConnectionLimitPerChannel == 448,
                "a pool larger than the window is the window")
    }

    @Test("an email broadcast with 10 MiB of attachments keeps few mails in flight; one without keeps the usual window")
    func attachmentsBoundTheWindow() throws {
        var info = Self.mailBroadcast(rate: 100, burst: 10)
        #expect(try PreparedBroadcast(info, environment: Self.environment).inFlightLimit == nil)

        info.media = #"[{"type":"document","url":"https://example.com/big.pdf"}]"#
        let big = BroadcastAttachment(position: 0, url: "https://example.com/big.pdf", filename: "big.pdf",
                                      contentType: "application/pdf", bytes: [UInt8](repeating: 7, count: 10 << 20))
        let limit = try #require(try PreparedBroadcast(info, attachments: [big], environment: Self.environment).inFlightLimit)
        // 10 MiB encode to about 13.8 MB per mail; 64 MiB of them in flight: 4.
        #expect(limit == 4)
    }

    @Test("a rate-limited channel holds its burst plus the latency allowance of its rate; attachments can lower that")
    func rateBoundsTheChannel() throws {
        var info = Self.mailBroadcast(rate: 20, burst: 20)
        let limit = { (broadcast: PreparedBroadcast, seconds: Double) in
            ChannelClaimer.inFlightLimit(of: broadcast, latencyAllowance: .milliseconds(Int64(seconds * 1000)))
        }
        var prepared = try PreparedBroadcast(info, environment: Self.environment)
        #expect(limit(prepared, 5) == 120, "20 + 20/s × 5 s")
        info.ratePerSecond = 2.5
        info.burst = 1
        prepared = try PreparedBroadcast(info, environment: Self.environment)
        #expect(limit(prepared, 2) == 6, "1 + 2.5/s × 2 s")
        info.ratePerSecond = 1e300
        prepared = try PreparedBroadcast(info, environment: Self.environment)
        #expect(limit(prepared, 5) == nil, "no effective limit: the window's own")

        info.media = #"[{"type":"document","url":"https://example.com/big.pdf"}]"#
        let big = BroadcastAttachment(position: 0, url: "https://example.com/big.pdf", filename: "big.pdf",
                                      contentType: "application/pdf", bytes: [UInt8](repeating: 7, count: 10 << 20))
        prepared = try PreparedBroadcast(info, attachments: [big], environment: Self.environment)
        #expect(limit(prepared, 5) == 4, "the attachments' limit")
        info.ratePerSecond = 0.2
        prepared = try PreparedBroadcast(info, attachments: [big], environment: Self.environment)
        #expect(limit(prepared, 5) == 2, "1 + 0.2/s × 5 s, below 4")
    }
}
