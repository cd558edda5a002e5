import ipaddress
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.accounts.models import (
    API_KEY_PREFIX,
    API_KEY_VISIBLE_CHARS,
    SCOPES,
    ApiKey,
    User,
    api_key_generate,
    api_key_hash,
    model_pattern_matches,
)
from apps.affiliates.models import Attribution
from apps.affiliates.services import referral_attribute
from apps.billing import money
from apps.billing.services import credits_grant, wallet_get
from kiwiwhale.lib.ratelimit import rate_limit_hit
from kiwiwhale.lib.redis_pool import cache_get, shared_cache_on


def account_setup(*, user: User) -> None:
    """Everything a new account gets, whichever way it signed up: a wallet and the sign-up credits."""
    wallet_get(user=user)
    free_micro = money.credits_to_micro(settings.SIGNUP_FREE_CREDITS)
    if free_micro > 0:
        credits_grant(user=user, amount_micro=free_micro, reason="Sign-up credits", idempotency_key=f"signup:{user.pk}")


class KeyRefused(Exception):
    """A key may not do this: expired, wrong address, missing scope, forbidden model, over a limit, or a request to
    make or change a key beyond the limits of the key asking. `code` is the contract's error code; `extra` the detail
    fields of the answer (credits already as JSON numbers); `retry_after` seconds when waiting helps."""

    def __init__(self, code: str, message: str, *, retry_after: int | None = None, **extra):
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after
        self.extra = extra


# Everything a key's owner may set on it besides its name (docs/auth.md#key-limits); None / [] mean no limit.
LIMIT_FIELDS = (
    "scopes",
    "spend_limit_day_micro",
    "spend_limit_month_micro",
    "spend_limit_total_micro",
    "allowed_models",
    "allowed_ips",
    "rpm_limit",
    "concurrency_limit",
    "expires_at",
)
NUMERIC_LIMITS = (
    "spend_limit_day_micro",
    "spend_limit_month_micro",
    "spend_limit_total_micro",
    "rpm_limit",
    "concurrency_limit",
)
API_KEYS_ACTIVE_MAX = 50  # per account: a key with the `keys` scope cannot fill the table
API_KEY_DEPTH_MAX = 10  # keys made by keys made by keys…: the lineage column holds this many ids


def allowed_ips_clean(values) -> list[str]:
    """CIDR ranges (or single addresses) in their canonical form; ValueError names the bad one."""
    networks = []
    for value in values:
        try:
            networks.append(str(ipaddress.ip_network(str(value).strip(), strict=False)))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or CIDR range (e.g. 203.0.113.0/24).") from None
    return list(dict.fromkeys(networks))


def allowed_models_clean(values) -> list[str]:
    patterns = []
    for value in values:
        value = str(value).strip()
        core = value[:-2] if value.endswith("/*") else value
        if not core or len(value) > 200 or "*" in core or any(c.isspace() for c in value):
            raise ValueError(f"{value!r}: give a public model id (z-image) or a prefix ending in /* (gpt-image-2/*).")
        patterns.append(value)
    return list(dict.fromkeys(patterns))


def scopes_clean(values) -> list[str]:
    unknown = [value for value in values if value not in SCOPES]
    if unknown:
        raise ValueError(f"Unknown scope {unknown[0]!r}; scopes are {', '.join(SCOPES)}.")
    return [scope for scope in SCOPES if scope in values]


def _networks_within(inner: list[str], outer: list[str]) -> bool:
    outer_nets = [ipaddress.ip_network(n) for n in outer]
    return all(
        any(net.version == o.version and net.subnet_of(o) for o in outer_nets)
        for net in (ipaddress.ip_network(n) for n in inner)
    )


def _pattern_within(pattern: str, outer: list[str]) -> bool:
    if pattern.endswith("/*"):
        return any(o == "*" or (o.endswith("/*") and pattern.startswith(o[:-1])) for o in outer)
    return any(model_pattern_matches(o, pattern) for o in outer)


def api_key_limits_within(*, limits: dict, holder: ApiKey) -> None:
    """Refuses (KeyRefused `key_escalation`) limits looser than `holder`'s: a key cannot mint or widen a key beyond
    itself. Every limit the holder has must be present and no looser; scopes must be a subset of its own."""
    extra_scopes = [scope for scope in limits.get("scopes", SCOPES) if not holder.has_scope(scope)]
    if extra_scopes:
        raise KeyRefused(
            "key_escalation", f"This key lacks the scope {extra_scopes[0]!r}, so it cannot grant it.", field="scopes"
        )
    for field in NUMERIC_LIMITS:
        own = getattr(holder, field)
        asked = limits.get(field)
        if own is not None and (asked is None or asked > own):
            raise KeyRefused(
                "key_escalation",
                f"{_limit_label(field)} may not exceed this key's own.",
                field=field.replace("_micro", "_credits"),  # the name the API takes it by
            )
    if holder.expires_at is not None and (limits.get("expires_at") is None or limits["expires_at"] > holder.expires_at):
        raise KeyRefused("key_escalation", "The key may not outlive this key (expires_at).", field="expires_at")
    if holder.allowed_models and not (
        limits.get("allowed_models")
        and all(_pattern_within(p, holder.allowed_models) for p in limits["allowed_models"])
    ):
        raise KeyRefused("key_escalation", "allowed_models must stay within this key's models.", field="allowed_models")
    if holder.allowed_ips and not (
        limits.get("allowed_ips") and _networks_within(limits["allowed_ips"], holder.allowed_ips)
    ):
        raise KeyRefused("key_escalation", "allowed_ips must stay within this key's ranges.", field="allowed_ips")


