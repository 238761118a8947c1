/// Herald's schema migrations, embedded in the binary so `herald migrate` needs no files on disk.
///
/// SwiftPM's `embedInCode` exposes each file as `PackageResources.<mangled name>`; the list below
/// maps them back to their versions and names. A test checks it against `sql/migrations/`.
public enum Migrations {
    /// One numbered migration.
    public struct Migration: Sendable {
        public let version: Int
        /// The file name, e.g. `0001_schema.sql`.
        public let name: String
        public let sql: String

        public init(version: Int, name: String, sql: String) {
            self.version = version
            self.name = name
            self.sql = sql
        }
    }

    /// Every migration, in order.
    public static let all: [Migration] = [
        Migration(version: 1, name: "0001_schema.sql", sql: text(PackageResources._001_schema_sql)),
        Migration(version: 2, name: "0002_messages_and_jobs.sql", sql: text(PackageResources._002_messages_and_jobs_sql)),
        Migration(version: 3, name: "0003_report_views.sql", sql: text(PackageResources._003_report_views_sql)),
        Migration(version: 4, name: "0004_rate_limits.sql", sql: text(PackageResources._004_rate_limits_sql)),
        Migration(version: 5, name: "0005_receipts_and_reports.sql", sql: text(PackageResources._005_receipts_and_reports_sql)),
        Migration(version: 6, name: "0006_drop_status_index.sql", sql: text(PackageResources._006_drop_status_index_sql)),
        Migration(version: 7, name: "0007_hot_message_updates.sql", sql: text(PackageResources._007_hot_message_updates_sql)),
        Migration(version: 8, name: "0008_contract_columns.sql", sql: text(PackageResources._008_contract_columns_sql)),
        Migration(version: 9, name: "0009_receipt_scope_and_replays.sql", sql: text(PackageResources._009_receipt_scope_and_replays_sql)),
        Migration(version: 10, name: "0010_ops_queue_functions_and_history_prune.sql", sql: text(PackageResources._010_ops_queue_functions_and_history_prune_sql)),
        Migration(version: 11, name: "0011_delivery_timing.sql", sql: text(PackageResources._011_delivery_timing_sql)),
        Migration(version: 12, name: "0012_write_time_checks.sql", sql: text(PackageResources._012_write_time_checks_sql)),
        Migration(version: 13, name: "0013_consent.sql", sql: text(PackageResources._013_consent_sql)),
        Migration(version: 14, name: "0014_template_refusals_pause.sql", sql: text(PackageResources._014_template_refusals_pause_sql)),
        Migration(version: 15, name: "0015_broadcast_attachments.sql", sql: text(PackageResources._015_broadcast_attachments_sql)),
        Migration(version: 16, name: "0016_revalidate_every_rendered_column.sql", sql: text(PackageResources._016_revalidate_every_rendered_column_sql)),
        Migration(version: 17, name: "0017_message_parts.sql", sql: text(PackageResources._017_message_parts_sql)),
        Migration(version: 18, name: "0018_skip_deleted_contacts.sql", sql: text(PackageResources._018_skip_deleted_contacts_sql)),
    ]

    private static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
