#if canImport(Glibc)
import Glibc
#endif
import CLibUV

extension Server {
    /// Runs the `on_trip` command with `/bin/sh -c`, never blocking the loop (`uv_spawn`),
    /// with `TURNSTILE_PROJECT` and `TURNSTILE_FAILURES` added to the daemon's environment.
    func runTripHook(project: String, failures: Int) {
        guard let command = session.config.circuitBreaker.onTrip, !command.isEmpty else { return }
        var environment: [String] = []
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if !text.hasPrefix("TURNSTILE_PROJECT=") && !text.hasPrefix("TURNSTILE_FAILURES=") { environment.append(text) }
            pointer += 1
        }
        environment += ["TURNSTILE_PROJECT=\(project)", "TURNSTILE_FAILURES=\(failures)"]
        let arguments = ["/bin/sh", "-c", command]
        let cArguments = arguments.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup($0) } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        let process = UnsafeMutablePointer<uv_process_t>.allocate(capacity: 1)
        var stdio = [uv_stdio_container_t](repeating: uv_stdio_container_t(), count: 3)
        stdio[0].flags = UV_IGNORE
        stdio[1].flags = UV_INHERIT_FD
        stdio[1].data.fd = 2
        stdio[2].flags = UV_INHERIT_FD
        stdio[2].data.fd = 2
        let status: Int32 = cArguments.withUnsafeBufferPointer { argv in
            cEnvironment.withUnsafeBufferPointer { envp in
                stdio.withUnsafeMutableBufferPointer { stdioBuffer in
                    var options = uv_process_options_t()
                    options.exit_cb = onTripHookExit
                    options.file = UnsafePointer(argv[0])
                    options.args = UnsafeMutablePointer(mutating: argv.baseAddress)
                    options.env = UnsafeMutablePointer(mutating: envp.baseAddress)
                    options.stdio_count = 3
                    options.stdio = stdioBuffer.baseAddress
                    return uv_spawn(loop, process, &options)
                }
            }
        }
        if status != 0 {
            logger.error("cannot run on_trip", metadata: ["command": "\(command)", "error": "\(uvErrorText(status))"])
            uv_close(UVHandle.handle(process), onHandleClosedFree)
        } else {
            logger.info("on_trip started", metadata: ["project": "\(project)", "pid": "\(process.pointee.pid)"])
        }
    }

    /// The trip hook exited.
    func tripHookExited(status: Int64, signal: Int32) {
        if status == 0 && signal == 0 {
            logger.info("on_trip finished")
        } else {
            logger.warning("on_trip failed", metadata: ["status": "\(status)", "signal": "\(signal)"])
        }
    }
}
