#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import TurnstileClient
import TurnstileProtocol

/// `--socket`, shared by every command.
struct SocketOption: ParsableArguments {
    @Option(help: "The daemon's socket (default: $TURNSTILE_SOCKET, $XDG_RUNTIME_DIR/turnstile.sock, or /tmp/turnstile-<uid>/turnstile.sock).")
    var socket: String?

    /// The socket path to use.
    var path: String { socket ?? DefaultPaths.socket(DefaultPaths.processEnvironment()) }

    /// Connects, or exits 69 with a line saying how to start the daemon (1 if the socket's
    /// permissions keep this user out: the daemon is there and refuses).
    func connect() throws -> TurnstileClient {
        do {
            return try TurnstileClient(socketPath: path)
        } catch {
            printError("turnstile: \(error)")
            if case .forbidden = error { throw Exit.refused }
            throw Exit.unreachable
        }
    }
}

/// Writes a line to stderr.
func printError(_ line: String) {
    let text = line.hasSuffix("\n") ? line : line + "\n"
    _ = text.withCString { write(STDERR_FILENO, $0, strlen($0)) }
}

/// Writes a line to stdout at once (unbuffered: `watch` output is read live through pipes).
func printLine(_ line: String) {
    let text = line + "\n"
    _ = text.withCString { write(STDOUT_FILENO, $0, strlen($0)) }
}

/// Prints a JSON object on one line.
func printJSON(_ object: JSONObject) {
    var writer = JSONWriter()
    writer.value(.object(object))
    writer.newline()
    _ = writer.bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
}

extension TurnstileClient {
    /// Sends a request and waits for its answer; a lost connection exits 69.
    func request(_ request: ClientRequest) throws -> Answer {
        do {
            return try call(request)
        } catch {
            printError("turnstile: \(error)")
            throw Exit.unreachable
        }
    }
}

/// Prints an answer: when it succeeded, the daemon's JSON with `--json`, else the command's
/// human lines; when not, the daemon's message on stderr and a failure exit (64 for a request
/// the daemon found malformed, a usage error like any other, else 1).
func finish(_ answer: Answer, _ output: OutputOptions, human: (Answer) -> [String]) throws {
    try finish(answer) { answer in
        if output.json { printJSON(answer.object) } else { for line in human(answer) { printLine(line) } }
    }
}

/// Prints an answer as `onSuccess` says when it succeeded; the daemon's message on stderr and
/// a failure exit when not.
func finish(_ answer: Answer, onSuccess: (Answer) -> Void) throws {
    if answer.ok {
        onSuccess(answer)
        return
    }
    printError("turnstile: \(answer.error ?? "error"): \(answer.message ?? "")")
    throw answer.error == "bad_request" ? Exit.usage : Exit.refused
}
