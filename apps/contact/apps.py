from django.apps import AppConfig


class ContactConfig(AppConfig):
    """The contact form and the site's legal page (terms and privacy)."""

    name = "apps.contact"
