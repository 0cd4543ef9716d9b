"""The service: ingest, monitors and evaluation.

The only code that writes the store and the in-memory state together.
"""
