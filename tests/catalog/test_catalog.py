import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.catalog.models import AIModel, ModelRoute
from apps.catalog.services import InvalidInput, input_validate

pytestmark = pytest.mark.django_db


def test_it_seeds_the_catalog_idempotently(capsys):
    call_command("seed_catalog")
    counts = AIModel.objects.count(), ModelRoute.objects.count()
    call_command("seed_catalog")
    assert (AIModel.objects.count(), ModelRoute.objects.count()) == counts
    assert "0 created" in capsys.readouterr().out.splitlines()[-1]
    published = {"z-image", "gpt-image-2/text-to-image", "gpt-5-mini/chat", "kiwiwhale/upload"}
    assert published <= set(AIModel.objects.values_list("public_model", flat=True))


def test_it_lists_only_models_a_provider_can_serve_now(catalog, anon_api):
    body = anon_api.get("/api/v1/models.php").json()
    ids = {m["public_model"] for m in body["models"]}
    assert body["success"] is True and body["count"] == len(body["models"])
    assert {"local/procedural-image", "kiwiwhale/upload"} <= ids
    assert "z-image" not in ids  # routed to fal.ai, which this instance has no account for


def test_it_hides_a_model_whose_routes_are_disabled(catalog, anon_api):
    ModelRoute.objects.filter(model__public_model="kiwiwhale/upload").update(enabled=False)
    ids = {m["public_model"] for m in anon_api.get("/api/v1/models.php").json()["models"]}
    assert "kiwiwhale/upload" not in ids


def test_it_shows_each_model_in_the_published_shape(catalog, anon_api):
    model = next(
        m for m in anon_api.get("/api/v1/models.php").json()["models"] if m["public_model"] == "local/procedural-image"
    )
    assert set(model) == {
        "product_id",
        "label",
        "public_model",
        "category",
        "cost_credits",
        "description",
        "schema",
    }
    assert model["cost_credits"] == 0.01 and model["category"] == "text-to-image"
    assert model["schema"]["type"] == "object" and "prompt" in model["schema"]["required"]
    assert "local engine" in model["label"].lower() and "not an ai model" in model["description"].lower()


def test_it_filters_by_category_and_rejects_an_unknown_one(catalog, anon_api):
    body = anon_api.get("/api/v1/models.php", {"category": "tools"}).json()
    assert body["count"] >= 1 and {m["category"] for m in body["models"]} == {"tools"}
    response = anon_api.get("/api/v1/models.php", {"category": "poetry"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_it_lists_models_in_one_query(catalog, anon_api):
    anon_api.get("/api/v1/models.php")  # which providers can run is cached after the first request
    with CaptureQueriesContext(connection) as queries:
        anon_api.get("/api/v1/models.php")
    assert len(queries) == 1


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ({"price_micro": 50_000}, {}, 50_000),
        ({"price_micro": 50_000, "price_unit": "num_images"}, {"num_images": 3}, 150_000),
        ({"price_micro": 225_000, "price_unit": "duration"}, {"duration": 2.5}, 562_500),
        (
            {"price_micro": 30_000, "price_unit": "len:text", "price_unit_size": 1000},
            {"text": "x" * 1500},
            45_000,
        ),
        ({"price_micro": 30_000, "price_unit": "len:text", "price_unit_size": 1000}, {"text": "x"}, 30),
        (
            {"price_micro": 10, "price_unit": "len:text", "price_unit_size": 1000, "price_min_micro": 500},
            {"text": "x"},
            500,
        ),
    ],
)
def test_it_prices_a_run_from_its_rule_and_input(rule, value, expected):
    assert AIModel(input_schema={}, **rule).cost_micro(value) == expected


def test_it_applies_schema_defaults_and_reports_each_bad_field(catalog):
    model = AIModel.objects.get(public_model="local/procedural-image")
    assert input_validate(model=model, data={"prompt": "a cat"}) == {
        "prompt": "a cat",
        "width": 1024,
        "height": 1024,
        "num_images": 1,
    }
    with pytest.raises(InvalidInput) as info:
        input_validate(model=model, data={"width": 10, "colour": "red"})
    fields = {d["field"] for d in info.value.details}
    assert fields == {"prompt", "width", "colour"}


def test_it_removes_routes_the_file_no_longer_lists_but_keeps_an_admins(tmp_path):
    import json

    from apps.catalog.services import CATALOG_FILE, catalog_seed

    data = json.loads(CATALOG_FILE.read_text())
    catalog_seed()
    model = AIModel.objects.get(public_model="kiwiwhale/upload")
    ModelRoute.objects.create(model=model, provider="local", upstream_model="admin-added")
    entry = next(m for m in data["models"] if m["public_model"] == "kiwiwhale/upload")
    entry["routes"] = [{"provider": "local", "upstream_model": "upload-v2"}]
    changed = tmp_path / "catalog.json"
    changed.write_text(json.dumps(data))
    catalog_seed(path=changed)
    assert set(model.routes.values_list("upstream_model", flat=True)) == {"upload-v2", "admin-added"}
