import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.catalog.models import AIModel, ModelRoute
from apps.generations.providers import provider_keys_available
from tests.site.helpers import elements

pytestmark = pytest.mark.django_db


def _card_links(html) -> list[str]:
    return [a["href"] for a in elements(html, "a") if a.get("href", "").startswith("/model.php?model=")]


def test_it_lists_every_servable_model_and_no_other(client, catalog):
    servable = set(AIModel.objects.servable(provider_keys_available()).values_list("public_model", flat=True))
    assert servable, "the seeded catalog serves local models"
    links = _card_links(client.get("/").content)
    assert {link.removeprefix("/model.php?model=") for link in links} == servable
    assert len(links) == len(servable)


def test_it_hides_a_disabled_model(client, catalog):
    AIModel.objects.filter(public_model="local/procedural-image").update(enabled=False)
    assert b"local/procedural-image" not in client.get("/").content


def test_it_shows_cost_category_and_an_icon_on_each_card(client, catalog):
    html = client.get("/").content.decode()
    assert "0.01 credits" in html  # local/procedural-image: 0.01 per image
    assert "Text to image" in html
    icons = [u["href"] for u in elements(html, "use")]
    assert any(href.endswith("#image") for href in icons)
    assert any(svg.get("role") == "img" and svg.get("aria-label") == "Text to image" for svg in elements(html, "svg"))


def test_it_filters_by_search_words_on_the_server(client, catalog):
    links = _card_links(client.get("/", {"q": "procedural-image"}).content)
    assert links == ["/model.php?model=local/procedural-image"]
    both = _card_links(client.get("/", {"q": "Local  VIDEO"}).content)  # every word, any case
    assert "/model.php?model=local/text-to-video" in both and "/model.php?model=local/procedural-image" not in both
    response = client.get("/", {"q": "no-model-is-called-this"})
    assert _card_links(response.content) == []
    assert b"No model matches" in response.content


def test_it_filters_by_category(client, catalog):
    links = _card_links(client.get("/", {"category": "tools"}).content)
    assert links and "/model.php?model=kiwiwhale/upload" in links
    assert "/model.php?model=local/procedural-image" not in links
    chips = [a for a in elements(client.get("/", {"category": "tools"}).content, "a") if a.get("class") == "chip"]
    assert [c["href"] for c in chips if c.get("aria-current") == "true"] == ["?category=tools"]


def test_it_escapes_what_an_admin_typed_in_a_model(client, catalog):
    AIModel.objects.filter(public_model="local/procedural-image").update(
        label="<script>alert(1)</script>", description='"><img src=x onerror=alert(1)>'
    )
    html = client.get("/").content.decode()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)" in html


def test_it_says_so_when_nothing_can_be_served(client, db):
    response = client.get("/")
    assert response.status_code == 200
    assert b"No model can be served right now" in response.content


def _add_models(count: int) -> None:
    for index in range(count):
        model = AIModel.objects.create(
            public_model=f"extra/model-{AIModel.objects.count()}-{index}",
            product_id="extra",
            label=f"Extra {index}",
            category="chat",
            input_schema={"type": "object", "properties": {"prompt": {"type": "string"}}},
            price_micro=1000,
        )
        ModelRoute.objects.create(model=model, provider="local", upstream_model="echo-chat")


def test_its_query_count_does_not_grow_with_the_catalog(client, catalog, alice):
    client.force_login(alice)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/").status_code == 200
        return len(captured)

    client.get("/")  # warm the provider-availability cache
    before = queries()
    _add_models(15)
    after = queries()
    assert after == before
    assert len(_card_links(client.get("/").content)) >= 16


def test_the_low_accuracy_speech_to_text_is_hidden_unless_the_operator_shows_it(client, catalog, settings):
    assert "local/speech-to-text" not in client.get("/").content.decode()
    assert "local/speech-to-text" not in client.get("/api/v1/models.php").content.decode()
    settings.CATALOG_HIDDEN_MODELS = []  # what SHOW_LOW_ACCURACY_ENGINES=true gives
    html = client.get("/").content.decode()
    assert "local/speech-to-text" in html and "Low accuracy" in html