def _limit_label(field: str) -> str:
    return field.removesuffix("_micro").replace("_", " ")


def _key_new(
    *, user: User, name: str, limits: dict, lineage: str = "", parent_lineage: str = "/"
) -> tuple[ApiKey, str]:
    # `lineage`: taken as it is (a rotation); otherwise the key's own id below `parent_lineage`.
    raw = api_key_generate()
    key = ApiKey.objects.create(
        user=user,
        name=name or "default",
        prefix=raw[: len(API_KEY_PREFIX) + API_KEY_VISIBLE_CHARS],
        key_hash=api_key_hash(raw),
        **{field: value for field, value in limits.items() if field in LIMIT_FIELDS},
    )
    key.lineage = lineage or f"{parent_lineage}{key.pk}/"
    ApiKey.objects.filter(pk=key.pk).update(lineage=key.lineage)
    return key, raw


@transaction.atomic
def api_key_create(*, user: User, name: str = "default", by: ApiKey | None = None, **limits) -> tuple[ApiKey, str]:
    """Returns the stored key and the raw key, which exists only in this return value.

    `by`: the key that asks (None for the owner's session or the admin). Its new key may not be looser than itself
    and joins its lineage, so what the new key spends counts against `by`'s limits as well."""
    if by is not None:
        if limits.get("scopes") is None:
            limits["scopes"] = list(by.scopes)  # by default a key makes keys that can do what it can
        api_key_limits_within(limits=limits, holder=by)
        if len(by.lineage_ids) >= API_KEY_DEPTH_MAX:
            raise KeyRefused("too_many_keys", f"Keys made by keys nest at most {API_KEY_DEPTH_MAX} levels deep.")
    if ApiKey.objects.active().filter(user=user).count() >= API_KEYS_ACTIVE_MAX:
        raise KeyRefused(
            "too_many_keys", f"This account has {API_KEYS_ACTIVE_MAX} active keys; revoke one before creating another."
        )
    return _key_new(user=user, name=name, limits=limits, parent_lineage=by.lineage if by is not None else "/")


def api_key_manageable(*, user: User, by: ApiKey | None):
    """The keys a caller may see and manage: all of the account's from a session; from a key, itself, the keys it
    made (and theirs), and the keys that replaced it by rotation — its lineage."""
    keys = ApiKey.objects.filter(user=user)
    return keys if by is None else keys.filter(lineage__startswith=by.lineage)


def api_key_find(*, user: User, by: ApiKey | None, ident) -> ApiKey | None:
    """A key the caller may manage, by id or by prefix (`kw_` and 8 characters, an ellipsis allowed)."""
    keys = api_key_manageable(user=user, by=by)
    text = str(ident).strip()
    if text.isdigit():
        return keys.filter(pk=int(text)).first() if len(text) <= 18 else None  # a bigint holds 18 digits
    return keys.filter(prefix=text.rstrip("…")).first()


@transaction.atomic
def api_key_update(*, key: ApiKey, by: ApiKey | None = None, name: str | None = None, **limits) -> ApiKey:
    """Changes a key's name and limits at once for every process (the cache forgets it). From a key, only keys
    below it in its lineage, and never beyond its own limits."""
    if by is not None:
        if key.lineage == by.lineage:
            raise KeyRefused("key_escalation", "A key cannot change its own limits; its creator can.", field="key")
        merged = {field: getattr(key, field) for field in LIMIT_FIELDS} | limits
        api_key_limits_within(limits=merged, holder=by)
    changes = {field: value for field, value in limits.items() if field in LIMIT_FIELDS}
    if name is not None:
        changes["name"] = name or "default"
    for field, value in changes.items():
        setattr(key, field, value)
    ApiKey.objects.filter(pk=key.pk).update(**changes)
    api_key_cache_forget(key_hashes=[key.key_hash])
    return key


