"""Billing's admin: a grant posted twice is one grant; an auto top-up edited here reaches the wallet's copy."""

import re

import pytest

from apps.billing.models import LedgerEntry, Wallet
from apps.billing.services import billing_profile_get, wallet_get

pytestmark = pytest.mark.django_db


def test_a_double_submitted_grant_grants_once(admin_client, bob):
    wallet = wallet_get(user=bob)
    page = admin_client.get(f"/admin/billing/wallet/{wallet.pk}/credits/")
    nonce = re.search(rb'name="nonce" value="([0-9a-f-]+)"', page.content).group(1).decode()
    body = {"amount": "3", "reason": "goodwill", "nonce": nonce}
    for _ in range(2):  # the same form, sent twice (a double click, a browser retry)
        assert admin_client.post(f"/admin/billing/wallet/{wallet.pk}/credits/", body).status_code == 302
    assert LedgerEntry.objects.filter(wallet=wallet, kind="grant").count() == 1
    assert wallet_get(user=bob).balance_micro == 3_000_000
    fresh = admin_client.get(f"/admin/billing/wallet/{wallet.pk}/credits/")
    assert nonce.encode() not in fresh.content  # the next form is a new grant


def test_a_grant_posted_without_a_nonce_still_posts_once_per_post(admin_client, bob):
    wallet = wallet_get(user=bob)
    for _ in range(2):
        response = admin_client.post(f"/admin/billing/wallet/{wallet.pk}/credits/", {"amount": "3", "reason": "x"})
        assert response.status_code == 302
    assert wallet_get(user=bob).balance_micro == 6_000_000


def _profile_form(profile, **changes) -> dict:
    body = {
        "autotopup_enabled": "on" if profile.autotopup_enabled else "",
        "autotopup_mode": profile.autotopup_mode,
        "autotopup_trigger_micro": profile.autotopup_trigger_micro,
        "autotopup_amount_micro": profile.autotopup_amount_micro,
        "autotopup_target_micro": profile.autotopup_target_micro,
        "autotopup_daily_cap_micro": "",
        "autotopup_monthly_cap_micro": "",
        "autotopup_disabled_reason": "",
        "low_balance_webhook_url": "",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value != ""}


def test_an_admin_edit_of_auto_top_up_reaches_the_wallets_copy(admin_client, alice):
    profile = billing_profile_get(user=alice)
    BillingProfile = type(profile)
    BillingProfile.objects.filter(pk=profile.pk).update(
        autotopup_enabled=True, autotopup_trigger_micro=5_000_000, autotopup_amount_micro=20_000_000
    )
    Wallet.objects.filter(user=alice).update(autotopup_trigger_micro=5_000_000)
    profile.refresh_from_db()
    url = f"/admin/billing/billingprofile/{profile.pk}/change/"

    response = admin_client.post(url, _profile_form(profile, autotopup_trigger_micro=7_000_000))
    assert response.status_code == 302, response.content
    assert Wallet.objects.get(user=alice).autotopup_trigger_micro == 7_000_000

    response = admin_client.post(url, _profile_form(profile, autotopup_enabled="", autotopup_trigger_micro=7_000_000))
    assert response.status_code == 302, response.content
    assert Wallet.objects.get(user=alice).autotopup_trigger_micro is None  # off: the ledger no longer looks
