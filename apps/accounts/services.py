import secrets

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.accounts.models import (
    API_KEY_PREFIX,
    API_KEY_VISIBLE_CHARS,
    ApiKey,
    User,
    api_key_generate,
    api_key_hash,
)
from apps.affiliates.models import Attribution
from apps.affiliates.services import referral_attribute
from apps.billing import money
from apps.billing.services import credits_grant, wallet_get


def account_setup(*, user: User) -> None:
    """Everything a new account gets, whichever way it signed up: a wallet and the sign-up credits."""
    wallet_get(user=user)
    free_micro = money.credits_to_micro(settings.SIGNUP_FREE_CREDITS)
    if free_micro > 0:
        credits_grant(user=user, amount_micro=free_micro, reason="Sign-up credits", idempotency_key=f"signup:{user.pk}")


def api_key_create(*, user: User, name: str = "default") -> tuple[ApiKey, str]:
    """Returns the stored key and the raw key, which exists only in this return value."""
    raw = api_key_generate()
    key = ApiKey.objects.create(
        user=user,
        name=name or "default",
        prefix=raw[: len(API_KEY_PREFIX) + API_KEY_VISIBLE_CHARS],
        key_hash=api_key_hash(raw),
    )
    return key, raw


def api_key_revoke(*, key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key_cache_forget(key_hashes=[key.key_hash])


# Key auth is on every API request. With a shared cache (Redis), a valid key and its user are kept there for
# API_KEY_TOUCH_SECONDS, so most requests skip the database. Forgetting is immediate and race-free: a revoke (or
# any change of the key or its user) writes a tombstone, and entries are only ever *added* (`cache.add`), so a
# request that read the key just before the revoke cannot put it back.
_TOMBSTONE = "revoked"


def _key_cache_name(key_hash: str) -> str:
    return f"apikey:{key_hash}"


def _key_cache_on() -> bool:
    return bool(settings.REDIS_URL)  # a per-process cache could not be told about a revoke in another process


def api_key_cache_forget(*, key_hashes=(), user_id: int | None = None) -> None:
    """Makes every web process stop trusting these keys (and, with user_id, all of that user's keys) at once."""
    if not _key_cache_on():
        return
    hashes = list(key_hashes)
    if user_id is not None:
        hashes += ApiKey.objects.filter(user_id=user_id).values_list("key_hash", flat=True)
    if hashes:
        names = {_key_cache_name(h): _TOMBSTONE for h in hashes}
        cache.set_many(names, timeout=settings.API_KEY_TOUCH_SECONDS)
        # Again after commit: a revoke inside a transaction must not be undone by a read of the old row.
        transaction.on_commit(lambda: cache.set_many(names, timeout=settings.API_KEY_TOUCH_SECONDS))


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """One cache read, or one indexed lookup; last_used_at is written at most once per API_KEY_TOUCH_SECONDS."""
    if not raw_key.startswith(API_KEY_PREFIX):
        return None
    key_hash = api_key_hash(raw_key)
    name = _key_cache_name(key_hash)
    if _key_cache_on():
        cached = cache.get(name)
        if isinstance(cached, ApiKey):
            return cached
    key = ApiKey.objects.select_related("user").filter(key_hash=key_hash, revoked_at__isnull=True).first()
    if key is None or not key.user.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > settings.API_KEY_TOUCH_SECONDS:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    if _key_cache_on():
        cache.add(name, key, timeout=settings.API_KEY_TOUCH_SECONDS)  # never over a tombstone
    return key


@transaction.atomic
def agent_register(*, name: str, email: str = "", referral_code: str = "") -> tuple[User, str]:
    """Creates an agent account with its first API key; the raw key is returned once.

    An unknown or self-referring `referral_code` is ignored: it never stops a registration.
    """
    user = User(username=_unique_username(name), email=email, display_name=name, account_type=User.AccountType.AGENT)
    user.set_unusable_password()
    user.save()
    account_setup(user=user)
    if referral_code:
        referral_attribute(user=user, code=referral_code, source=Attribution.Source.API)
    _, raw = api_key_create(user=user, name="default")
    return user, raw


def profile_update(*, user: User, display_name: str) -> User:
    """The public name shown on the account's showroom publications (empty: shown as anonymous)."""
    user.display_name = " ".join(display_name.split())[:150]
    User.objects.filter(pk=user.pk).update(display_name=user.display_name)
    return user


@transaction.atomic
def account_deactivate(*, user: User) -> None:
    """Closes an account at its owner's request: no more sign-in (sessions stop working), its API keys revoked.

    The rows stay (the ledger is a record of money; an admin can reactivate); the showroom stops showing its
    publications because it shows only active accounts' work.
    """
    User.objects.filter(pk=user.pk).update(is_active=False)
    ApiKey.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key_cache_forget(user_id=user.pk)
    user.is_active = False


def user_lookup(identifier: str) -> User:
    """An account by id, username or email (admin commands take any of them)."""
    identifier = identifier.strip()
    if identifier.isdigit():
        user = User.objects.filter(pk=int(identifier)).first()
        if user:
            return user
    user = User.objects.filter(username=identifier).first() or User.objects.filter(email__iexact=identifier).first()
    if user is None:
        raise User.DoesNotExist(f"No account with id, username or email {identifier!r}.")
    return user


def _unique_username(name: str) -> str:
    base = (slugify(name) or "agent")[:100]
    return f"agent-{base}-{secrets.token_hex(4)}"
