"""Billing's domain functions, in layers; each module imports only those below it (an import-linter contract in
pyproject.toml keeps it so):

    webhooks, reconcile   Stripe's events and the reconciler: dispatch to the layers below
    cards                 saving, confirming and removing cards
    autotopup             auto top-up: settings, the charge, caps, declines
    notices, redemptions  the low-balance notice and emails; redemption codes
    payments              one payment lifecycle (Checkout, top-up, auto top-up), refunds and disputes
    customers             Stripe customers, signed links, shared Stripe helpers
    ledger                wallets, the one ledger writer, holds, the invariant
    errors                domain errors (no HTTP statuses: the API layer maps them)

Other apps import from here (`from apps.billing.services import credits_grant`), never from a layer module.
"""

from apps.billing.services.autotopup import (
    autotopup_amount,
    autotopup_configure,
    autotopup_run,
    autotopup_wallet_sync,
)
from apps.billing.services.cards import SetupStarted, payment_method_confirm, payment_method_remove, payment_setup_start
from apps.billing.services.customers import (
    action_link_read,
    action_link_token,
    action_path,
    billing_profile_get,
    customer_ensure,
    setup_link_read,
    setup_link_token,
    stripe_ref_id,
)
from apps.billing.services.errors import (
    AuthenticationRequired,
    BillingError,
    BillingNotFound,
    IdempotencyKeyReused,
    InvalidBillingRequest,
    PaymentFailed,
    PaymentMethodRequired,
    PaymentMismatch,
    RateLimited,
    RedemptionRefused,
    WebhookHandlingFailed,
)
from apps.billing.services.ledger import (
    MONEY_IN_KINDS,
    InsufficientCredits,
    LedgerProblem,
    WalletNegative,
    _ledger_post,
    credits_adjust,
    credits_claw_back,
    credits_from_commission,
    credits_grant,
    hold_place,
    hold_refund,
    hold_release,
    hold_settle,
    ledger_check,
    wallet_get,
)
from apps.billing.services.notices import low_balance_configure, low_balance_notify
from apps.billing.services.payments import (
    checkout_failed,
    checkout_payment_create,
    checkout_return,
    checkout_session_apply,
    checkout_start,
    payment_action_refresh,
    payment_intent_apply,
    payment_refund,
    payment_reversal_apply,
    topup_amount_check,
    topup_charge,
)
from apps.billing.services.reconcile import payments_reconcile
from apps.billing.services.redemptions import code_redeem, redemption_batch_create
from apps.billing.services.webhooks import WEBHOOK_HANDLERS, stripe_event_process, stripe_event_receive

__all__ = [
    "MONEY_IN_KINDS",
    "WEBHOOK_HANDLERS",
    "AuthenticationRequired",
    "BillingError",
    "BillingNotFound",
    "IdempotencyKeyReused",
    "InsufficientCredits",
    "InvalidBillingRequest",
    "LedgerProblem",
    "PaymentFailed",
    "PaymentMethodRequired",
    "PaymentMismatch",
    "RateLimited",
    "RedemptionRefused",
    "SetupStarted",
    "WalletNegative",
    "WebhookHandlingFailed",
    "_ledger_post",
    "action_link_read",
    "action_link_token",
    "action_path",
    "autotopup_amount",
    "autotopup_configure",
    "autotopup_run",
    "autotopup_wallet_sync",
    "billing_profile_get",
    "checkout_failed",
    "checkout_payment_create",
    "checkout_return",
    "checkout_session_apply",
    "checkout_start",
    "code_redeem",
    "credits_adjust",
    "credits_claw_back",
    "credits_from_commission",
    "credits_grant",
    "customer_ensure",
    "hold_place",
    "hold_refund",
    "hold_release",
    "hold_settle",
    "ledger_check",
    "low_balance_configure",
    "low_balance_notify",
    "payment_action_refresh",
    "payment_intent_apply",
    "payment_method_confirm",
    "payment_method_remove",
    "payment_refund",
    "payment_reversal_apply",
    "payment_setup_start",
    "payments_reconcile",
    "redemption_batch_create",
    "setup_link_read",
    "setup_link_token",
    "stripe_event_process",
    "stripe_event_receive",
    "stripe_ref_id",
    "topup_amount_check",
    "topup_charge",
    "wallet_get",
]
