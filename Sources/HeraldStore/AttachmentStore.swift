import Foundation
import HeraldPostgres

/// One email attachment of a broadcast, as the scheduler fetched it (`herald.broadcast_attachments`).
public struct BroadcastAttachment: Sendable, Equatable {
    /// The item's index in `broadcasts.media`.
    public var position: Int
    /// Where it was fetched from.
    public var url: String
    public var filename: String
    public var contentType: String
    public var bytes: [UInt8]

    public init(position: Int, url: String, filename: String, contentType: String, bytes: [UInt8]) {
        self.position = position
        self.url = url
        self.filename = filename
        self.contentType = contentType
        self.bytes = bytes
    }
}

/// The email attachments of broadcasts: written once by the scheduler when it starts a broadcast,
/// read once per broadcast by each worker (migration 0015; the rows go when the broadcast ends).
public struct AttachmentStore: Sendable {
    public init() {}

    /// The URLs of a broadcast's stored attachments, in `media` order.
    public func urls(of broadcastID: Int64, on connection: PostgresConnection) async throws -> [String] {
        try await connection.query("""
            SELECT url FROM herald.broadcast_attachments WHERE broadcast_id = \(broadcastID) ORDER BY position
            """).map { try $0.decode(String.self, "url") }
    }

    /// Replaces a broadcast's attachments with `attachments`, in one statement.
    ///
    /// The bytes travel as base64 text (the connection speaks the text format) and are decoded
    /// by the server into `bytea`.
    public func replace(_ broadcastID: Int64, with attachments: [BroadcastAttachment],
                        on connection: PostgresConnection) async throws {
        let positions = attachments.map(\.position)
        let urls = attachments.map(\.url)
        let names = attachments.map(\.filename)
        let types = attachments.map(\.contentType)
        let encoded = attachments.map { Data($0.bytes).base64EncodedString() }
        try await connection.execute("""
            WITH gone AS (DELETE FROM herald.broadcast_attachments WHERE broadcast_id = \(broadcastID))
            INSERT INTO herald.broadcast_attachments (broadcast_id, position, url, filename, content_type, bytes)
            SELECT \(broadcastID), p, u, f, t, decode(b, 'base64')
            FROM unnest(\(positions)::int[], \(urls)::text[], \(names)::text[], \(types)::text[], \(encoded)::text[]) AS a(p, u, f, t, b)
            """)
    }

    /// A broadcast's attachments in `media` order (PostgreSQL's base64 wraps lines; the decoder
    /// skips the breaks).
    public func load(of broadcastID: Int64, on connection: PostgresConnection) async throws -> [BroadcastAttachment] {
        let rows = try await connection.query("""
            SELECT position, url, filename, content_type, encode(bytes, 'base64') AS base64
            FROM herald.broadcast_attachments WHERE broadcast_id = \(broadcastID) ORDER BY position
            """)
        var attachments: [BroadcastAttachment] = []
        for row in rows {
            let text = try row.decode(String.self, "base64")
            attachments.append(BroadcastAttachment(position: try row.decode(Int.self, "position"),
                                                   url: try row.decode(String.self, "url"),
                                                   filename: try row.decode(String.self, "filename"),
                                                   contentType: try row.decode(String.self, "content_type"),
                                                   bytes: [UInt8](Data(base64Encoded: text, options: .ignoreUnknownCharacters) ?? Data())))
        }
        return attachments
    }
}
