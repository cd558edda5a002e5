"""Strings PostgreSQL cannot store (NUL, lone surrogates), deep JSON and non-finite numbers are refused at the edge.

Each of these reached the ORM and answered 500 on PostgreSQL (SQLite stores them), so this file needs the
PostgreSQL test database, which `make test` and CI use.
"""

import json
from pathlib import Path

import pytest
import stripe
from django.db import connection

from apps.billing.models import StripeEvent
from apps.generations.models import Job
from apps.generations.services import job_run

pytestmark = pytest.mark.django_db

MODEL = "local/procedural-image"


@pytest.fixture(autouse=True)
def _on_postgresql():
    assert connection.vendor == "postgresql", "these refusals are PostgreSQL's: run the tests on PostgreSQL"


def post_raw(client, path: str, raw: str):
    return client.post(path, data=raw.encode("utf-8", "surrogatepass"), content_type="application/json")


def assert_refused(response, field: str):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["success"] is False and body["error"] == "invalid_request"
    assert body["details"][0]["field"] == field
    assert body["message"].startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("input", "field"),
    [
        ({"prompt": "a\u0000dog"}, "input.prompt"),
        ({"prompt": "a dog", "extra": {"deep": [{"x": "\u0000"}]}}, "input.extra.deep.0.x"),
        ({"prompt": "a dog", "bad\u0000key": 1}, "input"),
    ],
)
def test_it_refuses_a_nul_anywhere_in_the_input_of_a_job(catalog, alice_api, input, field):
    response = alice_api.post("/api/v1/generate.php", {"model": MODEL, "input": input}, format="json")
    assert_refused(response, field)
    assert not Job.objects.exists()


def test_it_refuses_a_nul_in_a_top_level_input_field(catalog, alice_api):
    response = alice_api.post("/api/v1/generate.php", {"model": MODEL, "prompt": "\u0000"}, format="json")
    assert_refused(response, "prompt")


def test_it_refuses_a_lone_surrogate(catalog, alice_api):
    response = post_raw(
        alice_api, "/api/v1/generate.php", '{"model": "local/procedural-image", "input": {"prompt": "\\ud800"}}'
    )
    assert_refused(response, "input.prompt")
    assert "surrogate" in response.json()["message"]
    assert not Job.objects.exists()


def test_it_accepts_a_surrogate_pair_which_is_one_real_character(catalog, alice_api):
    response = post_raw(
        alice_api, "/api/v1/generate.php", '{"model": "local/procedural-image", "input": {"prompt": "\\ud83d\\udc36"}}'
    )
    assert response.status_code == 202
    assert Job.objects.get().input["prompt"] == "\U0001f436"


@pytest.mark.parametrize("levels", [65, 500, 100_000])
def test_it_refuses_json_nested_deeper_than_64_levels(catalog, alice_api, levels):
    raw = '{"model": "local/procedural-image", "input": {"prompt": "x", "n": ' + "[" * levels + "]" * levels + "}}"
    response = post_raw(alice_api, "/api/v1/generate.php", raw)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "deeper than 64" in response.json()["message"]


def test_it_accepts_json_64_levels_deep_at_the_parser(alice_api):
    # 64 levels pass the edge; the view then answers as it does for any other body (here: unknown fields).
    raw = json.dumps({"nested": json.loads("[" * 63 + "]" * 63)})
    response = post_raw(alice_api, "/api/v1/low_balance.php", raw)
    assert response.status_code == 400
    assert "deeper" not in response.json()["message"]


def test_it_refuses_an_infinite_number(catalog, alice_api):
    response = post_raw(
        alice_api,
        "/api/v1/generate.php",
        '{"model": "local/procedural-image", "input": {"prompt": "x", "seed": 1e999}}',
    )
    assert_refused(response, "input.seed")


def test_it_refuses_a_nul_in_a_job_id_in_the_query_or_the_path(alice_api):
    assert_refused(alice_api.get("/api/v1/jobs.php", {"job_id": "job_\u0000"}), "job_id")
    assert_refused(alice_api.get("/api/v1/jobs/job_\u0000x"), "path")
    assert_refused(alice_api.post("/api/v1/jobs/job_\u0000x/cancel"), "path")
    assert_refused(alice_api.post("/api/v1/cancel.php", {"job_id": "job_\u0000"}, format="json"), "job_id")


def test_it_refuses_a_nul_in_any_query_parameter_of_the_api(alice_api, anon_api):
    assert_refused(alice_api.get("/api/v1/usage.php", {"kind": "\u0000"}), "kind")
    assert_refused(alice_api.get("/api/v1/agent_topup.php", {"credits": "5\u0000"}), "credits")
    assert_refused(anon_api.get("/api/v1/models.php", {"category\u0000": "x"}), "category\\x00")


