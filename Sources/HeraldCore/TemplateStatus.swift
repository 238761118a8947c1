/// A WhatsApp template's approval status (`templates.status`, contract section 1). Only
/// `approved` may be sent; Meta decides the rest and Herald keeps it in step (section 4).
public enum TemplateStatus: String, Sendable, CaseIterable, Hashable {
    case pending, approved, rejected, paused, disabled
}
