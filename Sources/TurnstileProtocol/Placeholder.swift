// TurnstileProtocol: filled in by the daemon work.
