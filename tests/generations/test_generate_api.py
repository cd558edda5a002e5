import contextlib
import hashlib
import json
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.api.models import IdempotencyRecord
from apps.billing.models import LedgerEntry
from apps.billing.services import wallet_get
from apps.generations.models import Job
from apps.generations.services import job_run

pytestmark = pytest.mark.django_db

MODEL = "local/procedural-image"


def generate(client, body=None, **headers):
    body = body if body is not None else {"model": MODEL, "input": {"prompt": "a dog", "width": 64, "height": 64}}
    return client.post("/api/v1/generate.php", body, format="json", **headers)


def test_it_accepts_a_job_holding_its_cost(catalog, alice, alice_api):
    response = generate(alice_api)
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"success", "job_id", "status", "public_model", "cost_credits", "credits", "poll_url"}
    assert body["status"] == "queued" and body["public_model"] == MODEL
    assert body["cost_credits"] == 0.01 and body["credits"] == 9.99
    assert body["job_id"].startswith("job_") and len(body["job_id"]) > 20
    assert body["poll_url"] == f"http://testserver/api/v1/jobs.php?job_id={body['job_id']}"
    job = Job.objects.get(pk=body["job_id"])
    assert job.user == alice and job.input == {"prompt": "a dog", "width": 64, "height": 64, "num_images": 1}
    assert job.hold.amount_micro == 10_000 and job.hold.status == "held"


def test_it_takes_the_input_from_top_level_fields_when_input_is_absent(catalog, alice_api):
    response = generate(alice_api, {"public_model": MODEL, "prompt": "a dog", "width": 64, "height": 64})
    assert response.status_code == 202
    assert Job.objects.get(pk=response.json()["job_id"]).input["prompt"] == "a dog"


def test_it_prices_by_the_input(catalog, alice_api):
    body = generate(alice_api, {"model": MODEL, "input": {"prompt": "p", "num_images": 3}}).json()
    assert body["cost_credits"] == 0.03 and body["credits"] == 9.97


def test_it_answers_402_with_top_up_hints_and_creates_nothing(catalog, bob_api):
    response = generate(bob_api)
    assert response.status_code == 402
    body = response.json()
    assert body["error"] == "insufficient_credits" and body["required"] == 0.01 and body["credits"] == 0
    # Without Stripe configured, the card top-up endpoints are not offered; redeem and the billing page are.
    assert "endpoint" not in body["topup"]
    assert body["topup"]["ways"] == [
        {
            "method": "POST",
            "url": "http://testserver/api/v1/redeem.php",
            "description": 'Redeem a code: {"code": "…"}.',
        },
        {
            "method": "GET",
            "url": "http://testserver/billing.php",
            "description": "The billing page, for the account's human.",
        },
    ]
    assert body["topup"]["billing_url"] == "http://testserver/billing.php"
    assert not Job.objects.exists() and not LedgerEntry.objects.filter(kind="debit").exists()


def test_it_answers_422_with_field_details_and_holds_nothing(catalog, alice, alice_api):
    response = generate(alice_api, {"model": MODEL, "input": {"width": 5000, "style": "x"}})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_input"
    assert {d["field"] for d in body["details"]} == {"prompt", "width", "style"}
    assert all(d["message"] for d in body["details"])
    assert not Job.objects.exists() and wallet_get(user=alice).balance_micro == 10_000_000


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"input": {"prompt": "x"}}, 400, "invalid_request"),
        ({"model": MODEL, "public_model": "z-image", "input": {"prompt": "x"}}, 400, "invalid_request"),
        ({"model": MODEL, "input": {"prompt": "x"}, "color": "red"}, 400, "invalid_request"),
        ({"model": MODEL, "input": "a dog"}, 400, "invalid_request"),
        ({"model": MODEL, "input": {"prompt": "x"}, "webhook_url": "not a url"}, 400, "invalid_request"),
        ([1, 2], 400, "invalid_request"),
        ({"model": "no/such-model", "input": {"prompt": "x"}}, 404, "model_not_found"),
        ({"model": "z-image", "input": {"prompt": "x"}}, 503, "model_unavailable"),
    ],
)
def test_it_rejects_bad_requests_in_the_contract_shape(catalog, alice, alice_api, body, status, error):
    response = generate(alice_api, body)
    assert response.status_code == status, response.json()
    assert response.json()["success"] is False and response.json()["error"] == error
    assert response.json()["message"]
    assert not Job.objects.exists() and wallet_get(user=alice).balance_micro == 10_000_000


