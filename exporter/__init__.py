"""integration-monitor: watches integrations and scheduled jobs and speaks Prometheus."""

__version__ = "0.1.0"
