from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render

from apps.contact.forms import ContactForm
from apps.contact.services import contact_message_create, contact_notifies
from kiwiwhale.lib.ratelimit import client_ip, rate_limit_hit

# The visitor is told what really happens to the message.
NOTIFIED_MESSAGE = "Thank you, your message was received; we'll reply by email."
STORED_MESSAGE = (
    "Thank you, your message is stored for the operator of this site, who reads messages in the admin. "
    "Nobody is notified by email on this instance, so an answer may take a while."
)


def _received_message() -> str:
    return NOTIFIED_MESSAGE if contact_notifies() else STORED_MESSAGE


def contact_create(request):
    """/contact.php: the contact form; messages are stored, and emailed to staff when email is set up."""
    initial = {}
    if request.user.is_authenticated:
        initial = {"email": request.user.email, "name": request.user.display_name}
    form = ContactForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if not form.is_valid():
            status = 400
        elif form.is_spam:
            # Tell a bot nothing: the same answer as a real message, but nothing is stored or sent.
            messages.success(request, _received_message())
            return redirect("contact")
        elif wait := rate_limit_hit("contact", client_ip(request), rate=settings.RATE_CONTACT):
            form.add_error(None, f"Too many messages from your address; please try again in {wait // 60 + 1} min.")
            status = 429
        else:
            contact_message_create(
                email=form.cleaned_data["email"],
                message=form.cleaned_data["message"],
                name=form.cleaned_data["name"],
                subject=form.cleaned_data["subject"],
                user=request.user,
                ip=client_ip(request),
            )
            messages.success(request, _received_message())
            return redirect("contact")
    return render(request, "contact/contact.html", {"form": form, "discord_url": settings.DISCORD_URL}, status=status)


def terms_show(request):
    """/terms.php: the terms of service and the privacy policy of this instance."""
    return render(request, "contact/terms.html", {"discord_url": settings.DISCORD_URL})