def test_it_refuses_a_nul_in_any_json_field_of_the_api(alice_api, anon_api):
    assert_refused(anon_api.post("/api/v1/agent_register.php", {"name": "a\u0000"}, format="json"), "name")
    assert_refused(alice_api.post("/api/v1/redeem.php", {"code": "\u0000"}, format="json"), "code")
    response = alice_api.post(
        "/api/v1/low_balance.php", {"threshold_credits": 1, "webhook_url": "http://x/\u0000"}, format="json"
    )
    assert_refused(response, "webhook_url")


@pytest.mark.parametrize("path", ["/", "/showroom.php", "/blog.php", "/docs/agents.php", "/no-such-page"])
def test_it_answers_a_bad_request_page_to_a_nul_in_ref_on_any_page(client, catalog, path):
    response = client.get(path, {"ref": "AB\u0000"})
    assert response.status_code == 400
    assert b"Bad request" in response.content


@pytest.mark.parametrize("path", ["/model.php", "/showroom.php", "/model-playground.php"])
def test_it_answers_a_bad_request_page_to_a_nul_in_a_model_name(client, catalog, path):
    response = client.get(path, {"model": "local/\u0000"})
    assert response.status_code == 400
    assert b"Bad request" in response.content


def test_it_answers_not_found_to_a_nul_in_a_page_path(client):
    assert client.get("/docs/a\u0000b.php").status_code == 404


def test_it_answers_a_bad_request_page_to_a_nul_in_a_form_field(client, alice):
    response = client.post("/accounts/login/", {"login": "alice@example.com\u0000", "password": "x"})
    assert response.status_code == 400


def test_it_still_serves_ordinary_pages_with_a_referral_code(client, catalog):
    assert client.get("/", {"ref": "NOSUCHCODE"}).status_code == 200


def media_files(settings) -> set:
    return {path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()}


def test_it_fails_an_upload_whose_text_holds_a_nul_and_keeps_no_file(catalog, alice_api, settings):
    files_before = media_files(settings)
    response = alice_api.post(
        "/api/v1/generate.php",
        {"model": "kiwiwhale/upload", "input": {"file_url": "data:text/plain,hello%00world"}},
        format="json",
    )
    assert response.status_code == 202, response.content
    job_run(job_id=response.json()["job_id"])  # what the worker runs, in this process
    body = alice_api.get("/api/v1/jobs.php", {"job_id": response.json()["job_id"]}).json()
    assert body["status"] == "failed" and body["outputs"] == []
    assert body["error"]["code"] == "provider_error" and "NUL" in body["error"]["message"]
    assert media_files(settings) == files_before


@pytest.mark.parametrize(
    "cursor", ["garbage", "cD1nYXJiYWdl", "WzEsMl0", "WyIyMDI0LTAxLTAxVDAwOjAwOjAwWiIsMWU0MDBd", "W1sxXSxbMl1d"]
)
def test_it_answers_400_to_a_garbage_jobs_cursor(alice_api, cursor):
    response = alice_api.get("/api/v1/jobs.php", {"cursor": cursor})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request" and response.json()["message"].startswith("cursor")


def test_it_pages_jobs_with_the_cursor_of_next(catalog, alice_api):
    ids = [alice_api.post("/api/v1/generate.php", {"model": MODEL, "prompt": "x"}, format="json").json()["job_id"]]
    ids += [alice_api.post("/api/v1/generate.php", {"model": MODEL, "prompt": "y"}, format="json").json()["job_id"]]
    first = alice_api.get("/api/v1/jobs.php", {"limit": 1, "status": "queued"}).json()
    assert [job["job_id"] for job in first["jobs"]] == [ids[1]]
    assert first["next"].startswith("http://testserver/api/v1/jobs.php?") and "status=queued" in first["next"]
    second = alice_api.get(first["next"]).json()
    assert [job["job_id"] for job in second["jobs"]] == [ids[0]] and second["next"] is None


@pytest.mark.parametrize("payload", ["[]", '[{"id": "evt_1", "type": "payment_intent.succeeded"}]', '"evt"', "3"])
def test_it_answers_400_to_a_signed_stripe_event_that_is_not_an_object(client, settings, payload):
    settings.STRIPE_WEBHOOK_SECRET = "whsec_test_input"
    header = stripe.WebhookSignature.generate_signature_header(payload, settings.STRIPE_WEBHOOK_SECRET)
    response = client.post(
        "/billing/stripe/webhook/", data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_it_ignores_a_cookie_holding_a_nul(client, catalog):
    client.cookies["sessionid"] = "abcdefgh\u0000ijkl"
    assert client.get("/").status_code == 200
    client.cookies["csrftoken"] = "a\u0000b"
    assert client.get("/accounts/login/").status_code == 200
