/// A WhatsApp template's approval status (`templates.status`, contract section 1). Only
/// `approved` may be sent; Meta decides the rest and Herald keeps it in step (section 4).
public enum TemplateStatus: String, Sendable, CaseIterable, Hashable {
    case pending, approved, rejected, paused, disabled
}

/// What a WhatsApp template's header holds (`templates.header_format`): nothing, a text with at
/// most one placeholder, or a media item the broadcast's `media[0]` fills.
public enum TemplateHeaderFormat: String, Sendable, CaseIterable, Hashable {
    case none, text, image, video, document
}
