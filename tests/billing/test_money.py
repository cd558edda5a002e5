import pytest

from apps.billing import money


@pytest.mark.parametrize(
    ("credits", "price", "fee", "charge"),
    [
        ("10", 1000, 61, 1061),  # the contract's example: 10 credits → 10.61 usd
        ("5", 500, 46, 546),
        ("25", 2500, 106, 2606),
        ("1000", 100000, 3018, 103018),
        ("0.015", 2, 31, 33),  # a fraction of a cent of credits is rounded up to the cent, never given away
    ],
)
def test_it_grosses_up_the_fee_so_the_wallet_gets_exactly_what_was_asked(credits, price, fee, charge):
    quote = money.topup_quote(money.credits_to_micro(credits))
    assert (quote.price_cents, quote.fee_cents, quote.charge_cents, quote.currency) == (price, fee, charge, "usd")
    # What Stripe keeps (2.9 % + 30 ¢, at most) leaves at least the price of the credits.
    assert charge - (charge * 29 + 999) // 1000 - 30 >= price


def test_it_follows_the_price_and_fee_settings(settings):
    settings.CREDIT_PRICE_USD = "0.05"
    settings.STRIPE_FEE_PERCENT = "0"
    settings.STRIPE_FEE_FIXED_CENTS = 0
    quote = money.topup_quote(money.credits_to_micro(100))
    assert (quote.price_cents, quote.fee_cents, quote.charge_cents) == (500, 0, 500)


def test_it_refuses_an_impossible_fee(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.STRIPE_FEE_PERCENT = "100"
    with pytest.raises(ImproperlyConfigured):
        money.topup_quote(10_000_000)


def test_it_formats_money():
    assert money.format_money(1061, "usd") == "$10.61"
    assert money.format_money(-5, "usd") == "-$0.05"
    assert money.format_money(123456, "eur") == "1,234.56 EUR"
    assert money.cents_to_json(1061) == 10.61
    assert money.cents_to_json(2500) == 25


def test_it_takes_back_a_share_rounded_down():
    assert money.share_of(10_000_000, 1061, 1061) == 10_000_000
    assert money.share_of(10_000_000, 600, 1061) == 5_655_042
    assert money.share_of(10_000_000, 2000, 1061) == 10_000_000
    assert money.share_of(10_000_000, 0, 1061) == 0


def test_the_price_rule_is_exact_in_integers_even_for_a_large_price():
    from apps.catalog.models import AIModel

    # 2**53 + 1 has no float: a price rule going through one charges 1 micro-credit less.
    model = AIModel(price_micro=2**53 + 1, price_unit="duration", price_unit_size=1)
    assert model.cost_micro({"duration": 1}) == 2**53 + 1
    per_thousand = AIModel(price_micro=3, price_unit="len:text", price_unit_size=1000)
    assert per_thousand.cost_micro({"text": "x" * 1001}) == 4  # 3.003 rounded up, to the micro-credit
    assert money.units_cost_micro(2_500_000, price_micro=10**12 + 7, unit_size=3) == -(-(25 * (10**12 + 7)) // 30)
