import ArgumentParser

struct Report: NotYetImplemented {
    static let configuration = CommandConfiguration(commandName: "report", abstract: "Print the delivery report in the terminal.")
    @Argument(help: "A broadcast id; all broadcasts when omitted.") var id: Int64?
}
