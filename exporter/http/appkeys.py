"""The typed keys of the objects the app factory shares with handlers (one place, no globals)."""

from collections.abc import Callable

from aiohttp import web

from exporter.config import Config
from exporter.core.counters import CounterRules
from exporter.http.auth import Auth
from exporter.http.sessions import Sessions
from exporter.metrics.exposition import Exposition
from exporter.service.evaluator import Evaluator
from exporter.service.follower import Follower
from exporter.service.lease import Lease
from exporter.service.monitors import Monitors
from exporter.service.reports import Reports
from exporter.service.state import State
from exporter.service.stats import ServiceStats
from exporter.storage.interface import Store

CONFIG = web.AppKey("config", Config)
STORE: web.AppKey[Store] = web.AppKey("store")
STATE = web.AppKey("state", State)
MONITORS = web.AppKey("monitors", Monitors)
REPORTS = web.AppKey("reports", Reports)
RULES = web.AppKey("rules", CounterRules)
EVALUATOR = web.AppKey("evaluator", Evaluator)
AUTH = web.AppKey("auth", Auth)
EXPOSITION = web.AppKey("exposition", Exposition)
STATS = web.AppKey("stats", ServiceStats)
SESSIONS = web.AppKey("sessions", Sessions)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
FOLLOWER = web.AppKey("follower", Follower)
LEASE = web.AppKey("lease", Lease)
