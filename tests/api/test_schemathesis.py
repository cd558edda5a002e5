"""Schemathesis over the instance's own /openapi.json, on a live server, with a funded key.

Every operation gets a bounded number of generated requests (SCHEMATHESIS_MAX_EXAMPLES, 10 by default: the whole
run stays under about three minutes on two cores). Checks: no 5xx, documented status codes, documented content
types, and response bodies that match their schemas.
"""

import json
import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.billing.conftest import localstripe, stripe_on  # noqa: F401 - fixtures: billing answers, not 503
from tests.conftest import client_for, make_user

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "10"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def funded_key(transactional_db, catalog) -> str:
    return client_for(make_user("fuzzer", credits="1000")).raw_key


def openapi_document() -> dict:
    """The document /openapi.json serves (the test below checks that the live one is the same)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


DOCUMENT = openapi_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_cases_come_from_the_live_document(live_server):
    live = httpx.get(f"{live_server.url}/openapi.json").json()
    # The same document but for `servers`, which names the host that asked (here the live server).
    assert {**live, "servers": None} == {**DOCUMENT, "servers": None}


@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests on every run: a failure here is reproducible
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.usefixtures("stripe_on")
def test_the_api_answers_every_generated_request_as_documented(case, live_server, funded_key):
    headers = {"Authorization": f"Bearer {funded_key}"}
    case.call_and_validate(base_url=live_server.url, headers=headers, checks=CHECKS)
