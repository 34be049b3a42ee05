# syntax=docker/dockerfile:1
# casewatch: build the wheel and fetch its dependencies' wheels as pinned by requirements.lock in
# one stage, install them in a slim runtime stage that carries no compiler, no pip cache and no
# source tree.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
# The runtime dependencies exactly as locked (`make lock`), each file checked against its hash,
# in a layer of their own that a change to the source does not rebuild.
RUN pip wheel --require-hashes --no-deps --wheel-dir /wheels -r requirements.lock
COPY service ./service
# casewatch itself on top, without its dependencies: only the locked wheels are there to meet them.
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CASEWATCH_MODEL_PATH=/app/models/reference.onnx
# --no-index: nothing but the build stage's wheels, so the install is the lock and nothing newer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels casewatch \
    && groupadd --system --gid 10001 casewatch \
    && useradd --system --uid 10001 --gid casewatch --no-create-home --shell /usr/sbin/nologin casewatch
WORKDIR /app
# The reference scorer sits outside the package so a volume mounted on /app/models replaces it.
COPY --chown=10001:10001 models/ /app/models/
# The bundled demo log, at a short path for `casewatch produce`.
COPY --chown=10001:10001 service/casewatch/data/p2p-0.3-1.csv.gz /app/data/p2p-0.3-1.csv.gz

USER 10001:10001
EXPOSE 9108
# slim has no curl; the interpreter is already there. urlopen fails on 503, so a stalled loop
# marks the container unhealthy.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://localhost:' + os.environ.get('CASEWATCH_METRICS_PORT', '9108') + '/healthz', timeout=4)"]
ENTRYPOINT ["casewatch"]
CMD ["run"]
