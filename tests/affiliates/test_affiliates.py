from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

from apps.accounts.models import User
from apps.affiliates.models import AffiliateAccount, Attribution, Commission, CommissionEntry, Payout, ReferralCode
from apps.affiliates.services import (
    COOKIE_NAME,
    AffiliateError,
    commission_award,
    commission_convert,
    commission_reverse,
    commissions_mature,
    payout_approve,
    payout_mark_paid,
    payout_reject,
    payout_request,
    referral_code_get,
)
from apps.billing.models import LedgerEntry
from apps.billing.services import wallet_get

pytestmark = pytest.mark.django_db


def signup(browser: Client, email: str):
    page = browser.get("/accounts/signup/")
    response = browser.post(
        "/accounts/signup/",
        {
            "email": email,
            "password1": "a-long-pass-phrase-9",
            "password2": "a-long-pass-phrase-9",
            "csrfmiddlewaretoken": page.cookies.get("csrftoken").value if page.cookies.get("csrftoken") else "",
        },
    )
    assert response.status_code == 302, response.content[:500]
    return User.objects.get(email=email)


def test_every_account_gets_one_stable_referral_code(alice):
    code = referral_code_get(user=alice)
    assert code == referral_code_get(user=alice)
    assert len(code.code) == 8 and code.code.isalnum() and code.code.isupper()


def test_a_visit_with_ref_sets_the_cookie_counts_a_click_and_attributes_the_signup(alice, settings):
    settings.AFFILIATE_CLICK_RATE = "1/hour"
    code = referral_code_get(user=alice).code
    browser = Client()
    browser.get(f"/?ref={code}")
    browser.get(f"/?ref={code}")  # the same visitor again within the hour: one click
    assert ReferralCode.objects.get(code=code).clicks == 1
    assert COOKIE_NAME in browser.cookies
    user = signup(browser, "newbie@example.com")
    attribution = Attribution.objects.get(referred=user)
    assert (attribution.referrer, attribution.source) == (alice, "cookie")


def test_the_first_link_wins_and_attribution_never_changes(alice, charlie):
    browser = Client()
    browser.get(f"/?ref={referral_code_get(user=alice).code}")
    browser.get(f"/?ref={referral_code_get(user=charlie).code}")
    user = signup(browser, "first@example.com")
    assert Attribution.objects.get(referred=user).referrer == alice
    from apps.affiliates.services import referral_attribute

    assert referral_attribute(user=user, code=referral_code_get(user=charlie).code, source="api") is None
    assert Attribution.objects.get(referred=user).referrer == alice


def test_a_referral_cookie_outside_the_window_attributes_nothing(alice, settings):
    settings.AFFILIATE_COOKIE_DAYS = 30
    browser = Client()
    with freeze_time(timezone.now() - timedelta(days=31)):
        browser.get(f"/?ref={referral_code_get(user=alice).code}")
    user = signup(browser, "late@example.com")
    assert not Attribution.objects.filter(referred=user).exists()


def test_a_forged_cookie_attributes_nothing(alice):
    browser = Client()
    browser.cookies[COOKIE_NAME] = f"{referral_code_get(user=alice).code}:{int(timezone.now().timestamp())}"
    user = signup(browser, "forger@example.com")
    assert not Attribution.objects.filter(referred=user).exists()


def test_agents_are_attributed_through_agent_register(alice, anon_api):
    code = referral_code_get(user=alice).code
    body = anon_api.post("/api/v1/agent_register.php", {"name": "Ref", "referral_code": code.lower()}, format="json")
    assert body.status_code == 201
    attribution = Attribution.objects.get(referred_id=body.json()["user_id"])
    assert (attribution.referrer, attribution.source) == (alice, "api")


def test_an_unknown_referral_code_never_blocks_a_registration(anon_api):
    response = anon_api.post("/api/v1/agent_register.php", {"referral_code": "NOPE1234"}, format="json")
    assert response.status_code == 201 and not Attribution.objects.exists()


