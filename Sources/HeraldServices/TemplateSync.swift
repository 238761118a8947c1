import Foundation
import HeraldCore
import HeraldPostgres
import HeraldProviders
import HeraldStore
import HeraldTransport
import Logging

/// Brings `templates` in step with the WhatsApp Business Accounts' template lists at Meta
/// (contract section 4): `herald templates sync` runs it once, the scheduler's leader every
/// ``TemplateSyncSchedule/interval``.
///
/// For each channel it reads `GET {base_url}/{waba_id}/message_templates` page by page with
/// the channel's own access token (``WhatsAppTemplateList``), then writes the whole list in one
/// transaction (``TemplateStore/sync(channelID:templates:on:)``). The channel is configured
/// exactly as a worker configures it, so its `base_url` must pass ``DestinationPolicy`` (Meta's
/// host, or one listed in `HERALD_ALLOWED_HOSTS`) before its token is sent anywhere. A channel
/// that fails (bad token, unreachable host, unusable settings) changes nothing of its own rows
/// and does not stop the others.
public struct TemplateSync: Sendable {
    /// What happened to one channel.
    public struct ChannelResult: Sendable, Equatable {
        public var channel: String
        /// The counts, or one line saying what went wrong.
        public var outcome: Result<Summary, Failure>

        public struct Summary: Sendable, Equatable {
            public var listed: Int
            public var counts: TemplateStore.SyncCounts
            /// Listed templates that cannot be rows (see ``WhatsAppTemplateList/Page/skipped``).
            public var skipped: [String]
        }

        public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
            public var description: String
        }

        /// One line for stdout (success) or stderr (failure), naming the channel.
        public var line: String {
            switch outcome {
            case .success(let s):
                var text = "\(channel): \(s.listed) template(s) at Meta: \(s.counts.inserted) inserted, "
                    + "\(s.counts.updated) updated, \(s.counts.disabled) disabled"
                if !s.skipped.isEmpty { text += "; skipped \(s.skipped.joined(separator: "; "))" }
                return text
            case .failure(let f):
                return "\(channel): \(f.description)"
            }
        }
    }

    /// Pages read per channel at most (100 templates each): a bound against a list that never ends.
    public static let maxPages = 1_000

    let environment: ProviderEnvironment
    let registry: ProviderRegistry
    let store = TemplateStore()
    let logger: Logger

    /// - Parameters:
    ///   - environment: where the channels' access tokens are read, and which hosts they may go to.
    public init(environment: ProviderEnvironment = ProviderEnvironment(variables: ProcessInfo.processInfo.environment),
                registry: ProviderRegistry = .standard, logger: Logger) {
        self.environment = environment
        self.registry = registry
        self.logger = logger
    }

    /// ``run(channel:connection:transport:)`` on a connection and a transport of its own.
    /// - Throws: when the database cannot be reached or fails.
    public func run(channel name: String?, connectionString: String?) async throws -> [ChannelResult] {
        let connection = try await PostgresConnection.connect(connectionString, applicationName: "herald-templates", logger: logger)
        let transport = CurlTransport(maxInFlight: 4, logger: logger)
        defer { transport.shutdown() }
        do {
            let results = try await run(channel: name, connection: connection, transport: transport)
            await connection.close()
            return results
        } catch {
            await connection.close()
            throw error
        }
    }

    /// Syncs every enabled `whatsapp_cloud` channel with a `waba_id`, or only the channel
    /// called `channel` (then a channel without `waba_id`, of another provider, or disabled, is a
    /// failure that says so).
    ///
    /// - Returns: one result per channel synced or refused, in channel name order.
    /// - Throws: when the database fails (nothing partial is written for the channel at hand).
    public func run(channel name: String?, connection: PostgresConnection, transport: CurlTransport) async throws -> [ChannelResult] {
        let channels = try await store.whatsAppChannels(named: name, on: connection)
        if let name, channels.isEmpty {
            return [ChannelResult(channel: name, outcome: .failure(.init(description: "no channel has this name")))]
        }
        var results: [ChannelResult] = []
        for channel in channels {
            let named = name != nil
            guard channel.kind == ChannelKind.whatsapp.rawValue, channel.provider == WhatsAppCloudProvider.name else {
                results.append(ChannelResult(channel: channel.name, outcome: .failure(.init(
                    description: "not a whatsapp_cloud channel (kind \(channel.kind), provider \(channel.provider)): Meta holds no templates for it"))))
                continue
            }
            if !channel.enabled && !named { continue }
            let configured: WhatsAppCloudChannel
            do {
                let any = try registry.configure(provider: channel.provider, kind: channel.kind, settingsJSON: channel.settingsJSON,
                                                 environment: environment)
                guard let whatsApp = any as? WhatsAppCloudChannel else { continue }
                configured = whatsApp
            } catch {
                // An unnamed channel without waba_id is simply not synced; its settings may be
                // broken for other reasons, which the scheduler reports on its broadcasts.
                if !named, (try? SettingsReader(json: channel.settingsJSON).string("waba_id")) == nil { continue }
                results.append(ChannelResult(channel: channel.name, outcome: .failure(.init(description: error.description))))
                continue
            }
            guard configured.settings.wabaID != nil else {
                if named {
                    results.append(ChannelResult(channel: channel.name, outcome: .failure(.init(
                        description: "setting \"waba_id\" is not set: Herald does not know which WhatsApp Business Account holds its templates"))))
                }
                continue
            }
            results.append(ChannelResult(channel: channel.name,
                                         outcome: await sync(channel, configured, connection: connection, transport: transport)))
        }
        return results
    }

    private func sync(_ channel: ChannelRow, _ configured: WhatsAppCloudChannel, connection: PostgresConnection,
                      transport: CurlTransport) async -> Result<ChannelResult.Summary, ChannelResult.Failure> {
        var templates: [MetaTemplate] = [], skipped: [String] = []
        var seen = Set<String>()
        var after: String?
        var pages = 0
        repeat {
            guard let request = configured.templateListRequest(after: after) else { break }
            let response: HTTPResponse
            do {
                response = try await transport.execute(request)
            } catch {
                return .failure(.init(description: "cannot reach Meta: \(error.message)"))
            }
            let page: WhatsAppTemplateList.Page
            do {
                page = try WhatsAppTemplateList.parse(response)
            } catch {
                return .failure(.init(description: error.description))
            }
            for t in page.templates where seen.insert("\(t.name)\u{0}\(t.language)").inserted { templates.append(t) }
            skipped += page.skipped
            pages += 1
            if page.after == after, page.after != nil {
                return .failure(.init(description: "Meta answered the same page cursor twice; the list was not applied"))
            }
            after = page.after
        } while after != nil && pages < Self.maxPages
        if after != nil {
            return .failure(.init(description: "more than \(Self.maxPages) pages of templates; the list was not applied"))
        }
        do {
            let counts = try await store.sync(channelID: channel.id, templates: templates, on: connection)
            logger.debug("templates synced", metadata: ["channel": "\(channel.name)", "listed": "\(templates.count)",
                                                        "inserted": "\(counts.inserted)", "updated": "\(counts.updated)",
                                                        "disabled": "\(counts.disabled)"])
            return .success(.init(listed: templates.count, counts: counts, skipped: skipped))
        } catch {
            return .failure(.init(description: "cannot write its templates: \(error)"))
        }
    }
}
