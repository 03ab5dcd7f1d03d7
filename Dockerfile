# syncd daemon image. Mount your config at /etc/syncd/config.yaml (rules beside it); secrets come
# from the environment or from files the config references. Without a mounted config the
# container refuses to start; the demo runs only when asked for:
#   docker run syncd run --config /usr/share/syncd/demo/config.yaml
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SYNCD_CONFIG=/etc/syncd/config.yaml \
    SYNCD_STATE__DIR=/var/lib/syncd
WORKDIR /app

# Dependencies in their own layer, pinned by the lock (`make lock`): a code change does not
# reinstall them, and two builds a week apart install the same versions.
COPY requirements.lock ./
RUN pip install --no-cache-dir --requirement requirements.lock

# The modules every lead passes through, compiled with mypyc (setup.py) in a stage of their own:
# the compiler never reaches the image. Debian's gcc in the slim base is whatever its security
# updates made it, so its version is not pinned.
FROM base AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
# mypyc type-checks what it compiles: mypy and the stubs at the dev extra's pins (pyproject.toml).
RUN pip install --no-cache-dir mypy==2.4.1 types-PyYAML==6.0.12.20261122 setuptools==80.9.0 \
    wheel==0.48.0
COPY pyproject.toml setup.py README.md ./
COPY syncd ./syncd
COPY connectors ./connectors
COPY rules ./rules
RUN SYNCD_COMPILE=1 pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

FROM base
# A numeric user (10001) so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl \
 && rm -rf /wheels \
 && groupadd --system --gid 10001 syncd \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/syncd --create-home syncd

# The embedded demo (emulators and demo leads) for trying the image; never the default.
COPY config.example.yaml /usr/share/syncd/demo/config.yaml
COPY rules /usr/share/syncd/demo/rules

USER 10001:10001
# Relative SQLite paths resolve against the state directory (SYNCD_STATE__DIR above), never
# next to the read-only config.
WORKDIR /var/lib/syncd
# 9108: /healthz (liveness), /readyz (readiness), /metrics (Prometheus)
EXPOSE 9108
STOPSIGNAL SIGTERM
ENTRYPOINT ["syncd"]
CMD ["run"]
