# CDC Studio: one container serving the UI and the REST API on port 8080.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CDC_STUDIO_HOST=0.0.0.0 \
    CDC_STUDIO_PORT=8080 \
    CDC_STUDIO_DATA_DIR=/data

# unixODBC + FreeTDS give pyodbc a SQL Server driver (Microsoft's msodbcsql18 can be added
# on top where its repository is reachable; set the connection option driver=... to use it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends unixodbc tdsodbc curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml ./
RUN mkdir -p core data pages components && pip install .
COPY app.py ./
COPY core ./core
COPY data ./data
COPY pages ./pages
COPY components ./components

RUN useradd --system --uid 10001 --home-dir /data studio \
    && mkdir -p /data && chown studio /data
USER studio
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/api/v1/health || exit 1
CMD ["python", "app.py"]
