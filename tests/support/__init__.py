"""Plumbing the tests share: processes and binaries, and the service in a subprocess."""
