import CLibUV

/// A libuv call that failed: which call, and libuv's words for why.
public struct UVError: Error, CustomStringConvertible {
    /// The failing call, e.g. `uv_pipe_bind(/run/user/1000/turnstile.sock)`.
    public let call: String
    /// libuv's (negative errno) code.
    public let code: Int32

    public var description: String { "\(call): \(String(cString: uv_strerror(code)))" }
}

/// The one funnel for libuv return codes outside callbacks (NIO's `syscall` style): a
/// negative code becomes a thrown `UVError`.
@discardableResult
func check(_ code: Int32, _ call: @autoclosure () -> String) throws(UVError) -> Int32 {
    if code < 0 { throw UVError(call: call(), code: code) }
    return code
}

/// libuv's text for an error code, for log lines inside callbacks (which cannot throw).
func uvErrorText(_ code: Int32) -> String { String(cString: uv_strerror(code)) }

/// Pointer conversions between libuv's handle "subclasses", which C expresses by layout.
enum UVHandle {
    static func handle<T>(_ pointer: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutablePointer<uv_handle_t>(OpaquePointer(pointer))
    }

    static func stream<T>(_ pointer: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_stream_t> {
        UnsafeMutablePointer<uv_stream_t>(OpaquePointer(pointer))
    }
}
