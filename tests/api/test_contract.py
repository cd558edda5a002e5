"""The contract is the code: /openapi.json is a valid OpenAPI 3.1 document (openapi-spec-validator), and every
real answer of every operation, successes and errors, validates against it (openapi-core), on the live server."""

import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_spec_validator import validate

from apps.accounts.services import api_key_create
from apps.generations.models import Job
from tests.api.conftest import FAST, SLOW_MODEL
from tests.conftest import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


class Contract:
    """Calls the live server and validates each answer against the server's own document."""

    def __init__(self, base: str):
        self.base = base
        self.spec = requests.get(f"{base}/openapi.json", timeout=30).json()
        validate(self.spec)
        self.openapi = OpenAPI.from_dict(self.spec)
        self.seen: set[tuple[str, str, int]] = set()

    def call(
        self, method: str, path: str, expect: int | None, *, key: str | None = None, **kwargs
    ) -> requests.Response:
        headers = {**kwargs.pop("headers", {}), **({"Authorization": f"Bearer {key}"} if key else {})}
        response = requests.request(method, f"{self.base}{path}", headers=headers, timeout=90, **kwargs)
        assert expect is None or response.status_code == expect, f"{method} {path}: {response.status_code}"
        self.openapi.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))
        self.seen.add((method.lower(), path.split("?")[0], response.status_code))
        return response

    def operations(self) -> set[tuple[str, str]]:
        return {(method, path) for path, ops in self.spec["paths"].items() for method in ops}


