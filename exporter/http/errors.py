"""The API's errors: one table of every code with its HTTP status, and the domain errors'
codes. A stable code, a message for people, and the field at fault leave in every answer."""

from __future__ import annotations

from exporter.core import errors as domain

# Every code the API answers with, and its HTTP status (docs/api.md says when each comes).
CODES: dict[str, int] = {
    "invalid_json": 400,
    "invalid_header": 400,
    "invalid_ping_action": 400,
    "missing_integration_key": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "cross_site_request": 403,
    "not_found": 404,
    "monitor_not_found": 404,
    "batch_not_found": 404,
    "method_not_allowed": 405,
    "request_timeout": 408,
    "monitor_type_mismatch": 409,
    "batch_already_finished": 409,
    "batch_monitor_mismatch": 409,
    "idempotency_key_reused": 409,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "misdirected_request": 421,
    "validation_error": 422,
    "invalid_status": 422,
    "internal_error": 500,
    "unavailable": 503,
}

# Each domain error's code; a subclass not listed takes its nearest listed parent's.
DOMAIN_CODES: dict[type[domain.DomainError], str] = {
    domain.MissingKey: "missing_integration_key",
    domain.MonitorNotFound: "monitor_not_found",
    domain.BatchNotFound: "batch_not_found",
    domain.MonitorTypeMismatch: "monitor_type_mismatch",
    domain.UnknownStatus: "invalid_status",
    domain.InvalidReport: "validation_error",
    domain.InvalidSettings: "validation_error",
    domain.BatchAlreadyFinished: "batch_already_finished",
    domain.BatchOfOtherMonitor: "batch_monitor_mismatch",
    domain.IdempotencyConflict: "idempotency_key_reused",
    domain.Unavailable: "unavailable",
}


class ApiError(Exception):
    """An answer other than success: its code (a key of `CODES`) sets the status."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = CODES[code]
        self.code = code
        self.message = message
        self.field = field

    def body(self) -> dict[str, dict[str, str | None]]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}

    @staticmethod
    def of(exc: domain.DomainError) -> ApiError:
        """The answer to a domain error."""
        for kind in type(exc).__mro__:
            code = DOMAIN_CODES.get(kind)
            if code is not None:
                return ApiError(code, exc.message, exc.field)
        return ApiError("internal_error", exc.message, exc.field)


def api_error(exc: ApiError | domain.DomainError) -> ApiError:
    """The answer to an error raised at the edge or below it."""
    return exc if isinstance(exc, ApiError) else ApiError.of(exc)
