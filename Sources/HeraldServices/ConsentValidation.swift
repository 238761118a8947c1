import HeraldCore
import HeraldProviders

extension BroadcastProblem {
    /// Fails when any of `sources` (a broadcast's personalized fields and its channel's
    /// `unsubscribe_url`) uses `{{ unsubscribe_url }}` while `HERALD_PUBLIC_URL` or
    /// `HERALD_UNSUBSCRIBE_SECRET` is missing: every message would carry an empty link.
    /// Sources that do not compile are left to the tag checks, which name the tag.
    static func requireUnsubscribeLinks(_ sources: [String?], environment: ProviderEnvironment) throws(BroadcastProblem) {
        guard environment.unsubscribeLinks == nil else { return }
        for case let source? in sources {
            if let t = try? CompiledTemplate.compile(source), t.usesUnsubscribeURL {
                throw BroadcastProblem(UnsubscribeLinks.notConfigured)
            }
        }
    }
}
