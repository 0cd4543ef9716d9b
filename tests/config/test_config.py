"""The config: defaults, validation naming each field, environment variables, docs, CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from exporter.config import Config, ConfigError, check_serving, load_config, parse_config
from tests.support import ROOT


def _errors(data: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, env or {})
    return caught.value.errors


def test_shipped_config_is_valid_and_safe() -> None:
    config = load_config(ROOT / "config.yaml", env={})
    assert config.server.host == "127.0.0.1"
    assert config.database.path == "integration-monitor.db"
    assert config.auth.tokens == ()
    assert config.monitors[0].integration_key == "example-sync"
    check_serving(config)


def test_defaults_without_a_file() -> None:
    config = load_config(None, env={})
    assert config.evaluation.interval_seconds == 900
    assert config.server.max_body_bytes == 1_048_576
    assert config.severities()["donewitherror"] == "error"


def test_each_invalid_field_is_named() -> None:
    errors = _errors(
        {
            "server": {"port": 70000},
            "evaluation": {"interval_seconds": 0},
            "monitors": [{"integration_key": "has space", "name": "x"}],
            "bogus": 1,
        }
    )
    joined = "\n".join(errors)
    assert "server.port:" in joined
    assert "evaluation.interval_seconds:" in joined
    assert "monitors[0].integration_key:" in joined
    assert "bogus:" in joined
    assert len(errors) == 4


def test_statuses_and_duplicates_are_checked() -> None:
    assert any("statuses" in e for e in _errors({"statuses": {"partial": "warning"}}))
    assert any("built-in" in e for e in _errors({"statuses": {"ok": "error"}}))
    dup = [{"integration_key": "a", "name": "a"}, {"integration_key": "a", "name": "b"}]
    assert any("duplicate integration_key: a" in e for e in _errors({"monitors": dup}))
    buckets = _errors({"metrics": {"duration_buckets": [5, 1]}})
    assert any("metrics.duration_buckets" in e for e in buckets)


def test_environment_variables_are_expanded() -> None:
    data = {
        "auth": {"tokens": [{"name": "ci", "token": "${IM_PUSH_TOKEN}", "roles": ["push"]}]},
        "database": {"path": "${IM_DB:-/data/im.db}"},
    }
    config = parse_config(data, env={"IM_PUSH_TOKEN": "s" * 20})
    assert config.auth.tokens[0].token == "s" * 20
    assert config.database.path == "/data/im.db"
    errors = _errors(data, env={})
    assert errors == ["auth.tokens[0].token: environment variable IM_PUSH_TOKEN is not set"]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("server:\n  port: [1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert re.search(r"c\.yaml:\d+:\d+: invalid YAML", caught.value.errors[0])


def test_no_tokens_means_loopback_only() -> None:
    check_serving(parse_config({"server": {"host": "::1"}}, env={}))
    with pytest.raises(ConfigError, match=r"server\.host"):
        check_serving(parse_config({"server": {"host": "0.0.0.0"}}, env={}))
    tokens = {"tokens": [{"name": "a", "token": "t" * 16, "roles": ["read"]}]}
    check_serving(parse_config({"server": {"host": "0.0.0.0"}, "auth": tokens}, env={}))


def test_cli_overrides_win() -> None:
    config = parse_config({}, env={}).with_overrides(host="::1", port=1234, database="/x.db")
    assert (config.server.host, config.server.port, config.database.path) == ("::1", 1234, "/x.db")


def _options(model: type[BaseModel], prefix: str) -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        dotted = f"{prefix}{name}"
        names.append(dotted)
        inner = info.annotation
        args = getattr(inner, "__args__", ())
        for candidate in (inner, *args):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                sep = "[]." if args else "."
                names += _options(candidate, dotted + sep)
    return names


def test_every_option_is_documented_with_help() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text()
    options = _options(Config, "")
    assert "monitors[].alert_interval" in options and "auth.tokens[].roles" in options
    missing = [name for name in options if f"`{name}`" not in docs]
    assert missing == []
    undescribed = [n for n, f in Config.model_fields.items() if not f.description]
    assert undescribed == []


@pytest.mark.system
def test_check_config_command(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  port: 0\n")
    run = [sys.executable, "-m", "exporter", "check-config", "--config"]
    failed = subprocess.run([*run, str(bad)], capture_output=True, text=True, check=False)
    assert failed.returncode == 2
    assert "server.port:" in failed.stderr
    good = subprocess.run(
        [*run, str(ROOT / "config.yaml")], capture_output=True, text=True, check=False
    )
    assert good.returncode == 0, good.stderr
    assert '"port": 9812' in good.stdout


@pytest.mark.system
def test_serve_refuses_other_addresses_without_tokens(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    command = [sys.executable, "-m", "exporter", "serve", "--config", str(config)]
    command += ["--host", "0.0.0.0", "--database", str(tmp_path / "x.db")]
    refused = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert refused.returncode == 2
    assert "refusing to start" in refused.stderr and "auth.tokens is empty" in refused.stderr
    assert not (tmp_path / "x.db").exists()


def _cli(*args: str, stdout: Any = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "exporter", *args]
    return subprocess.run(
        command, stdout=stdout, stderr=subprocess.PIPE, text=True, check=False, timeout=60
    )


def _problems(stderr: str) -> list[str]:
    """The indented problem lines of an 'invalid configuration' message."""
    return [line.strip() for line in stderr.splitlines() if line.startswith("  ")]


@pytest.mark.system
def test_check_config_refuses_what_serve_refuses_in_the_same_words(tmp_path: Path) -> None:
    config = tmp_path / "open.yaml"
    config.write_text("server:\n  host: 0.0.0.0\n")
    checked = _cli("check-config", "--config", str(config))
    served = _cli("serve", "--config", str(config), "--database", str(tmp_path / "x.db"))
    assert checked.returncode == served.returncode == 2
    assert _problems(checked.stderr) == _problems(served.stderr)
    assert len(_problems(checked.stderr)) == 1
    assert "auth.tokens is empty" in _problems(checked.stderr)[0]
    assert not (tmp_path / "x.db").exists()


@pytest.mark.system
def test_check_config_into_a_closed_pipe_exits_without_a_traceback() -> None:
    """`check-config | head -1`: the reader is gone before the config is printed."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = _cli("check-config", "--config", str(ROOT / "config.yaml"), stdout=write_end)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == 1


