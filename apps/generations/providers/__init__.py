"""Provider adapters: an explicit registry `kind → "dotted.path.Class"`, imported lazily.

An adapter converts a job's validated input into outputs through one engine or upstream API. It never touches
the ledger or the database: the generations services do that with what it returns. Upstream accounts
(credentials, base URL) are `catalog.ProviderAccount` rows; routes name them by slug, "local" needs none.
Adding a provider: a module here, a line in PROVIDERS, catalog routes, a protocol test; see docs/providers.md.
"""

from dataclasses import dataclass, field

from django.core.cache import cache
from django.utils.module_loading import import_string

from kiwiwhale.lib.redis_pool import cache_get

PROVIDERS = {
    "local": "apps.generations.providers.local.LocalProvider",
    "openai": "apps.generations.providers.openai.OpenAIProvider",
    "openai_compatible": "apps.generations.providers.openai.OpenAICompatibleProvider",
    "comfyui": "apps.generations.providers.comfyui.ComfyUIProvider",
    "fal": "apps.generations.providers.fal.FalProvider",
    "replicate": "apps.generations.providers.replicate.ReplicateProvider",
}
LOCAL = "local"
AVAILABLE_CACHE_KEY = "providers:available"
AVAILABLE_CACHE_SECONDS = 30


class ProviderError(Exception):
    """A run that failed. `message` is safe to show the user; `retryable` says whether another try may work."""

    def __init__(self, message: str, *, retryable: bool = False, code: str = "provider_error"):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.code = code


@dataclass
class OutputData:
    type: str  # image | video | audio | text | json
    content_type: str
    file_name: str
    content: bytes = b""
    text: str = ""
    data: dict | list | None = None
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None


@dataclass
class RunResult:
    outputs: list[OutputData]
    usage: dict = field(default_factory=dict)


@dataclass
class Pending:
    """A long upstream job was submitted (or is still running): poll again with `state` after `retry_after`."""

    state: dict
    upstream_id: str = ""
    retry_after: float | None = None


@dataclass(frozen=True)
class ProviderConfig:
    slug: str
    api_key: str = ""
    base_url: str = ""
    options: dict = field(default_factory=dict)


class Provider:
    kind = ""
    needs_api_key = True  # a self-hosted engine (ComfyUI, Ollama) may need only its base URL
    default_base_url = ""
    # Whether `run` takes `on_text`, a callable it gives each piece of a text answer as the upstream sends it.
    streams_text = False

    def __init__(self, config: ProviderConfig | None = None):
        self.config = config or ProviderConfig(slug=self.kind)

    @classmethod
    def account_ready(cls, account) -> bool:
        """Whether an enabled account has what this kind needs to serve (the models it routes are listed)."""
        return account.has_api_key or not cls.needs_api_key

    @property
    def base_url(self) -> str:
        return (self.config.base_url or self.default_base_url).rstrip("/")

    def run(self, *, upstream_model: str, params: dict, input: dict) -> RunResult | Pending:
        raise NotImplementedError

    def poll(self, *, upstream_model: str, params: dict, input: dict, state: dict) -> RunResult | Pending:
        raise ProviderError("This provider does not run long jobs.", code="provider_error")

    def cancel(self, *, upstream_model: str, params: dict, state: dict) -> None:
        """Best effort: asks the upstream to stop a submitted job. Raises nothing the caller must handle."""


def input_for_upstream(input: dict, params: dict) -> dict:
    """The job's input as a route's upstream names it.

    A route's `params` may hold `rename` ({our field: their field}), `drop` ([our fields not to send]) and
    `fixed` ({their field: value} always sent, overriding the input); any other keys are the adapter's own.
    """
    rename, drop = params.get("rename", {}), set(params.get("drop", []))
    mapped = {rename.get(name, name): value for name, value in input.items() if name not in drop}
    return {**mapped, **params.get("fixed", {})}


def provider_class(kind: str) -> type[Provider]:
    return import_string(PROVIDERS[kind])


def provider_for(slug: str) -> Provider:
    """The adapter for a route's provider slug, configured with that account's credentials."""
    if slug == LOCAL:
        return provider_class(LOCAL)()
    from apps.catalog.models import ProviderAccount

    account = ProviderAccount.objects.filter(slug=slug, enabled=True).first()
    if account is None or account.kind not in PROVIDERS:
        raise ProviderError("This provider is not configured on this instance.", code="model_unavailable")
    config = ProviderConfig(slug=slug, api_key=account.api_key, base_url=account.base_url, options=account.options)
    return provider_class(account.kind)(config)


def provider_keys_available() -> list[str]:
    """Slugs of the providers that can run now: local, and enabled accounts that have what their kind needs."""
    slugs = cache_get(AVAILABLE_CACHE_KEY)
    if slugs is None:
        from apps.catalog.models import ProviderAccount

        slugs = [LOCAL] + [
            account.slug
            for account in ProviderAccount.objects.filter(enabled=True, kind__in=list(PROVIDERS))
            if provider_class(account.kind).account_ready(account)
        ]
        cache.set(AVAILABLE_CACHE_KEY, slugs, AVAILABLE_CACHE_SECONDS)
    return slugs


def provider_availability_changed() -> None:
    cache.delete(AVAILABLE_CACHE_KEY)


def models_servable():
    """The catalog's models that can run here now (a queryset: one query, whatever the size of the catalog)."""
    from apps.catalog.models import AIModel

    return AIModel.objects.servable(provider_keys_available())
