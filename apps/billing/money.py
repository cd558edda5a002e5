"""Credit conversions, rounding and formatting: the only place that turns credits into numbers and back.

Inside the server credits are integer micro-credits (1 credit = 1,000,000). Decimal only at the edges.
"""

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

MICRO = 1_000_000


class InvalidAmount(ValueError):
    pass


def credits_to_micro(value) -> int:
    """'0.05', 0.05 (from JSON), Decimal or int credits → micro-credits, exact to the micro-credit."""
    if isinstance(value, bool):
        raise InvalidAmount("A credit amount must be a number.")
    try:
        # str() first: a JSON float like 0.3165 becomes Decimal('0.3165'), not its binary approximation.
        amount = Decimal(str(value)).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError) as exc:
        raise InvalidAmount(f"{value!r} is not a credit amount.") from exc
    if not amount.is_finite():
        raise InvalidAmount(f"{value!r} is not a credit amount.")
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
