#!/usr/bin/env bash
# Serves the site and API and runs a Celery worker (with the periodic sweepers) until Ctrl-C, which stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8000}"
mkdir -p var

trap 'trap - EXIT INT TERM; kill 0 2>/dev/null; wait' EXIT INT TERM

.venv/bin/celery -A kiwiwhale worker --beat --schedule var/celerybeat-schedule --loglevel=info \
    --concurrency="${WORKER_CONCURRENCY:-2}" &
.venv/bin/python manage.py runserver "127.0.0.1:${PORT}" --noreload &

echo "KiwiWhale: http://127.0.0.1:${PORT}/  (API: /api/v1/, admin: /admin/)  — Ctrl-C stops everything."
wait -n
