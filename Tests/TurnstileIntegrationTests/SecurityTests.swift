import Foundation
import Testing
import TurnstileClient
import TurnstileProtocol

/// protocol/PROTOCOL.md §2 and §12: the socket's permissions, one daemon per socket, and who may connect.
@Suite("Socket security", .timeLimit(.minutes(1)))
struct SecurityTests {
    func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as? Int) ?? -1
    }

    @Test func theSocketIsCreated0600() throws {
        let daemon = try Daemon()
        #expect(try mode(daemon.socketPath) == 0o600)
    }

    @Test func aConfiguredModeIsApplied() throws {
        let daemon = try Daemon(config: #"socket_mode = "0660""#)
        #expect(try mode(daemon.socketPath) == 0o660)
    }

    @Test func aSecondDaemonOnTheSameSocketRefusesToStart() throws {
        let daemon = try Daemon()
        let second = try ChildProcess([Binaries.turnstiled, "--socket", daemon.socketPath,
                                       "--state-dir", daemon.directory + "/other-state"])
        _ = second.waitForExit()
        #expect(second.exitCode == 1)
        #expect(second.output.contains("another turnstiled is already running on \(daemon.socketPath)"))
        #expect(try daemon.client().ask("hello").ok, "the first one is untouched")
    }

    @Test func aStaleSocketIsReplaced() throws {
        let directory = try Daemon.makeTemporaryDirectory()
        let path = directory + "/t.sock"
        let binder = try ChildProcess(["/usr/bin/python3", "-c",
                                       "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])", path])
        _ = binder.waitForExit()
        #expect(FileManager.default.fileExists(atPath: path), "a leftover socket file, nobody listening")
        let daemon = try ChildProcess([Binaries.turnstiled, "--socket", path, "--state-dir", directory + "/state"])
        #expect(daemon.waitForOutput("turnstiled ready"))
        #expect(try TurnstileClient(socketPath: path).call("hello", timeoutMilliseconds: 10_000).ok)
        daemon.signal(SIGTERM)
        _ = daemon.waitForExit()
        #expect(daemon.exitCode == 0)
    }

    @Test(arguments: ["regular file", "world-writable directory", "path too long"])
    func unsafeSocketPathsAreRefused(case name: String) throws {
        let directory = try Daemon.makeTemporaryDirectory()
        var path = directory + "/t.sock"
        var expected = ""
        switch name {
        case "regular file":
            _ = FileManager.default.createFile(atPath: path, contents: Data("x".utf8))
            expected = "exists and is not a socket"
        case "world-writable directory":
            try FileManager.default.createDirectory(atPath: directory + "/open", withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o777])
            chmod(directory + "/open", 0o777)
            path = directory + "/open/t.sock"
            expected = "must belong to you (or root) and not be writable by others"
        default:
            path = directory + "/" + String(repeating: "s", count: 120) + ".sock"
            expected = "at most 107 fit"
        }
        let daemon = try ChildProcess([Binaries.turnstiled, "--socket", path, "--state-dir", directory + "/state"])
        _ = daemon.waitForExit()
        #expect(daemon.exitCode == 1)
        #expect(daemon.output.contains(expected), "\(daemon.output)")
    }

    /// Runs a one-line request as uid 65534 (nobody) with socat, printing the answer.
    func askAsNobody(_ daemon: Daemon, _ request: String) throws -> String {
        chmod(daemon.directory, 0o711)
        let input = daemon.directory + "/request-\(UUID().uuidString)"
        try (request + "\n").write(toFile: input, atomically: true, encoding: .utf8)
        chmod(input, 0o644)
        let fd = open(input, O_RDONLY)
        defer { close(fd) }
        let client = try ChildProcess(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                       "/usr/bin/socat", "-t", "5", "-", "UNIX-CONNECT:" + daemon.socketPath], stdin: fd)
        _ = client.waitForExit()
        return client.output
    }

    @Test func otherUsersAreRefusedUnlessAllowed() throws {
        let daemon = try Daemon(config: #"socket_mode = "0666""#)
        let answer = try askAsNobody(daemon, #"{"op":"hello"}"#)
        #expect(answer.contains(#""error":"forbidden""#), "\(answer)")
        #expect(answer.contains("uid 65534 may not connect"))
    }

    @Test func allowedUsersMayConnectButNotAdminister() throws {
        let daemon = try Daemon(config: "socket_mode = \"0666\"\nallow_uids = [65534]\n")
        let acquired = try askAsNobody(daemon, #"{"id":1,"op":"acquire","detach":true}"#)
        #expect(acquired.contains(#""ok":true"#), "\(acquired)")
        let pause = try askAsNobody(daemon, #"{"id":2,"op":"pause","project":"alpha"}"#)
        #expect(pause.contains(#""error":"forbidden""#), "\(pause)")
        // Root fills the slots and waits; nobody may not cancel that wait, root may.
        let root = try daemon.client()
        for _ in 0..<8 { _ = try root.ask("acquire") }
        let rootWait = try root.send("acquire", [("holder", .text("root-job")), ("wait_ms", .integer(60_000))])
        let cancel = try askAsNobody(daemon, #"{"id":3,"op":"cancel","holder":"root-job"}"#)
        #expect(cancel.contains(#""error":"not_found""#), "another uid's waiter is not its to cancel: \(cancel)")
        #expect(try root.ask("cancel", [("holder", .text("root-job"))]).ok, "its own uid may")
        #expect(try root.answer(to: rootWait, timeoutMilliseconds: 10_000).error == "cancelled")
        for op in [#""op":"reload""#, #""op":"throttle","provider":"p","retry_after_ms":5"#, #""op":"revoke","fence":1"#,
                   #""op":"throttle","provider":"p","clear":true"#, #""op":"unflag","model":"a/b""#] {
            let answer = try askAsNobody(daemon, "{\(op)}")
            #expect(answer.contains(#""error":"forbidden""#), "\(op): \(answer)")
        }
    }

    /// The daemon signals a draining lease's process group, so a peer may bind only a group
    /// of its own: never another user's, the daemon's own, or init's (PROTOCOL.md §10.10).
    @Test func aPeerMayNotBindAProcessGroupItDoesNotOwn() throws {
        let daemon = try Daemon(config: "socket_mode = \"0666\"\nallow_uids = [65534]\n")
        let rootWork = try ChildProcess(["python3", "-c",
                                         "import os,time; os.setpgid(0,0); print('ready', flush=True); time.sleep(600)"])
        defer { rootWork.signal(SIGKILL); _ = rootWork.waitForExit() }
        #expect(rootWork.waitForOutput("ready"))
        let foreign = try askAsNobody(daemon, #"{"id":1,"op":"acquire","detach":true,"pgid":"# + "\(rootWork.pid)}")
        #expect(foreign.contains(#""error":"forbidden""#) && foreign.contains(#""field":"pgid""#), "\(foreign)")
        let client = try daemon.client()
        #expect(try client.ask("acquire", [("pgid", .integer(1))]).string("field") == "pgid", "init's group")
        let daemonGroup = try String(contentsOfFile: "/proc/\(daemon.process!.pid)/stat", encoding: .utf8)
            .split(separator: ")").last!.split(separator: " ")[2]
        let own = try client.ask("acquire", [("pgid", .integer(Int64(daemonGroup)!))])
        #expect(own.error == "bad_request" && own.string("field") == "pgid", "the daemon's own group: \(own)")
        #expect(try client.ask("acquire", [("pgid", .integer(Int64(rootWork.pid)))]).ok, "root may bind any other group")
    }

    @Test func adminUIDsMayAdminister() throws {
        let daemon = try Daemon(config: "socket_mode = \"0666\"\nallow_uids = [65534]\nadmin_uids = [65534]\n")
        #expect(try askAsNobody(daemon, #"{"op":"pause","project":"alpha"}"#).contains(#""paused":true"#))
    }
}

/// Rights are decided from the kernel's word and the running config: a peer whose credentials
/// cannot be read is refused (never taken for root), and a reload that takes a uid out of
/// `allow_uids` or `admin_uids` takes the rights away from its open connections too.
@Suite("Peer rights", .timeLimit(.minutes(1)))
struct PeerRightsTests {
    @Test func aPeerWhoseCredentialsCannotBeReadIsRefused() throws {
        guard ProcessInfo.processInfo.environment["TURNSTILE_TEST_SANITIZED"] == nil else { return }
        let directory = try Daemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // An interposer that makes getsockopt(SO_PEERCRED) fail, as a sandbox or an exotic
        // socket family would.
        let source = directory + "/nocred.c"
        try """
            #define _GNU_SOURCE
            #include <dlfcn.h>
            #include <errno.h>
            #include <sys/socket.h>
            int getsockopt(int fd, int level, int name, void *value, socklen_t *length) {
                static int (*real)(int, int, int, void *, socklen_t *);
                if (level == SOL_SOCKET && name == SO_PEERCRED) { errno = EOPNOTSUPP; return -1; }
                if (!real) real = (int (*)(int, int, int, void *, socklen_t *))dlsym(RTLD_NEXT, "getsockopt");
                return real(fd, level, name, value, length);
            }
            """.write(toFile: source, atomically: true, encoding: .utf8)
        let compiler = try ChildProcess(["/usr/bin/cc", "-shared", "-fPIC", "-o", directory + "/nocred.so", source, "-ldl"])
        #expect(compiler.waitForExit(milliseconds: 60_000) == 0, "\(compiler.output)")
        var environment = ProcessInfo.processInfo.environment
        environment["LD_PRELOAD"] = directory + "/nocred.so"
        let daemon = try Daemon.startBare(in: directory, environment: environment)
        defer {
            daemon.signal(SIGKILL)
            _ = daemon.waitForExit()
        }
        let client = try TurnstileClient(socketPath: directory + "/t.sock")
        let answer = try client.call("hello", timeoutMilliseconds: 10_000)
        #expect(answer.error == "forbidden", "\(answer.object)")
        #expect(answer.string("message")?.contains("cannot read your credentials") == true)
    }

    @Test func aReloadTakesRightsAwayFromOpenConnections() throws {
        let daemon = try Daemon(config: "socket_mode = \"0666\"\nallow_uids = [65534]\nadmin_uids = [65534]\n")
        chmod(daemon.directory, 0o711)
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let nobody = try ChildProcess(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                       "/usr/bin/socat", "-", "UNIX-CONNECT:" + daemon.socketPath], stdin: fds[0])
        close(fds[0])
        defer {
            close(fds[1])
            nobody.signal(SIGKILL)
            _ = nobody.waitForExit()
        }
        func say(_ line: String) { _ = (line + "\n").withCString { write(fds[1], $0, strlen($0)) } }
        say(#"{"id":1,"op":"pause","project":"a"}"#)
        #expect(nobody.waitForOutput(#""paused":true"#))
        say(#"{"id":2,"op":"acquire","holder":"nobody"}"#)
        #expect(nobody.waitForOutput(#""fence":"#))
        let admin = try daemon.client()
        try daemon.writeConfig("socket_mode = \"0666\"\nallow_uids = [65534]\n")
        #expect(try admin.ask("reload").ok)
        say(#"{"id":3,"op":"pause","project":"b"}"#)
        #expect(nobody.waitForOutput(#""id":3,"ok":false,"error":"forbidden""#), "admin rights ended: \(nobody.output)")
        try daemon.writeConfig("socket_mode = \"0666\"\n")
        #expect(try admin.ask("reload").ok)
        #expect(nobody.waitForOutput("may no longer connect"), "\(nobody.output)")
        #expect(nobody.waitForExit() != nil, "the daemon closed the connection")
        let status = try admin.ask("status")
        #expect(status["global"]?.objectValue?["in_use"]?.numberValue?.int64 == 0, "its bound lease was released")
    }

    @Test func aConfigFileCreatedAfterStartIsReadByReload() throws {
        let directory = try Daemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_CONFIG_HOME"] = directory + "/config"
        let daemon = try Daemon.startBare(in: directory, environment: environment)
        defer {
            daemon.signal(SIGKILL)
            _ = daemon.waitForExit()
        }
        let client = try TurnstileClient(socketPath: directory + "/t.sock")
        #expect(try client.call("status", timeoutMilliseconds: 10_000)["global"]?.objectValue?["limit"]?.numberValue?.int64 == 8)
        try FileManager.default.createDirectory(atPath: directory + "/config/turnstile", withIntermediateDirectories: true)
        try "[limits]\nglobal = 3\n".write(toFile: directory + "/config/turnstile/turnstile.toml", atomically: true, encoding: .utf8)
        #expect(try client.call("reload", timeoutMilliseconds: 10_000).ok)
        #expect(try client.call("status", timeoutMilliseconds: 10_000)["global"]?.objectValue?["limit"]?.numberValue?.int64 == 3)
    }
}
