from django.conf import settings

from apps.affiliates.services import COOKIE_NAME, COOKIE_SALT, referral_click, referral_cookie_value
from kiwiwhale.lib.ratelimit import client_ip


class ReferralMiddleware:
    """A page visit with `?ref=CODE` counts a click and sets a first-party cookie for the attribution window."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        code = request.GET.get("ref", "").strip()
        # Codes are short and alphanumeric; anything else is no code (apps/api/middleware.py refuses NUL first).
        if (
            code
            and code.isascii()
            and code.isalnum()
            and request.method == "GET"
            and not request.path.startswith(("/api/", "/static/", "/media/"))
        ):
            referral = referral_click(code=code[:16], ip=client_ip(request), user=getattr(request, "user", None))
            if referral is not None and COOKIE_NAME not in request.COOKIES:
                # First link wins: a later link within the window does not take the sign-up from the first.
                response.set_signed_cookie(
                    COOKIE_NAME,
                    referral_cookie_value(referral.code),
                    salt=COOKIE_SALT,
                    max_age=settings.AFFILIATE_COOKIE_DAYS * 86400,
                    secure=request.is_secure(),
                    httponly=True,
                    samesite="Lax",
                )
        return response
