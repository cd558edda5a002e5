import threading

from apps.generations.tasks import job_run
from kiwiwhale.celery import app


def test_without_a_result_backend_every_thread_shares_one_backend():
    """Results are ignored, so Celery's DisabledBackend is one object for the process: under ASGI each request has
    a thread of its own, and a backend per thread was built again for every submit's AsyncResult."""
    assert not app.conf.result_backend
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(job_run.AsyncResult("job_x").backend)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(backend) for backend in seen}) == 1, seen
    assert seen[0] is app.backend
