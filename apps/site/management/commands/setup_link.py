"""Prints a one-time login link to /setup.php, creating the first superuser (with a printed password) if none."""

import secrets

from django.core.management.base import BaseCommand
from django.urls import reverse

from apps.accounts.models import User
from apps.accounts.services import account_setup
from apps.site.setup_views import setup_link_token


class Command(BaseCommand):
    help = "Creates the first superuser if there is none, and prints a one-time link that logs it in to /setup.php."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="Where the site is served.")
        parser.add_argument("--email", default="admin@localhost", help="The first superuser's email, if created.")

    def handle(self, *args, base_url, email, **options):
        user = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = User.objects.create_superuser(username="admin", email=email, password=password)
            account_setup(user=user)
            self.stdout.write(f"Created the superuser admin ({email}) with the password {password}")
        link = base_url.rstrip("/") + reverse("site:setup_login", args=[setup_link_token(user)])
        self.stdout.write(f"Set up this instance (one-time link, valid 24 h): {link}")
