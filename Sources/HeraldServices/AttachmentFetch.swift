import Foundation
import HeraldCore
import HeraldProviders
import HeraldStore
import HeraldTransport

/// Fetches an email broadcast's attachments once, when the scheduler starts it, and stores them
/// (`herald.broadcast_attachments`) for every worker to load once.
///
/// **Once per broadcast.** The files are fetched before the first message exists, so a broken
/// link fails the broadcast (`error` names the item, the URL and the reason) and never half a
/// mail goes out; every mail then carries the same bytes. A broadcast whose files are already
/// stored (a new leader resuming an interrupted expansion) is not fetched again, and an edit of
/// a started broadcast's media is rejected (``checkEdit(_:store:environment:)``).
///
/// **Bounded.** `max_attachment_bytes` (the channel setting, 10 MiB by default) caps all the
/// files together; each download stops as soon as it would exceed what is left. All downloads
/// together must end within ``timeout``: the scheduler's leader session ends when it idles for
/// 10 s, and it idles while it waits here.
enum AttachmentFetch {
    /// The time all of a broadcast's downloads may take together.
    static let timeout: Duration = .seconds(8)

    /// Fetches and stores the attachments of `definition` when it is an email broadcast with
    /// media and they are not stored yet.
    ///
    /// - Returns: nil when there is nothing to do or it was done; else the reason the broadcast
    ///   fails, for `broadcasts.error`.
    /// - Throws: Database errors only.
    static func prepare(_ definition: SchedulerStore.BroadcastDefinition, store: SchedulerStore,
                        environment: ProviderEnvironment, timeout: Duration = timeout) async throws -> String? {
        let urls: [String]
        let limit: Int
        let items: [RichContent.Media]
        switch plan(definition, environment: environment) {
        case .none: return nil
        case .problem(let problem): return problem
        case .fetch(let media, let max): (items, limit, urls) = (media, max, media.compactMap(\.constantURL))
        }
        let attachments = AttachmentStore()
        if try await attachments.urls(of: definition.id, on: store.connection) == urls { return nil }
        let files: [BroadcastAttachment]
        do {
            files = try await fetch(items, maxBytes: limit, timeout: timeout)
        } catch {
            return error.description
        }
        try await attachments.replace(definition.id, with: files, on: store.connection)
        return nil
    }

    /// Checks an edit of a `sending` or `paused` email broadcast: its attachments were fetched
    /// when it started and every mail carries those, so its media may not change.
    ///
    /// - Returns: nil when the media is unchanged (or the broadcast is not an email); else the
    ///   reason the edit is rejected.
    static func checkEdit(_ definition: SchedulerStore.BroadcastDefinition, store: SchedulerStore,
                          environment: ProviderEnvironment) async throws -> String? {
        guard let channel = definition.channel, channel.kind == ChannelKind.email.rawValue else { return nil }
        var urls: [String] = []
        if case .fetch(let media, _) = plan(definition, environment: environment) { urls = media.compactMap(\.constantURL) }
        guard try await AttachmentStore().urls(of: definition.id, on: store.connection) != urls else { return nil }
        return "the media of an email broadcast cannot change once it has started (its attachments were fetched then): cancel it and schedule a new one"
    }

    private enum Plan {
        case none
        case problem(String)
        case fetch([RichContent.Media], maxBytes: Int)
    }

    private static func plan(_ definition: SchedulerStore.BroadcastDefinition, environment: ProviderEnvironment) -> Plan {
        guard let channel = definition.channel, channel.kind == ChannelKind.email.rawValue, definition.mediaCount > 0 else {
            return .none
        }
        do {
            // Validation passed just before: these fail only if the rows changed meanwhile.
            let configured = try BroadcastProblem.configure(channel: channel.name, provider: channel.provider, kind: channel.kind,
                                                            settingsJSON: channel.settingsJSON, registry: .standard,
                                                            environment: environment)
            let limit = (configured as? SMTPChannel)?.settings.maxAttachmentBytes ?? SMTPSettings.defaultMaxAttachmentBytes
            let content = try RichContent.make(kind: .email, template: nil, headerParams: nil, buttonParams: nil,
                                               media: definition.media, environment: environment)
            return .fetch(content.media, maxBytes: limit)
        } catch {
            return .problem(error.description)
        }
    }

    /// Downloads each item, in order, within `maxBytes` together and `timeout` together.
    ///
    /// - Throws: ``BroadcastProblem`` naming the item, its URL and the reason, e.g.
    ///   `media[0]: attachment https://cdn.example/a.pdf is 12.3 MiB; max_attachment_bytes is 10 MiB`.
    static func fetch(_ items: [RichContent.Media], maxBytes: Int, timeout: Duration) async throws(BroadcastProblem) -> [BroadcastAttachment] {
        let deadline = ContinuousClock.now + timeout
        var files: [BroadcastAttachment] = []
        var used = 0
        for (index, item) in items.enumerated() {
            guard let url = item.constantURL else {
                throw BroadcastProblem("media[\(index)] has no url an email attachment can be fetched from")
            }
            let left = maxBytes - used
            let limit = "max_attachment_bytes is \(MediaDownload.mebibytes(Int64(maxBytes)))"
            let download: DownloadedMedia
            do throws(MediaDownloadError) {
                let remaining = deadline - ContinuousClock.now
                guard remaining > .zero else {
                    throw MediaDownloadError(.unreachable, "could not be fetched: the attachments took longer than \(timeout) together")
                }
                download = try await MediaDownload.fetch(url, maxBytes: left, timeout: remaining)
            } catch {
                switch error.code {
                case .tooLarge where index == 0 || used == 0:
                    throw BroadcastProblem("media[\(index)]: attachment \(url) \(error.description); \(limit)")
                case .tooLarge:
                    throw BroadcastProblem("media[\(index)]: attachment \(url) does not fit in the \(MediaDownload.mebibytes(Int64(left))) left after the items before it; \(limit) for all attachments together")
                default:
                    throw BroadcastProblem("media[\(index)]: attachment \(url) \(error.description)")
                }
            }
            used += download.bytes.count
            let name = item.filename.map(MailAttachment.sanitizedFilename).flatMap { $0.isEmpty ? nil : $0 }
                ?? MailAttachment.filename(fromURL: url)
            files.append(BroadcastAttachment(position: index, url: url, filename: name,
                                             contentType: MailAttachment.contentType(answered: download.contentType, filename: name),
                                             bytes: download.bytes))
        }
        return files
    }
}
