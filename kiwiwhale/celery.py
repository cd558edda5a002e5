import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kiwiwhale.settings")

app = Celery("kiwiwhale")
# Everything, the beat schedule (CELERY_BEAT_SCHEDULE) included, comes from the settings module.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def queue_size(name: str) -> int | None:
    """How many messages wait in the broker's queue `name` (not those a worker has reserved); None if unknown."""
    try:
        with app.connection_for_read() as connection:
            return connection.default_channel.queue_declare(queue=name, passive=False).message_count
    except Exception:
        return None
