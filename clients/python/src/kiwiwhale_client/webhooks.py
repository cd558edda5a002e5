"""Verify a job webhook the way the server signs it (Standard Webhooks), with the `standardwebhooks` library."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as _LibraryError

from kiwiwhale_client.errors import KiwiWhaleError
from kiwiwhale_client.types import WebhookEvent


class WebhookVerificationError(KiwiWhaleError):
    """The body was not signed with this secret, was altered, or its timestamp is over 5 minutes away."""

    code = "webhook_verification_failed"


def verify_webhook(secret: str, body: bytes | str, headers: Mapping[str, str]) -> WebhookEvent:
    """The event of a webhook request, once its signature checks out: pass the raw body (not re-encoded JSON) and
    the request's headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`). The secret is `whsec_…`
    from `webhook_secret()`. Deduplicate on the `webhook-id` header: a retry carries the same one."""
    payload = body.decode("utf-8") if isinstance(body, bytes) else body
    try:
        Webhook(secret).verify(payload, {name.lower(): value for name, value in headers.items()})
    except _LibraryError as exc:
        raise WebhookVerificationError(str(exc) or "The webhook's signature does not match.") from exc
    return json.loads(payload, parse_float=Decimal)
