"""Cache invalidation only: a saved or deleted key or user is forgotten by the key-auth cache at once."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.accounts.models import ApiKey, User
from apps.accounts.services import api_key_cache_forget


@receiver([post_save, post_delete], sender=ApiKey)
def _key_changed(sender, instance, created=False, **kwargs):
    if not created:  # a new key was never cached; a tombstone would only keep it out of the cache a while
        api_key_cache_forget(key_hashes=[instance.key_hash])


@receiver([post_save, post_delete], sender=User)
def _user_changed(sender, instance, created=False, **kwargs):
    if not created:
        api_key_cache_forget(user_id=instance.pk)
