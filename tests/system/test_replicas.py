"""Several replicas on one PostgreSQL database, as real processes: faults, failover, one view.

- PostgreSQL stopped (or killed) under a replica: reports get 503 with Retry-After and the API's
  error body, /readyz says 503; once PostgreSQL is back the replica is ready again by itself and
  every report it acknowledged is stored.
- Two replicas behind HAProxy (round robin, /readyz checks, a dropped request with an
  Idempotency-Key sent again), loaded by threads that retry as the client library does; the
  replica holding the evaluation lease is SIGKILLed: every acknowledged report is stored once,
  the survivor's runs_total equals the stored rows, and the survivor takes the lease over.
- A report sent to one replica shows on the other's /metrics and API.

Timings (takeover, propagation) and client errors during the switch are printed (`pytest -s`);
the assertions on time are loose, since everything shares two cores: bench/ measures them.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT
from tests.support.postgres import Cluster
from tests.support.processes import Processes, answers, binary, free_port, http, wait_for
from tests.support.service import Service

LEASE_SECONDS = 2
CONFIG = {"database": {"lease_seconds": LEASE_SECONDS}, "evaluation": {"interval_seconds": 1}}
KEY = "replicated"
REQUEST_SECONDS = 5.0
RECOVER_SECONDS = 60.0
HOLDING = "holding the evaluation lease"
THREADS = 8
LOAD_BEFORE_KILL = 1.0
LOAD_AFTER_KILL = 4.0
# One lease period (a dead holder's lease runs out within 2/3 of it and the survivor looks every
# third), plus the machine's noise.
TAKEOVER_LIMIT = LEASE_SECONDS + 2.0
PROPAGATION_LIMIT = 5.0  # the issue asks 1 s; bench/ measures it, this only bounds it


@dataclass(frozen=True)
class Answer:
    status: int  # 0: no answer (connection refused or dropped, timeout)
    headers: dict[str, str]
    body: str


def send(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Answer:
    """One request; unlike `http`, every outcome comes back (status 0: no answer at all)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_SECONDS) as response:
            return Answer(response.status, dict(response.headers), response.read().decode())
    except urllib.error.HTTPError as exc:
        try:
            return Answer(exc.code, dict(exc.headers), exc.read().decode(errors="replace"))
        finally:
            exc.close()
    except OSError as exc:  # refused, reset, timed out
        return Answer(0, {}, repr(exc))


def report(base: str, text: str, status: str = "ok") -> Answer:
    """A log of the message monitor KEY, its text unique, with an Idempotency-Key."""
    return send(
        "POST",
        f"{base}/api/v1/monitors/{KEY}/logs",
        {"logstatus": status, "logtext": text},
        {"Idempotency-Key": text},
    )


def stored_logs(base: str) -> list[dict[str, Any]]:
    """Every log of KEY as stored, through the API (all pages)."""
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = http("GET", f"{base}/api/v1/monitors/{KEY}/logs?limit=500{cursor}")
        items += page["items"]
        if not page["next_cursor"]:
            return items
        cursor = f"&cursor={page['next_cursor']}"


