"""The pure core: records, statuses, times, counter rules and evaluation.

No I/O, no HTTP, no SQL: every function here is a function of its arguments.
"""
