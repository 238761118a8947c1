import ArgumentParser

struct Webhooks: NotYetImplemented {
    static let configuration = CommandConfiguration(commandName: "webhooks", abstract: "HTTP server for provider delivery receipts, /metrics and /healthz.")
    @Option(help: "Port to listen on.") var port: Int = 8080
}