def test_errors_show_the_value_in_the_users_words() -> None:
    assert _errors({"server": {"port": "ninety"}}) == ['server.port: "ninety" is not an integer']
    assert _errors({"metrics": {"duration_buckets": "5, 10"}}) == [
        'metrics.duration_buckets: "5, 10" is not a list'
    ]
    assert _errors({"server": {"port": 70000}}) == ["server.port: 70000 must be at most 65535"]
    assert _errors({"database": {"synchronous": "sometimes"}}) == [
        'database.synchronous: "sometimes" is not one of FULL or NORMAL'
    ]


def test_an_unknown_role_is_one_error() -> None:
    token = {"name": "ci", "token": "t" * 16, "roles": ["pusher"]}
    assert _errors({"auth": {"tokens": [token]}}) == [
        'auth.tokens[0].roles[0]: "pusher" is not one of push, read or admin'
    ]


def test_a_misspelt_option_gets_a_suggestion() -> None:
    assert _errors({"server": {"prot": 9000}}) == [
        "server.prot: unknown option; did you mean `port`?"
    ]
    monitor = {"integration_key": "a", "name": "a", "alert_intervall": 5}
    assert _errors({"monitors": [monitor]}) == [
        "monitors[0].alert_intervall: unknown option; did you mean `alert_interval`?"
    ]


