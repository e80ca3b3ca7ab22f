# One image for everything ember runs in a cluster, entry point `ember`:
#   the operator   ember operator [--namespace NS] [--all-namespaces]
#   the head       ember start --head --block --host $(POD_IP) --port 10001 ...
#   a worker       ember start --block --address HEAD:10001 --host $(POD_IP) ...
#
#   docker build -t ember:0.1.0 .
#   docker build --build-arg BASE_IMAGE=ember-base:bookworm -t ember:0.1.0 .   (no registry:
#       tests/docker/build_base_image.sh makes that base from Debian packages)
#
# It runs as uid/gid 1000 and works on a read-only root filesystem: everything ember writes goes
# under /tmp (EMBER_TEMP_DIR: session directories, logs, spilled objects, the records `ember
# stop` and `ember health` read), /dev/shm (the object store) and /var/lib/ember (the head's
# --state-dir); mount those writable (a tmpfs or emptyDir, and a volume for the state).

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tools/build_backend.py ./tools/
COPY client ./client
COPY runtime ./runtime
COPY operator ./operator
# A wheel of the build context, installed with its dependencies into a venv that the final
# stage copies whole; the installer itself stays behind.
RUN python3 -m venv /opt/ember \
    && /opt/ember/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/ember/bin/pip install /wheels/ember-*.whl \
    && /opt/ember/bin/pip uninstall -y pip setuptools \
    && /opt/ember/bin/python -c "import ember, ember.cli, ember.runtime.head_main, kopf, kubernetes"

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=""
ARG SOURCE=""
LABEL org.opencontainers.image.title="ember" \
      org.opencontainers.image.description="Kubernetes-native distributed compute for Python: Ray's core API on a small gRPC runtime; operator, head and workers" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 1000 ember \
    && useradd --uid 1000 --gid 1000 --home-dir /home/ember --create-home --shell /usr/sbin/nologin ember \
    && install -d -o 1000 -g 1000 -m 0750 /var/lib/ember
COPY --from=build /opt/ember /opt/ember
ENV PATH=/opt/ember/bin:$PATH \
    HOME=/home/ember \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EMBER_TEMP_DIR=/tmp/ember
USER 1000:1000
WORKDIR /home/ember
# client (gRPC), dashboard, head metrics, node metrics: the ports the operator's pods use.
EXPOSE 10001 8265 8080 8081
# The head and node agent `ember start` runs here must answer an RPC; the operator has its
# own probe (kopf's /healthz), so this check is for the head and worker containers.
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD ["ember", "health", "--timeout", "5"]
ENTRYPOINT ["ember"]
CMD ["--help"]
