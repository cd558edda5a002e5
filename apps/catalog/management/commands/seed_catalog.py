from pathlib import Path

from django.core.management.base import BaseCommand

from apps.catalog.services import CATALOG_FILE, catalog_seed


class Command(BaseCommand):
    help = "Create or update the catalog's models and routes from the data file (safe to run again)."

    def add_arguments(self, parser):
        parser.add_argument("--file", type=Path, default=CATALOG_FILE)

    def handle(self, *, file, **options):
        created, updated = catalog_seed(path=file)
        self.stdout.write(f"Catalog seeded from {file.name}: {created} created, {updated} updated.")
