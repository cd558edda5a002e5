from django import template

from apps.contact.services import contact_unread_count

register = template.Library()


@register.simple_tag
def contact_unread() -> int:
    """Contact messages nobody has marked handled yet (shown in the admin's header)."""
    return contact_unread_count()
