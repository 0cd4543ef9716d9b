"""The typed keys of the objects the app factory shares with handlers (one place, no globals)."""

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.auth import Auth
from exporter.config import Config
from exporter.evaluator import Evaluator
from exporter.exposition import Exposition
from exporter.reports import Reports
from exporter.sessions import Sessions
from exporter.state import State
from exporter.stats import ServiceStats
from exporter.store import Store

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
