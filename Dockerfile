# CDC Studio: one container serving the UI and the REST API on port 8080.
#   docker build -t cdc-studio .                       (base python:3.11-slim)
#   scripts/container-base && scripts/container-build  (podman, a debootstrapped Debian base, no registry)
# Behind a TLS-intercepting proxy, pass its CA bundle as a build secret (never stored in a layer):
#   --secret id=pipcert,src=/etc/ssl/certs/ca-certificates.crt
# Any Debian-like base with python3 + venv works (BASE=...): the build makes its own venv in /opt/venv.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
# Every dependency ships a manylinux wheel: no compiler needed. The venv's own pip and setuptools are removed
# afterwards (nothing installs at run time) along with the test suites some packages carry.
RUN --mount=type=secret,id=pipcert \
    if [ -s /run/secrets/pipcert ]; then export PIP_CERT=/run/secrets/pipcert; fi \
    && /opt/venv/bin/pip install . \
    && /opt/venv/bin/pip uninstall -y cdc-studio pip setuptools \
    && find /opt/venv -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} +

FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    CDC_STUDIO_HOST=0.0.0.0 \
    CDC_STUDIO_PORT=8080 \
    CDC_STUDIO_DATA_DIR=/data

# unixODBC + FreeTDS give pyodbc a SQL Server driver (Microsoft's msodbcsql18 can be added
# on top where its repository is reachable; set the connection option driver=... to use it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends unixodbc tdsodbc \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
        /usr/share/doc/* /usr/share/man/* /usr/share/info/* \
    && groupadd --system --gid 10001 studio \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /data --shell /usr/sbin/nologin studio \
    && mkdir -p /data && chown 10001:10001 /data && chmod 700 /data

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY app.py ./
COPY core ./core
COPY data ./data
COPY pages ./pages
COPY components ./components
RUN python -m compileall -q /app > /dev/null

USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('CDC_STUDIO_PORT', '8080')}/api/v1/health\", timeout=4)"]
CMD ["python", "app.py"]
