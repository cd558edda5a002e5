"""quote.php gives the exact cost generate.php charges; max_cost_credits refuses a dearer job, charging nothing."""

import pytest

from apps.billing.models import LedgerEntry
from apps.billing.services import wallet_get
from apps.generations.models import Job

pytestmark = pytest.mark.django_db

MODEL = "local/procedural-image"


def test_it_quotes_what_generate_then_charges_with_the_defaults_applied(catalog, alice, alice_api, anon_api):
    body = {"model": MODEL, "input": {"prompt": "a kiwi", "num_images": 3}}
    quote = anon_api.post("/api/v1/quote.php", body, format="json")
    assert quote.status_code == 200
    answer = quote.json()
    assert answer["success"] is True and answer["public_model"] == MODEL
    assert answer["input"]["num_images"] == 3 and answer["input"]["width"]  # a default filled in
    job = alice_api.post("/api/v1/generate.php", body, format="json").json()
    assert job["cost_credits"] == answer["cost_credits"] == 0.03
    assert Job.objects.get(pk=job["job_id"]).input == answer["input"]


def test_it_answers_quote_errors_in_the_contract_shape(catalog, anon_api):
    assert anon_api.post("/api/v1/quote.php", {"model": "nope"}, format="json").json()["error"] == "model_not_found"
    bad = anon_api.post("/api/v1/quote.php", {"model": MODEL, "input": {"width": 1}}, format="json")
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_input"
    assert anon_api.post("/api/v1/quote.php", {"input": {}}, format="json").status_code == 400


def test_max_cost_credits_refuses_a_dearer_job_and_charges_nothing(catalog, alice, alice_api):
    body = {"model": MODEL, "input": {"prompt": "a kiwi", "num_images": 3}, "max_cost_credits": 0.02}
    response = alice_api.post("/api/v1/generate.php", body, format="json")
    assert response.status_code == 402
    error = response.json()
    assert error["error"] == "over_max_cost" and error["required"] == 0.03 and error["max_cost_credits"] == 0.02
    assert not Job.objects.exists() and not LedgerEntry.objects.filter(kind="debit").exists()
    assert wallet_get(user=alice).balance_micro == 10_000_000
    body["max_cost_credits"] = 0.03
    assert alice_api.post("/api/v1/generate.php", body, format="json").status_code == 202
