#!/usr/bin/env bash
# Serves the site and API, runs a Celery worker and the beat scheduler (periodic sweepers) until Ctrl-C,
# which stops all three: politely first, then by force after 10 seconds.
set -uo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8000}"
mkdir -p var

pids=()
stop() {
    trap - EXIT INT TERM
    kill -TERM "${pids[@]}" 2>/dev/null
    for _ in $(seq 20); do
        kill -0 "${pids[@]}" 2>/dev/null || break
        sleep 0.5
    done
    kill -KILL "${pids[@]}" 2>/dev/null
    wait 2>/dev/null
    echo "KiwiWhale stopped."
}
trap stop EXIT INT TERM

.venv/bin/celery -A kiwiwhale worker --loglevel=info --concurrency="${WORKER_CONCURRENCY:-2}" &
pids+=($!)
.venv/bin/celery -A kiwiwhale beat --schedule var/celerybeat-schedule --loglevel=info &
pids+=($!)
.venv/bin/python manage.py runserver "127.0.0.1:${PORT}" --noreload &
pids+=($!)

echo "KiwiWhale: http://127.0.0.1:${PORT}/  (API: /api/v1/, admin: /admin/)  — Ctrl-C stops everything."
wait -n