def test_it_rejects_malformed_json(catalog, alice_api):
    response = alice_api.post("/api/v1/generate.php", "{", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_it_replays_an_idempotent_request_without_a_second_job(catalog, alice, alice_api):
    first = generate(alice_api, HTTP_IDEMPOTENCY_KEY="k-1")
    second = generate(alice_api, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Job.objects.count() == 1 and wallet_get(user=alice).balance_micro == 9_990_000


def test_it_refuses_an_idempotency_key_reused_with_another_body(catalog, alice_api):
    generate(alice_api, HTTP_IDEMPOTENCY_KEY="k-2")
    response = generate(alice_api, {"model": MODEL, "input": {"prompt": "a cat"}}, HTTP_IDEMPOTENCY_KEY="k-2")
    assert response.status_code == 422 and response.json()["error"] == "idempotency_key_reused"
    assert Job.objects.count() == 1


def test_it_answers_409_while_the_first_request_is_in_progress(catalog, alice, alice_api):
    body = {"model": MODEL, "input": {"prompt": "a dog", "width": 64, "height": 64}}
    IdempotencyRecord.objects.create(
        user=alice,
        scope="generate",
        key="k-3",
        request_hash=hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest(),
    )
    response = generate(alice_api, body, HTTP_IDEMPOTENCY_KEY="k-3")
    assert response.status_code == 409 and response.json()["error"] == "idempotency_in_progress"
    assert not Job.objects.exists()


def test_it_lets_a_request_take_over_a_key_whose_first_request_died(catalog, alice, alice_api):
    body = {"model": MODEL, "input": {"prompt": "a dog", "width": 64, "height": 64}}
    IdempotencyRecord.objects.create(
        user=alice,
        scope="generate",
        key="k-dead",
        request_hash=hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest(),
        created_at=timezone.now() - timedelta(minutes=10),
        lease_until=timezone.now() - timedelta(seconds=1),
    )
    first = generate(alice_api, body, HTTP_IDEMPOTENCY_KEY="k-dead")
    assert first.status_code == 202
    assert generate(alice_api, body, HTTP_IDEMPOTENCY_KEY="k-dead").json() == first.json()
    assert Job.objects.count() == 1


def test_it_lets_a_failed_request_be_retried_with_the_same_key(catalog, bob, bob_api):
    assert generate(bob_api, HTTP_IDEMPOTENCY_KEY="k-4").status_code == 402
    from apps.billing.services import credits_grant

    credits_grant(user=bob, amount_micro=1_000_000, reason="top-up", idempotency_key="t:bob")
    assert generate(bob_api, HTTP_IDEMPOTENCY_KEY="k-4").status_code == 202
    assert Job.objects.count() == 1


def test_it_scopes_idempotency_keys_to_the_account(catalog, alice_api, charlie_api):
    generate(alice_api, HTTP_IDEMPOTENCY_KEY="shared")
    assert generate(charlie_api, HTTP_IDEMPOTENCY_KEY="shared").status_code == 202
    assert Job.objects.count() == 2


def test_it_generates_in_a_bounded_number_of_queries(catalog, alice_api):
    generate(alice_api)  # first use of the key writes last_used_at
    with CaptureQueriesContext(connection) as queries:
        assert generate(alice_api).status_code == 202
    # In one transaction: one statement (the wallet's debit, its entry, the hold and the job); and the test
    # transaction's savepoint around job_create. The key, and the model with its routes: from Redis and this
    # process's catalog copy; no look-up of the entry's key (made from a fresh random job id); the balance for the
    # answer: the debit's.
    assert len(queries) == 3, [q["sql"][:80] for q in queries.captured_queries]


def test_a_submit_reads_the_cache_in_one_round_trip(catalog, alice_api):
    """The key, the catalog's token and the available providers in one MGET (cache_read_together)."""
    generate(alice_api)  # the key's, the token's and the providers' entries are now in Redis
    with _redis_commands() as commands:
        assert generate(alice_api).status_code == 202
    # (The rate limiter's counter goes in a pipeline, which this spy does not see, and the job's message through
    # the broker.) Before: a GET for each of the three.
    assert commands == ["MGET"]


def test_the_job_is_written_in_its_holds_statement_as_save_would_write_it(catalog, alice):
    """On PostgreSQL the job's INSERT runs inside its hold's one statement, so the wallet's row lock lasts only
    from that statement to the commit (every submit on the wallet waits for it). The row is the one Job.save()
    writes for the same object, compared column by column with a twin the ORM saves."""
    from django.db.models.signals import post_save, pre_save

    from apps.catalog.models import AIModel
    from apps.generations.services import job_create

    assert connection.vendor == "postgresql", "make test runs on PostgreSQL"
    assert not pre_save.has_listeners(Job) and not post_save.has_listeners(Job)  # none skipped by the statement
    model = AIModel.objects.get(public_model=MODEL)
    deadline = timezone.now() + timedelta(hours=1)
    with CaptureQueriesContext(connection) as queries:
        job = job_create(user=alice, model=model, input={"prompt": "a kiwi\u00e9 'quoted'"}, webhook_url="https://e.example/h",
                         webhook_events=["completed"], deadline_at=deadline, stream_text=True)  # fmt: skip
    assert job.hold.paid_row_written and not job._state.adding and job._state.db == "default"
    assert sum("generations_job" in q["sql"] for q in queries.captured_queries) == 1
    fields = [f for f in Job._meta.concrete_fields]
    stored = Job.objects.get(pk=job.pk)
    assert {f.attname: getattr(stored, f.attname) for f in fields} == {
        f.attname: getattr(job, f.attname) for f in fields
    }
    assert stored.hold_id == job.hold.pk and stored.input == job.input and stored.deadline_at == deadline
    twin = Job(**{f.attname: getattr(job, f.attname) for f in fields if f.attname not in ("id", "hold_id")})
    twin.save(force_insert=True)
    twin = Job.objects.get(pk=twin.pk)
    skip = {"id", "hold_id"}
    assert {f.attname: getattr(twin, f.attname) for f in fields if f.attname not in skip} == {
        f.attname: getattr(stored, f.attname) for f in fields if f.attname not in skip
    }


def test_a_submit_sees_a_catalog_change_at_once(catalog, alice_api):
    from apps.catalog.models import AIModel, ModelRoute

    assert generate(alice_api).status_code == 202  # the catalog is now kept in this process
    route = ModelRoute.objects.get(model__public_model=MODEL)
    route.enabled = False
    route.save()
    response = generate(alice_api)
    assert response.status_code == 503 and response.json()["error"] == "model_unavailable"
    route.enabled = True
    route.save()
    assert generate(alice_api).status_code == 202
    model = AIModel.objects.get(public_model=MODEL)
    model.enabled = False
    model.save()
    assert generate(alice_api).status_code == 404


def test_it_polls_a_job_in_one_query_and_an_ended_one_in_none(catalog, alice_api):
    job_id = generate(alice_api).json()["job_id"]
    alice_api.get("/api/v1/jobs.php", {"job_id": job_id})  # first use of the key writes last_used_at
    with CaptureQueriesContext(connection) as queries:
        assert alice_api.get("/api/v1/jobs.php", {"job_id": job_id}).json()["status"] == "queued"
    assert len(queries) == 1  # the job with its model's two fields; no outputs before it completes
    job_run(job_id=job_id)
    with CaptureQueriesContext(connection) as queries:
        body = alice_api.get("/api/v1/jobs.php", {"job_id": job_id}).json()
    assert body["status"] == "completed" and len(body["outputs"]) == 1
    assert len(queries) == 2  # job + model, outputs; the answer is then kept
    with CaptureQueriesContext(connection) as queries, _redis_commands() as commands:
        assert alice_api.get("/api/v1/jobs.php", {"job_id": job_id}).json() == body
    assert len(queries) == 0  # an ended job's answer: from Redis, as the key is
    assert commands == ["MGET"]  # the key, the answer, its tombstone and the catalog's generation: one round trip


def test_the_worker_keeps_an_ended_jobs_answer_so_the_first_poll_reads_no_row(
    catalog, alice_api, django_capture_on_commit_callbacks
):
    job_id = generate(alice_api).json()["job_id"]
    alice_api.get("/api/v1/jobs.php", {"job_id": job_id})  # first use of the key writes last_used_at
    with django_capture_on_commit_callbacks(execute=True):  # as the worker's commit runs them
        job_run(job_id=job_id)
    with CaptureQueriesContext(connection) as queries, _redis_commands() as commands:
        first = alice_api.get("/api/v1/jobs.php", {"job_id": job_id})
    assert len(queries) == 0 and commands == ["MGET"]
    assert first.json()["status"] == "completed" and len(first.json()["outputs"]) == 1
    # The answer the DRF view builds from the rows, absolute output URLs included.
    assert _answer(first) == _answer(alice_api.get("/api/v1/jobs.php", {"job_id": job_id}, HTTP_ACCEPT="*/*"))
    assert first.json()["outputs"][0]["url"].startswith("http://testserver/")


@contextlib.contextmanager
def _redis_commands():
    """The commands this process sends to Redis meanwhile (a spy: each is still sent)."""
    import redis

    sent, execute = [], redis.Redis.execute_command

    def spy(self, *args, **options):
        sent.append(args[0])
        return execute(self, *args, **options)

    redis.Redis.execute_command = spy
    try:
        yield sent
    finally:
        redis.Redis.execute_command = execute


def _answer(response) -> tuple:
    headers = {k: v for k, v in response.headers.items() if k not in ("X-Request-ID", "Content-Security-Policy")}
    return response.status_code, response.content, headers


@pytest.mark.parametrize("outcome", ["queued", "completed", "failed", "canceled"])
def test_the_lean_poll_answers_the_same_bytes_and_headers_as_the_drf_view(catalog, alice_api, outcome):
    from apps.generations.services import job_cancel, job_fail

    job_id = generate(alice_api).json()["job_id"]
    job = Job.objects.get(pk=job_id)
    if outcome == "completed":
        job_run(job_id=job_id)
    elif outcome == "failed":
        job_fail(job=job, code="provider_error", message="It broke.")
    elif outcome == "canceled":
        job_cancel(job=job)
    for path, params in (("/api/v1/jobs.php", {"job_id": job_id}), (f"/api/v1/jobs/{job_id}", {})):
        for _ in range(2):  # the second time from the cache, for an ended job
            lean = alice_api.get(path, params)
            # An Accept the lean path leaves to DRF (DRF answers it as compact JSON all the same).
            drf = alice_api.get(path, params, HTTP_ACCEPT="application/json; q=1")
            assert _answer(lean) == _answer(drf)
            assert lean.json()["status"] == outcome
    assert _answer(alice_api.get("/api/v1/jobs.php", {"job_id": job_id}, HTTP_ACCEPT="*/*")) == _answer(drf)


def test_a_cached_answer_is_gone_once_deleted_and_never_shown_to_another_account(catalog, alice_api, charlie_api):
    from apps.generations.services import job_delete

    job_id = generate(alice_api).json()["job_id"]
    job_run(job_id=job_id)
    assert alice_api.get("/api/v1/jobs.php", {"job_id": job_id}).status_code == 200  # now cached
    response = charlie_api.get("/api/v1/jobs.php", {"job_id": job_id})
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    job_delete(job=Job.objects.get(pk=job_id))
    response = alice_api.get("/api/v1/jobs.php", {"job_id": job_id})
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_a_cached_answer_shows_a_catalog_change_at_once(catalog, alice_api):
    from apps.catalog.models import AIModel

    job_id = generate(alice_api).json()["job_id"]
    job_run(job_id=job_id)
    assert alice_api.get("/api/v1/jobs.php", {"job_id": job_id}).json()["category"] == "text-to-image"
    model = AIModel.objects.get(public_model=MODEL)
    model.category = "tools"
    model.save()  # as the admin saves it
    assert alice_api.get("/api/v1/jobs.php", {"job_id": job_id}).json()["category"] == "tools"


def test_a_bad_key_or_an_unknown_job_gets_the_drf_views_errors(catalog, alice_api, anon_api):
    job_id = generate(alice_api).json()["job_id"]
    anon_api.credentials(HTTP_AUTHORIZATION="Bearer kw_nope")
    response = anon_api.get("/api/v1/jobs.php", {"job_id": job_id})
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    anon_api.credentials(HTTP_AUTHORIZATION="Basic abc")
    assert anon_api.get("/api/v1/jobs.php", {"job_id": job_id}).status_code == 401
    response = alice_api.get("/api/v1/jobs.php", {"job_id": "job_nope"})
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    response = alice_api.get("/api/v1/jobs.php", {"job_id": job_id}, HTTP_ACCEPT="text/html")
    assert response.status_code == 406


def test_it_shows_a_completed_job_in_the_published_shape(catalog, alice_api):
    job_id = generate(alice_api).json()["job_id"]
    job_run(job_id=job_id)
    body = alice_api.get("/api/v1/jobs.php", {"job_id": job_id}).json()
    assert {
        "success",
        "job_id",
        "status",
        "public_model",
        "category",
        "cost_credits",
        "created_at",
        "started_at",
        "completed_at",
        "outputs",
        "error",
    } <= set(body)
    output = body["outputs"][0]
    assert output["url"].startswith("http://testserver/media/outputs/") and job_id not in output["url"]
    assert (output["type"], output["content_type"], output["width"], output["height"]) == (
        "image",
        "image/png",
        64,
        64,
    )
    assert output["file_size"] > 0 and body["error"] is None
    assert alice_api.get(f"/api/v1/jobs/{job_id}").json()["job_id"] == job_id  # the clean alias


def test_it_hides_another_accounts_job(catalog, alice_api, charlie_api):
    job_id = generate(alice_api).json()["job_id"]
    for path in (f"/api/v1/jobs.php?job_id={job_id}", f"/api/v1/jobs/{job_id}"):
        response = charlie_api.get(path)
        assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert charlie_api.get("/api/v1/jobs.php").json()["jobs"] == []
    assert charlie_api.post("/api/v1/cancel.php", {"job_id": job_id}, format="json").status_code == 404


def test_it_lists_the_callers_jobs_newest_first_with_a_cursor(catalog, alice_api):
    ids = [generate(alice_api).json()["job_id"] for _ in range(5)]
    page = alice_api.get("/api/v1/jobs.php", {"limit": 2}).json()
    assert [j["job_id"] for j in page["jobs"]] == ids[::-1][:2]
    assert "offset" not in page["next"]
    rest = alice_api.get(page["next"]).json()
    assert [j["job_id"] for j in rest["jobs"]] == ids[::-1][2:4]
    assert alice_api.get("/api/v1/jobs.php", {"status": "completed"}).json()["jobs"] == []
    assert alice_api.get("/api/v1/jobs.php", {"status": "bogus"}).status_code == 400


def test_it_lists_jobs_in_a_constant_number_of_queries(catalog, alice_api):
    for _ in range(3):
        job_run(job_id=generate(alice_api).json()["job_id"])
    with CaptureQueriesContext(connection) as few:
        alice_api.get("/api/v1/jobs.php")
    for _ in range(3):
        job_run(job_id=generate(alice_api).json()["job_id"])
    with CaptureQueriesContext(connection) as more:
        assert len(alice_api.get("/api/v1/jobs.php").json()["jobs"]) == 6
    assert len(few) == len(more)


def test_it_cancels_a_queued_job_and_returns_its_credits_once(catalog, alice, alice_api):
    job_id = generate(alice_api).json()["job_id"]
    response = alice_api.post("/api/v1/cancel.php", {"job_id": job_id}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert wallet_get(user=alice).balance_micro == 10_000_000
    again = alice_api.post(f"/api/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409 and again.json()["error"] == "job_not_cancelable"
    job_run(job_id=job_id)  # a late delivery of the task does nothing
    assert Job.objects.get(pk=job_id).status == "canceled"
    assert wallet_get(user=alice).balance_micro == 10_000_000


def test_the_worker_runs_a_local_job_in_a_bounded_number_of_queries(catalog, alice_api):
    job_run(job_id=generate(alice_api).json()["job_id"])  # the worker's catalog copy is now current
    job_id = generate(alice_api).json()["job_id"]
    with CaptureQueriesContext(connection) as queries:
        job_run(job_id=job_id)
    assert Job.objects.get(pk=job_id).status == "completed"
    # The job with its model and hold, the claim (which records the route it runs on), the staged file's name;
    # then, in one transaction (a savepoint here, inside the test's): completed, its output, the hold settled. The
    # routes come from the catalog copy, event listeners with nothing to write open no savepoint, and a local engine
    # has no provider account to record its success on.
    assert len(queries) == 8, [q["sql"][:80] for q in queries.captured_queries]
    job = Job.objects.get(pk=job_id)
    assert job.route is not None and job.provider == "local" and job.attempts == 1 and job.started_at


def test_the_lean_poll_keeps_every_rule_of_the_key(catalog, alice, alice_api):
    """The lean poll authenticates as DRF does: a key's scopes, expiry and requests per minute hold on it too,
    answered in the contract's shape, and a request is counted once against the key's minute."""
    from datetime import timedelta

    from django.utils import timezone
    from rest_framework.test import APIClient

    from apps.accounts.services import api_key_create

    def poll(raw):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client.get("/api/v1/jobs.php", {"job_id": job_id})

    job_id = generate(alice_api).json()["job_id"]
    _, billing_only = api_key_create(user=alice, name="payer", scopes=["billing"])
    refused = poll(billing_only)
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
    _, raw = api_key_create(user=alice, name="short", expires_at=timezone.now() + timedelta(seconds=1))
    assert poll(raw).status_code == 200  # and now cached, with its expiry
    time.sleep(1.1)
    expired = poll(raw)
    assert expired.status_code == 401 and expired.json()["error"] == "key_expired"
    _, limited = api_key_create(user=alice, name="slow", rpm_limit=2)
    assert [poll(limited).status_code for _ in range(2)] == [200, 200]
    over = poll(limited)
    assert over.status_code == 429 and over.json()["error"] == "rate_limited" and int(over["Retry-After"]) >= 1
    # An unknown job: the lean poll hands the request to the DRF view, which answers the 404; counted once too.
    _, limited = api_key_create(user=alice, name="slow-404", rpm_limit=2)
    job_id = "job_unknown"
    assert [poll(limited).status_code for _ in range(3)] == [404, 404, 429]
