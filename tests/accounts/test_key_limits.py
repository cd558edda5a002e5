"""Key limits on generate: spend per UTC day / month / total, concurrency, models; refusals charge nothing."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.services import api_key_create, api_key_rotate
from apps.billing.models import LedgerEntry
from apps.billing.services import wallet_get
from apps.generations.key_limits import period_starts
from apps.generations.models import Job
from apps.generations.services import job_run

pytestmark = pytest.mark.django_db

MODEL = "local/procedural-image"  # 0.01 credits an image


@pytest.fixture(autouse=True)
def _no_worker_takes_these_jobs():
    # Jobs stay queued (concurrency counts them); a live session worker must not run them during the teardown.
    from kiwiwhale.celery import app

    queue, app.conf.task_default_queue = app.conf.task_default_queue, "nobody-reads-key-limits"
    yield
    app.conf.task_default_queue = queue


def api(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def generate(client, model=MODEL, images=1):
    body = {"model": model, "input": {"prompt": "a kiwi", "width": 64, "height": 64, "num_images": images}}
    return client.post("/api/v1/generate.php", body, format="json")


def assert_refused_without_charge(user, response, *, status, code):
    before_entries = LedgerEntry.objects.filter(wallet__user=user).count()
    assert response.status_code == status, response.content
    assert response.json()["success"] is False and response.json()["error"] == code
    assert LedgerEntry.objects.filter(wallet__user=user).count() == before_entries


def test_a_daily_spend_limit_accepts_exactly_what_fits_and_charges_nothing_past_it(catalog, alice):
    _, raw = api_key_create(user=alice, spend_limit_day_micro=30_000)
    client = api(raw)
    assert [generate(client).status_code for _ in range(3)] == [202, 202, 202]
    balance = wallet_get(user=alice).balance_micro
    jobs = Job.objects.count()
    response = generate(client)
    assert_refused_without_charge(alice, response, status=403, code="key_limit_reached")
    body = response.json()
    assert body["limit"] == "day" and body["limit_credits"] == 0.03 and body["spent_credits"] == 0.03
    day_start, _ = period_starts(timezone.now())
    assert body["resets_at"] == (day_start + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert wallet_get(user=alice).balance_micro == balance and Job.objects.count() == jobs
    # A job bigger than what is left is refused too, though a smaller one would fit.
    assert generate(client, images=2).status_code == 403


def test_a_canceled_job_gives_its_spend_back(catalog, alice):
    _, raw = api_key_create(user=alice, spend_limit_total_micro=20_000)
    client = api(raw)
    first = generate(client).json()["job_id"]
    generate(client)
    assert generate(client).status_code == 403
    assert client.post("/api/v1/cancel.php", {"job_id": first}, format="json").status_code == 200
    assert generate(client).status_code == 202


def test_a_finished_job_counts_what_it_was_charged(catalog, alice):
    _, raw = api_key_create(user=alice, spend_limit_month_micro=10_000)
    client = api(raw)
    job_run(job_id=generate(client).json()["job_id"])
    assert Job.objects.get().hold.status == "settled"
    response = generate(client)
    assert response.status_code == 403 and response.json()["limit"] == "month"


def test_the_periods_are_utc_days_and_months_and_total_is_for_life(catalog, alice):
    _, raw = api_key_create(user=alice, spend_limit_day_micro=10_000, spend_limit_total_micro=20_000)
    client = api(raw)
    generate(client)
    assert generate(client).json()["limit"] == "day"
    day_start, month_start = period_starts(timezone.now())
    Job.objects.update(created_at=min(day_start, month_start) - timedelta(seconds=1))  # it was yesterday
    assert generate(client).status_code == 202  # a new day
    Job.objects.filter(created_at__gte=day_start).update(created_at=day_start - timedelta(days=400))
    response = generate(client)
    assert response.status_code == 403 and response.json()["limit"] == "total" and response.json()["resets_at"] is None


def test_a_key_runs_at_most_its_concurrent_jobs(catalog, alice):
    _, raw = api_key_create(user=alice, concurrency_limit=2)
    client = api(raw)
    first = generate(client).json()["job_id"]
    generate(client)
    response = generate(client)
    assert_refused_without_charge(alice, response, status=429, code="key_limit_reached")
    assert response.json()["limit"] == "concurrency" and int(response["Retry-After"]) > 0
    job_run(job_id=first)  # one ends
    assert generate(client).status_code == 202


def test_a_key_uses_only_its_allowed_models(catalog, alice):
    _, raw = api_key_create(user=alice, allowed_models=["z-image", "gpt-image-2/*"])
    response = generate(api(raw))
    assert_refused_without_charge(alice, response, status=403, code="forbidden_model")
    assert response.json()["public_model"] == MODEL and not Job.objects.exists()
    _, prefixed = api_key_create(user=alice, allowed_models=["local/*"])
    assert generate(api(prefixed)).status_code == 202


def test_a_sub_key_spends_from_its_creators_budget(catalog, alice):
    _, raw = api_key_create(user=alice, spend_limit_total_micro=20_000)
    child = api(raw).post("/api/v1/keys.php", {"name": "sub", "spend_limit_total_credits": 0.02}, format="json")
    assert child.status_code == 201, child.content
    child_client = api(child.json()["api_key"])
    assert [generate(child_client).status_code for _ in range(2)] == [202, 202]
    parent_refused = generate(api(raw))
    assert parent_refused.status_code == 403 and parent_refused.json()["limit"] == "total"
    # A second sub-key does not multiply the budget.
    other = api(raw).post("/api/v1/keys.php", {"name": "sub2", "spend_limit_total_credits": 0.02}, format="json")
    response = generate(api(other.json()["api_key"]))
    assert response.status_code == 403 and "parent key" in response.json()["message"]
    listed = {k["name"]: k["spend"] for k in api(raw).get("/api/v1/keys.php").json()["keys"]}
    assert listed["sub"]["total"] == 0.02 and listed["sub2"]["total"] == 0 and listed["default"]["total"] == 0.02


def test_rotating_a_key_keeps_its_spend(catalog, alice):
    key, raw = api_key_create(user=alice, spend_limit_total_micro=10_000)
    generate(api(raw))
    _, new_raw = api_key_rotate(key=key)
    assert generate(api(new_raw)).status_code == 403


def test_a_key_without_limits_adds_no_query_and_a_limited_key_two(catalog, alice, alice_api):
    # tests/generations/test_generate_api.py pins the unlimited count (3); the same here, then the limited one.
    generate(alice_api)
    with CaptureQueriesContext(connection) as unlimited:
        assert generate(alice_api).status_code == 202
    _, raw = api_key_create(user=alice, spend_limit_day_micro=1_000_000, concurrency_limit=50)
    limited_client = api(raw)
    generate(limited_client)
    with CaptureQueriesContext(connection) as limited:
        assert generate(limited_client).status_code == 202
    assert len(unlimited) == 3
    # The lock on the key's lineage, and one aggregate of its jobs' spend and running count.
    assert len(limited) == len(unlimited) + 2, [q["sql"][:90] for q in limited.captured_queries]
    assert sum("FOR UPDATE" in q["sql"] and "accounts_apikey" in q["sql"] for q in limited.captured_queries) == 1


def test_usage_can_be_filtered_to_one_key(catalog, alice, alice_api):
    key, raw = api_key_create(user=alice, name="one")
    job_id = generate(api(raw)).json()["job_id"]
    other = generate(alice_api).json()["job_id"]
    session = APIClient()
    session.force_login(alice)
    for client, ident in ((session, key.pk), (session, key.prefix), (api(raw), key.pk)):
        body = client.get("/api/v1/usage.php", {"key": ident}).json()
        assert {entry["reference"] for entry in body["entries"]} == {job_id}, body
        assert body["key"]["prefix"] == key.prefix and body["key"]["spend"]["total"] == 0.01
        assert body["payments"] == []
    everything = {entry["reference"] for entry in alice_api.get("/api/v1/usage.php").json()["entries"]}
    assert {job_id, other} <= everything and "key" not in alice_api.get("/api/v1/usage.php").json()
    # A key may look only at itself and the keys it made.
    assert alice_api.get("/api/v1/usage.php", {"key": key.pk}).status_code == 404
    csv = session.get("/api/v1/usage.php", {"key": key.pk, "export": "csv"})
    text = b"".join(csv.streaming_content).decode()
    assert job_id in text and other not in text
    missing = alice_api.get("/api/v1/usage.php", {"key": "kw_nothere"})
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
