// TurnstileServer: filled in by the daemon work.
