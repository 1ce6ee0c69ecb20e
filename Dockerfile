# One image for every role (worker, beat, gateway, flower, simulator): the command picks the role,
# see docker-compose.yml and deploy/kubernetes/. Build: docker build -t kakao-dispatch .

# -- build: install the project and its runtime dependencies (no dev extras) into a virtualenv --
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY producers ./producers
COPY simulator ./simulator
RUN /opt/venv/bin/pip install . \
    && /opt/venv/bin/pip uninstall --yes pip

# -- runtime: the virtualenv and the examples, run as an unprivileged user --
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 kakao \
    && useradd --system --uid 10001 --gid kakao --create-home --home-dir /home/kakao --shell /usr/sbin/nologin kakao
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The example template registry (KAKAO_DISPATCH_TEMPLATES=/app/examples/templates.json) and requests.
COPY examples ./examples
# producers.api and producers.demo look for examples/ beside the installed packages: point that at /app/examples.
RUN ln -s /app/examples "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/examples"
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8080 5555 8081
# No HEALTHCHECK here: each role has its own (gateway /healthz, worker heartbeat file, Flower /healthcheck),
# declared in docker-compose.yml and the Kubernetes manifests.
CMD ["kakao-dispatch", "gateway", "--host", "0.0.0.0", "--port", "8080"]
