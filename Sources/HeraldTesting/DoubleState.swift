import NIOCore
import Synchronization

struct DoubleStartError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// The double's mutable state, shared by its HTTP and SMTP servers.
final class DoubleState: Sendable {
    struct Inner {
        var requests: [ReceivedRequest] = []
        var mails: [ReceivedMail] = []
        var httpConnections: Set<Int> = []
        var smtpConnectionsAccepted = 0
        var smtpChannels: [ObjectIdentifier: any Channel] = [:]
        var scripts: [ProviderDouble.Endpoint: [ProviderDouble.Fault]] = [:]
        var recipientRules: [ProviderDouble.Endpoint: [String: ProviderDouble.Fault]] = [:]
        var mailRecipientRules: [String: (Int, String)] = [:]
        var mailScripts: [ProviderDouble.MailFault] = []
        var latency: Duration = .zero
        var mailLatency: Duration = .zero
        var mailSequence = 0
        var whatsAppTemplates: [String: ProviderDouble.WhatsAppTemplate] = [:]
    }

    let configuration: ProviderDouble.Configuration
    private let inner = Mutex(Inner())

    init(configuration: ProviderDouble.Configuration) {
        self.configuration = configuration
    }

    func withLock<R>(_ body: (inout Inner) -> R) -> R {
        inner.withLock { body(&$0) }
    }

    static func digits(_ phone: String) -> String {
        String(phone.filter(\.isASCII).filter(\.isNumber))
    }
}
