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
