from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Signed job webhooks (Standard Webhooks): each account's secret, and every delivery with its attempts."""

    name = "apps.webhooks"