def test_self_referral_is_refused(alice):
    browser = Client()
    browser.force_login(alice)
    browser.get(f"/?ref={referral_code_get(user=alice).code}")  # the owner's own visit is no click
    assert ReferralCode.objects.get(user=alice).clicks == 0
    twin = Client()
    twin.get(f"/?ref={referral_code_get(user=alice).code}")
    user = signup(twin, "a.l.i.c.e+second@example.com")  # the same mailbox as alice@example.com
    assert not Attribution.objects.filter(referred=user).exists()


@pytest.fixture
def referred(alice, bob):
    Attribution.objects.create(referred=bob, referrer=alice, code=referral_code_get(user=alice).code, source="api")
    return bob


def test_it_pays_the_commission_percentage_of_net_credits_once_per_payment(referred, alice, settings):
    settings.AFFILIATE_COMMISSION_PERCENT = "20"
    commission = commission_award(referred=referred, payment_reference="pi_1", net_micro=10_000_000)
    again = commission_award(referred=referred, payment_reference="pi_1", net_micro=10_000_000)
    assert commission.pk == again.pk and commission.amount_micro == 2_000_000
    account = AffiliateAccount.objects.get(user=alice)
    assert (account.pending_micro, account.available_micro) == (2_000_000, 0)
    assert wallet_get(user=alice).balance_micro == 10_000_000  # commission is not spendable credit


def test_it_rounds_commission_down_to_the_micro_credit(referred, settings):
    settings.AFFILIATE_COMMISSION_PERCENT = "12.5"
    assert commission_award(referred=referred, payment_reference="pi_r", net_micro=3) is None  # 0.375 µ: nothing
    commission = commission_award(referred=referred, payment_reference="pi_r2", net_micro=1_234_567)
    assert commission.amount_micro == 154_320  # 154320.875 rounded down


def test_no_commission_after_the_commission_period(referred, settings):
    settings.AFFILIATE_COMMISSION_MONTHS = 12
    Attribution.objects.filter(referred=referred).update(created_at=timezone.now() - timedelta(days=400))
    assert commission_award(referred=referred, payment_reference="pi_old", net_micro=10_000_000) is None


def test_no_commission_for_an_account_nobody_referred(charlie):
    assert commission_award(referred=charlie, payment_reference="pi_x", net_micro=10_000_000) is None


def test_commission_becomes_available_after_the_hold_period(referred, alice, settings):
    settings.AFFILIATE_HOLD_DAYS = 30
    commission_award(referred=referred, payment_reference="pi_2", net_micro=10_000_000)
    assert commissions_mature() == 0
    with freeze_time(timezone.now() + timedelta(days=31)):
        assert commissions_mature() == 1
        assert commissions_mature() == 0
    account = AffiliateAccount.objects.get(user=alice)
    assert (account.pending_micro, account.available_micro) == (0, 2_000_000)


@pytest.mark.parametrize("matured", [False, True])
def test_a_refund_reverses_the_commission_exactly_once(referred, alice, matured):
    commission_award(referred=referred, payment_reference="pi_3", net_micro=10_000_000)
    if matured:
        Commission.objects.update(available_at=timezone.now())
        commissions_mature()
    assert commission_reverse(payment_reference="pi_3") is True
    assert commission_reverse(payment_reference="pi_3") is False
    account = AffiliateAccount.objects.get(user=alice)
    assert (account.pending_micro, account.available_micro) == (0, 0)
    assert CommissionEntry.objects.filter(kind="reversal").count() == 1
    assert commissions_mature() == 0


def test_an_affiliate_converts_available_commission_into_credits(referred, alice):
    commission_award(referred=referred, payment_reference="pi_4", net_micro=10_000_000)
    with pytest.raises(AffiliateError):
        commission_convert(user=alice, amount_micro=1_000_000)  # still pending
    Commission.objects.update(available_at=timezone.now())
    commissions_mature()
    balance = commission_convert(user=alice, amount_micro=1_500_000)
    assert balance == wallet_get(user=alice).balance_micro == 11_500_000
    assert LedgerEntry.objects.get(wallet__user=alice, kind="commission").amount_micro == 1_500_000
    account = AffiliateAccount.objects.get(user=alice)
    assert (account.available_micro, account.converted_micro) == (500_000, 1_500_000)
    with pytest.raises(AffiliateError):
        commission_convert(user=alice, amount_micro=600_000)


