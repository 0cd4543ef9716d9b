"""The service's configuration: one typed, frozen, validated object loaded from YAML."""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exporter.config.describe import describe_all
from exporter.config.settings import Flag, MonitorBody, Number, Whole
from exporter.core.records import KEY_PATTERN
from exporter.core.statuses import BUILTIN_STATUSES, Severity

Role = Literal["push", "read", "admin"]


class ConfigError(Exception):
    """The configuration is invalid; `errors` holds one line per problem, each naming its field."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerConfig(_Section):
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: Whole = Field(9812, ge=1, le=65535, description="TCP port to listen on.")
    max_body_bytes: Whole = Field(
        1_048_576, ge=1024, description="Largest request body accepted; larger ones get 413."
    )
    base_url: str = Field(
        "",
        description="Public URL of the service, used in links (status page, badges). "
        "Empty: derived from each request.",
    )
    shutdown_timeout_seconds: Number = Field(
        10.0, gt=0, description="On SIGTERM/SIGINT, how long in-flight requests may finish."
    )
    read_timeout_seconds: float = Field(
        30.0, gt=0, description="A request body not complete after this long is cut with 408."
    )
    trusted_proxies: tuple[str, ...] = Field(
        ("127.0.0.1", "::1"),
        description="Addresses or networks of reverse proxies whose X-Forwarded-Proto is "
        "believed (the sign-in cookie is then marked Secure for https).",
    )
    allowed_hosts: tuple[str, ...] = Field(
        (),
        description="Without tokens, Host names accepted besides loopback ones and the host "
        "of base_url (others get 421: DNS rebinding).",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value


class DatabaseConfig(_Section):
    url: str = Field(
        "",
        description="PostgreSQL URL (postgresql://user:${PASSWORD}@host:5432/dbname), for "
        "several replicas on one database. Empty: the SQLite file `path`.",
    )
    path: str = Field(
        "integration-monitor.db", description="SQLite database file, relative to the working dir."
    )
    max_group_size: Whole = Field(
        512, ge=1, description="Most writes committed together in one transaction (group commit)."
    )
    synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="SQLite synchronous mode. FULL: a report acknowledged survives power loss. "
        "NORMAL: it survives a crash of the process, not of the machine; faster.",
    )
    pool_size: Whole = Field(
        10, ge=2, le=100, description="PostgreSQL: connections each replica keeps open."
    )
    lease_seconds: Number = Field(
        15,
        ge=2,
        le=3600,
        description="PostgreSQL: the periodic evaluation pass and retention run on one replica "
        "at a time; when it dies, another takes over within this time.",
    )

    @field_validator("synchronous", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        """SQLite's PRAGMA takes `full` as well as `FULL`; so does this option."""
        if isinstance(value, str) and value.upper() in ("FULL", "NORMAL"):
            return value.upper()
        return value

    @field_validator("url")
    @classmethod
    def _postgresql(cls, value: str) -> str:
        if value and not is_database_url(value):
            raise ValueError(
                f"{redact_url(value)!r} is not a PostgreSQL URL "
                "(postgresql://user:password@host:5432/dbname)"
            )
        if value and not urlsplit(value).path.strip("/"):
            raise ValueError(f"{redact_url(value)!r} names no database (…:5432/dbname)")
        return value

    @property
    def location(self) -> str:
        """Where the data is, for logs and check-config: the URL without its password."""
        return redact_url(self.url) if self.url else self.path


def is_database_url(value: str) -> bool:
    """True for a PostgreSQL URL (what `--database` takes besides a file path)."""
    return urlsplit(value).scheme in ("postgresql", "postgres")


def redact_url(url: str) -> str:
    """The URL with its password (if any) replaced: safe for logs and printed configs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:<redacted>@{host}"))


class ReportsConfig(_Section):
    max_clock_skew_seconds: Number = Field(
        300,
        ge=0,
        le=86400,
        description="How far in the future a report's starttime or endtime may lie (a job "
        "host's clock running ahead); later times are refused with 422.",
    )


class RetentionConfig(_Section):
    max_age_days: Number = Field(
        30, gt=0, description="Batches and logs older than this are pruned. Counters are kept."
    )
    interval_seconds: Number = Field(3600, gt=0, description="How often pruning runs.")
    transitions_per_monitor: Whole = Field(
        100, ge=1, le=100_000, description="Alert status changes kept per monitor (newest)."
    )


class EvaluationConfig(_Section):
    interval_seconds: Number = Field(
        900, gt=0, description="How often every active monitor is evaluated (the original: 15 min)."
    )
    chunk_size: Whole = Field(
        500, ge=1, description="Monitors evaluated between yields to the event loop."
    )


class MetricsConfig(_Section):
    require_auth: Flag = Field(
        True, description="With tokens configured, /metrics needs a token with the read role."
    )
    duration_histogram: Flag = Field(
        False,
        description="Export every monitor's run duration histogram (buckets + 2 series each); "
        "a monitor's own duration_histogram setting wins.",
    )
    duration_buckets: tuple[Number, ...] = Field(
        (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400),
        description="Upper bounds (seconds) of the run duration histogram buckets.",
    )

    @field_validator("duration_buckets")
    @classmethod
    def _increasing(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("must be a non-empty, strictly increasing list of seconds")
        return value


class TokenConfig(_Section):
    name: str = Field(description="A name for the token, used in logs (never the token itself).")
    token: str = Field(min_length=16, description="The secret; use ${ENV_VAR} to keep it out.")
    roles: tuple[Role, ...] = Field(
        min_length=1, description="Any of push (report), read (GET, scrape), admin (monitors)."
    )
    monitors: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] | None = Field(
        None,
        description="Glob patterns on integration_key (crm-*, erp-import) of the monitors the "
        "token covers; others are hidden from it. Omitted: every monitor.",
    )


class AuthConfig(_Section):
    tokens: tuple[TokenConfig, ...] = Field(
        (), description="Bearer tokens by role. None configured: open, loopback only."
    )


class MonitorConfig(MonitorBody):
    """A monitor declared in the file: the API's settings plus its key."""

    integration_key: str = Field(
        max_length=32, pattern=KEY_PATTERN, description="Unique key, the id in URLs."
    )


