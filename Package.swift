// swift-tools-version:6.0
// Turnstile: a local permit broker for fleets of AI coding agents.
//
// The targets follow the architecture: a pure core (no I/O), the wire protocol,
// the libuv shell that joins them, a client library, and two thin executables.
import PackageDescription

let package = Package(
    name: "Turnstile",
    products: [
        .executable(name: "turnstiled", targets: ["turnstiled"]),
        .executable(name: "turnstile", targets: ["turnstile"]),
        .library(name: "TurnstileCore", targets: ["TurnstileCore"]),
        .library(name: "TurnstileClient", targets: ["TurnstileClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // etcd's gRPC API for TurnstileCluster (the only versions the local mirror holds).
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
    ],
    targets: [
        // libuv from Debian's libuv1-dev, plus a few static inline helpers Swift's Glibc lacks.
        .systemLibrary(
            name: "CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        // The limits, the queue, leases, controls and telemetry: pure Swift, time injected.
        .target(name: "TurnstileCore"),
        // The TOML config file, read into the core's typed config (kept apart so that clients
        // do not load a TOML parser, and Foundation with it).
        .target(
            name: "TurnstileConfigFile",
            dependencies: ["TurnstileCore", .product(name: "TOMLKit", package: "TOMLKit")]
        ),
        // NDJSON framing, the JSON scanner and writer, and the wire vocabulary (ops, fields,
        // error codes) shared by the daemon and its clients; it knows nothing of the broker.
        .target(name: "TurnstileProtocol"),
        // The daemon without its sockets: connections' phases, requests, answers, journal
        // records, process watches and closes, driven by a transport (no libuv, no I/O).
        .target(
            name: "TurnstileSession",
            dependencies: [
                "TurnstileCore", "TurnstileProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        // The libuv event loop: sockets, timers, signals, pidfds, persistence.
        .target(
            name: "TurnstileServer",
            dependencies: [
                "CLibUV", "TurnstileCore", "TurnstileConfigFile", "TurnstileProtocol", "TurnstileSession", "TurnstileCluster",
                .product(name: "Logging", package: "swift-log"),
            ],
            // The loop is single-threaded; debug builds (every test) keep Swift's dynamic
            // exclusivity checks, release builds drop their ~30 runtime calls per request.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        // An etcd v3 client (gRPC on a NIO thread of its own) for limits shared across hosts.
        // The code generated from etcd's protos is committed (Generated/, regenerate.sh); the
        // daemon's core never sees a protobuf type. The server links it; the CLI must not.
        .target(
            name: "TurnstileCluster",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["Generated/regenerate.sh", "Generated/README.md"]
        ),
        // A blocking client for the daemon's socket, used by the CLI and the tests.
        .target(
            name: "TurnstileClient",
            dependencies: ["TurnstileProtocol"]
        ),
        .executableTarget(
            name: "turnstiled",
            dependencies: [
                "TurnstileServer", "TurnstileProtocol", "TurnstileConfigFile",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // turnstile.toml(5), installed by `make install` beside the generated pages.
            exclude: ["man"]
        ),
        .executableTarget(
            name: "turnstile",
            dependencies: [
                "TurnstileClient", "TurnstileProtocol", "CLibUV",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The fuzz target: a corpus replayer normally, a libFuzzer target with -DFUZZING.
        .executableTarget(
            name: "turnstile-fuzz",
            dependencies: ["TurnstileCore", "TurnstileProtocol", "TurnstileSession"]
        ),
        // The thinnest libuv NDJSON permit server, the floor the benchmarks compare against.
        .executableTarget(
            name: "turnstile-floor",
            cSettings: [.unsafeFlags(["-Wall", "-Wextra"])],
            linkerSettings: [.linkedLibrary("uv")]
        ),
        // The C ping-pong load generator the suite drives every server with: the cheapest client
        // per request we have (the Swift one, as it was, held the floor's figure down).
        .executableTarget(
            name: "turnstile-load",
            cSettings: [.unsafeFlags(["-Wall", "-Wextra"])]
        ),
        // Load generator and in-process measurements (`make bench`); never part of `make test`.
        .executableTarget(
            name: "turnstile-bench",
            dependencies: [
                "TurnstileCore", "TurnstileProtocol", "TurnstileClient", "TurnstileCluster",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            exclude: ["results"]
        ),
        .testTarget(
            name: "TurnstileCoreTests",
            dependencies: ["TurnstileCore"]
        ),
        .testTarget(
            name: "TurnstileConfigFileTests",
            dependencies: ["TurnstileConfigFile", "TurnstileCore"]
        ),
        .testTarget(
            name: "TurnstileProtocolTests",
            dependencies: ["TurnstileProtocol"]
        ),
        .testTarget(
            name: "TurnstileSessionTests",
            dependencies: ["TurnstileSession", "TurnstileCore", "TurnstileProtocol"]
        ),
        .testTarget(
            name: "TurnstileClientTests",
            dependencies: ["TurnstileClient", "TurnstileProtocol"]
        ),
        // Against a 3-member etcd on loopback that Tests/cluster/etcd-cluster.sh starts.
        .testTarget(
            name: "TurnstileClusterTests",
            dependencies: ["TurnstileCluster", .product(name: "GRPCCore", package: "grpc-swift-2")]
        ),
        .testTarget(
            name: "TurnstileIntegrationTests",
            dependencies: ["TurnstileClient", "TurnstileProtocol", "TurnstileCore", "CLibUV"]
        ),
    ]
)