def test_a_refund_after_conversion_leaves_a_debt_that_later_commission_pays(referred, alice):
    commission_award(referred=referred, payment_reference="pi_5", net_micro=10_000_000)
    Commission.objects.update(available_at=timezone.now())
    commissions_mature()
    commission_convert(user=alice, amount_micro=2_000_000)
    commission_reverse(payment_reference="pi_5")
    assert AffiliateAccount.objects.get(user=alice).available_micro == -2_000_000
    with pytest.raises(AffiliateError):
        commission_convert(user=alice, amount_micro=1)


def test_payouts_go_through_request_approve_and_paid_as_audited_entries(referred, alice, admin_user, settings):
    settings.AFFILIATE_PAYOUT_MIN_CREDITS = "1"
    commission_award(referred=referred, payment_reference="pi_6", net_micro=10_000_000)
    Commission.objects.update(available_at=timezone.now())
    commissions_mature()
    with pytest.raises(AffiliateError):
        payout_request(user=alice, amount_micro=500_000, method="PayPal: a@example.com")  # under the minimum
    with pytest.raises(AffiliateError):
        payout_request(user=alice, amount_micro=5_000_000, method="PayPal: a@example.com")  # more than available
    payout = payout_request(user=alice, amount_micro=1_500_000, method="PayPal: a@example.com")
    assert payout_mark_paid(payout=payout, by=admin_user) is False  # not approved yet
    assert payout_approve(payout=payout, by=admin_user) is True
    assert payout_mark_paid(payout=payout, by=admin_user) is True
    account = AffiliateAccount.objects.get(user=alice)
    assert (account.available_micro, account.requested_micro, account.paid_micro) == (500_000, 0, 1_500_000)
    assert [e.action for e in payout.events.all()] == ["requested", "approved", "paid"]


def test_a_rejected_payout_returns_to_available(referred, alice, admin_user, settings):
    settings.AFFILIATE_PAYOUT_MIN_CREDITS = "1"
    commission_award(referred=referred, payment_reference="pi_7", net_micro=10_000_000)
    Commission.objects.update(available_at=timezone.now())
    commissions_mature()
    payout = payout_request(user=alice, amount_micro=2_000_000, method="IBAN DE00")
    assert payout_reject(payout=payout, by=admin_user, note="missing details") is True
    assert payout_reject(payout=payout, by=admin_user) is False
    account = AffiliateAccount.objects.get(user=alice)
    assert (account.available_micro, account.requested_micro) == (2_000_000, 0)
    assert Payout.objects.get().status == "rejected"


def test_the_api_and_page_show_the_figures(referred, alice, alice_api, client):
    commission_award(referred=referred, payment_reference="pi_8", net_micro=10_000_000)
    body = alice_api.get("/api/v1/affiliate.php").json()
    assert body["success"] is True and body["signups"] == 1 and body["paying_referrals"] == 1
    assert body["pending"] == 2 and body["available"] == 0 and body["link"].endswith(f"/?ref={body['code']}")
    assert body["commissions"][0]["amount"] == 2 and body["terms"]["commission_percent"] == 20
    refused = alice_api.post("/api/v1/affiliate_convert.php", {"credits": 1}, format="json")
    assert refused.status_code == 409 and refused.json()["error"] == "insufficient_commission"
    client.force_login(alice)
    page = client.get("/affiliate.php")
    assert page.status_code == 200 and body["code"].encode() in page.content and b"pi_8" in page.content
    assert Client().get("/affiliate.php").status_code == 200  # the terms are public


def test_the_page_forms_need_csrf(alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert browser.post("/affiliate/convert/", {"credits": "1"}).status_code == 403
