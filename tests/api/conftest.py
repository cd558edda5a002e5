"""An upstream that never finishes (fal.ai's queue protocol, held in IN_PROGRESS), for waits, deadlines, cancel."""

import pytest
from django.core.servers.basehttp import WSGIServer

from apps.accounts.services import api_key_create
from tests.conftest import make_user
from tests.providers.conftest import account_connect
from tests.providers.fakes import FakeFal, answer

# The live test server listens with a backlog of 10; the burst and fuzzing tests open up to 60 connections at once,
# and a full backlog resets them before the app sees them. Set at collection, before the live server starts.
WSGIServer.request_queue_size = 128

SLOW_MODEL = "z-image"  # its first route is fal
FAST = {"model": "local/procedural-image", "input": {"prompt": "a kiwi", "width": 64, "height": 64}}


class EndlessFal(FakeFal):
    """fal.ai's queue API whose requests stay IN_PROGRESS until canceled (a long video, say)."""

    def _status(self, job):
        base = f"{self.url}/{job['app']}/requests/{job['id']}"
        return answer(202, {"status": "IN_PROGRESS", "logs": [], "response_url": base})


@pytest.fixture
def endless_fal(catalog):
    fake = EndlessFal().start()
    account_connect("fal", base_url=fake.url, api_key=fake.key)
    yield fake
    fake.stop()


@pytest.fixture
def agent(catalog):
    """An agent with 10 credits and its key, as the live server sees them (use with transactional_db)."""
    user = make_user("live-agent", credits="10")
    _, key = api_key_create(user=user, name="live")
    user.headers = {"Authorization": f"Bearer {key}"}
    user.raw_key = key
    return user
