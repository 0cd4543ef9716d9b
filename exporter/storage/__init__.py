"""Storage: the store interface and its implementations."""
