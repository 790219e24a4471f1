"""The reference security cloud: a receiver for minimized verdicts, reputation and erasure."""
