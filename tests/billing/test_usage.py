import csv
import io

import pytest
from django.db import transaction

from apps.billing.services import credits_grant, hold_place

pytestmark = pytest.mark.django_db


def test_it_lists_every_entry_newest_first_with_a_cursor(alice, alice_api, charlie):
    for index in range(3):
        with transaction.atomic():
            hold_place(user=alice, amount_micro=1_000_000, key=f"job:{index}", reference=f"job_{index}")
    first = alice_api.get("/api/v1/usage.php", {"limit": 2}).json()
    assert first["success"] is True
    assert first["credits"] == 7
    assert [(e["kind"], e["credits"], e["balance_after"]) for e in first["entries"]] == [
        ("debit", -1, 7),
        ("debit", -1, 8),
    ]
    assert first["entries"][0]["reference"] == "job_2"
    second = alice_api.get("/api/v1/usage.php", {"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [e["kind"] for e in second["entries"]] == ["debit", "grant"]
    assert second["next_cursor"] is None
    grants = alice_api.get("/api/v1/usage.php", {"kind": "grant"}).json()["entries"]
    assert [e["credits"] for e in grants] == [10]


def test_it_rejects_bad_parameters(alice_api):
    for params in ({"limit": "0"}, {"limit": "x"}, {"cursor": "abc"}, {"kind": "gift"}):
        response = alice_api.get("/api/v1/usage.php", params)
        assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


def test_it_exports_csv_through_the_api_and_the_page(client, alice, alice_api):
    credits_grant(user=alice, amount_micro=500_000, reason="bonus, with a comma", idempotency_key="g:csv")
    api_csv = b"".join(alice_api.get("/api/v1/usage.php", {"export": "csv"}).streaming_content).decode()
    client.force_login(alice)
    response = client.get("/billing/usage.csv")
    page_csv = b"".join(response.streaming_content).decode()
    assert response["Content-Disposition"] == 'attachment; filename="kiwiwhale-usage.csv"'
    assert api_csv == page_csv
    lines = page_csv.strip().splitlines()
    assert lines[0] == "id,created_at,kind,credits,balance_after,reference,description"
    assert lines[1].endswith(',grant,0.5,10.5,,"bonus, with a comma"')
    assert len(lines) == 3


def test_it_shows_only_the_callers_entries(alice_api, charlie_api):
    body = charlie_api.get("/api/v1/usage.php").json()
    assert [e["description"] for e in body["entries"]] == ["test"]
    assert body["payments"] == []
    assert alice_api.get("/api/v1/usage.php").json()["entries"][0]["id"] != body["entries"][0]["id"]


def test_it_needs_a_key(anon_api):
    assert anon_api.get("/api/v1/usage.php").status_code == 401


@pytest.mark.parametrize(
    "text", ['=HYPERLINK("http://evil","x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx"]
)
def test_it_keeps_text_a_spreadsheet_would_run_as_a_formula_as_text(alice, alice_api, text):
    credits_grant(user=alice, amount_micro=500_000, reason=text, idempotency_key="g:formula")
    body = b"".join(alice_api.get("/api/v1/usage.php", {"export": "csv"}).streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body, newline="")))
    grant = next(row for row in rows if row[2] == "grant" and row[3] == "0.5")
    assert grant[6] == "'" + text
    assert next(row for row in rows if row[2] == "grant" and row[3] == "10")[6] == "test"  # plain text unchanged
