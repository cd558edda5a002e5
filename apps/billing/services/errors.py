"""Billing's domain errors. Each carries the API contract's error code and, where a person can fix it, the field;
which HTTP status answers it is the API layer's business (apps/api/exceptions.py maps them)."""

from apps.billing.models import Payment


class BillingError(Exception):
    """A billing request that cannot be done as asked; `code` is the API's error code."""

    code = "invalid_request"

    def __init__(self, message: str, *, field: str = ""):
        super().__init__(message)
        self.field = field


class InvalidBillingRequest(BillingError):
    pass


class PaymentMethodRequired(BillingError):
    code = "payment_method_required"


class BillingNotFound(BillingError):
    code = "not_found"


class PaymentFailed(BillingError):
    """The charge was declined: nothing was added."""

    code = "payment_failed"

    def __init__(self, message: str, *, payment: Payment | None = None, decline_code: str = ""):
        super().__init__(message)
        self.payment = payment
        self.decline_code = decline_code


class AuthenticationRequired(BillingError):
    """The bank wants the card holder: credits arrive once they complete it at `payment.action_path`."""

    code = "authentication_required"

    def __init__(self, message: str, *, payment: Payment, action_path: str):
        super().__init__(message)
        self.payment = payment
        self.action_path = action_path


class IdempotencyKeyReused(BillingError):
    """A top-up's request key was already used for a different amount."""

    code = "idempotency_key_reused"


class RedemptionRefused(BillingError):
    """`code`: invalid_code, code_expired, code_used_up or code_already_redeemed."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message, field="code")
        self.code = code


class RateLimited(Exception):
    def __init__(self, wait_seconds: int):
        super().__init__(f"Too many attempts; retry in {wait_seconds} s.")
        self.wait_seconds = wait_seconds


class PaymentMismatch(Exception):
    """Stripe reports a payment that does not match what was asked (amount, currency, metadata): not credited."""


class WebhookHandlingFailed(Exception):
    pass
