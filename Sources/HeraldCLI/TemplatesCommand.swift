import ArgumentParser
import Foundation
import HeraldPostgres
import HeraldServices
import Logging

/// `herald templates`: wiring only; the behaviour is ``TemplateSync``'s.
struct Templates: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "templates",
        abstract: "WhatsApp message templates kept in step with Meta.",
        subcommands: [Sync.self])

    struct Sync: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sync",
            abstract: "Fetch the WhatsApp Business Accounts' templates from Meta and bring `templates` in step.",
            discussion: """
                For each enabled whatsapp_cloud channel with a waba_id setting (or only --channel), reads
                GET {base_url}/{waba_id}/message_templates with the channel's access token, then inserts
                new templates, updates changed ones (by name and language) and sets those Meta no longer
                lists to disabled (never deleted). One line per channel on stdout; a channel that fails
                gets one line on stderr, the others are still synced, and the exit status is 1.
                The scheduler's leader runs the same sync every 10 minutes.
                """)

        @Option(help: "Sync only this channel (by name).") var channel: String?
        @OptionGroup var common: CommonOptions

        func run() async throws {
            LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
            var logger = makeLogger("herald.templates", common)
            if common.logLevel == .info { logger.logLevel = .warning } // the lines below are the output
            let results: [TemplateSync.ChannelResult]
            do {
                results = try await TemplateSync(logger: logger)
                    .run(channel: channel, connectionString: PostgresConnection.environmentConnectionString)
            } catch {
                fail("cannot sync templates: \(error)")
            }
            if results.isEmpty { print("no whatsapp_cloud channel has a waba_id: nothing to sync") }
            var failed = false
            for result in results {
                switch result.outcome {
                case .success: print(result.line)
                case .failure:
                    failed = true
                    FileHandle.standardError.write(Data("herald: \(result.line)\n".utf8))
                }
            }
            if failed { throw ExitCode(1) }
        }
    }
}
