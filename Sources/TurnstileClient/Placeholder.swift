// TurnstileClient: filled in by the daemon work.
