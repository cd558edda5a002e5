import json
import re
from html import unescape

import pytest
from django.test import Client

from apps.catalog import schema_form
from apps.catalog.models import AIModel
from apps.generations.models import Job
from apps.generations.services import job_create
from tests.site.helpers import controls, elements

pytestmark = pytest.mark.django_db

MODEL_PAGES = ["/model.php", "/model-playground.php", "/model-api.php", "/model-docs.php", "/model-code.php"]


def _playground(client, public_model: str, **params):
    response = client.get("/model-playground.php", {"model": public_model, **params})
    assert response.status_code == 200
    return response


def _expected_control(name: str, prop: dict) -> tuple[str, str | None]:
    """(tag, input type) the schema says a person should get for this property."""
    kind = prop.get("type")
    if prop.get("enum"):
        return "select", None
    if kind == "boolean":
        return "input", "checkbox"
    if kind in ("integer", "number"):
        return "input", "number"
    if kind == "array":
        return "textarea", None  # one URL per line (or JSON for other arrays)
    if name.endswith("_url"):
        return "input", "url"
    if name in schema_form.TEXTAREA_NAMES or prop.get("maxLength", 0) > schema_form.TEXTAREA_MIN_LENGTH:
        return "textarea", None
    return "input", "text"


@pytest.mark.parametrize("page", MODEL_PAGES)
def test_every_model_page_answers_for_every_enabled_model(client, catalog, page):
    for public_model in AIModel.objects.filter(enabled=True).values_list("public_model", flat=True):
        response = client.get(page, {"model": public_model})
        assert response.status_code == 200, (page, public_model)
        assert public_model.encode() in response.content


@pytest.mark.parametrize("page", MODEL_PAGES)
def test_an_unknown_model_is_a_404_and_a_missing_one_opens_the_catalog(client, catalog, page):
    assert client.get(page, {"model": "no/such-model"}).status_code == 404
    response = client.get(page)
    assert response.status_code == 302 and response["Location"] == "/"


def test_the_playground_form_has_the_right_control_for_every_field_of_every_seeded_model(client, catalog):
    checked = 0
    for model in AIModel.objects.filter(enabled=True):
        found = controls(_playground(client, model.public_model).content)
        properties = model.input_schema.get("properties", {})
        assert set(found) == set(properties), model.public_model
        for name, prop in properties.items():
            control = found[name]
            tag, input_type = _expected_control(name, prop)
            assert control["tag"] == tag, (model.public_model, name, control)
            if input_type:
                assert control.get("type") == input_type, (model.public_model, name, control)
            assert ("required" in control) == (name in model.input_schema.get("required", [])), (model, name)
            if prop.get("enum"):
                values = [json.loads(v) for v in control["_options"] if v]
                assert values == prop["enum"], (model.public_model, name)
                if "default" in prop:
                    assert control["_options"][0] != "", "a field with a default offers no empty choice"
            if input_type == "number":
                if "minimum" in prop:
                    assert float(control["min"]) == prop["minimum"], (model.public_model, name)
                if "maximum" in prop:
                    assert float(control["max"]) == prop["maximum"], (model.public_model, name)
                if prop["type"] == "integer":
                    assert control["step"] == str(prop.get("multipleOf", 1))
            if "maxLength" in prop and tag != "select" and prop.get("type") == "string":
                assert int(control["maxlength"]) == prop["maxLength"]
            checked += 1
    assert checked > 30


def test_every_control_has_a_label_and_its_help_is_linked(client, catalog):
    html = _playground(client, "local/text-to-speech").content
    labels = {label.get("for") for label in elements(html, "label")}
    ids = {element.get("id") for element in elements(html)}
    for name, control in controls(html).items():
        assert control["id"] in labels, f"{name} has no label"
        described = control["aria-describedby"].split()
        assert f"f-{name}-error" in described
        assert all(part in ids for part in described if part.endswith("-error"))


def test_the_schema_defaults_are_preselected(client, catalog):
    found = controls(_playground(client, "local/procedural-image").content)
    assert found["width"]["value"] == "1024" and found["num_images"]["value"] == "1"
    assert found["seed"]["value"] == ""  # no default: the engine picks one
    html = _playground(client, "local/text-to-speech").content.decode()
    assert '<option value="&quot;mp3&quot;" selected>' in html


def test_url_fields_get_a_file_picker_that_uploads_through_the_upload_model(client, catalog):
    html = _playground(client, "local/image-filter").content
    pickers = [i for i in elements(html, "input") if i.get("type") == "file"]
    assert [p["data-upload-for"] for p in pickers] == ["f-image_url"]
    assert pickers[0]["accept"] == "image/*" and "data-upload-direct" not in pickers[0]
    form = next(f for f in elements(html, "form") if "data-playground" in f)
    assert form["data-upload-model"] == "kiwiwhale/upload"
    assert int(form["data-upload-max"]) > 1_000_000
    merge_page = _playground(client, "ffmpeg/merge-videos").content
    merge = [i for i in elements(merge_page, "input") if i.get("type") == "file"]
    assert "multiple" in merge[0] and merge[0]["accept"] == "video/*"


