"""Report job runs to integration-monitor: the original add-on's helper functions over HTTP.

``Client`` blocks and needs only the standard library (``urllib``), so a plain script can
report; ``AsyncClient`` does the same over aiohttp. Both build every request with one function
(``_build_request``) and read every answer with another (``_read_answer``); they differ only in
transport and in how they wait between retries.

The module-level helpers keep the original's names, argument names, defaults and exceptions,
with the first argument ``app`` replaced by a client. With an ``AsyncClient`` they return an
awaitable::

    batch = create_integration_monitor_batch(client, "crm-sync")
    update_integration_monitor_batch(client, batch, no_created=3)
    batch = await create_integration_monitor_batch(aclient, "crm-sync")

This module imports nothing from the server side, and aiohttp only for ``AsyncClient``.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, MutableMapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote

if TYPE_CHECKING:
    # Imported when an AsyncClient first needs it: the blocking client needs only the
    # standard library, so this file also works copied next to a script.
    import aiohttp

try:
    from exporter import __version__
except ImportError:  # copied out of the package
    __version__ = "0"

__all__ = [
    "DEFAULT_URL",
    "AsyncClient",
    "BatchRun",
    "Client",
    "IntegrationMonitorBatchNotFound",
    "IntegrationMonitorError",
    "IntegrationMonitorNotFound",
    "IntegrationMonitorUnavailable",
    "MissingIntegrationKey",
    "create_integration_monitor_batch",
    "create_integration_monitor_log",
    "create_integration_monitor_log_error",
    "fetch_integration_monitor",
    "update_integration_monitor_batch",
]

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:9812"
ERRORMSG_LIMIT = 1024
USER_AGENT = f"integration-monitor-client/{__version__}"

Record = dict[str, Any]
"""A monitor, batch or log as the API returns it."""


class IntegrationMonitorError(Exception):
    """An error answer from the service; ``status``, ``code`` and ``field`` come from it."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        return f"{self.message} ({self.status} {self.code or 'error'})"


class MissingIntegrationKey(IntegrationMonitorError):
    """The integration key is empty (raised before any request)."""


class IntegrationMonitorNotFound(IntegrationMonitorError):
    """No monitor has that integration key (404 ``monitor_not_found``)."""


class IntegrationMonitorBatchNotFound(IntegrationMonitorError):
    """No batch was given, or the service has no batch with its id (404 ``batch_not_found``)."""


class IntegrationMonitorUnavailable(IntegrationMonitorError):
    """The service was unreachable or answered 5xx, after the retries.

    The one error ``fail_quietly`` turns into a logged warning.
    """


@dataclass
class BatchRun:
    """A batch in progress, yielded by ``Client.batch``; the job sets the counts and texts."""

    integration_key: str
    integration_id: str = ""
    batch: Record | None = None
    """The batch as the service created it; None when the start could not be reported."""
    no_created: int = 0
    no_updated: int = 0
    no_deleted: int = 0
    logtext: str = ""
    errormsg: str = ""
    logstatus: str | None = None
    """The status to finish with; None means ``ok``, or ``error`` when the block raises."""
    starttime: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def id(self) -> int | None:
        return None if self.batch is None else int(self.batch["id"])


BatchLike = Mapping[str, Any] | BatchRun | int | str
"""A batch as the helpers take it: the dict they returned, a ``BatchRun``, or the batch's id
(an int, or a numeric string such as ``os.environ["IM_BATCH_ID"]``)."""


