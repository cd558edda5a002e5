from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class CatalogConfig(AppConfig):
    name = "apps.catalog"

    def ready(self):
        from apps.catalog.models import AIModel, ModelRoute, ProviderAccount
        from apps.catalog.services import catalog_changed
        from apps.generations.providers import provider_availability_changed

        def changed(sender, **kwargs):
            # What processes keep of the catalog (resolved models, cached job answers) is stale once any row
            # changes; which providers can run is cached too, and an account change must show at once.
            catalog_changed()
            if sender is ProviderAccount:
                provider_availability_changed()

        for sender in (AIModel, ModelRoute, ProviderAccount):
            for signal in (post_save, post_delete):
                signal.connect(
                    changed, sender=sender, weak=False, dispatch_uid=f"catalog-changed-{sender.__name__}-{signal}"
                )
