"""The operator's setup page: which providers are configured, a real connection test for each kind, and the
catalog models a provider lights up. Credentials are stored on catalog.ProviderAccount (encrypted)."""

from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from apps.catalog.models import AIModel, Category, ModelRoute, ProviderAccount
from apps.contact.services import mail_delivers
from apps.generations.providers import ProviderError, provider_availability_changed, provider_keys_available
from apps.generations.providers.http import UpstreamClient

# kind → (label, default base URL, whether a key is needed, what the base URL looks like)
KINDS = {
    "openai": ("OpenAI", "https://api.openai.com/v1", True, "https://api.openai.com/v1"),
    "openai_compatible": ("OpenAI-compatible server (Ollama, vLLM, LocalAI…)", "", False, "http://127.0.0.1:11434/v1"),
    "fal": ("fal.ai", "", True, ""),
    "replicate": ("Replicate", "https://api.replicate.com/v1", True, ""),
    "comfyui": ("ComfyUI", "", False, "http://127.0.0.1:8188"),
}
CHAT_SCHEMA = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "minLength": 1, "pattern": "\\S", "maxLength": 100000},
        "system": {"type": "string", "maxLength": 20000},
    },
    "required": ["prompt"],
    "additionalProperties": False,
}
TEST_TIMEOUT_SECONDS = 10.0


@dataclass
class ConnectionReport:
    ok: bool
    message: str
    models: list[str] = field(default_factory=list)


def connection_test(*, kind: str, base_url: str = "", api_key: str = "") -> ConnectionReport:
    """Calls the provider for real with these settings and says what it found. Nothing is saved."""
    label, default_url, needs_key, _ = KINDS[kind]
    base_url = (base_url or default_url).rstrip("/")
    if needs_key and not api_key:
        return ConnectionReport(False, f"{label} needs an API key.")
    if kind == "fal":
        return ConnectionReport(
            True, "fal.ai has no call that checks a key without running a model: the key is tried on the first job."
        )
    if not base_url:
        return ConnectionReport(False, f"{label} needs a base URL, e.g. {KINDS[kind][3]}.")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with UpstreamClient(base_url=base_url, headers=headers, provider=label, timeout=TEST_TIMEOUT_SECONDS) as client:
            if kind in ("openai", "openai_compatible"):
                data = client.json("GET", "/models", retries=0)
                models = sorted(str(m["id"]) for m in data.get("data", []) if isinstance(m, dict) and "id" in m)
                return ConnectionReport(True, f"Connected: {base_url} serves {len(models)} model(s).", models)
            if kind == "replicate":
                data = client.json("GET", "/account", retries=0)
                return ConnectionReport(True, f"Connected as {data.get('username', 'an unnamed account')}.")
            data = client.json("GET", "/system_stats", retries=0)  # comfyui
            version = (data.get("system") or {}).get("comfyui_version", "unknown")
            devices = ", ".join(d.get("name", "?") for d in data.get("devices", [])) or "no device listed"
            return ConnectionReport(True, f"Connected: ComfyUI {version} on {devices}.")
    except ProviderError as exc:
        return ConnectionReport(False, exc.message)
    except (AttributeError, TypeError, KeyError):
        return ConnectionReport(False, f"{base_url} answered, but not in {label}'s format.")


@transaction.atomic
def provider_save(
    *, slug: str, kind: str, base_url: str, api_key: str, enabled: bool, serve_models: list[str] = ()
) -> ProviderAccount:
    """Creates or updates the account (an empty key keeps the stored one) and, for an OpenAI-compatible server,
    adds a chat model to the catalog for each of `serve_models` (`<slug>/<model id>`, free until priced)."""
    account, _ = ProviderAccount.objects.get_or_create(slug=slug, defaults={"kind": kind})
    account.kind = kind
    account.label = account.label or KINDS[kind][0]
    account.base_url = base_url
    account.enabled = enabled
    if api_key:
        account.set_api_key(api_key)
    account.save()
    for upstream_model in serve_models:
        model, _ = AIModel.objects.get_or_create(
            public_model=f"{slug}/{upstream_model}"[:120],
            defaults={
                "product_id": f"{slug}/{upstream_model}"[:120],
                "label": f"{upstream_model} ({slug})",
                "description": f"A chat model served by {base_url} (added on the setup page).",
                "category": Category.CHAT,
                "input_schema": CHAT_SCHEMA,
                "sort_order": 200,
            },
        )
        ModelRoute.objects.get_or_create(
            model=model, provider=slug, upstream_model=upstream_model, defaults={"params": {"operation": "chat"}}
        )
    transaction.on_commit(provider_availability_changed)
    return account


@dataclass
class ProviderRow:
    account: ProviderAccount
    ready: bool
    models: list[str]  # public ids of the catalog models it routes
    servable: list[str]  # …of which the catalog serves now


def providers_overview() -> list[ProviderRow]:
    available = set(provider_keys_available())
    servable = set(AIModel.objects.servable(list(available)).values_list("public_model", flat=True))
    rows = []
    for account in ProviderAccount.objects.all():
        routed = sorted(
            set(ModelRoute.objects.filter(provider=account.slug).values_list("model__public_model", flat=True))
        )
        rows.append(
            ProviderRow(
                account=account,
                ready=account.slug in available,
                models=routed,
                servable=[name for name in routed if name in servable],
            )
        )
    return rows


def email_status() -> str:
    if not mail_delivers():
        backend = settings.EMAIL_BACKEND.rsplit(".", 2)[-2]
        return f"Not sending: mail goes to the {backend} backend. Set EMAIL_URL (e.g. smtp://user:pass@host:587)."
    return f"Sending through {settings.EMAIL_BACKEND} as {settings.DEFAULT_FROM_EMAIL}."
