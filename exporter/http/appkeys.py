"""The typed keys of the objects the app factory shares with handlers (one place, no globals)."""

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.config import Config
from exporter.http.auth import Auth
from exporter.http.sessions import Sessions
from exporter.metrics.exposition import Exposition
from exporter.service.evaluator import Evaluator
from exporter.service.reports import Reports
from exporter.service.state import State
from exporter.service.stats import ServiceStats
from exporter.storage.sqlite.store import Store

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", Store)
STATE = web.AppKey("state", State)
REPORTS = web.AppKey("reports", Reports)
EVALUATOR = web.AppKey("evaluator", Evaluator)
AUTH = web.AppKey("auth", Auth)
REGISTRY = web.AppKey("registry", CollectorRegistry)
EXPOSITION = web.AppKey("exposition", Exposition)
STATS = web.AppKey("stats", ServiceStats)
SESSIONS = web.AppKey("sessions", Sessions)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
