/// Where an opt-out Herald wrote came from: `opt_outs.source` (NULL there means the admin tool).
public enum OptOutSource: String, Sendable, CaseIterable, Hashable {
    /// The person sent STOP (or another opt-out keyword) by SMS or WhatsApp.
    case keyword
    /// The provider refused a send because the person opted out there (Twilio 21610, Meta 131050).
    case provider
    /// The person used the unsubscribe link of a message.
    case unsubscribeLink = "unsubscribe_link"
}

/// A consent keyword in an incoming message: STOP and its synonyms opt out, START and its
/// synonyms opt back in (only of what a keyword opted out).
///
/// The message must hold the keyword alone: any case, surrounding white space and punctuation
/// ignored (`"STOP"`, `"stop!"`, `"  Stop "`, `"Stop."`), but `"stop it"` or `"please stop"` is
/// not a keyword: carriers and Twilio apply the same rule, and a looser match would opt people
/// out of a conversation they meant to continue.
public enum ConsentKeyword: String, Sendable, CaseIterable, Hashable {
    case optOut = "opt_out"
    case optIn = "opt_in"

    /// The opt-out keywords, upper case.
    public static let optOutWords: Set<String> = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"]
    /// The opt-in keywords, upper case.
    public static let optInWords: Set<String> = ["START", "UNSTOP", "YES"]

    /// The keyword `text` is, or nil when it is anything else.
    public init?(message text: String) {
        let scalars = text.unicodeScalars
        var start = scalars.startIndex, end = scalars.endIndex
        while start < end, Self.isIgnorable(scalars[start]) { start = scalars.index(after: start) }
        while end > start, Self.isIgnorable(scalars[scalars.index(before: end)]) { end = scalars.index(before: end) }
        // Keywords are short ASCII words: anything longer or non-ASCII is not one.
        guard start < end else { return nil }
        let word = String(String.UnicodeScalarView(scalars[start..<end]))
        guard word.utf8.count <= 16, word.unicodeScalars.allSatisfy({ $0.isASCII && $0.properties.isAlphabetic }) else {
            return nil
        }
        let upper = word.uppercased()
        if Self.optOutWords.contains(upper) {
            self = .optOut
        } else if Self.optInWords.contains(upper) {
            self = .optIn
        } else {
            return nil
        }
    }

    /// White space, punctuation and symbols around the word (`!`, `.`, quotes, emoji are not
    /// letters either, but only these classes are dropped so that "stop🙂" stays a message).
    private static func isIgnorable(_ s: Unicode.Scalar) -> Bool {
        if s.properties.isWhitespace { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation, .control, .format:
            return true
        default:
            return false
        }
    }
}