class Config(_Section):
    server: ServerConfig = Field(default_factory=ServerConfig, description="HTTP server.")
    database: DatabaseConfig = Field(
        default_factory=DatabaseConfig, description="The store: an SQLite file or PostgreSQL."
    )
    reports: ReportsConfig = Field(
        default_factory=ReportsConfig, description="What reports may carry."
    )
    retention: RetentionConfig = Field(
        default_factory=RetentionConfig,
        description="Pruning of old batches and logs.",
    )
    evaluation: EvaluationConfig = Field(
        default_factory=EvaluationConfig,
        description="The alert evaluation loop.",
    )
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="/metrics.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Bearer tokens.")
    statuses: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")], Severity] = Field(
        default_factory=dict,
        description="Custom run statuses, each mapped to the severity it counts as "
        "(running, ok or error).",
    )
    monitors: tuple[MonitorConfig, ...] = Field(
        (), description="Monitors upserted at start (settings only; history is kept)."
    )

    @field_validator("statuses")
    @classmethod
    def _not_builtin(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        clash = sorted(set(value) & set(BUILTIN_STATUSES))
        if clash:
            raise ValueError(f"built-in statuses cannot be redefined: {', '.join(clash)}")
        return value

    @field_validator("monitors")
    @classmethod
    def _unique_keys(cls, value: tuple[MonitorConfig, ...]) -> tuple[MonitorConfig, ...]:
        keys = [m.integration_key for m in value]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"duplicate integration_key: {', '.join(dupes)}")
        return value

    @model_validator(mode="after")
    def _unique_tokens(self) -> Config:
        secrets = [t.token for t in self.auth.tokens]
        if len(secrets) != len(set(secrets)):
            raise ValueError("auth.tokens: two tokens have the same secret")
        return self

    def severities(self) -> dict[str, Severity]:
        """Every known status (built-in and custom) with its severity."""
        return {**BUILTIN_STATUSES, **self.statuses}

    def with_overrides(self, **server_or_db: Any) -> Config:
        """A copy with CLI flags applied (host, port, database)."""
        server = self.server.model_copy(
            update={k: v for k, v in server_or_db.items() if k in ("host", "port") and v}
        )
        database, given = self.database, server_or_db.get("database")
        if given:  # a file path, or a PostgreSQL URL
            is_url = "://" in given  # a URL of another kind is refused, not taken for a file
            update = {"url": given} if is_url else {"url": "", "path": given}
            try:
                database = DatabaseConfig.model_validate({**database.model_dump(), **update})
            except ValidationError as exc:
                errors = describe_all(exc.errors(include_url=False), DatabaseConfig)
                raise ConfigError([f"--database: {e.partition(': ')[2]}" for e in errors]) from None
        return self.model_copy(update={"server": server, "database": database})


def check_serving(config: Config) -> None:
    """What `serve` refuses beyond the file's own validity (`check-config` runs it too).

    Listening beyond loopback without tokens would let anyone push reports or change monitors.
    """
    if not config.auth.tokens and not is_loopback(config.server.host):
        raise ConfigError(
            [
                f"server.host: {config.server.host!r} is reachable from other machines but "
                "auth.tokens is empty; configure tokens or listen on 127.0.0.1"
            ]
        )


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"{key!r} is given twice in one mapping (first on line {first})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep)


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: Any, env: dict[str, str], where: str, errors: list[str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string of the parsed YAML."""
    if isinstance(value, dict):
        return {
            k: _expand_env(v, env, f"{where}.{k}" if where else str(k), errors)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expand_env(v, env, f"{where}[{i}]", errors) for i, v in enumerate(value)]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            errors.append(f"{where}: environment variable {name} is not set")
            return ""

        return _ENV_REF.sub(substitute, value)
    return value


def parse_config(data: Any, env: dict[str, str] | None = None) -> Config:
    """Validate parsed YAML (a mapping or None); raise ConfigError listing each error."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["(top level): must be a mapping of sections"])
    errors: list[str] = []
    data = _expand_env(data, dict(os.environ) if env is None else env, "", errors)
    if errors:
        raise ConfigError(errors)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_all(exc.errors(include_url=False), Config)) from None


def load_config(path: str | Path | None, env: dict[str, str] | None = None) -> Config:
    """Read and validate a YAML config file; None gives the defaults."""
    if path is None:
        return parse_config({}, env)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError([f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}"]) from None
    return parse_config(data, env)
