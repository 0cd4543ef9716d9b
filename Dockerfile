# syntax=docker/dockerfile:1
# integration-monitor: the service in a small image that runs as a non-root user.
#   docker build -t integration-monitor .
#   docker run -p 9812:9812 -v im-data:/data \
#     -e IM_PUSH_TOKEN=... -e IM_READ_TOKEN=... -e IM_ADMIN_TOKEN=... integration-monitor
# See docs/deploy.md.

# Builder: the project and every dependency of the service (the `server` extra) as wheels, so
# the runtime stage needs no compiler and no network.
FROM python:3.11-slim AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[server]'

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheels are bind-mounted, not copied, so they add no layer to the image. They are the
# project and exactly what its `server` extra resolved to in the builder: install them all.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index /wheels/*.whl \
    && groupadd --system --gid 10001 monitor \
    && useradd --system --uid 10001 --gid monitor --no-create-home --home-dir /data \
       --shell /usr/sbin/nologin monitor \
    && mkdir /data \
    && chown monitor:monitor /data
# config.yaml: the documented default (loopback only, no tokens), for reference and for
# `--config` overrides. config.docker.yaml: what the container runs with (tokens from env).
COPY config.yaml /etc/integration-monitor/config.yaml
COPY deploy/config.docker.yaml /etc/integration-monitor/config.docker.yaml
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9812
# The service finishes in-flight requests and commits pending reports on SIGTERM.
STOPSIGNAL SIGTERM
# python:3.11-slim has no curl; urlopen raises (exit 1) on a refused connection or non-2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9812/healthz', timeout=4)"]
ENTRYPOINT ["integration-monitor"]
CMD ["serve", "--config", "/etc/integration-monitor/config.docker.yaml", "--host", "0.0.0.0", "--port", "9812", "--database", "/data/integration-monitor.db"]
