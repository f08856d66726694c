# syntax=docker/dockerfile:1
# The coldbridge trainer: PyTorch on CPU (the `trainer` extra), exports bundles for the server.
# Build from the repository root:  docker build -f deploy/docker/trainer.Dockerfile -t coldbridge-trainer .
# Run:  docker run -v "$PWD/data:/data:ro" -v "$PWD/bundles:/bundles" coldbridge-trainer
# See docs/deploy.md.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the PyTorch CPU index (no CUDA libraries: ~200 MB instead of several GB);
# the `trainer` extra's torch==2.13.0 is then already satisfied by 2.13.0+cpu.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bundle/ bundle/
COPY server/ server/
COPY plugins/ plugins/
COPY trainer/ trainer/
COPY protos/ protos/
COPY client/ client/
COPY cli/ cli/
# DL3013 (pin versions in pip): this installs the project itself from the build context;
# its dependencies are pinned or bounded in pyproject.toml's `trainer` extra.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[trainer]"

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="coldbridge-trainer" \
      org.opencontainers.image.description="coldbridge trainer (PyTorch CPU): writes bundles"
RUN groupadd --system --gid 10001 coldbridge \
    && useradd --system --uid 10001 --gid coldbridge --home-dir /home/coldbridge \
       --create-home --shell /usr/sbin/nologin coldbridge \
    && mkdir -p /data /bundles \
    && chown -R coldbridge:coldbridge /data /bundles
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
WORKDIR /home/coldbridge
# The training data (read) and the bundles directory (a new version is written atomically
# into /bundles/<version>, which the servers pick up on reload).
VOLUME ["/data", "/bundles"]
ENTRYPOINT ["coldbridge", "train"]
CMD ["--data", "/data", "--out", "/bundles"]
