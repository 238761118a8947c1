/// Herald's schema migrations, embedded in the binary so `herald migrate` needs no files on disk.
///
/// SwiftPM's `embedInCode` exposes each file as `PackageResources.<mangled name>`; the list below
/// maps them back to their versions and names. A test checks it against `sql/migrations/`.
public enum Migrations {
    /// One numbered migration: `NNNN_what_it_does.sql`, its version the number.
    public struct Migration: Sendable {
        /// The file name, e.g. `0001_schema.sql`.
        public let name: String
        public let sql: String
        public let version: Int

        /// - Precondition: `name` starts with the version in four digits and `_`.
        public init(name: String, sql: String) {
            guard name.dropFirst(4).first == "_", let version = Int(name.prefix(4)) else {
                preconditionFailure("a migration's name starts with its version in four digits and _: \(name)")
            }
            self.name = name
            self.sql = sql
            self.version = version
        }
    }

    /// Every migration, in order.
    public static let all: [Migration] = [
        Migration(name: "0001_schema.sql", sql: text(PackageResources._001_schema_sql)),
        Migration(name: "0002_messages_and_jobs.sql", sql: text(PackageResources._002_messages_and_jobs_sql)),
        Migration(name: "0003_report_views.sql", sql: text(PackageResources._003_report_views_sql)),
        Migration(name: "0004_rate_limits.sql", sql: text(PackageResources._004_rate_limits_sql)),
        Migration(name: "0005_receipts_and_reports.sql", sql: text(PackageResources._005_receipts_and_reports_sql)),
        Migration(name: "0006_drop_status_index.sql", sql: text(PackageResources._006_drop_status_index_sql)),
        Migration(name: "0007_hot_message_updates.sql", sql: text(PackageResources._007_hot_message_updates_sql)),
        Migration(name: "0008_contract_columns.sql", sql: text(PackageResources._008_contract_columns_sql)),
        Migration(name: "0009_receipt_scope_and_replays.sql", sql: text(PackageResources._009_receipt_scope_and_replays_sql)),
        Migration(name: "0010_ops_queue_functions_and_history_prune.sql", sql: text(PackageResources._010_ops_queue_functions_and_history_prune_sql)),
        Migration(name: "0011_delivery_timing.sql", sql: text(PackageResources._011_delivery_timing_sql)),
        Migration(name: "0012_write_time_checks.sql", sql: text(PackageResources._012_write_time_checks_sql)),
        Migration(name: "0013_consent.sql", sql: text(PackageResources._013_consent_sql)),
        Migration(name: "0014_template_refusals_pause.sql", sql: text(PackageResources._014_template_refusals_pause_sql)),
        Migration(name: "0015_broadcast_attachments.sql", sql: text(PackageResources._015_broadcast_attachments_sql)),
        Migration(name: "0016_revalidate_every_rendered_column.sql", sql: text(PackageResources._016_revalidate_every_rendered_column_sql)),
        Migration(name: "0017_message_parts.sql", sql: text(PackageResources._017_message_parts_sql)),
        Migration(name: "0018_skip_deleted_contacts.sql", sql: text(PackageResources._018_skip_deleted_contacts_sql)),
        Migration(name: "0019_opt_out_recording_planned_once.sql", sql: text(PackageResources._019_opt_out_recording_planned_once_sql)),
        Migration(name: "0020_claims_for_several_channels.sql", sql: text(PackageResources._020_claims_for_several_channels_sql)),
        Migration(name: "0021_rate_bucket_in_one_statement.sql", sql: text(PackageResources._021_rate_bucket_in_one_statement_sql)),
    ]

    private static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
