"""The floor of a job's round trip: a bare Celery task that writes one row, on the same broker and database."""

import os

import psycopg
from celery import Celery

app = Celery("floor", broker=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13"))
app.conf.task_default_queue = "bench-floor"
app.conf.worker_prefetch_multiplier = 1


_conn = None


@app.task(name="floor.touch")
def touch(row_id: str) -> None:
    global _conn
    if _conn is None or _conn.closed:
        _conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)  # kept, as Django's worker keeps its
    _conn.execute("INSERT INTO bench_floor_job (id, input) VALUES (%s, '{}')", [row_id])
