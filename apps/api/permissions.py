"""Key scopes (docs/auth.md#scopes): which scope each API operation needs from a key that has scopes.

One table, by view class, so the rule for every endpoint is read in one place; a test checks every /api/v1 route
is in it. A browser session has every scope. `None`: any key (reading the balance, usage and the catalog).
"""

from rest_framework.permissions import BasePermission

VIEW_SCOPES = {
    # Generating and everything around one's jobs.
    "GenerateApi": "generate",
    "JobApi": "generate",
    "JobCancelApi": "generate",
    "PublicationPublishApi": "generate",
    "PublicationUnpublishApi": "generate",
    "WebhookSecretApi": "generate",
    "WebhookDeliveryListApi": "generate",
    # Money in and out.
    "PaymentSetupApi": "billing",
    "PaymentMethodConfirmApi": "billing",
    "PaymentMethodListApi": "billing",
    "PaymentMethodRemoveApi": "billing",
    "TopupApi": "billing",
    "AutoTopupApi": "billing",
    "LowBalanceApi": "billing",
    "RedeemApi": "billing",
    "AffiliateApi": "billing",
    "AffiliateConvertApi": "billing",
    "AffiliatePayoutApi": "billing",
    # Keys.
    "KeyListApi": "keys",
    "KeyUpdateApi": "keys",
    "KeyRevokeApi": "keys",
    "KeyRotateApi": "keys",
    # Public (AllowAny: no key needed, so no scope can be asked of one).
    "AgentRegisterApi": None,
    "QuoteApi": None,
    "PublicationRemixApi": None,
    # Reading, for any key.
    "CreditsApi": None,
    "UsageApi": None,
    "ModelListApi": None,
}
UNLISTED = "keys"  # a view missing from the table needs the widest scope rather than none


def key_scope_check(key, view_name: str) -> None:
    """Raises KeyRefused (insufficient_scope) when `key` lacks the scope the view `view_name` needs."""
    if not hasattr(key, "scopes"):
        return  # a session, or no key
    scope = VIEW_SCOPES.get(view_name, UNLISTED)
    if scope is None or key.has_scope(scope):
        return
    from apps.accounts.services import KeyRefused  # late: DRF loads this module while its views import

    raise KeyRefused("insufficient_scope", f"This API key lacks the {scope!r} scope this endpoint needs.", scope=scope)


class KeyScopePermission(BasePermission):
    def has_permission(self, request, view):
        key_scope_check(request.auth, type(view).__name__)
        return True
