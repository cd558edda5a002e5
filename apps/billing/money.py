"""Credit conversions, rounding and formatting: the only place that turns credits into numbers and back.

Inside the server credits are integer micro-credits (1 credit = 1,000,000). Decimal only at the edges.
Money is Stripe's integer minor units (cents) with a currency; the credit price and the fee gross-up live here too.
"""

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MICRO = 1_000_000
# The largest credit amount anything accepts (API fields, forms, the admin, grant_credits): far above any real
# purchase, and far below what a bigint of micro-credits holds (9.2e12 credits), so no sum of amounts overflows.
MAX_CREDITS = 1_000_000_000


class InvalidAmount(ValueError):
    pass


def credits_to_micro(value) -> int:
    """'0.05', 0.05 (from JSON), Decimal or int credits → micro-credits, exact to the micro-credit."""
    if isinstance(value, bool):
        raise InvalidAmount("A credit amount must be a number.")
    try:
        if isinstance(value, str) and len(value) > 100:
            raise InvalidAmount("A credit amount must be a number.")  # Decimal would parse any length
        # str() first: a JSON float like 0.3165 becomes Decimal('0.3165'), not its binary approximation.
        amount = Decimal(str(value)).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError) as exc:
        raise InvalidAmount(f"{value!r} is not a credit amount.") from exc
    if not amount.is_finite():
        raise InvalidAmount(f"{value!r} is not a credit amount.")
    if abs(amount) > MAX_CREDITS:
        raise InvalidAmount(f"A credit amount is at most {MAX_CREDITS:,} credits.")
    return int(amount * MICRO)


def micro_to_decimal(micro: int) -> Decimal:
    return (Decimal(micro) / MICRO).normalize() if micro else Decimal(0)


def micro_to_json(micro: int) -> int | float:
    """JSON shows credits as numbers (0.3165). A float of a 6-decimal value round-trips exactly in JSON text."""
    value = micro_to_decimal(micro)
    return int(value) if value == value.to_integral_value() else float(value)


def format_credits(micro: int) -> str:
    return f"{micro_to_decimal(micro):f}"


def percent_of(micro: int, percent) -> int:
    """`percent` % of an amount, rounded down to the micro-credit (a commission never exceeds its rate)."""
    return int((Decimal(micro) * Decimal(str(percent)) / 100).to_integral_value(rounding=ROUND_DOWN))


def units_cost_micro(units_micro: int, *, price_micro: int, unit_size: int) -> int:
    """The cost of `units_micro` millionths of units at `price_micro` per `unit_size` units, rounded up to the
    micro-credit, in integers only (a float would round a large price wrong)."""
    return -(-(units_micro * price_micro) // (MICRO * unit_size))


# --- Real money: integer minor units (cents) with a currency ------------------------------------------------


@dataclass(frozen=True)
class TopupQuote:
    """What a purchase of `credits_micro` costs: the price of the credits, the card fee on top, and the charge."""

    credits_micro: int
    price_cents: int
    fee_cents: int
    charge_cents: int
    currency: str


def credit_price() -> Decimal:
    """The price of one credit in the billing currency (CREDIT_PRICE_USD)."""
    return Decimal(str(settings.CREDIT_PRICE_USD))


def credits_to_cents(credits_micro: int) -> int:
    """The price of `credits_micro` in cents, rounded up to the cent (a wallet never gets credits it did not pay)."""
    cents = Decimal(credits_micro) * credit_price() * 100 / MICRO
    return int(cents.to_integral_value(rounding=ROUND_CEILING))


def fee_gross_up(price_cents: int) -> int:
    """The charge that leaves `price_cents` after the processor's fee: ceil((net + fixed) / (1 - percent/100))."""
    if price_cents <= 0:
        return 0
    percent = Decimal(str(settings.STRIPE_FEE_PERCENT))
    fixed = int(settings.STRIPE_FEE_FIXED_CENTS)
    if not 0 <= percent < 100 or fixed < 0:
        raise ImproperlyConfigured("STRIPE_FEE_PERCENT must be in [0, 100) and STRIPE_FEE_FIXED_CENTS >= 0.")
    charge = (Decimal(price_cents + fixed) * 100) / (100 - percent)
    return int(charge.to_integral_value(rounding=ROUND_CEILING))


def topup_quote(credits_micro: int) -> TopupQuote:
    price = credits_to_cents(credits_micro)
    charge = fee_gross_up(price)
    return TopupQuote(
        credits_micro=credits_micro,
        price_cents=price,
        fee_cents=charge - price,
        charge_cents=charge,
        currency=settings.BILLING_CURRENCY,
    )


def cents_to_decimal(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def cents_to_json(cents: int) -> int | float:
    """JSON shows money as a number of currency units (10.61)."""
    value = cents_to_decimal(cents)
    return int(value) if value == value.to_integral_value() else float(value)


def format_money(cents: int, currency: str) -> str:
    """1061, 'usd' → '$10.61'; other currencies: '10.61 EUR'."""
    amount = cents_to_decimal(cents)
    sign = "-" if amount < 0 else ""
    if currency.lower() == "usd":
        return f"{sign}${abs(amount):,.2f}"
    return f"{sign}{abs(amount):,.2f} {currency.upper()}"


def share_of(total_micro: int, part: int, whole: int) -> int:
    """`total_micro` * part / whole, rounded down (the credits a partial refund takes back)."""
    if whole <= 0:
        return 0
    return total_micro * min(max(part, 0), whole) // whole


def setting_credits(name: str) -> int:
    """A credits setting (a decimal string such as TOPUP_MIN_CREDITS) in micro-credits."""
    return credits_to_micro(getattr(settings, name))
