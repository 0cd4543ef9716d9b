"""The Prometheus exposition of the in-memory state."""
