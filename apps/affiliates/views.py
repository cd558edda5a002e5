from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.affiliates.apis import affiliate_terms, referral_link
from apps.affiliates.models import Commission, Payout
from apps.affiliates.services import AffiliateError, affiliate_summary, commission_convert, payout_request
from apps.billing import money


def affiliate_page(request):
    """The program's terms for everyone; the link, figures and history for a signed-in affiliate."""
    context = {"terms": affiliate_terms()}
    if request.user.is_authenticated:
        summary = affiliate_summary(user=request.user)
        context.update(
            summary=summary,
            link=referral_link(request, summary.code),
            commissions=Commission.objects.filter(affiliate__user=request.user)[:50],
            payouts=Payout.objects.filter(affiliate__user=request.user)[:20],
        )
    return render(request, "affiliates/affiliate.html", context)


@login_required
@require_POST
def affiliate_convert(request):
    try:
        commission_convert(user=request.user, amount_micro=money.credits_to_micro(request.POST.get("credits", "")))
    except (AffiliateError, money.InvalidAmount) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Commission converted to credits.")
    return redirect("affiliate")


@login_required
@require_POST
def affiliate_payout(request):
    try:
        payout_request(
            user=request.user,
            amount_micro=money.credits_to_micro(request.POST.get("credits", "")),
            method=request.POST.get("method", ""),
        )
    except (AffiliateError, money.InvalidAmount) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Payout requested; an admin will review it.")
    return redirect("affiliate")