@dataclass(frozen=True)
class _Call:
    """One API call: what to send, and which part of the answer the caller gets.

    ``in_place``: a dict the caller holds (a batch), updated with the answer as the
    original's object was.
    """

    method: str
    path: str
    body: Mapping[str, Any] | None = None
    result: str | None = None
    missing_monitor_is_none: bool = False
    in_place: MutableMapping[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class _Request:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None


def _build_request(base_url: str, token: str | None, call: _Call) -> _Request:
    """Build the HTTP request for one call; its Idempotency-Key is reused by every retry."""
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = None
    if call.body is not None:
        body = json.dumps(call.body).encode()
        headers["Content-Type"] = "application/json"
    if call.method == "POST":
        headers["Idempotency-Key"] = str(uuid.uuid4())
    return _Request(call.method, base_url + call.path, headers, body)


def _read_answer(call: _Call, status: int, body: bytes) -> Record | None:
    """Return the answer's object for the caller, or raise the error the answer stands for."""
    try:
        payload = json.loads(body) if body else {}
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        message = f"HTTP {status} with a body that is not a JSON object"
        if status >= 500:
            raise IntegrationMonitorUnavailable(message, status=status)
        raise IntegrationMonitorError(message, status=status, code="invalid_response")
    if 200 <= status < 300:
        record: Record = payload[call.result] if call.result else payload
        if call.in_place is not None:
            call.in_place.update(record)
        return record
    error = payload.get("error")
    if not isinstance(error, dict):
        error = {}
    code = error.get("code")
    message = str(error.get("message") or f"HTTP {status}")
    details: dict[str, Any] = {"status": status, "code": code, "field": error.get("field")}
    if status == 404 and code == "monitor_not_found":
        if call.missing_monitor_is_none:
            return None
        raise IntegrationMonitorNotFound(message, **details)
    if status == 404 and code == "batch_not_found":
        raise IntegrationMonitorBatchNotFound(message, **details)
    if code == "missing_integration_key":
        raise MissingIntegrationKey(message, **details)
    if status >= 500:
        raise IntegrationMonitorUnavailable(message, **details)
    raise IntegrationMonitorError(message, **details)


def _require_key(integration_key: str) -> str:
    if not integration_key:
        raise MissingIntegrationKey(
            "integration_key must not be empty", code="missing_integration_key"
        )
    return integration_key


def _key_path(integration_key: str) -> str:
    return "/api/v1/monitors/" + quote(_require_key(integration_key), safe="")


def _iso(value: datetime | str) -> str:
    """ISO 8601 in UTC; a naive datetime is local time, as ``datetime.now()`` returns it."""
    if isinstance(value, str):
        return value
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _batch_id(batch: BatchLike | None) -> int:
    """The id of a batch given as a dict, a ``BatchRun``, an int or a numeric string."""
    record = batch.batch if isinstance(batch, BatchRun) else batch
    if isinstance(record, Mapping):
        record = record.get("id")
    if isinstance(record, str) and record.strip().isascii() and record.strip().isdigit():
        record = int(record)
    if isinstance(record, int) and not isinstance(record, bool) and record > 0:
        return record
    if batch is None or batch == "":
        raise IntegrationMonitorBatchNotFound(
            "integration_monitor_batch must be given", code="batch_not_found"
        )
    raise IntegrationMonitorBatchNotFound(
        f"not a batch, nor a batch id: {batch!r}", code="batch_not_found"
    )


def _batch_dict(batch: BatchLike | None) -> MutableMapping[str, Any] | None:
    """The caller's own batch dict, to update in place; None for a bare id."""
    record = batch.batch if isinstance(batch, BatchRun) else batch
    return record if isinstance(record, MutableMapping) else None


def _fetch_monitor_call(integration_key: str) -> _Call:
    return _Call("GET", _key_path(integration_key), missing_monitor_is_none=True)


def _create_batch_call(
    integration_key: str,
    integration_id: str,
    batch_status: str,
    batch_text: str,
    error_msg: str,
    **extra: Any,
) -> _Call:
    body = {
        "logstatus": batch_status,
        "integrationid": integration_id,
        "logtext": batch_text,
        "errormsg": error_msg,
        **extra,
    }
    return _Call("POST", _key_path(integration_key) + "/batches", body, result="batch")


def _create_log_call(
    batch: BatchLike | None,
    integration_key: str,
    integration_id: str,
    log_status: str,
    log_text: str,
    error_msg: str,
    message: str,
) -> _Call:
    """A log in the batch when one is given (the key, if given too, must be the batch's)."""
    body: dict[str, Any] = {
        "logstatus": log_status,
        "integrationid": integration_id,
        "logtext": log_text,
        "errormsg": error_msg,
        "message": message,
    }
    if isinstance(batch, BatchRun) and batch.batch is None:
        # Its start was not reported (fail_quietly): the log goes to the monitor alone.
        integration_key = integration_key or batch.integration_key
        batch = None
    if batch is None:
        return _Call("POST", _key_path(integration_key) + "/logs", body, result="log")
    batch_id = _batch_id(batch)
    if integration_key:
        body["batch_id"] = batch_id
        return _Call("POST", _key_path(integration_key) + "/logs", body, result="log")
    return _Call("POST", f"/api/v1/batches/{batch_id}/logs", body, result="log")


def _update_batch_call(
    batch: BatchLike | None,
    batch_status: str,
    no_created: int,
    no_updated: int,
    no_deleted: int,
    batch_text: str,
    error_msg: str,
    endtime: datetime | str | None,
) -> _Call:
    batch_id = _batch_id(batch)
    body: dict[str, Any] = {
        "logstatus": batch_status,
        "no_created": no_created,
        "no_updated": no_updated,
        "no_deleted": no_deleted,
        "logtext": batch_text,
        "errormsg": error_msg,
    }
    if endtime is not None:
        body["endtime"] = _iso(endtime)
    return _Call(
        "PATCH", f"/api/v1/batches/{batch_id}", body, result="batch", in_place=_batch_dict(batch)
    )


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:ERRORMSG_LIMIT]


