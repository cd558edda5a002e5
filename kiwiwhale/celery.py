import os
import threading
from functools import cached_property

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kiwiwhale.settings")


class KiwiWhaleCelery(Celery):
    """Without a result backend (results are ignored), Celery's DisabledBackend holds no connection, so one serves
    every thread. Celery keeps one per thread, and under ASGI every request has a thread of its own: each submit
    built one again for the AsyncResult that `apply_async` returns."""

    _shared_backend = None  # None: not decided yet; False: a real result backend, one per thread as Celery keeps it
    _shared_backend_lock = threading.Lock()

    @property
    def backend(self):
        if self._shared_backend is None:
            with self._shared_backend_lock:
                if self._shared_backend is None:
                    self._shared_backend = False if self.conf.result_backend else self._get_backend()
        return self._shared_backend or super().backend

    @cached_property
    def direct_sender(self):
        from kiwiwhale.lib.broker import DirectSender

        return DirectSender(self)


app = KiwiWhaleCelery("kiwiwhale")
# Everything, the beat schedule (CELERY_BEAT_SCHEDULE) included, comes from the settings module.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect(weak=False)
@signals.task_postrun.connect(weak=False)
def _database_connections_check(**kwargs) -> None:
    """Around each task as Django does around each request: a connection that failed, or is older than
    CONN_MAX_AGE, is closed; a kept one is health-checked at its next use (CONN_HEALTH_CHECKS). Celery's own
    fixup would close every connection around every task (CELERY_DB_REUSE_MAX turns that into a periodic
    recycle), so each job paid a new PostgreSQL connection."""
    from django.db import close_old_connections

    close_old_connections()


def queue_size(name: str) -> int | None:
    """How many messages wait in the broker's queue `name` (not those a worker has reserved); None if unknown."""
    try:
        with app.connection_for_read() as connection:
            return connection.default_channel.queue_declare(queue=name, passive=False).message_count
    except Exception:
        return None
