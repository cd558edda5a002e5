from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import User
from apps.accounts.services import api_key_create, user_lookup


class Command(BaseCommand):
    help = "Create an API key for an account and print it once: create_api_key <user id|username|email> --name N"

    def add_arguments(self, parser):
        parser.add_argument("user")
        parser.add_argument("--name", default="default")

    def handle(self, *, user, name, **options):
        try:
            account = user_lookup(user)
        except User.DoesNotExist as exc:
            raise CommandError(str(exc)) from exc
        key, raw = api_key_create(user=account, name=name)
        self.stderr.write(f"Key {key.prefix}… ({key.name}) for {account.username}; shown once:")
        self.stdout.write(raw)
