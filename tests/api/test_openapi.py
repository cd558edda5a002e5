import pytest
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db

PUBLISHED = {
    "/api/v1/agent_register.php": "post",
    "/api/v1/credits.php": "get",
    "/api/v1/models.php": "get",
    "/api/v1/generate.php": "post",
    "/api/v1/jobs.php": "get",
}


@pytest.fixture
def schema(anon_api):
    response = anon_api.get("/openapi.json")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/")
    return response.json()


def test_it_is_a_valid_openapi_3_1_document(schema):
    assert schema["openapi"].startswith("3.1")
    validate_schema(schema)


def test_it_describes_every_published_endpoint_with_its_real_shapes(schema):
    for path, method in PUBLISHED.items():
        assert method in schema["paths"][path], path
    components = schema["components"]["schemas"]
    assert {"model", "public_model", "input", "webhook_url"} <= set(components["GenerateRequest"]["properties"])
    assert {"job_id", "status", "cost_credits", "credits", "poll_url"} <= set(
        components["GenerateResponse"]["properties"]
    )
    assert {"job_id", "status", "outputs", "error"} <= set(components["JobResponse"]["properties"])
    assert {"url", "type", "content_type", "width", "height"} <= set(components["JobOutput"]["properties"])
    assert {"count", "models"} <= set(components["ModelsResponse"]["properties"])
    assert {"api_key", "user_id", "account_type"} <= set(components["AgentRegisterResponse"]["properties"])
    generate = schema["paths"]["/api/v1/generate.php"]["post"]
    assert {"202", "402", "422", "401"} <= set(generate["responses"])
    assert generate["responses"]["402"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")


def test_it_declares_the_bearer_scheme_and_public_endpoints(schema):
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "kw_… API key",
    }
    assert {"bearerAuth": []} in schema["paths"]["/api/v1/generate.php"]["post"]["security"]
    for public in ("/api/v1/models.php", "/api/v1/agent_register.php"):
        operation = next(iter(schema["paths"][public].values()))
        assert operation.get("security") in ([], [{}], None) or {} in operation["security"]


def test_it_answers_json_errors_for_unknown_api_paths(anon_api):
    response = anon_api.get("/api/v1/nope.php")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_it_declares_no_default_the_server_refuses_and_marks_the_aliases(schema):
    components = schema["components"]["schemas"]
    assert "default" not in components["AgentRegisterRequest"]["properties"]["email"]
    assert "default" not in components["AgentRegisterRequest"]["properties"]["referral_code"]
    assert "default" not in components["GenerateRequest"]["properties"]["webhook_url"]
    assert schema["servers"] == [{"url": "http://testserver", "description": "This instance."}]
    assert schema["paths"]["/api/v1/jobs.php"]["get"]["x-aliases"] == ["/api/v1/jobs", "/api/v1/jobs/{job_id}"]
    assert {"JobResponse", "JobListResponse"} <= set(components)
    assert components["JobOutput"]["properties"]["url"]["type"] == ["string", "null"]
    assert {"text", "data"} <= set(components["JobOutput"]["properties"])
    generate = schema["paths"]["/api/v1/generate.php"]["post"]
    assert {"Prefer", "Cancel-After", "Idempotency-Key"} <= {p["name"] for p in generate["parameters"]}
    assert generate["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/JobResponse")


def test_it_reads_prefer_wait_and_cancel_after_as_documented():
    from apps.api.exceptions import ApiError
    from apps.generations.apis import cancel_after_parse, prefer_wait_seconds

    assert prefer_wait_seconds(None) is None and prefer_wait_seconds("respond-async") is None
    assert prefer_wait_seconds("wait") == 60 and prefer_wait_seconds("wait=5") == 5
    assert prefer_wait_seconds("respond-async, wait=90") == 60 and prefer_wait_seconds("WAIT = 7") == 7
    assert prefer_wait_seconds("wait=soon") is None
    assert cancel_after_parse("30s").total_seconds() == 30
    assert cancel_after_parse("1h30m").total_seconds() == 5400
    assert cancel_after_parse("5m").total_seconds() == 300
    for bad in ("", "5", "0s", "1d", "25h", "m"):
        with pytest.raises(ApiError):
            cancel_after_parse(bad)
