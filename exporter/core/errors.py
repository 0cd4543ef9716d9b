"""Domain errors: what can go wrong with a report or a request, in the domain's words.

Raised by the core, the service and the stores; the HTTP edge maps each class to a status
and a stable code in one table (`exporter.http.errors`).
"""

from __future__ import annotations


class DomainError(Exception):
    """A refusal with a message for people and, where one is at fault, the field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class MissingKey(DomainError):
    def __init__(self) -> None:
        super().__init__("integration_key is empty", "key")


class MonitorNotFound(DomainError):
    def __init__(self, key: str) -> None:
        super().__init__(f"No monitor with integration_key {key!r}")
        self.key = key


class BatchNotFound(DomainError):
    def __init__(self, batch_id: int | str, field: str | None = None) -> None:
        super().__init__(f"No batch with id {batch_id}", field)


class MonitorTypeMismatch(DomainError):
    """A batch for a message monitor, or a batch monitor's kind of report on a message one."""


class UnknownStatus(DomainError):
    def __init__(self, status: str, known: list[str]) -> None:
        super().__init__(f"Unknown logstatus {status!r}; known: {', '.join(known)}", "logstatus")


class InvalidSettings(DomainError):
    """Monitor settings that contradict each other (a schedule and an alert_interval)."""


class InvalidReport(DomainError):
    """A report whose values cannot all be true (an end before its start, a time in 2100)."""


class BatchAlreadyFinished(DomainError):
    def __init__(self, batch_id: int, status: str) -> None:
        super().__init__(
            f"Batch {batch_id} finished as {status!r}; it cannot run again", "logstatus"
        )


class BatchOfOtherMonitor(DomainError):
    def __init__(self, batch_id: int) -> None:
        super().__init__(f"batch {batch_id} belongs to another monitor", "batch_id")


class IdempotencyConflict(DomainError):
    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was used with a different request", "Idempotency-Key"
        )


class Unavailable(DomainError):
    """The store does not take writes now (shutting down, disk full, database down): retry."""