def _finish_batch_call(run: BatchRun, exc: BaseException | None) -> _Call:
    """The call that ends ``run``: ``error`` with the exception's text when one was raised."""
    status = "error" if exc is not None else (run.logstatus or "ok")
    errormsg = _describe(exc) if exc is not None else run.errormsg
    if run.batch is None:
        # The start was not reported (fail_quietly): report the whole run now, if we can.
        return _create_batch_call(
            run.integration_key,
            run.integration_id,
            status,
            run.logtext,
            errormsg,
            no_created=run.no_created,
            no_updated=run.no_updated,
            no_deleted=run.no_deleted,
            starttime=_iso(run.starttime),
        )
    return _update_batch_call(
        run.batch,
        status,
        run.no_created,
        run.no_updated,
        run.no_deleted,
        run.logtext,
        errormsg,
        None,
    )


def _check_base_url(base_url: str) -> str:
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, not {base_url!r}")
    return base_url.rstrip("/")


_R = TypeVar("_R")


class _Helpers(Generic[_R]):
    """The original's helpers as methods; ``_R`` is a record (sync) or an awaitable of one."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        fail_quietly: bool = False,
    ) -> None:
        if retries < 0 or timeout <= 0 or backoff < 0:
            raise ValueError("retries and backoff must be >= 0 and timeout > 0")
        self.base_url = _check_base_url(base_url)
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.fail_quietly = fail_quietly

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, fail_quietly={self.fail_quietly})"

    def _run(self, call: _Call) -> _R:
        raise NotImplementedError

    def _delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, ...): exponential backoff."""
        return float(self.backoff * 2 ** (retry - 1))

    def _quiet(self, call: _Call, exc: IntegrationMonitorUnavailable) -> None:
        if not self.fail_quietly:
            raise exc
        log.warning(
            "integration-monitor: %s %s not reported (fail_quietly): %s",
            call.method,
            call.path,
            exc,
        )

    def fetch_integration_monitor(self, integration_key: str = "") -> _R:
        """The monitor with that key, or None when there is none."""
        return self._run(_fetch_monitor_call(integration_key))

    def create_integration_monitor_batch(
        self,
        integration_key: str,
        integration_id: str = "",
        batch_status: str = "running",
        batch_text: str = "",
        error_msg: str = "",
    ) -> _R:
        """Create a batch (a run) for the monitor; raises IntegrationMonitorNotFound."""
        return self._run(
            _create_batch_call(integration_key, integration_id, batch_status, batch_text, error_msg)
        )

    def create_integration_monitor_log(
        self,
        integration_monitor_batch: BatchLike | None = None,
        integration_key: str = "",
        integration_id: str = "",
        log_status: str = "ok",
        log_text: str = "",
        message: str = "",
    ) -> _R:
        """Create a log, in the batch when one is given (its key is used when none is)."""
        return self._run(
            _create_log_call(
                integration_monitor_batch,
                integration_key,
                integration_id,
                log_status,
                log_text,
                "",
                message,
            )
        )

    def create_integration_monitor_log_error(
        self,
        integration_monitor_batch: BatchLike | None = None,
        integration_key: str = "",
        integration_id: str = "",
        log_status: str = "error",
        log_text: str = "",
        error_msg: str = "",
    ) -> _R:
        """Create a log with status error and an error message."""
        return self._run(
            _create_log_call(
                integration_monitor_batch,
                integration_key,
                integration_id,
                log_status,
                log_text,
                error_msg,
                "",
            )
        )

    def update_integration_monitor_batch(
        self,
        integration_monitor_batch: BatchLike | None = None,
        batch_status: str = "ok",
        no_created: int = 0,
        no_updated: int = 0,
        no_deleted: int = 0,
        batch_text: str = "",
        error_msg: str = "",
        endtime: datetime | str | None = None,
    ) -> _R:
        """Finish or update a batch; raises IntegrationMonitorBatchNotFound without one."""
        return self._run(
            _update_batch_call(
                integration_monitor_batch,
                batch_status,
                no_created,
                no_updated,
                no_deleted,
                batch_text,
                error_msg,
                endtime,
            )
        )


