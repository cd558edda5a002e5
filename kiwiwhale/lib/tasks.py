import logging

logger = logging.getLogger(__name__)


def task_enqueue(task, *args, countdown: float = 0) -> bool:
    """Sends a Celery task, never raising: the work it stands for is already committed, and every caller has a
    sweeper or a later event that enqueues it again when the broker is back. False when it could not be sent."""
    try:
        task.apply_async(args, countdown=countdown or None)
    except Exception:
        logger.exception("Could not enqueue %s%r", task.name, args)
        return False
    return True
