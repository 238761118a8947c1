/// One message template as Meta lists it, in the shape of a `templates` row: what the template
/// sync reads from the Graph API and writes to the table.
public struct MetaTemplate: Sendable, Equatable {
    /// Meta's template id (`meta_template_id`); empty when Meta listed none.
    public var id: String
    public var name: String
    public var language: String
    public var status: TemplateStatus
    /// `marketing`, `utility` or `authentication`; nil for a category Herald does not know.
    public var category: String?
    /// The BODY component's text (empty when Meta lists none).
    public var body = ""
    /// A LOCATION header is listed as `none`: the schema has no such format, and a broadcast
    /// cannot fill it.
    public var headerFormat = TemplateHeaderFormat.none
    public var headerText: String?
    /// The BUTTONS component as `templates.buttons` holds it: a JSON array of
    /// `{"type": …, "text": …}` with `url` / `phone_number` when given, types lowercased
    /// (`url`, `quick_reply`, `phone_number`, `copy_code`, or one Herald cannot send, which
    /// validation then names); nil when there are no buttons.
    public var buttonsJSON: String?
    /// `rejected_reason` unless it is `NONE` (`status_reason`).
    public var reason: String?
}

extension MetaTemplate {
    /// A template with what every listed one has; the parser sets the rest as Meta lists it.
    public init(id: String, name: String, language: String, status: TemplateStatus) {
        self.init(id: id, name: name, language: language, status: status, category: nil)
    }
}
