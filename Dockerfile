# Portico's one image: `portico web` (default), `python worker.py`, `portico migrate`, and the
# staff CLI (`portico approvals ...`). docker-compose.yml runs them; docs/operations.md explains.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The sources the package is built from (everything else is left out by .dockerignore).
COPY pyproject.toml README.md worker.py ./
COPY portico ./portico
COPY workflows ./workflows
COPY activities ./activities
COPY web ./web
COPY bots ./bots
COPY migrations ./migrations
# The message catalogues are compiled (.po -> .mo) into the image at build time.
RUN pip install 'babel>=2.16' && pybabel compile -D messages -d portico/locale && pip install .

# Never run as root. /data holds stored PDFs and uploads (files/) and generated secrets (var/);
# web and worker share it.
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home portico \
    && mkdir -p /data/files /data/var \
    && chown -R portico:portico /data
USER portico

ENV PORTICO_HTTP_HOST=0.0.0.0 \
    PORTICO_HTTP_PORT=8080 \
    PORTICO_FILES_DIR=/data/files \
    PORTICO_VAR_DIR=/data/var
VOLUME ["/data"]
EXPOSE 8080 9464

CMD ["portico", "web"]
