// swift-tools-version:6.0
import PackageDescription

/// Settings every Herald target shares: Swift 6 language mode with strict concurrency is the
/// package default; `ExistentialAny` keeps `any` explicit.
let herald: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

/// Package products several targets use.
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let serviceLifecycle: Target.Dependency = .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let metrics: [Target.Dependency] = [
    .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
]

let package = Package(
    name: "Herald",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "herald", targets: ["HeraldCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        // Test support only: the provider double's SMTP speaks STARTTLS and implicit TLS.
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.29.0"),
    ],
    targets: [
        // C layers: libpq through a header-only system library, libcurl through typed wrappers of
        // its variadic setopt/getinfo functions (Swift cannot call C variadics).
        .systemLibrary(name: "CLibPQ", path: "Sources/CLibPQ", pkgConfig: "libpq",
                       providers: [.apt(["libpq-dev"])]),
        .target(name: "CCurl", path: "Sources/CCurl", linkerSettings: [.linkedLibrary("curl")]),

        // Herald-agnostic I/O layers.
        .target(name: "HeraldPostgres", dependencies: [
            "CLibPQ", logging,
        ], swiftSettings: herald),
        .target(name: "HeraldTransport", dependencies: [
            "CCurl", "HeraldCore", logging,
        ], swiftSettings: herald),

        // Pure logic: no I/O.
        .target(name: "HeraldCore", swiftSettings: herald),
        .target(name: "HeraldProviders", dependencies: [
            "HeraldCore", "HeraldTransport", .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: herald),

        // The schema, embedded in the binary so `herald migrate` needs no files beside it.
        .target(name: "HeraldSQL", path: "sql", exclude: ["README.md"],
                resources: [.embedInCode("migrations")], swiftSettings: herald),
        .target(name: "HeraldStore", dependencies: ["HeraldPostgres", "HeraldCore", "HeraldSQL"], swiftSettings: herald),
        .target(name: "HeraldServices", dependencies: [
            "HeraldStore", "HeraldProviders", "HeraldCore", "HeraldPostgres", "HeraldTransport",
            logging, serviceLifecycle, .product(name: "Hummingbird", package: "hummingbird"),
        ] + metrics, swiftSettings: herald),
        // `herald demo`: a private PostgreSQL, progress on the terminal, the final report.
        // Also the sandbox's receipt emitter, which posts signed receipts to `herald webhooks`.
        .target(name: "HeraldDemo", dependencies: [
            "HeraldStore", "HeraldPostgres", "HeraldCore", "HeraldProviders", "HeraldTransport",
            logging, serviceLifecycle,
        ], swiftSettings: herald),
        .executableTarget(name: "HeraldCLI", dependencies: [
            "HeraldServices", "HeraldDemo", "HeraldStore", "HeraldPostgres", "HeraldCore", "HeraldSQL",
            .product(name: "ArgumentParser", package: "swift-argument-parser"), logging, serviceLifecycle,
        ] + metrics, swiftSettings: herald,
        // mimalloc serves every malloc of the process (Swift's runtime, libcurl, libpq, OpenSSL):
        // linked into the executable ahead of libc, its malloc is the one the dynamic linker
        // binds. Against glibc's it cut the worker's CPU a message by 9-17% at 1,000 channels over
        // HTTPS, for 1-4 MB more peak RSS; jemalloc did as well on CPU but peaked above 150 MB
        // there (BENCHMARKS.md, "mimalloc"). Only the executable links it: the tests keep glibc's.
        linkerSettings: [.linkedLibrary("mimalloc", .when(platforms: [.linux]))]),

        // Test support: a provider double speaking Meta's, Twilio's and SMTP's wire formats, and a
        // throwaway database per test.
        .target(name: "HeraldTesting", dependencies: [
            "HeraldPostgres", "HeraldCore",
            .product(name: "Hummingbird", package: "hummingbird"),
            logging,
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ], swiftSettings: herald),

        .testTarget(name: "HeraldCoreTests", dependencies: ["HeraldCore"], swiftSettings: herald),
        .testTarget(name: "HeraldPostgresTests", dependencies: ["HeraldPostgres", "HeraldTesting", "HeraldStore", "HeraldSQL"], swiftSettings: herald),
        .testTarget(name: "HeraldTransportTests", dependencies: ["HeraldTransport", "HeraldTesting", "HeraldCore"], swiftSettings: herald),
        .testTarget(name: "HeraldProvidersTests", dependencies: ["HeraldProviders", "HeraldTesting", "HeraldTransport", "HeraldCore"], swiftSettings: herald),
        .testTarget(name: "HeraldServicesTests", dependencies: [
            "HeraldServices", "HeraldTesting", "HeraldStore", "HeraldPostgres", "HeraldProviders", "HeraldCore",
            "HeraldTransport", "HeraldDemo",
        ], swiftSettings: herald),
    ],
    swiftLanguageModes: [.v6]
)
