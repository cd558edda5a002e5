"""64 simultaneous submits on a key whose budget pays for exactly 10 jobs (the wallet for far more): 10 accepted."""

import collections
import concurrent.futures

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.accounts.services import api_key_create
from apps.billing.models import LedgerEntry
from apps.billing.services import wallet_get
from apps.generations.models import Job
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_worker_takes_these_jobs():
    from kiwiwhale.celery import app

    queue, app.conf.task_default_queue = app.conf.task_default_queue, "nobody-reads-key-race"
    yield
    app.conf.task_default_queue = queue


def test_64_simultaneous_submits_on_a_budget_for_10_accept_exactly_10(catalog):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    user = make_user("racer", credits="100")  # ten thousand jobs' worth
    key, raw = api_key_create(user=user, name="race", spend_limit_day_micro=100_000)  # ten jobs at 0.01
    body = {"model": "local/procedural-image", "input": {"prompt": "a kiwi", "width": 64, "height": 64}}

    def submit(_):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        try:
            response = client.post("/api/v1/generate.php", body, format="json")
            return response.status_code, response.json()["error"] if response.status_code != 202 else None
        finally:
            connection.close()

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        outcomes = collections.Counter(pool.map(submit, range(64)))
    assert outcomes == {(202, None): 10, (403, "key_limit_reached"): 54}
    assert Job.objects.filter(api_key=key).count() == 10
    debits = LedgerEntry.objects.filter(wallet__user=user, kind=LedgerEntry.Kind.DEBIT)
    assert debits.count() == 10 and sum(entry.amount_micro for entry in debits) == -100_000
    assert wallet_get(user=user).balance_micro == 100_000_000 - 100_000
