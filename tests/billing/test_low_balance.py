import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail
from django.db import transaction

from apps.billing.models import BillingEvent
from apps.billing.services import credits_grant, hold_place, low_balance_notify, wallet_get

pytestmark = pytest.mark.django_db


def spend(user, micro, key, callbacks) -> None:
    """A hold, then what its after-commit hook enqueues, run here (the task only calls low_balance_notify)."""
    with callbacks() as hooks, transaction.atomic():
        hold_place(user=user, amount_micro=micro, key=key)
    for _ in hooks:
        low_balance_notify(wallet_id=wallet_get(user=user).pk)


def test_it_sends_one_notice_per_crossing(alice, alice_api, django_capture_on_commit_callbacks):
    response = alice_api.post("/api/v1/low_balance.php", {"threshold_credits": 5}, format="json")
    assert response.json() == {"success": True, "threshold_credits": 5, "webhook_url": "", "notice_sent": False}

    spend(alice, 4_000_000, "job:1", django_capture_on_commit_callbacks)  # 10 → 6: above
    assert mail.outbox == []
    spend(alice, 2_000_000, "job:2", django_capture_on_commit_callbacks)  # 6 → 4: crosses
    spend(alice, 1_000_000, "job:3", django_capture_on_commit_callbacks)  # 4 → 3: still below, no second notice
    assert len(mail.outbox) == 1
    assert "low" in mail.outbox[0].subject.lower()
    assert "4 credits" in mail.outbox[0].body
    assert alice_api.get("/api/v1/low_balance.php").json()["notice_sent"] is True

    credits_grant(user=alice, amount_micro=10_000_000, reason="top-up", idempotency_key="g:rearm")  # 3 → 13
    spend(alice, 9_000_000, "job:4", django_capture_on_commit_callbacks)  # 13 → 4: crosses again
    assert len(mail.outbox) == 2
    assert BillingEvent.objects.filter(user=alice, kind="low_balance").count() == 2


def test_it_does_not_notify_a_crossing_the_account_already_saw(alice, alice_api):
    alice_api.post("/api/v1/low_balance.php", {"threshold_credits": 50}, format="json")
    assert low_balance_notify(wallet_id=wallet_get(user=alice).pk) is False
    assert mail.outbox == []


def test_it_also_posts_to_the_accounts_webhook(alice, alice_api, settings, django_capture_on_commit_callbacks):
    settings.FETCH_ALLOW_PRIVATE_ADDRESSES = True  # the receiving server is on loopback in this test
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        alice_api.post("/api/v1/low_balance.php", {"threshold_credits": 5, "webhook_url": url}, format="json")
        spend(alice, 6_000_000, "job:1", django_capture_on_commit_callbacks)
    finally:
        server.shutdown()
    assert received == [
        {
            "event": "low_balance",
            "credits": 4,
            "threshold_credits": 5,
            "topup": {"endpoint": "/api/v1/agent_topup.php", "billing_url": "/billing.php"},
        }
    ]


def test_it_refuses_a_webhook_on_a_private_address(alice, alice_api, django_capture_on_commit_callbacks):
    alice_api.post(
        "/api/v1/low_balance.php", {"threshold_credits": 5, "webhook_url": "http://127.0.0.1:9/x"}, format="json"
    )
    spend(alice, 6_000_000, "job:1", django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 1  # the email still goes


def test_it_clears_the_threshold(alice, alice_api):
    alice_api.post("/api/v1/low_balance.php", {"threshold_credits": 5}, format="json")
    response = alice_api.post("/api/v1/low_balance.php", {"threshold_credits": None}, format="json")
    assert response.json()["threshold_credits"] is None
    assert wallet_get(user=alice).low_balance_threshold_micro is None
