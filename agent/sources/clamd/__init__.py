"""clamd-compatible local socket: protocol and server."""
