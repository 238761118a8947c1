/// Polls `condition` until it holds or `within` has passed; the positive signal with a deadline
/// that tests wait for instead of a fixed sleep. Returns whether it held.
public func eventually(within limit: Duration = .seconds(10), every interval: Duration = .milliseconds(10),
                       _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: interval)
    }
    return try await condition()
}
