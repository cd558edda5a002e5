"""A prompt of spaces only is refused before anything is charged: by the schema, so the API, the playground and
the model docs agree."""

import pytest

from apps.billing.models import Wallet
from apps.generations.models import Job

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("model", "field"), [("local/procedural-image", "prompt"), ("local/text-to-speech", "text"), ("z-image", "prompt")]
)
def test_a_whitespace_prompt_is_refused_and_costs_nothing(alice_api, alice, catalog, model, field):
    balance = Wallet.objects.get(user=alice).balance_micro
    response = alice_api.post("/api/v1/generate.php", {"model": model, "input": {field: " \n\t "}}, format="json")
    assert response.status_code == 422, response.json()
    body = response.json()
    assert body["error"] == "invalid_input"
    assert {"field": field, "message": "Must contain more than spaces."} in body["details"]
    assert not Job.objects.exists() and Wallet.objects.get(user=alice).balance_micro == balance


def test_a_prompt_with_words_and_spaces_around_them_still_runs(alice_api, catalog):
    response = alice_api.post(
        "/api/v1/generate.php", {"model": "local/procedural-image", "input": {"prompt": "  a dog  "}}, format="json"
    )
    assert response.status_code == 202
