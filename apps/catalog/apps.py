from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class CatalogConfig(AppConfig):
    name = "apps.catalog"

    def ready(self):
        from apps.catalog.models import AIModel, ModelRoute, ProviderAccount
        from apps.catalog.services import catalog_changed
        from apps.generations.providers import provider_availability_changed

        # Cache invalidation only: which providers can run is cached, and an account change must show at once.
        for signal in (post_save, post_delete):
            signal.connect(
                lambda **kwargs: provider_availability_changed(),
                sender=ProviderAccount,
                weak=False,
                dispatch_uid=f"provider-availability-{signal}",
            )
        # What processes keep of the catalog (resolved models, cached job answers) is stale once any row changes.
        for sender in (AIModel, ModelRoute, ProviderAccount):
            for signal in (post_save, post_delete):
                signal.connect(
                    lambda **kwargs: catalog_changed(),
                    sender=sender,
                    weak=False,
                    dispatch_uid=f"catalog-generation-{sender.__name__}-{signal}",
                )
