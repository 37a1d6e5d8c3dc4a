# One image for both jobs: `checker run|setup|gameday` (the entrypoint) and `chaos run` (the
# same virtualenv; use `--entrypoint chaos` or a pod `command: ["chaos"]`).
#
# Build:  docker build -t mysql-chaos-checker:0.1.0 .
# The base tag is pinned to a patch release; pin its digest too (FROM ...@sha256:...) in a
# registry you control once you have pulled and vetted it.

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# Dependency pins first, so the layer cache survives source edits.
COPY constraints.txt pyproject.toml README.md ./
COPY checker ./checker
COPY probes ./probes
# constraints.txt pins every dependency to the versions CI tested; a non-editable install so
# the runtime stage needs nothing from /src.
RUN /opt/venv/bin/pip install -c constraints.txt .

FROM python:3.11.11-slim-bookworm AS runtime
# A fixed numeric UID/GID: Kubernetes can only prove runAsNonRoot for a numeric USER, and the
# manifests' runAsUser/fsGroup (10001) must match it.
RUN groupadd --system --gid 10001 checker \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin checker \
 && mkdir -p /var/lib/checker \
 && chown 10001:10001 /var/lib/checker
COPY --from=build /opt/venv /opt/venv
# The experiments `chaos run` and `checker gameday` use inside the cluster.
COPY experiments /app/experiments
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["checker"]
CMD ["--help"]
