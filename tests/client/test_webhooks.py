"""verify_webhook against a body signed by the `standardwebhooks` library, as the server signs job webhooks."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from kiwiwhale_client import KiwiWhaleError, WebhookVerificationError, verify_webhook
from standardwebhooks import Webhook

SECRET = "whsec_" + base64.b64encode(b"k" * 24).decode()
EVENT = {
    "type": "job.completed",
    "timestamp": "2026-12-01T10:00:00Z",
    "data": {"job_id": "job_1", "cost_credits": 0.01},
}


def signed(body: str, *, secret: str = SECRET, at: datetime | None = None) -> dict:
    at = at or datetime.now(tz=UTC)
    signature = Webhook(secret).sign("msg_1", at, body)
    return {"Webhook-Id": "msg_1", "Webhook-Timestamp": str(int(at.timestamp())), "Webhook-Signature": signature}


def test_it_returns_the_event_of_a_signed_body_and_refuses_any_other():
    body = json.dumps(EVENT)
    event = verify_webhook(SECRET, body.encode(), signed(body))
    assert event["type"] == "job.completed" and str(event["data"]["cost_credits"]) == "0.01"

    other_secret = "whsec_" + base64.b64encode(b"x" * 24).decode()
    for bad_body, headers in (
        (body.replace("job_1", "job_2"), signed(body)),  # altered
        (body, signed(body, secret=other_secret)),  # another secret
        (body, signed(body, at=datetime.now(tz=UTC) - timedelta(minutes=10))),  # replayed late
        (body, {}),  # unsigned
    ):
        with pytest.raises(WebhookVerificationError) as refused:
            verify_webhook(SECRET, bad_body, headers)
        assert isinstance(refused.value, KiwiWhaleError) and refused.value.code == "webhook_verification_failed"
