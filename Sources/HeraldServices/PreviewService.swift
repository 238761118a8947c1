import Foundation
import HeraldCore
import HeraldPostgres
import HeraldProviders
import HeraldStore

/// Builds a ``BroadcastPreview``: `herald preview`'s dry run of any broadcast, drafts included.
///
/// Everything runs in one `READ ONLY` transaction (PreviewStore), so nothing is written and every
/// figure is taken at one instant. The audience is read chunk by chunk over contact ids with the
/// expansion's own SQL rules (``SchedulerStore/skipReasonSQL(_:)``, the same zone and window
/// functions), so the figures are those the real send produces as long as nothing changes in
/// between; rendering and segment counting are the worker's (``CompiledTemplate``, ``SMSSegments``).
public enum PreviewService {
    /// Contact ids per chunk read, as the scheduler's default expansion chunk.
    public static let chunk: Int64 = SchedulerConfiguration.defaultExpansionChunk
    /// Days of send windows the duration estimate looks ahead.
    public static let horizonDays = 30

    /// - Returns: nil when no broadcast has this id.
    /// - Parameter environment: the secrets the channel names, read as the scheduler reads them
    ///   (preview reports the scheduler's validation errors).
    public static func preview(_ id: Int64, samples sampleCount: Int, on connection: PostgresConnection,
                               environment: ProviderEnvironment = ProviderEnvironment(variables: ProcessInfo.processInfo.environment)) async throws -> BroadcastPreview? {
        let store = PreviewStore(connection)
        try await store.begin()
        do {
            let result = try await build(id, samples: sampleCount, store: store, environment: environment)
            try await store.end()
            return result
        } catch {
            try? await store.end()
            throw error
        }
    }

    private static func build(_ id: Int64, samples sampleCount: Int, store: PreviewStore,
                              environment: ProviderEnvironment) async throws -> BroadcastPreview? {
        let scheduler = SchedulerStore(store.connection)
        guard let definition = try await scheduler.definition(of: id, statuses: nil) else { return nil }
        let status = try await store.connection.query("SELECT status FROM herald.broadcasts WHERE id = \(id)")[0].decode(String.self, "status")
        var preview = BroadcastPreview(
            broadcastID: id, name: definition.name, status: status, channel: definition.channel?.name, kind: definition.channel?.kind,
            errors: [], warnings: [], audience: 0, eligible: 0,
            skipped: ["opted_out": 0, "invalid_address": 0, "outside_whatsapp_window": 0], sms: nil, cost: nil,
            timing: .init(ratePerSecond: nil, dailyLimit: nil, sendWindow: definition.timing.sendWindow,
                          localSendAt: definition.timing.localSendAt, timeZone: definition.timing.timeZone ?? "UTC",
                          heldByWindow: 0, firstSendAt: nil, lastSendAt: nil, estimatedDurationSeconds: nil),
            samples: [], longest: nil)
        if let error = SchedulerValidation.check(definition, environment: environment) ?? DeliveryTimingValidation.check(definition.timing) {
            preview.errors.append(error)
        }
        // An unknown kind is among the errors already (and the schema's CHECK forbids it).
        guard let channel = definition.channel, let kind = ChannelKind(rawValue: channel.kind) else { return preview }
        let settings = (try? JSONSerialization.jsonObject(with: Data(channel.settingsJSON.utf8))) as? [String: Any] ?? [:]
        preview.timing.ratePerSecond = try await store.ratePerSecond(channelID: channel.id)
        preview.timing.dailyLimit = (settings["daily_limit"] as? NSNumber)?.intValue

        let eligibility = SchedulerStore.Eligibility(kind: kind, hasTemplate: definition.templateID != nil)
        let renderer = PreviewRenderer(definition)
        var sms = BroadcastPreview.SMS(segments: 0, gsm7Messages: 0, gsm7Segments: 0, ucs2Messages: 0, ucs2Segments: 0)
        var zoneCounts: [String: Int] = [:]
        var cursor: Int64?
        while let low = try await scheduler.nextAudienceContact(of: id, after: cursor) {
            let (sum, overflow) = low.addingReportingOverflow(chunk - 1)
            let high = overflow ? Int64.max : sum
            for candidate in try await store.candidates(of: id, eligibility: eligibility, low: low, high: high,
                                                        attributeKeys: renderer.attributeKeys) {
                preview.audience += 1
                if let reason = candidate.skipReason {
                    preview.skipped[reason, default: 0] += 1
                    continue
                }
                preview.eligible += 1
                zoneCounts[candidate.zoneKey, default: 0] += 1
                guard let sample = renderer.render(candidate, kind: channel.kind) else { continue }
                if let segments = sample.segments {
                    sms.segments += segments
                    if sample.encoding == "gsm7" { sms.gsm7Messages += 1; sms.gsm7Segments += segments }
                    else { sms.ucs2Messages += 1; sms.ucs2Segments += segments }
                }
                if preview.samples.count < sampleCount { preview.samples.append(sample) }
                if preview.longest.map({ Self.longer(sample, than: $0) }) ?? true { preview.longest = sample }
            }
            cursor = high
            if high == Int64.max { break }
        }
        if preview.errors.isEmpty, preview.audience == 0 { preview.errors.append(SchedulerValidation.emptyAudience) }
        if kind == .sms { preview.sms = sms }
        if sampleCount == 0 { preview.longest = nil }

        let perMessage = (settings["price_per_message"] as? NSNumber)?.doubleValue
        let perSegment = (settings["price_per_segment"] as? NSNumber)?.doubleValue
        if perMessage != nil || perSegment != nil {
            let segments = kind == .sms ? sms.segments : preview.eligible
            preview.cost = .init(pricePerMessage: perMessage, pricePerSegment: perSegment,
                                 total: (perMessage ?? 0) * Double(preview.eligible) + (perSegment ?? 0) * Double(segments))
        }

        // Timing: per zone, the instant expansion would give its jobs, then the windows from there.
        guard definition.timing.timeZoneKnown, !zoneCounts.isEmpty else { return preview }
        let timings = try await store.zoneTimings(of: id, zoneKeys: Array(zoneCounts.keys))
        let unknown = timings.filter { !$0.known }
        if !unknown.isEmpty {
            var zones = UnknownTimeZones()
            for t in unknown { zones.add(zoneCounts[t.zoneKey] ?? 0, example: t.zoneKey) }
            if let warning = zones.warning { preview.warnings.append(warning) }
        }
        let now = try await store.now()
        var windows: [String: [(opens: Date, closes: Date)]] = [:]
        if let window = definition.timing.sendWindow {
            let zones = Array(Set(timings.map(\.zone)))
            windows = try await store.windowIntervals(window, zones: zones, from: now, days: horizonDays)
        }
        var groups: [DeliveryEstimate.Group] = []
        for t in timings {
            let count = zoneCounts[t.zoneKey] ?? 0
            if t.firstRunAt > t.dueAt { preview.timing.heldByWindow += count }
            let due = max(t.dueAt, now)
            let ranges = definition.timing.sendWindow == nil ? nil : (windows[t.zone] ?? []).map { $0.opens..<$0.closes }
            groups.append(.init(messages: count, dueAt: due, windows: ranges))
        }
        if let rate = preview.timing.ratePerSecond {
            let estimate = DeliveryEstimate.estimate(groups: groups, ratePerSecond: rate, dailyLimit: preview.timing.dailyLimit)
            preview.timing.firstSendAt = estimate.firstSendAt
            preview.timing.lastSendAt = estimate.lastSendAt
            preview.timing.estimatedDurationSeconds = estimate.lastSendAt.map { $0.timeIntervalSince(now) }
        }
        return preview
    }

