from django.core.management.base import BaseCommand, CommandError

from apps.billing.models import Wallet
from apps.billing.services import ledger_check


class Command(BaseCommand):
    help = "Verify that every wallet's balance equals the sum of its ledger entries and is not negative."

    def handle(self, **options):
        problems = ledger_check()
        for problem in problems:
            self.stderr.write(str(problem))
        if problems:
            raise CommandError(f"{len(problems)} wallet(s) break the ledger invariant.")
        self.stdout.write(f"Ledger OK: {Wallet.objects.count()} wallet(s) balance.")
