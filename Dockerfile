# syncd daemon image. Config is mounted at /etc/syncd/config.yaml; secrets come from the
# environment or from files (e.g. Kubernetes secret volumes) referenced in that config.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 SYNCD_CONFIG=/etc/syncd/config.yaml
WORKDIR /app
COPY pyproject.toml README.md ./
COPY syncd ./syncd
COPY connectors ./connectors
COPY rules ./rules
RUN pip install --no-cache-dir '.[emulators]' \
 && useradd --system --uid 10001 --home-dir /var/lib/syncd --create-home syncd
COPY config.example.yaml /etc/syncd/config.yaml
COPY rules /etc/syncd/rules
# In the image: state lives in the syncd user's home (the config dir is read-only to it), and
# health/metrics listen on all interfaces so kubelet probes and Prometheus can reach them.
RUN sed -i -e 's#sqlite:///var/syncd-state.db#sqlite:////var/lib/syncd/syncd-state.db#' \
           -e 's#^  host: 127.0.0.1#  host: 0.0.0.0#' /etc/syncd/config.yaml \
 && grep -q 'sqlite:////var/lib/syncd/syncd-state.db' /etc/syncd/config.yaml \
 && grep -q '^  host: 0.0.0.0' /etc/syncd/config.yaml

USER syncd
WORKDIR /var/lib/syncd
# 9108: /healthz (liveness), /readyz (readiness), /metrics (Prometheus)
EXPOSE 9108
STOPSIGNAL SIGTERM
CMD ["syncd", "run"]
