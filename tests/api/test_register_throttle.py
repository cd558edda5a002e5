"""The agent_register.php limit holds under a burst: 60 parallel requests from one address, exactly the limit pass.

Real concurrency: 60 threads, each with its own connection, against the threaded live server, counted in Redis.
"""

import threading

import httpx
import pytest

from apps.accounts.models import User

pytestmark = pytest.mark.django_db(transaction=True)


def burst(url: str, count: int, headers=None) -> list[int]:
    start = threading.Barrier(count)
    statuses = []

    def one():
        with httpx.Client(timeout=60) as client:
            start.wait()
            statuses.append(client.post(url, json={"name": "burst"}, headers=headers or {}).status_code)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    return statuses


def test_sixty_parallel_registrations_create_exactly_the_limit(live_server, settings):
    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache"), "the shared counter lives in Redis"
    settings.RATE_AGENT_REGISTER = "10/hour"
    statuses = burst(f"{live_server.url}/api/v1/agent_register.php", 60)
    assert sorted(statuses).count(201) == 10, sorted(statuses)
    assert statuses.count(429) == 50
    assert User.objects.filter(account_type="agent").count() == 10
