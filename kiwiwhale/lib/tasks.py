import logging

logger = logging.getLogger(__name__)


def task_enqueue(task, *args, countdown: float = 0) -> bool:
    """Sends a Celery task, never raising: the work it stands for is already committed, and every caller has a
    sweeper or a later event that enqueues it again when the broker is back. False when it could not be sent."""
    try:
        if countdown or not _sent_directly(task, args):
            task.apply_async(args, countdown=countdown or None)
    except Exception:
        logger.exception("Could not enqueue %s%r", task.name, args)
        return False
    return True


def _sent_directly(task, args: tuple) -> bool:
    """Through the broker module's DirectSender when the case allows; a failure there leaves it to Celery's path
    (which retries a broken connection). A message that did reach the queue before the error is then sent twice:
    every task here is idempotent, as late acknowledgement already requires."""
    from celery.app.task import Task

    from kiwiwhale.celery import app

    if not isinstance(task, Task):  # a signature by name (the ledger's): Celery's path
        return False
    try:
        return app.direct_sender.send(task, args)
    except Exception:
        logger.warning("Direct send of %s failed; sending through Celery", task.name, exc_info=True)
        return False
