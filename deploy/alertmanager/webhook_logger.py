"""An example Alertmanager webhook receiver: prints one line per alert of each notification.

Standard library only, so it runs in a plain python image (deploy/compose.yaml):
    python webhook_logger.py --host 0.0.0.0 --port 9099
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def format_notification(payload: dict[str, Any]) -> list[str]:
    """One line per alert: status, name, severity, labels that locate it, summary and link."""
    lines = []
    for alert in payload.get("alerts", []):
        labels = alert.get("labels", {})
        annotations = alert.get("annotations", {})
        where = " ".join(
            f"{k}={labels[k]}"
            for k in ("job", "integration_key", "team", "instance")
            if k in labels
        )
        parts = [
            alert.get("status", payload.get("status", "?")).upper(),
            labels.get("alertname", "?"),
            f"[{labels.get('severity', '-')}]",
            where,
            annotations.get("summary", ""),
            annotations.get("link", ""),
        ]
        lines.append(" ".join(p for p in parts if p))
    return lines


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            payload = json.loads(self.rfile.read(length))
        except json.JSONDecodeError:
            self.send_response(400)
            self.end_headers()
            return
        for line in format_notification(payload):
            print(line, flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Access logs would repeat every notification; errors still go to stderr."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="listen address (%(default)s)")
    parser.add_argument("--port", type=int, default=9099, help="listen port (%(default)s)")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    # As a container's PID 1, Python would ignore SIGTERM: exit on it instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening on {args.host}:{args.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
