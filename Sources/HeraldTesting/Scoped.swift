/// Runs `body` with `resource`, then `cleanUp` (awaited), also when `body` throws: what a test
/// started (a server, a database, a connection) is gone before the test goes on, and a failing
/// test cannot leave it running.
func scoped<Resource: Sendable, T: Sendable>(_ resource: Resource, cleanUp: (Resource) async -> Void,
                                             _ body: (Resource) async throws -> T) async throws -> T {
    let value: T
    do {
        value = try await body(resource)
    } catch {
        await cleanUp(resource)
        throw error
    }
    await cleanUp(resource)
    return value
}
