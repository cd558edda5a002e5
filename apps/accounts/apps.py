from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"

    def ready(self):
        from apps.accounts import signals  # noqa: F401 - connects the key-auth cache invalidation
