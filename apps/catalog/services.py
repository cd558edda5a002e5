import copy
import json
import secrets
from pathlib import Path

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from jsonschema import Draft202012Validator

from apps.billing import money
from apps.catalog.models import AIModel, ModelRoute, ProviderAccount
from kiwiwhale.lib.redis_pool import cache_get, shared_cache_on


class ModelNotFound(Exception):
    pass


class ModelUnavailable(Exception):
    pass


class InvalidInput(Exception):
    def __init__(self, details: list[dict]):
        self.details = details
        super().__init__("The input does not match the model's schema.")


CATALOG_GENERATION_KEY = "catalog:generation"


def catalog_generation(token: str | None = None) -> str:
    """A token of the catalog's state in the shared cache: it changes whenever a model, a route or a provider
    account is saved or deleted (catalog_changed), so what a process keeps of the catalog (the models it resolves,
    the model fields of a cached job answer) is known stale in every process at once. `token`: the value already
    read (with other keys, in one round trip); a missing token (the cache was cleared) is a new one."""
    if token is None:
        token = cache_get(CATALOG_GENERATION_KEY)
    if token is None:
        cache.add(CATALOG_GENERATION_KEY, secrets.token_hex(8), timeout=None)
        token = cache.get(CATALOG_GENERATION_KEY)
    return token


def catalog_changed() -> None:
    """Now and again at commit: a process that reloads between the change and its commit would keep the old rows
    under the new token; the second one makes it reload after the commit."""
    cache.set(CATALOG_GENERATION_KEY, secrets.token_hex(8), timeout=None)
    transaction.on_commit(lambda: cache.set(CATALOG_GENERATION_KEY, secrets.token_hex(8), timeout=None))


# This process's enabled models, their routes prefetched, and the catalog generation they were read under.
_kept: tuple[str | None, dict[str, AIModel]] = (None, {})


def model_resolve(public_model: str) -> AIModel:
    """The enabled model, with its routes loaded (`model.routes.all()` costs no query). With the shared cache, from
    this process's copy of the catalog, read again (two queries) whenever its generation changed: a submit resolves
    its model in one cache read instead of two queries. Rows changed without save() (a queryset's update()) must
    be followed by catalog_changed(). The instances are shared: never change one."""
    global _kept
    if shared_cache_on():
        generation = catalog_generation()
        if _kept[0] != generation:
            models = AIModel.objects.filter(enabled=True).prefetch_related("routes")
            _kept = (generation, {model.public_model: model for model in models})
        model = _kept[1].get(public_model)
    else:  # a per-process cache could not hear of a change in another process
        model = AIModel.objects.filter(public_model=public_model, enabled=True).prefetch_related("routes").first()
    if model is None:
        raise ModelNotFound(public_model)
    return model


def model_routes(model: AIModel) -> list[ModelRoute]:
    """The model's routes, by priority: those loaded with it (model_resolve), else this process's catalog copy
    (the worker's run of a job then costs no query for them), else from the database."""
    if "routes" in getattr(model, "_prefetched_objects_cache", {}):
        return list(model.routes.all())
    if shared_cache_on():
        try:
            kept = model_resolve(model.public_model)
        except ModelNotFound:  # disabled since the job was accepted: it still runs on its routes
            kept = None
        if kept is not None and kept.pk == model.pk:
            return list(kept.routes.all())
    return list(model.routes.all())


def input_validate(*, model: AIModel, data: dict) -> dict:
    """The input with the schema's defaults applied, or InvalidInput with one detail per problem."""
    value = input_with_defaults(model.input_schema, data)
    validator = Draft202012Validator(model.input_schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        raise InvalidInput([_error_detail(e) for e in errors])
    return value


def input_with_defaults(schema: dict, data):
    """Fills `default`s of object properties, recursively; never overrides what the caller sent."""
    if not isinstance(data, dict) or not isinstance(schema, dict):
        return data
    result = copy.deepcopy(data)
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        if name not in result and "default" in prop:
            result[name] = copy.deepcopy(prop["default"])
        elif name in result:
            result[name] = input_with_defaults(prop, result[name])
    return result


def _error_detail(error) -> dict:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        path = f"{path}.{missing}" if path else missing
    elif error.validator == "additionalProperties":
        extra = error.message.split("'")[1] if "'" in error.message else ""
        return {"field": f"{path}.{extra}" if path else extra, "message": "Unknown field."}
    elif error.validator == "pattern" and error.validator_value == r"\S":
        return {"field": path or "input", "message": "Must contain more than spaces."}
    return {"field": path or "input", "message": error.message}


CATALOG_FILE = Path(__file__).resolve().parent / "data" / "catalog.json"


@transaction.atomic
def catalog_seed(*, path: Path = CATALOG_FILE) -> tuple[int, int]:
    """Creates or updates the models and routes of the data file; returns (created, updated). Idempotent.

    Models and routes an admin added are left alone; the file's fields win over edits to the same rows, and routes
    the file seeded before and no longer lists are removed.
    """
    created = updated = 0
    data = json.loads(path.read_text())
    # Upstream accounts the routes name are created switched off, for an admin to fill in; never overwritten.
    providers = {p["slug"]: p for p in data.get("providers", [])}
    for entry in data["models"]:
        Draft202012Validator.check_schema(entry["schema"])
        price = entry.get("price", {})
        model, was_created = AIModel.objects.update_or_create(
            public_model=entry["public_model"],
            defaults={
                "product_id": entry.get("product_id", entry["public_model"]),
                "label": entry["label"],
                "description": entry.get("description", ""),
                "category": entry["category"],
                "input_schema": entry["schema"],
                "sort_order": entry.get("sort_order", 100),
                "openai": entry.get("openai", {}),
                "price_micro": money.credits_to_micro(price.get("credits", "0")),
                "price_unit": price.get("unit", ""),
                "price_unit_size": price.get("unit_size", 1),
                "price_min_micro": money.credits_to_micro(price.get("min_credits", "0")),
            },
        )
        kept = []
        for priority, route in enumerate(entry.get("routes", []), start=1):
            if route["provider"] != "local":
                provider = providers.get(route["provider"], {"kind": route["provider"]})
                ProviderAccount.objects.get_or_create(
                    slug=route["provider"], defaults={"kind": provider["kind"], "label": provider.get("label", "")}
                )
            seeded, _ = ModelRoute.objects.update_or_create(
                model=model,
                provider=route["provider"],
                upstream_model=route["upstream_model"],
                defaults={
                    "params": route.get("params", {}),
                    "priority": route.get("priority", priority * 10),
                    "seeded": True,
                },
            )
            kept.append(seeded.pk)
        # A route an earlier version of the file seeded and this one dropped would fail jobs: it goes.
        ModelRoute.objects.filter(model=model, seeded=True).exclude(pk__in=kept).delete()
        created += was_created
        updated += not was_created
    return created, updated


def provider_health_record(*, slug: str, error: str = "") -> None:
    """Keeps each upstream account's last success and last error for the admin (local engines have no account)."""
    now = timezone.now()
    accounts = ProviderAccount.objects.filter(slug=slug)
    if error:
        accounts.update(last_error_at=now, last_error=error[:500])
    else:
        accounts.update(last_success_at=now)


def provider_account_save(*, account: ProviderAccount, api_key: str | None = None) -> ProviderAccount:
    """Saves an account; `api_key` None keeps the stored key, "" clears it. Models served change at once."""
    if api_key is not None:
        account.set_api_key(api_key)
    account.save()  # the post_save receiver in apps.py drops the cached list of available providers
    return account