def runs_total(base: str) -> dict[str, float]:
    """integration_monitor_runs_total of KEY on this replica's /metrics, by status."""
    text = http("GET", f"{base}/metrics", allow_text=True)
    pattern = re.compile(
        r"^integration_monitor_runs_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.MULTILINE
    )
    found: dict[str, float] = {}
    for match in pattern.finditer(text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("integration_key") == KEY:
            found[labels["status"]] = float(match["value"])
    return found


def evaluations_total(base: str) -> float:
    text = http("GET", f"{base}/metrics", allow_text=True)
    match = re.search(r"^integration_monitor_evaluations_total (\S+)$", text, re.MULTILINE)
    if match is None:
        raise AssertionError("no integration_monitor_evaluations_total on /metrics")
    return float(match[1])


def start_replica(directory: Path, database: str) -> Service:
    """A replica in its own processes (so another's death does not fail its waits)."""
    directory.mkdir()
    return Service(directory, yaml.safe_dump(CONFIG), database=database)


def create_monitor(replica: Service) -> None:
    replica.call("PUT", f"/api/v1/monitors/{KEY}", {"name": KEY, "type": "message"})


def holds_lease(replica: Service) -> bool:
    """What the replica's log says last about the lease."""
    log = replica.output(tail=1_000_000)
    return log.rfind(HOLDING) > log.rfind("no longer holding the evaluation lease")


@dataclass
class Load:
    """Threads sending reports through the proxy, retrying like the client library: the same
    Idempotency-Key on 502, 503 and no answer, until acknowledged."""

    url: str
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged: dict[str, str] = field(default_factory=dict)  # logtext -> logstatus
    errors: list[tuple[float, str]] = field(default_factory=list)  # (time.monotonic(), what)
    refused: list[Answer] = field(default_factory=list)  # 4xx: a bug, never retried
    unfinished: int = 0  # given up on after too many retries

    def run(self, thread: int) -> None:
        for number in range(1_000_000):
            if self.stop.is_set():
                return
            text = f"t{thread}-{number}-{uuid.uuid4().hex[:8]}"
            status = "error" if number % 4 == 0 else "ok"
            for _ in range(50):
                answer = report(self.url, text, status)
                if 200 <= answer.status < 300:
                    with self.lock:
                        self.acknowledged[text] = status
                    break
                if answer.status not in (0, 502, 503, 504):
                    with self.lock:
                        self.refused.append(answer)
                    break
                what = f"{answer.status} {answer.body[:80]}" if answer.status else answer.body[:60]
                with self.lock:
                    self.errors.append((time.monotonic(), what))
                time.sleep(0.1)
            else:
                with self.lock:
                    self.unfinished += 1


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    """A cluster of the test's own, which the test stops or kills. Durable: with the session
    cluster's synchronous_commit=off, a killed server forgets its last commits (the schema of
    a database created a moment before, and acknowledged reports), as it is allowed to."""
    cluster = Cluster(durable=True).start()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def replicas(tmp_path: Path, postgres_cluster: Cluster) -> Iterator[tuple[Service, Service]]:
    """Two replicas on one new database of the session's cluster, KEY created on the first."""
    database = postgres_cluster.database()
    started: list[Service] = []
    try:
        for name in ("a", "b"):
            started.append(start_replica(tmp_path / name, database))
        create_monitor(started[0])
        wait_for(
            "the second replica to follow the new monitor",
            answers(f"{started[1].url}/api/v1/monitors/{KEY}"),
            10.0,
            started[1].processes,
        )
        yield started[0], started[1]
    finally:
        for replica in started:
            replica.stop()


# --- PostgreSQL down and back ------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["stop", "kill"])
def test_postgresql_down_gives_503_and_back_loses_nothing_acknowledged(
    tmp_path: Path, own_cluster: Cluster, fault: str
) -> None:
    replica = Service(tmp_path, yaml.safe_dump(CONFIG), database=own_cluster.database())
    # Reports in flight when PostgreSQL goes, retried until it is back.
    load = Load(replica.url)
    try:
        create_monitor(replica)
        acknowledged: list[str] = []
        numbers = iter(range(1_000_000))

        def attempt() -> Answer:
            text = f"r{next(numbers)}"
            answer = report(replica.url, text)
            if 200 <= answer.status < 300:
                acknowledged.append(text)
            return answer

        first = attempt()
        assert first.status == 201, first
        threads = [threading.Thread(target=load.run, args=(n,), daemon=True) for n in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)

        if fault == "stop":
            own_cluster.stop()
        else:
            own_cluster.kill()

        def refused_report() -> Answer | None:
            answer = attempt()
            return answer if answer.status == 503 else None

        refused = wait_for(
            "a report to get 503 with PostgreSQL down", refused_report, 30.0, replica.processes
        )
        assert "Retry-After" in refused.headers, refused
        assert int(refused.headers["Retry-After"]) > 0, refused
        error = json.loads(refused.body)["error"]
        assert error["code"] and error["message"], refused.body
        readyz = send("GET", f"{replica.url}/readyz")
        assert readyz.status == 503, readyz
        for _ in range(5):  # more reports while down: refused, none acknowledged
            assert attempt().status == 503

        own_cluster.start_again()
        back_at = time.monotonic()
        wait_for(
            "/readyz to say 200 again",
            answers(f"{replica.url}/readyz"),
            RECOVER_SECONDS,
            replica.processes,
        )
        ready_after = time.monotonic() - back_at
        wait_for(
            "a report to be accepted again",
            lambda: attempt().status == 201,
            RECOVER_SECONDS,
            replica.processes,
        )
        accepted_after = time.monotonic() - back_at
        time.sleep(0.5)
        load.stop.set()
        for thread in threads:
            thread.join(timeout=60.0)
        assert not any(thread.is_alive() for thread in threads), "the load did not stop"
        assert not load.refused, load.refused[:5]
        acknowledged += load.acknowledged

        stored = Counter(log["logtext"] for log in stored_logs(replica.url))
        missing = [text for text in acknowledged if stored[text] != 1]
        assert not missing, f"acknowledged, not stored once: {missing} (stored: {stored})"
        # A report refused or unanswered may or may not be stored, but never twice.
        assert max(stored.values()) == 1, stored
        print(
            f"\nPostgreSQL {fault}: ready {ready_after:.2f} s and accepting "
            f"{accepted_after:.2f} s after it was back; {len(acknowledged)} acknowledged, "
            f"all stored; the load retried {len(load.errors)} times, gave up {load.unfinished}"
        )
    finally:
        load.stop.set()
        replica.stop()


# --- SIGKILL one of two replicas under load behind the proxy -----------------------------------


def haproxy_config(port: int, replicas: list[Service]) -> str:
    """The shipped proxy's settings (deploy/proxy/haproxy.cfg), on 127.0.0.1 and checking
    every half second, so the test is short. A check still has the shipped 2 s to answer (its
    `inter`): under this load a replica's /readyz can take over half a second here, and
    HAProxy would take the survivor out too."""
    servers = "\n".join(
        f"    server r{n} 127.0.0.1:{replica.port}" for n, replica in enumerate(replicas)
    )
    unavailable = '{"error": {"code": "unavailable", "message": "No replica is ready"}}'
    return f"""\
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout check 2s
    retries 1
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    option http-buffer-request
    http-error status 503 content-type application/json hdr Retry-After 1 string '{unavailable}'

frontend integration-monitor
    bind 127.0.0.1:{port}
    http-request disable-l7-retry unless METH_GET || {{ req.hdr(idempotency-key) -m found }}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz
    http-check expect status 200
    default-server check inter 500ms fall 2 rise 2
{servers}
"""


def test_sigkill_of_the_lease_holder_under_load_loses_nothing_and_the_other_takes_over(
    tmp_path: Path, replicas: tuple[Service, Service]
) -> None:
    processes = Processes()
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config(port, list(replicas)))
    proxy = f"http://127.0.0.1:{port}"
    try:
        processes.start(
            "haproxy", [binary("/usr/sbin/haproxy"), "-db", "-f", str(config)],
            tmp_path / "haproxy.log", cwd=ROOT,
        )  # fmt: skip
        wait_for("the proxy", answers(f"{proxy}/readyz"), 30.0, processes)
        holder = wait_for(
            "one replica to hold the lease",
            lambda: [r for r in replicas if holds_lease(r)],
            3 * LEASE_SECONDS + 10.0,
            processes,
        )
        assert len(holder) == 1, [r.output() for r in replicas]
        killed = holder[0]
        survivor = replicas[1] if killed is replicas[0] else replicas[0]
        evaluations_before = evaluations_total(survivor.url)

        load = Load(proxy)
        threads = [
            threading.Thread(target=load.run, args=(n,), daemon=True) for n in range(THREADS)
        ]
        for thread in threads:
            thread.start()
        try:
            time.sleep(LOAD_BEFORE_KILL)
            before_kill = len(load.acknowledged)
            # Only the holder runs the periodic pass (and counts it).
            assert evaluations_total(survivor.url) == evaluations_before
            killed.process.kill()
            killed_at = time.monotonic()
            killed.wait(timeout=10.0)
            wait_for(
                "the survivor to take the lease over",
                lambda: holds_lease(survivor),
                3 * LEASE_SECONDS + 10.0,
                survivor.processes,
                poll=0.05,
            )
            takeover = time.monotonic() - killed_at
            time.sleep(max(0.0, killed_at + LOAD_AFTER_KILL - time.monotonic()))
        finally:
            load.stop.set()
            for thread in threads:
                thread.join(timeout=60.0)
        assert not any(thread.is_alive() for thread in threads), "the load did not stop"

        stored = stored_logs(survivor.url)
        times = Counter(log["logtext"] for log in stored)
        lost = [text for text in load.acknowledged if times[text] == 0]
        twice = {text: n for text, n in times.items() if n > 1}
        assert not lost, f"{len(lost)} acknowledged reports lost: {lost[:20]}"
        assert not twice, f"stored more than once: {twice}"
        assert not load.refused, load.refused[:5]
        by_status = Counter(log["logstatus"] for log in stored)
        assert by_status["ok"] > 0 and by_status["error"] > 0, by_status
        expected = {status: float(n) for status, n in by_status.items()}
        wait_for(
            "the survivor's runs_total to equal the stored rows",
            lambda: runs_total(survivor.url) == expected,
            10.0,
            survivor.processes,
        )
        assert runs_total(survivor.url) == expected
        assert takeover <= TAKEOVER_LIMIT, f"takeover after {takeover:.2f} s"
        wait_for(
            "the survivor's periodic pass to run",
            lambda: evaluations_total(survivor.url) > evaluations_before,
            5.0,
            survivor.processes,
        )

        during = [(moment - killed_at, what) for moment, what in load.errors if moment >= killed_at]
        switch = [what for _, what in during]
        span = f"{during[0][0]:.2f}-{during[-1][0]:.2f} s after the kill" if during else "none"
        print(
            f"\nSIGKILL of the lease holder under load: {len(load.acknowledged)} reports "
            f"acknowledged ({before_kill} before the kill), {len(stored)} stored, 0 lost, "
            f"0 twice; lease taken over after {takeover:.2f} s (lease {LEASE_SECONDS} s); "
            f"client errors retried during the switch: {len(switch)} ({span}) "
            f"{dict(Counter(switch))}; "
            f"given up: {load.unfinished}"
        )
    finally:
        processes.stop()


# --- one view everywhere -----------------------------------------------------------------------


def test_a_report_to_one_replica_shows_on_the_others_metrics_and_api(
    replicas: tuple[Service, Service],
) -> None:
    first, second = replicas
    assert runs_total(second.url) == {}
    sent_at = time.monotonic()
    answer = report(first.url, "across")
    assert answer.status == 201, answer

    def shown() -> bool:
        return runs_total(second.url) == {"ok": 1.0} and [
            log["logtext"] for log in second.logs(KEY)
        ] == ["across"]

    wait_for("the report on the other replica", shown, 10.0, second.processes, poll=0.02)
    propagation = time.monotonic() - sent_at
    assert propagation <= PROPAGATION_LIMIT, f"{propagation:.2f} s"
    print(f"\nreport on one replica -> on the other's /metrics and API: {propagation:.3f} s")
