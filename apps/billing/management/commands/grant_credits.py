import uuid

from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import User
from apps.accounts.services import user_lookup
from apps.billing import money
from apps.billing.services import credits_grant, wallet_get


class Command(BaseCommand):
    help = "Grant credits to an account: grant_credits <user id|username|email> <credits> --reason '...'"

    def add_arguments(self, parser):
        parser.add_argument("user")
        parser.add_argument("amount", help="Credits, e.g. 10 or 0.5")
        parser.add_argument("--reason", required=True)
        parser.add_argument(
            "--idempotency-key", default="", help="Running again with the same key grants nothing more."
        )

    def handle(self, *, user, amount, reason, idempotency_key, **options):
        try:
            account = user_lookup(user)
        except User.DoesNotExist as exc:
            raise CommandError(str(exc)) from exc
        try:
            amount_micro = money.credits_to_micro(amount)
        except money.InvalidAmount as exc:
            raise CommandError(str(exc)) from exc
        if amount_micro <= 0:
            raise CommandError("The amount must be more than zero.")
        key = f"admin-grant:{idempotency_key or uuid.uuid4()}"
        entry = credits_grant(user=account, amount_micro=amount_micro, reason=reason, idempotency_key=key)
        balance = wallet_get(user=account).balance_micro
        self.stdout.write(
            f"Granted {money.format_credits(entry.amount_micro)} credits to {account.username} "
            f"(entry {entry.pk}); balance {money.format_credits(balance)}."
        )
