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
    """Stores the message, then emails it to staff (contact_recipients; reply goes to the sender). A mail server that is
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


# Backends that deliver nothing to a person: with them, nobody is told of a message but the admin's list.
NON_DELIVERING_BACKENDS = ("console", "dummy", "filebased")


def mail_delivers() -> bool:
    """Whether this instance's email reaches people (SMTP and the like; Django's test outbox counts)."""
    return settings.EMAIL_BACKEND.rsplit(".", 2)[-2] not in NON_DELIVERING_BACKENDS


def contact_recipients() -> list[str]:
    """CONTACT_EMAIL when set; otherwise the ADMINS and every active staff account's address."""
    from apps.accounts.models import User

    if settings.CONTACT_EMAIL:
        return [settings.CONTACT_EMAIL]
    staff = User.objects.filter(is_staff=True, is_active=True).exclude(email="").values_list("email", flat=True)
    return list(dict.fromkeys([*(address for _, address in settings.ADMINS), *staff]))


def contact_notifies() -> bool:
    """Whether a new message reaches someone by email now (else it waits in the admin, counted as unread)."""
    return mail_delivers() and bool(contact_recipients())


def contact_unread_count() -> int:
    return ContactMessage.objects.filter(handled_at__isnull=True).count()


def contact_message_email(*, contact: ContactMessage) -> bool:
    recipients = contact_recipients()
    if not recipients or not mail_delivers():
        logger.warning("Contact message %s not emailed: no staff address, or email is not set up.", contact.pk)
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
