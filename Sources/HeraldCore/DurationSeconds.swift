extension Duration {
    /// The duration in seconds, as the `double precision` that SQL intervals, metrics and
    /// `Date` arithmetic take.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
