# KiwiWhale image: the web app (uvicorn, ASGI), the Celery worker and beat all run from it (docker-compose.yml).
# Each runs the same script as `make run` and the production-shape test: scripts/web, scripts/worker, scripts/beat.
FROM python:3.11-slim

# PYTHONPATH: run from the source tree in /app (templates, static files and catalog.json live there), not from
# the copy `pip install .` puts in site-packages.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

# Only what the app needs: never .venv, var/ or a local .env.
COPY pyproject.toml README.md manage.py ./
COPY kiwiwhale ./kiwiwhale
COPY apps ./apps
COPY templates ./templates
COPY static ./static
COPY scripts ./scripts

# Extra packages, if you need any beyond the project's own (S3 storage is built in).
ARG EXTRA_PACKAGES=""
RUN pip install . ${EXTRA_PACKAGES} \
    && rm -rf build ./*.egg-info

# A non-root user owns the runtime state (media, static files, beat schedule).
RUN useradd --create-home --uid 1000 kiwiwhale \
    && mkdir -p /app/var/media /app/var/staticfiles \
    && chown -R kiwiwhale:kiwiwhale /app/var
USER kiwiwhale

EXPOSE 8000
ENV HOST=0.0.0.0 PORT=8000
CMD ["scripts/web"]
