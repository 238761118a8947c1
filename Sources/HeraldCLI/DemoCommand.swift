import ArgumentParser

struct Demo: NotYetImplemented {
    static let configuration = CommandConfiguration(commandName: "demo", abstract: "Run the whole system on a private, throwaway PostgreSQL and the sandbox provider.")
}
