# syntax=docker/dockerfile:1
# The coldbridge gRPC server: onnxruntime + River, no torch (the `server` extra only).
# Build from the repository root:  docker build -f deploy/docker/server.Dockerfile -t coldbridge-server .
# Run:  docker run -v "$PWD/var/demo/bundles:/bundles:ro" -p 50051:50051 coldbridge-server
# See docs/deploy.md.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bundle/ bundle/
COPY server/ server/
COPY plugins/ plugins/
COPY trainer/ trainer/
COPY protos/ protos/
COPY client/ client/
COPY cli/ cli/
# A regular (not editable) install: the image needs no sources, only /opt/venv.
# DL3013 (pin versions in pip): this installs the project itself from the build context;
# its dependencies are pinned or bounded in pyproject.toml's `server` extra.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[server]"

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="coldbridge-server" \
      org.opencontainers.image.description="coldbridge gRPC recommender server (no torch)"
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can check it (deploy/k8s/).
RUN groupadd --system --gid 10001 coldbridge \
    && useradd --system --uid 10001 --gid coldbridge --home-dir /var/lib/coldbridge \
       --shell /usr/sbin/nologin coldbridge \
    && mkdir -p /bundles /var/lib/coldbridge/state \
    && chown -R coldbridge:coldbridge /bundles /var/lib/coldbridge
COPY --from=build /opt/venv /opt/venv
COPY deploy/docker/healthcheck.py /usr/local/lib/coldbridge/healthcheck.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    COLDBRIDGE_BUNDLE_PATH=/bundles \
    COLDBRIDGE_STATE_DIR=/var/lib/coldbridge/state \
    COLDBRIDGE_HOST=0.0.0.0 \
    COLDBRIDGE_PORT=50051 \
    COLDBRIDGE_METRICS_HOST=0.0.0.0 \
    COLDBRIDGE_METRICS_PORT=9464 \
    COLDBRIDGE_LOG_FORMAT=json
USER 10001:10001
WORKDIR /var/lib/coldbridge
# The bundles (a directory of bundle versions, newest served; mount read-only) and the
# durable state (event log + snapshots; one volume per replica, never shared).
VOLUME ["/bundles", "/var/lib/coldbridge/state"]
# gRPC (Recommender, Events, health, reflection) and Prometheus /metrics.
EXPOSE 50051 9464
# Readiness through grpc.health.v1 (overall service ""): the start period covers loading and
# warming the bundle and replaying the event log.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "/usr/local/lib/coldbridge/healthcheck.py"]
# SIGTERM starts the drain (health NOT_SERVING, drain_seconds), then grace_seconds; give the
# container a stop timeout above both (compose: stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["coldbridge", "serve"]
