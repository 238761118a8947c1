/// One media item of a message, rendered: what it is and where the provider fetches it.
public struct OutgoingMedia: Sendable, Equatable {
    /// `broadcasts.media[].type`.
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        case image, video, document, audio
    }

    /// Where the provider gets the file.
    public enum Source: Sendable, Equatable {
        /// A URL the provider fetches (personalized and percent-encoded already).
        case link(String)
        /// An upload at Meta (`whatsapp_media_id`): WhatsApp only.
        case whatsAppMediaID(String)
    }

    public var kind: Kind
    public var source: Source
    /// The name the recipient sees for a document.
    public var filename: String?

    public init(kind: Kind, source: Source, filename: String? = nil) {
        self.kind = kind
        self.source = source
        self.filename = filename
    }
}

/// The header of a WhatsApp template message, with its value for one contact.
public enum WhatsAppTemplateHeader: Sendable, Equatable {
    /// A `text` header's one placeholder (`{{1}}`), rendered.
    case text(String)
    /// An `image`, `video` or `document` header.
    case media(OutgoingMedia)
}

/// One button of a WhatsApp template that takes a value, with its value for one contact.
public struct WhatsAppTemplateButton: Sendable, Equatable {
    /// Meta's `sub_type`, spelled as Meta spells it.
    public enum Kind: String, Sendable, Equatable {
        /// A `url` button whose URL ends in `{{1}}`: the value is the URL's dynamic suffix.
        case url
        /// A `quick_reply` button: the value is the payload Meta sends back when it is tapped.
        case quickReply = "quick_reply"
        /// A `copy_code` button: the value is the coupon code.
        case copyCode = "copy_code"
    }

    public var kind: Kind
    /// The button's position among all the template's buttons (0-based), as Meta counts them.
    public var index: Int
    public var value: String

    public init(kind: Kind, index: Int, value: String) {
        self.kind = kind
        self.index = index
        self.value = value
    }
}