_SYNC_CONNECTION_ERRORS = (OSError, http.client.HTTPException)


class Client(_Helpers[Record | None]):
    """A blocking client over ``urllib``; safe to share between threads."""

    def _run(self, call: _Call) -> Record | None:
        try:
            return self._execute(call)
        except IntegrationMonitorUnavailable as exc:
            self._quiet(call, exc)
            return None

    def _execute(self, call: _Call) -> Record | None:
        request = _build_request(self.base_url, self.token, call)
        failure = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self._delay(attempt))
            try:
                status, body = self._send(request)
            except _SYNC_CONNECTION_ERRORS as exc:
                failure = f"{type(exc).__name__}: {exc}"
                continue
            if status == 503 and attempt < self.retries:
                continue
            return _read_answer(call, status, body)
        raise IntegrationMonitorUnavailable(f"{self.base_url} unreachable: {failure}")

    def _send(self, request: _Request) -> tuple[int, bytes]:
        req = urllib.request.Request(
            request.url, data=request.body, headers=dict(request.headers), method=request.method
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, exc.read()
            finally:
                exc.close()

    @contextmanager
    def batch(
        self, integration_key: str, integration_id: str = "", batch_text: str = ""
    ) -> Iterator[BatchRun]:
        """Report the block as one batch: running now, then ``ok`` or ``error`` at its end."""
        run = BatchRun(integration_key, integration_id, logtext=batch_text)
        run.batch = self.create_integration_monitor_batch(
            integration_key, integration_id, batch_text=batch_text
        )
        try:
            yield run
        except BaseException as exc:
            try:
                self._run(_finish_batch_call(run, exc))
            except IntegrationMonitorError as report_error:
                _note_unreported(exc, report_error)
            raise
        self._run(_finish_batch_call(run, None))


class AsyncClient(_Helpers[Awaitable[Record | None]]):
    """An aiohttp client; ``async with`` it to reuse one session for many reports."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        fail_quietly: bool = False,
    ) -> None:
        super().__init__(base_url, token, timeout, retries, backoff, fail_quietly)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncClient:
        self._session = self._new_session()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _new_session(self) -> aiohttp.ClientSession:
        import aiohttp

        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout), trust_env=True
        )

    def _run(self, call: _Call) -> Awaitable[Record | None]:
        return self._run_async(call)

    async def _run_async(self, call: _Call) -> Record | None:
        try:
            if self._session is not None:
                return await self._execute(self._session, call)
            async with self._new_session() as session:
                return await self._execute(session, call)
        except IntegrationMonitorUnavailable as exc:
            self._quiet(call, exc)
            return None

    async def _execute(self, session: aiohttp.ClientSession, call: _Call) -> Record | None:
        import aiohttp

        request = _build_request(self.base_url, self.token, call)
        failure = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self._delay(attempt))
            try:
                async with session.request(
                    request.method, request.url, headers=request.headers, data=request.body
                ) as response:
                    status, body = response.status, await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = f"{type(exc).__name__}: {exc}"
                continue
            if status == 503 and attempt < self.retries:
                continue
            return _read_answer(call, status, body)
        raise IntegrationMonitorUnavailable(f"{self.base_url} unreachable: {failure}")

    @asynccontextmanager
    async def batch(
        self, integration_key: str, integration_id: str = "", batch_text: str = ""
    ) -> AsyncIterator[BatchRun]:
        """Report the block as one batch: running now, then ``ok`` or ``error`` at its end."""
        run = BatchRun(integration_key, integration_id, logtext=batch_text)
        run.batch = await self.create_integration_monitor_batch(
            integration_key, integration_id, batch_text=batch_text
        )
        try:
            yield run
        except BaseException as exc:
            try:
                await self._run(_finish_batch_call(run, exc))
            except IntegrationMonitorError as report_error:
                _note_unreported(exc, report_error)
            raise
        await self._run(_finish_batch_call(run, None))


def _note_unreported(exc: BaseException, report_error: IntegrationMonitorError) -> None:
    """Keep the job's own exception on top; say that its batch stays unfinished."""
    log.warning("integration-monitor: the failed batch was not reported: %s", report_error)
    exc.add_note(f"(integration-monitor: the failed batch was not reported: {report_error})")


def fetch_integration_monitor(client: _Helpers[_R], integration_key: str = "") -> _R:
    """The monitor with that key as a dict, or None; MissingIntegrationKey for ''."""
    return client.fetch_integration_monitor(integration_key)


def create_integration_monitor_batch(
    client: _Helpers[_R],
    integration_key: str,
    integration_id: str = "",
    batch_status: str = "running",
    batch_text: str = "",
    error_msg: str = "",
) -> _R:
    """Create a batch and return it; IntegrationMonitorNotFound for an unknown key."""
    return client.create_integration_monitor_batch(
        integration_key, integration_id, batch_status, batch_text, error_msg
    )


def create_integration_monitor_log(
    client: _Helpers[_R],
    integration_monitor_batch: BatchLike | None = None,
    integration_key: str = "",
    integration_id: str = "",
    log_status: str = "ok",
    log_text: str = "",
    message: str = "",
) -> _R:
    """Create a log (in the batch, if given) and return it."""
    return client.create_integration_monitor_log(
        integration_monitor_batch, integration_key, integration_id, log_status, log_text, message
    )


def create_integration_monitor_log_error(
    client: _Helpers[_R],
    integration_monitor_batch: BatchLike | None = None,
    integration_key: str = "",
    integration_id: str = "",
    log_status: str = "error",
    log_text: str = "",
    error_msg: str = "",
) -> _R:
    """Create a log with status error (in the batch, if given) and return it."""
    return client.create_integration_monitor_log_error(
        integration_monitor_batch, integration_key, integration_id, log_status, log_text, error_msg
    )


def update_integration_monitor_batch(
    client: _Helpers[_R],
    integration_monitor_batch: BatchLike | None = None,
    batch_status: str = "ok",
    no_created: int = 0,
    no_updated: int = 0,
    no_deleted: int = 0,
    batch_text: str = "",
    error_msg: str = "",
    endtime: datetime | str | None = None,
) -> _R:
    """Update (usually finish) a batch and return it; IntegrationMonitorBatchNotFound for None."""
    return client.update_integration_monitor_batch(
        integration_monitor_batch,
        batch_status,
        no_created,
        no_updated,
        no_deleted,
        batch_text,
        error_msg,
        endtime,
    )