def test_every_answer_of_every_operation_validates_against_openapi_json(web_server, celery_worker_process, catalog):
    from tests.api.conftest import EndlessFal
    from tests.providers.conftest import account_connect

    api = Contract(web_server)
    assert api.spec["servers"] == [{"url": web_server, "description": "This instance."}]
    poor = make_user("poor")
    _, poor_key = api_key_create(user=poor, name="contract")

    # Registration: 201, 400, 429 (the per-IP limit).
    registered = api.call("POST", "/api/v1/agent_register.php", 201, json={"name": "Contract"}).json()
    key = registered["api_key"]
    api.call("POST", "/api/v1/agent_register.php", 400, json={"nickname": "x"})
    for _ in range(12):
        response = requests.post(f"{web_server}/api/v1/agent_register.php", json={}, timeout=30)
        if response.status_code == 429:
            break
    api.call("POST", "/api/v1/agent_register.php", 429, json={})
    from apps.accounts.models import User
    from apps.billing.services import credits_grant

    credits_grant(
        user=User.objects.get(pk=registered["user_id"]),
        amount_micro=5_000_000,
        reason="test",
        idempotency_key="test:contract",
    )

    api.call("GET", "/api/v1/credits.php", 200, key=key)
    api.call("GET", "/api/v1/credits.php", 401)
    api.call("GET", "/api/v1/credits.php", 401, key="kw_not-a-key")
    api.call("GET", "/api/v1/models.php", 200)
    api.call("GET", "/api/v1/models.php?category=nope", 400)

    # Quotes and jobs.
    api.call("POST", "/api/v1/quote.php", 200, json=FAST)
    api.call("POST", "/api/v1/quote.php", 400, json={"input": {}})
    api.call("POST", "/api/v1/quote.php", 404, json={"model": "nope"})
    api.call("POST", "/api/v1/quote.php", 422, json={"model": FAST["model"], "input": {"width": 1}})
    job = api.call("POST", "/api/v1/generate.php", 202, key=key, json=FAST).json()
    done = api.call("POST", "/api/v1/generate.php", 200, key=key, json=FAST, headers={"Prefer": "wait=30"}).json()
    text = {"model": "local/echo-chat", "input": {"prompt": "Say hi."}}
    said = api.call("POST", "/api/v1/generate.php", 200, key=key, json=text, headers={"Prefer": "wait=30"}).json()
    assert said["outputs"][0]["type"] == "text" and said["outputs"][0]["text"]  # url may be null: still valid
    api.call("POST", "/api/v1/generate.php", 400, key=key, json={"input": {}})
    api.call("POST", "/api/v1/generate.php", 401, json=FAST)
    api.call("POST", "/api/v1/generate.php", 402, key=poor_key, json=FAST)
    api.call("POST", "/api/v1/generate.php", 402, key=key, json={**FAST, "max_cost_credits": 0.001})
    api.call("POST", "/api/v1/generate.php", 404, key=key, json={"model": "nope"})
    api.call("POST", "/api/v1/generate.php", 422, key=key, json={"model": FAST["model"], "input": {"width": 1}})
    api.call("POST", "/api/v1/generate.php", 503, key=key, json={"model": SLOW_MODEL, "input": {"prompt": "x"}})
    api.call("POST", "/api/v1/generate.php", 202, key=key, json=FAST, headers={"Idempotency-Key": "k2"})
    api.call(
        "POST",
        "/api/v1/generate.php",
        422,
        key=key,
        json={**FAST, "input": {"prompt": "b"}},
        headers={"Idempotency-Key": "k2"},
    )
    api.call("GET", f"/api/v1/jobs.php?job_id={job['job_id']}&wait=20", 200, key=key)
    api.call("GET", "/api/v1/jobs.php", 200, key=key)
    api.call("GET", "/api/v1/jobs.php?status=completed&limit=1", 200, key=key)
    api.call("GET", "/api/v1/jobs.php?status=nope", 400, key=key)
    api.call("GET", "/api/v1/jobs.php?job_id=job_nope", 404, key=key)
    api.call("GET", "/api/v1/jobs.php", 401)
    api.call("POST", "/api/v1/cancel.php", 409, key=key, json={"job_id": done["job_id"]})
    api.call("POST", "/api/v1/cancel.php", 404, key=key, json={"job_id": "job_nope"})
    api.call("POST", "/api/v1/cancel.php", 400, key=key, json={})
    fake = EndlessFal().start()
    try:
        account_connect("fal", base_url=fake.url, api_key=fake.key)
        slow = api.call(
            "POST", "/api/v1/generate.php", 202, key=key, json={"model": SLOW_MODEL, "input": {"prompt": "x"}}
        )
        api.call("POST", "/api/v1/cancel.php", 200, key=key, json={"job_id": slow.json()["job_id"]})
    finally:
        fake.stop()

    # Showroom.
    api.call("POST", "/api/v1/showroom_publish.php", 200, key=key, json={"job_id": done["job_id"]})
    api.call("POST", "/api/v1/showroom_publish.php", 404, key=key, json={"job_id": "job_nope"})
    remix = requests.get(f"{web_server}/api/v1/showroom_remix.php", params={"job_id": done["job_id"]}, timeout=30)
    api.call("GET", f"/api/v1/showroom_remix.php?job_id={done['job_id']}", remix.status_code)
    api.call("GET", "/api/v1/showroom_remix.php", 400)
    api.call("POST", "/api/v1/showroom_unpublish.php", 200, key=key, json={"job_id": done["job_id"]})
    api.call("POST", "/api/v1/showroom_unpublish.php", 404, key=key, json={"job_id": "job_nope"})

    # Billing: without Stripe the card endpoints answer 503 billing_disabled; with it (the server of a whole run
    # may have been started with localstripe's settings), whatever they answer must validate too.
    billing = requests.get(f"{web_server}/.well-known/agent.json", timeout=30).json()["billing"]["card_topups"]
    card = None if billing else 503
    api.call("GET", "/api/v1/usage.php", 200, key=key)
    api.call("POST", "/api/v1/redeem.php", 400, key=key, json={"code": "NOPE-NOPE"})
    api.call("GET", "/api/v1/payment_methods.php", 200, key=key)
    api.call("POST", "/api/v1/payment_method_remove.php", 400, key=key, json={})
    api.call("GET", "/api/v1/low_balance.php", 200, key=key)
    api.call("POST", "/api/v1/low_balance.php", 200, key=key, json={"threshold_credits": None})
    api.call("POST", "/api/v1/low_balance.php", 400, key=key, json={"threshold_credits": "lots"})
    api.call("GET", "/api/v1/agent_autotopup.php", 200, key=key)
    api.call("POST", "/api/v1/agent_autotopup.php", 400, key=key, json={})
    api.call("POST", "/api/v1/agent_setup_payment.php", card, key=key)
    api.call("POST", "/api/v1/agent_confirm_payment_method.php", 400, key=key, json={})
    api.call("GET", "/api/v1/agent_topup.php?credits=10", 200, key=key)
    api.call("GET", "/api/v1/agent_topup.php?credits=x", 400, key=key)
    api.call("POST", "/api/v1/agent_topup.php", card, key=key, json={"credits": 10})
    api.call("GET", "/api/v1/affiliate.php", 200, key=key)
    api.call("POST", "/api/v1/affiliate_convert.php", 409, key=key, json={"credits": 1})
    api.call("POST", "/api/v1/affiliate_payout.php", 400, key=key, json={})

    # Job webhooks: the signing secret (created on first read, rotated by POST) and the deliveries of a job.
    api.call("GET", "/api/v1/webhook_secret.php", 200, key=key)
    api.call("GET", "/api/v1/webhook_secret.php", 401)
    api.call("POST", "/api/v1/webhook_secret.php", 200, key=key)
    api.call("GET", f"/api/v1/webhook_deliveries.php?job_id={done['job_id']}", 200, key=key)
    api.call("GET", "/api/v1/webhook_deliveries.php?job_id=job_nope", 404, key=key)

    # Keys with limits and scopes, made by the agent's own key; a sub-key's refusals on generate.php.
    api.call("GET", "/api/v1/keys.php", 200, key=key)
    api.call("GET", "/api/v1/keys.php", 401)
    made = api.call(
        "POST",
        "/api/v1/keys.php",
        201,
        key=key,
        json={"name": "sub", "scopes": ["generate"], "spend_limit_day_credits": 0.01, "allowed_models": ["local/*"]},
    ).json()
    sub = made["api_key"]
    api.call("POST", "/api/v1/keys.php", 400, key=key, json={"allowed_ips": ["nope"]})
    api.call("GET", "/api/v1/keys.php", 403, key=sub)  # no `keys` scope
    api.call("POST", "/api/v1/generate.php", 202, key=sub, json=FAST)
    api.call("POST", "/api/v1/generate.php", 403, key=sub, json=FAST)  # key_limit_reached
    api.call("GET", f"/api/v1/usage.php?key={made['key']['id']}", 200, key=key)
    api.call("GET", "/api/v1/usage.php?key=kw_nothere", 404, key=key)
    sub_id = made["key"]["id"]
    api.call("POST", "/api/v1/key_update.php", 200, key=key, json={"key_id": sub_id, "concurrency_limit": 1})
    own = made["key"]["parent_id"]
    api.call("POST", "/api/v1/key_update.php", 403, key=key, json={"key_id": own, "rpm_limit": 5})  # its own
    api.call("POST", "/api/v1/key_update.php", 404, key=key, json={"key_id": "kw_nothere"})
    rotated = api.call("POST", "/api/v1/key_rotate.php", 201, key=key, json={"key_id": sub_id, "grace_seconds": 60})
    api.call("POST", "/api/v1/key_rotate.php", 400, key=key, json={"key_id": sub_id, "grace_seconds": -1})
    api.call("POST", "/api/v1/key_revoke.php", 200, key=key, json={"key_id": rotated.json()["key"]["prefix"]})
    api.call("POST", "/api/v1/key_rotate.php", 409, key=key, json={"key_id": rotated.json()["key"]["id"]})
    api.call("POST", "/api/v1/key_revoke.php", 400, key=key, json={})
    api.call("GET", "/api/v1/credits.php", 200, key=sub)  # the rotated key, in its grace period
    api.call("POST", "/api/v1/key_revoke.php", 200, key=key, json={"key_id": sub_id})
    api.call("GET", "/api/v1/credits.php", 401, key=sub)

    called = {(method, path) for method, path, _ in api.seen}
    assert api.operations() - called == set(), "operations never called"
    assert Job.objects.filter(status="canceled").count() == 1