def test_yes_is_not_a_number_and_a_number_is_not_yes() -> None:
    monitor = {"integration_key": "a", "name": "a", "alert_no_creates_deceeds": True}
    assert _errors({"monitors": [monitor]}) == [
        "monitors[0].alert_no_creates_deceeds: true is not an integer"
    ]
    assert _errors({"evaluation": {"interval_seconds": True}}) == [
        "evaluation.interval_seconds: true is not a number"
    ]
    assert _errors({"metrics": {"require_auth": 0}}) == [
        "metrics.require_auth: 0 is not true or false"
    ]
    env = {"PORT": "9000"}  # ${VAR} gives text: a number in it still counts
    assert parse_config({"server": {"port": "${PORT}"}}, env=env).server.port == 9000


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("server:\n  port: 9000\n  host: ::1\n  port: 9001\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    [error] = caught.value.errors
    assert error.startswith(f"{path}:4:3: ")
    assert "'port' is given twice in one mapping (first on line 2)" in error


def test_synchronous_is_case_insensitive() -> None:
    assert parse_config({"database": {"synchronous": "full"}}, env={}).database.synchronous == (
        "FULL"
    )
    assert parse_config({"database": {"synchronous": "normal"}}, env={}).database.synchronous == (
        "NORMAL"
    )


def test_scheduled_monitors_and_their_mistakes_in_the_users_words() -> None:
    ok = parse_config(
        {"monitors": [{"integration_key": "b", "name": "B", "schedule": "@daily",
                       "timezone": "America/New_York", "grace": 30, "max_runtime": 60}]},
        {},
    )  # fmt: skip
    assert (ok.monitors[0].schedule, ok.monitors[0].timezone) == ("@daily", "America/New_York")
    monitors = [
        {"integration_key": "a", "name": "A", "schedule": "0 2 * * * *"},
        {"integration_key": "b", "name": "B", "schedule": "0 2 * * *", "timezone": "Stockholm"},
        {"integration_key": "c", "name": "C", "schedule": "0 2 * * *", "alert_interval": 60},
        {"integration_key": "d", "name": "D", "schedule": "0 2 31 2 *"},
    ]
    assert _errors({"monitors": monitors}) == [
        "monitors[0].schedule: has 6 fields; cron takes five "
        "(minute hour day-of-month month day-of-week)",
        "monitors[1].timezone: 'Stockholm' is not an IANA time zone name such as Europe/Stockholm",
        "monitors[2].schedule: a monitor expects runs either on a schedule or within an "
        "alert_interval, not both; set alert_interval to 0 to use a schedule, or schedule to '' "
        "to use an interval",
        "monitors[3].schedule: bad day-of-month field in '0 2 31 2 *'",
    ]


def test_a_postgresql_url_selects_the_shared_store_and_never_shows_its_password() -> None:
    env = {"IM_DB_PASSWORD": "s3cret:pw"}
    config = parse_config(
        {"database": {"url": "postgresql://im:${IM_DB_PASSWORD}@db:5432/im"}}, env=env
    )
    assert config.database.url == "postgresql://im:s3cret:pw@db:5432/im"
    assert config.database.location == "postgresql://im:<redacted>@db:5432/im"
    flagged = parse_config({}, env={}).with_overrides(database="postgres://im:pw@db/im")
    assert flagged.database.url == "postgres://im:pw@db/im"
    assert parse_config({}, env={}).with_overrides(database="/x.db").database.url == ""
    for bad, message in (
        ("mysql://im:topsecret@db/im", "is not a PostgreSQL URL"),
        ("postgresql://im:topsecret@db:5432", "names no database"),
    ):
        errors = _errors({"database": {"url": bad}})
        assert len(errors) == 1 and message in errors[0] and errors[0].startswith("database.url")
        assert "topsecret" not in errors[0]
        with pytest.raises(ConfigError) as refused:
            parse_config({}, env={}).with_overrides(database=bad)
        assert "topsecret" not in str(refused.value) and message in str(refused.value)