@transaction.atomic
def api_key_rotate(*, key: ApiKey, grace_seconds: int = 0) -> tuple[ApiKey, str]:
    """A new key with the same name, limits, scopes and lineage (so its spend goes on counting); the old key is
    revoked now, or expires after `grace_seconds` so running programs can switch over."""
    limits = {field: getattr(key, field) for field in LIMIT_FIELDS}
    new_key, raw = _key_new(user=key.user, name=key.name, limits=limits, lineage=key.lineage)
    if grace_seconds > 0:
        ends = timezone.now() + timedelta(seconds=grace_seconds)
        if key.expires_at is None or ends < key.expires_at:
            ApiKey.objects.filter(pk=key.pk).update(expires_at=ends)
            key.expires_at = ends
        api_key_cache_forget(key_hashes=[key.key_hash])
    else:
        _keys_revoke(ApiKey.objects.filter(pk=key.pk))
        key.revoked_at = timezone.now()
    return new_key, raw


def api_key_revoke(*, key: ApiKey) -> None:
    """Revokes the key and, unless a rotated successor carries its lineage on, every key it made (and theirs)."""
    with transaction.atomic():
        _keys_revoke(ApiKey.objects.filter(pk=key.pk))
        if not ApiKey.objects.active().filter(lineage=key.lineage).exists():
            _keys_revoke(ApiKey.objects.filter(user_id=key.user_id, lineage__startswith=key.lineage))
    key.revoked_at = key.revoked_at or timezone.now()


def _keys_revoke(keys) -> None:
    hashes = list(keys.filter(revoked_at__isnull=True).values_list("key_hash", flat=True))
    if hashes:
        ApiKey.objects.filter(key_hash__in=hashes).update(revoked_at=timezone.now())
        api_key_cache_forget(key_hashes=hashes)


def api_key_admit(*, key: ApiKey, client_ip: str, now: datetime | None = None) -> None:
    """The per-request rules of a key, on the (maybe cached) key: expiry, client address, requests per minute.
    No database query; the minute counter is in the shared cache."""
    if key.is_expired(now):
        raise KeyRefused("key_expired", f"This API key expired at {key.expires_at:%Y-%m-%d %H:%M:%S} UTC.")
    if not key.ip_allowed(client_ip):
        raise KeyRefused("ip_not_allowed", f"This API key may not be used from {client_ip or 'this address'}.")
    if key.rpm_limit:
        wait = rate_limit_hit("key-rpm", f"key:{key.pk}", rate=f"{key.rpm_limit}/minute")
        if wait:
            raise KeyRefused(
                "rate_limited",
                f"This key allows {key.rpm_limit} requests a minute; retry in {wait} s.",
                retry_after=wait,
            )


# Key auth is on every API request. With a shared cache (Redis), a valid key and its user are kept there for
# API_KEY_TOUCH_SECONDS, so most requests skip the database. Forgetting is immediate and race-free: a revoke (or
# any change of the key or its user) writes a tombstone, and entries are only ever *added* (`cache.add`), so a
# request that read the key just before the revoke cannot put it back.
_TOMBSTONE = "revoked"


def _key_cache_name(key_hash: str) -> str:
    return f"apikey:{key_hash}"


def api_key_cache_forget(*, key_hashes=(), user_id: int | None = None) -> None:
    """Makes every web process stop trusting these keys (and, with user_id, all of that user's keys) at once."""
    if not shared_cache_on():
        return
    hashes = list(key_hashes)
    if user_id is not None:
        hashes += ApiKey.objects.filter(user_id=user_id).values_list("key_hash", flat=True)
    if hashes:
        names = {_key_cache_name(h): _TOMBSTONE for h in hashes}
        cache.set_many(names, timeout=settings.API_KEY_TOUCH_SECONDS)
        # Again after commit: a revoke inside a transaction must not be undone by a read of the old row.
        transaction.on_commit(lambda: cache.set_many(names, timeout=settings.API_KEY_TOUCH_SECONDS))


def api_key_cache_names(raw_key: str) -> list[str]:
    """The cache entry api_key_authenticate reads for this key (none without the shared cache): a caller that reads
    it together with its own entries, in one round trip, passes what it found as `found`."""
    if not raw_key.startswith(API_KEY_PREFIX) or not shared_cache_on():
        return []
    return [_key_cache_name(api_key_hash(raw_key))]


def api_key_authenticate(raw_key: str, *, found: dict | None = None) -> ApiKey | None:
    """One cache read (or none, given `found`: see api_key_cache_names), or one indexed lookup; last_used_at is
    written at most once per API_KEY_TOUCH_SECONDS."""
    if not raw_key.startswith(API_KEY_PREFIX):
        return None
    key_hash = api_key_hash(raw_key)
    name = _key_cache_name(key_hash)
    if shared_cache_on():
        cached = cache_get(name) if found is None else found.get(name)
        if isinstance(cached, ApiKey):
            return cached
    key = ApiKey.objects.select_related("user").filter(key_hash=key_hash, revoked_at__isnull=True).first()
    if key is None or not key.user.is_active:
        return None
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > settings.API_KEY_TOUCH_SECONDS:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    if shared_cache_on():
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