def test_the_upload_model_page_sends_the_picked_file_itself(client, catalog):
    pickers = [i for i in elements(_playground(client, "kiwiwhale/upload").content, "input") if i.get("type") == "file"]
    assert len(pickers) == 1 and "data-upload-direct" in pickers[0]


def test_no_file_picker_when_the_upload_model_is_off(client, catalog):
    AIModel.objects.filter(public_model="kiwiwhale/upload").update(enabled=False)
    html = _playground(client, "local/image-filter").content
    assert not [i for i in elements(html, "input") if i.get("type") == "file"]
    assert controls(html)["image_url"]["type"] == "url"


def test_the_seed_field_has_a_random_button(client, catalog):
    buttons = elements(_playground(client, "local/procedural-image").content, "button")
    assert any(b.get("data-seed-random") == "f-seed" and b.get("data-seed-max") == "2147483647" for b in buttons)


@pytest.mark.parametrize(
    ("public_model", "inputs"),
    [
        ("local/procedural-image", [{}, {"num_images": 3}]),
        ("local/text-to-video", [{}, {"duration": 2.5}, {"duration": 10}]),
        ("local/text-to-speech", [{"text": "x"}, {"text": "é" * 2500}, {"text": "y" * 5000}]),
        ("ffmpeg/extract-frame", [{}]),
        ("kiwiwhale/upload", [{}]),
    ],
)
def test_the_price_descriptor_gives_the_servers_cost(client, catalog, public_model, inputs):
    model = AIModel.objects.get(public_model=public_model)
    html = _playground(client, public_model).content.decode()
    price = json.loads(re.search(r'<script id="price-rule" type="application/json">(.*?)</script>', html).group(1))
    assert price == schema_form.price_descriptor(model)
    for data in inputs:
        # The playground's arithmetic (static/js/playground.js costMicro), in Python: it must match the server's.
        value = {**price["defaults"], **data}.get(price["unit_field"])
        if not price["unit_field"]:
            cost = max(price["price_micro"], price["min_micro"])
        else:
            if price["unit_is_length"]:
                units = len(value) if isinstance(value, str | list) else 0
            else:
                units = value if isinstance(value, int | float) else 1
            numerator = round(units * price["micro"]) * price["price_micro"]
            denominator = price["micro"] * price["unit_size"]
            cost = max(-(-numerator // denominator), price["min_micro"])
        assert cost == model.cost_micro({**price["defaults"], **data}), data


def test_the_playground_shows_the_default_cost_before_anything_is_typed(client, catalog):
    html = _playground(client, "local/text-to-video").content.decode()
    assert re.search(r"data-cost>0\.06<", html)  # 3 s by default at 0.02 per second


def test_a_visitor_is_asked_to_log_in_instead_of_generating(client, catalog):
    html = _playground(client, "local/procedural-image").content
    login = [a for a in elements(html, "a") if "data-login-to-generate" in a]
    assert login and login[0]["href"].startswith("/accounts/login/?next=/model-playground.php")
    assert not [b for b in elements(html, "button") if "data-submit" in b]
    form = next(f for f in elements(html, "form") if "data-playground" in f)
    assert form["data-authenticated"] == "false"


def test_the_playground_submits_with_a_csrf_token_a_signed_in_person_has(client, catalog, alice):
    client.force_login(alice)
    html = _playground(client, "local/procedural-image").content
    form = next(f for f in elements(html, "form") if "data-playground" in f)
    assert form["data-authenticated"] == "true"
    tokens = [i for i in elements(html, "input") if i.get("name") == "csrfmiddlewaretoken"]
    assert tokens and tokens[0]["value"]
    assert [b for b in elements(html, "button") if "data-submit" in b]


def test_the_generate_api_refuses_a_session_post_without_the_csrf_token(catalog, alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    body = {"model": "local/procedural-image", "input": {"prompt": "a dog"}}
    response = browser.post("/api/v1/generate.php", body, content_type="application/json")
    assert response.status_code == 403
    assert not Job.objects.exists()
    page = browser.get("/model-playground.php", {"model": "local/procedural-image"})
    token = page.cookies["csrftoken"].value
    accepted = browser.post(
        "/api/v1/generate.php", body, content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert accepted.status_code == 202


def test_a_model_nobody_can_serve_is_shown_but_cannot_be_generated(client, catalog, alice):
    client.force_login(alice)
    html = _playground(client, "z-image").content.decode()
    assert "Unavailable on this instance" in html
    submit = [b for b in elements(html, "button") if "data-submit" in b]
    assert submit and "disabled" in submit[0]


def test_rerun_prefills_the_playground_with_the_own_jobs_input(client, catalog, alice, charlie):
    model = AIModel.objects.get(public_model="local/procedural-image")
    job = job_create(user=alice, model=model, input={"prompt": "a red fox", "width": 320, "seed": 7})
    client.force_login(alice)
    found = controls(_playground(client, model.public_model, rerun=job.pk).content)
    assert found["width"]["value"] == "320" and found["seed"]["value"] == "7"
    assert b"a red fox" in _playground(client, model.public_model, rerun=job.pk).content

    client.force_login(charlie)
    other = _playground(client, model.public_model, rerun=job.pk)
    assert b"a red fox" not in other.content
    assert controls(other.content)["width"]["value"] == "1024"


def test_the_remix_id_is_handed_to_the_script(client, catalog):
    form = next(
        f
        for f in elements(_playground(client, "local/procedural-image", remix="42").content, "form")
        if "data-playground" in f
    )
    assert form["data-remix"] == "42"


def test_the_api_page_documents_every_field_and_the_schema(client, catalog, settings):
    settings.ALLOWED_HOSTS = ["kiwi.example"]
    model = AIModel.objects.get(public_model="local/text-to-speech")
    html = client.get("/model-api.php", {"model": model.public_model}, HTTP_HOST="kiwi.example").content.decode()
    for name in model.input_schema["properties"]:
        assert f"<code>{name}</code>" in html
    assert "http://kiwi.example/api/v1/generate.php" in html
    schema = re.search(r'<pre id="input-schema"[^>]*>(.*?)</pre>', html, re.S).group(1).replace("&quot;", '"')
    assert json.loads(schema) == model.input_schema
    assert "0.01 credits per 1,000 characters of text (at least 0.001)" in html


def test_the_code_page_has_curl_python_and_javascript_with_a_placeholder_key(client, catalog, alice, settings):
    settings.ALLOWED_HOSTS = ["kiwi.example"]
    from apps.accounts.services import api_key_create

    key, raw = api_key_create(user=alice, name="laptop")
    anonymous = client.get("/model-code.php", {"model": "local/procedural-image"}, HTTP_HOST="kiwi.example")
    html = unescape(anonymous.content.decode())
    for marker in ('id="code-curl"', 'id="code-python"', 'id="code-javascript"', 'id="code-client"', 'id="code-cli"'):
        assert marker in html
    assert "kw_your_api_key" in html
    assert "BASE=http://kiwi.example\n" in html and 'BASE = "http://kiwi.example"' in html
    assert 'KiwiWhale(base_url="http://kiwi.example")' in html and "KIWIWHALE_BASE_URL=http://kiwi.example\n" in html
    assert "a dog on a skateboard" in html  # the required prompt, with an example value

    client.force_login(alice)
    signed_in = client.get("/model-code.php", {"model": "local/procedural-image"}, HTTP_HOST="kiwi.example")
    html = signed_in.content.decode()
    assert f"{key.prefix}…rest-of-your-key" in html
    assert raw not in html and raw[len(key.prefix) :] not in html


def test_the_example_input_is_valid_for_every_seeded_model(catalog):
    from apps.catalog.services import input_validate

    for model in AIModel.objects.filter(enabled=True):
        example = schema_form.example_input(model)
        assert set(example) == set(model.input_schema.get("required", [])), model.public_model
        input_validate(model=model, data=example)  # raises InvalidInput when the example is wrong


def test_the_model_docs_page_explains_price_and_usage(client, catalog):
    html = client.get("/model-docs.php", {"model": "local/text-to-video"}).content.decode()
    assert "0.02 credits per second" in html
    assert "/model-playground.php?model=local/text-to-video" in html
    assert "<code>seed</code>" in html


@pytest.mark.parametrize(
    ("public_model", "expected"),
    [
        ("local/procedural-image", "0.01 credits per image"),
        ("kiwiwhale/upload", "Free"),
        ("ffmpeg/extract-frame", "0.4 credits per run"),
        ("local/text-to-video", "0.02 credits per second"),
    ],
)
def test_it_says_the_price_rule_in_words(catalog, public_model, expected):
    assert schema_form.price_label(AIModel.objects.get(public_model=public_model)) == expected


def test_field_names_wrap_only_after_an_underscore(client, catalog):
    html = client.get("/model-docs.php", {"model": "local/procedural-image"}).content.decode()
    assert "<code>num_<wbr>images</code>" in html and "<code>prompt</code>" in html


def test_the_client_and_cli_samples_pass_each_seeded_models_example_as_the_client_reads_it(catalog):
    """For every model: the client sample is valid Python whose `input` is the example, and the command's `-i`
    fields, split as a shell splits them and typed by the client's own parser, are the example too."""
    import ast
    import shlex

    from kiwiwhale_client.cli import input_parse, parser_build

    from apps.catalog import snippets

    for model in AIModel.objects.filter(enabled=True):
        example = schema_form.example_input(model)
        samples = snippets.code_samples(
            base_url="http://kiwi.example", public_model=model.public_model, example=example, key_prefix=None
        )
        tree = ast.parse(samples["client"])
        (literal,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "input"]
        assert ast.literal_eval(literal) == example, model.public_model
        commands = [line for line in samples["cli"].splitlines() if line.startswith("kiwiwhale ")]
        assert [c.split()[1] for c in commands] == ["quote", "generate"]
        for command in commands:
            args = parser_build().parse_args(shlex.split(command)[1:])
            assert args.model == model.public_model
            assert input_parse(args.input, model.input_schema) == example, (model.public_model, command)