    /// The longer message: more SMS segments, else more characters.
    static func longer(_ a: BroadcastPreview.Sample, than b: BroadcastPreview.Sample) -> Bool {
        if let sa = a.segments, let sb = b.segments, sa != sb { return sa > sb }
        return a.text.count + (a.subject?.count ?? 0) > b.text.count + (b.subject?.count ?? 0)
    }
}

/// Renders preview samples as the worker would render the messages.
struct PreviewRenderer {
    let subject: CompiledTemplate?
    let body: CompiledTemplate?
    let templateBody: String?
    let params: [CompiledTemplate]
    let attributeKeys: [String]

    init(_ d: SchedulerStore.BroadcastDefinition) {
        func compile(_ text: String?) -> CompiledTemplate? { text.flatMap { try? CompiledTemplate.compile($0) } }
        subject = compile(d.subject)
        body = compile(d.body ?? d.htmlBody)
        templateBody = d.template?.body
        let raw = d.templateParams.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String] } ?? []
        params = raw.compactMap { try? CompiledTemplate.compile($0) }
        var keys: [String] = []
        for t in [subject, body].compactMap({ $0 }) + params {
            for k in t.attributeKeys where !keys.contains(k) { keys.append(k) }
        }
        attributeKeys = keys
    }

    /// Nil when the broadcast cannot be rendered (validation reports why).
    func render(_ c: PreviewStore.Candidate, kind: String) -> BroadcastPreview.Sample? {
        let contact = Contact(id: c.contactID, firstName: c.firstName, lastName: c.lastName, phone: c.phone,
                              email: c.email, attributes: c.attributes)
        switch kind {
        case "sms":
            guard let body else { return nil }
            let text = body.render(contact)
            return .init(contactID: c.contactID, address: c.address, subject: nil, text: text,
                         segments: SMSSegments.count(text), encoding: SMSSegments.isGSM7(text) ? "gsm7" : "ucs2")
        case "whatsapp":
            if var text = templateBody {
                for (i, p) in params.enumerated() { text = text.replacingOccurrences(of: "{{\(i + 1)}}", with: p.render(contact)) }
                return .init(contactID: c.contactID, address: c.address, subject: nil, text: text, segments: nil, encoding: nil)
            }
            guard let body else { return nil }
            return .init(contactID: c.contactID, address: c.address, subject: nil, text: body.render(contact), segments: nil, encoding: nil)
        case "email":
            guard let body else { return nil }
            return .init(contactID: c.contactID, address: c.address, subject: subject?.render(contact), text: body.render(contact),
                         segments: nil, encoding: nil)
        default:
            return nil
        }
    }
}
