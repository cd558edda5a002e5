"""What /readyz checks: each dependency the instance needs to serve a request and run a job."""

import uuid

from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_broker() -> None:
    from kiwiwhale.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def check_cache() -> None:
    key = f"readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", 5)
    if cache.get(key) != "1":
        raise RuntimeError("the cache did not return what was written")
    cache.delete(key)


def check_storage() -> None:
    # A real write, read and delete: S3 credentials or a full disk show up here, not on the first job.
    name = default_storage.save(f"readyz/{uuid.uuid4().hex}.txt", ContentFile(b"ok"))
    try:
        with default_storage.open(name) as handle:
            if handle.read() != b"ok":
                raise RuntimeError("storage returned other bytes")
    finally:
        default_storage.delete(name)


CHECKS = {"database": check_database, "broker": check_broker, "cache": check_cache, "storage": check_storage}


def readiness() -> dict[str, str]:
    """`{"database": "ok", "broker": "error: …", …}` for each check."""
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # a readiness probe reports every failure; it never raises
            results[name] = f"error: {type(exc).__name__}: {exc}"[:300]
    if not settings.REDIS_URL:
        results["cache"] += " (in-process)"
    return results
