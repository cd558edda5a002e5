import logging

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from apps.contact.models import ContactMessage

logger = logging.getLogger(__name__)


def contact_message_create(
    *, email: str, message: str, name: str = "", subject: str = "", user=None, ip: str | None = None
) -> ContactMessage:
    """Stores the message, then emails it to the ADMINS (reply goes to the sender). A mail server that is
    down loses nothing: the message is in the admin either way, and `emailed_at` tells whether it went out."""
    contact = ContactMessage.objects.create(
        name=" ".join(name.split())[:100],
        email=email.strip(),
        subject=" ".join(subject.split())[:150],  # one line: it becomes an email header
        message=message.strip(),
        user=user if user is not None and user.is_authenticated else None,
        ip_address=ip or None,
    )
    transaction.on_commit(lambda: contact_message_email(contact=contact))
    return contact


def contact_message_email(*, contact: ContactMessage) -> bool:
    recipients = [address for _, address in settings.ADMINS]
    if not recipients:
        logger.warning("Contact message %s not emailed: ADMIN_EMAILS is not set.", contact.pk)
        return False
    sender = f"{contact.name} <{contact.email}>" if contact.name else contact.email
    body = (
        f"From: {sender}\n"
        f"Account: {contact.user.email if contact.user else '(not signed in)'}\n"
        f"Address: {contact.ip_address or '?'}\n\n"
        f"{contact.message}\n"
    )
    subject = f"{settings.EMAIL_SUBJECT_PREFIX}Contact: {contact.subject or 'a message'}"
    try:
        EmailMessage(
            subject=subject,
            body=body,
            from_email=settings.SERVER_EMAIL,
            to=recipients,
            reply_to=[contact.email],
        ).send()
    except Exception:
        logger.exception("Could not email contact message %s", contact.pk)
        return False
    ContactMessage.objects.filter(pk=contact.pk).update(emailed_at=timezone.now())
    return True
