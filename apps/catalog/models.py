from django.db import models

from apps.billing import money
from kiwiwhale.lib import crypto


class Category(models.TextChoices):
    TEXT_TO_IMAGE = "text-to-image", "Text to image"
    IMAGE_TO_IMAGE = "image-to-image", "Image to image"
    TEXT_TO_VIDEO = "text-to-video", "Text to video"
    IMAGE_TO_VIDEO = "image-to-video", "Image to video"
    TEXT_TO_AUDIO = "text-to-audio", "Text to audio"
    AUDIO_TO_TEXT = "audio-to-text", "Audio to text"
    TEXT_TO_TEXT = "text-to-text", "Text to text"
    CHAT = "chat", "Chat"
    TOOLS = "tools", "Tools"


class AIModelQuerySet(models.QuerySet):
    def servable(self, provider_keys):
        """Enabled models with at least one enabled route on a provider that can run now."""
        return self.filter(
            enabled=True,
            routes__enabled=True,
            routes__provider__in=provider_keys,
        ).distinct()


class AIModel(models.Model):
    public_model = models.CharField(max_length=120, unique=True, help_text="The id agents send as `model`.")
    product_id = models.CharField(max_length=120)
    label = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=20, choices=Category.choices, db_index=True)
    input_schema = models.JSONField(help_text="JSON Schema (draft 2020-12) of the generate input.")
    enabled = models.BooleanField(default=True)
    sort_order = models.IntegerField(default=100)

    # Price rule: price_micro per run, or per `price_unit_size` units of `price_unit` when that is set.
    # `price_unit` is an input field: its number (e.g. "duration", "num_images"), or with a "len:" prefix the
    # length of its text (e.g. "len:text" for TTS billed per 1,000 characters).
    price_micro = models.BigIntegerField(default=0)
    price_unit = models.CharField(max_length=60, blank=True)
    price_unit_size = models.PositiveIntegerField(default=1)
    price_min_micro = models.BigIntegerField(default=0)

    objects = AIModelQuerySet.as_manager()

    class Meta:
        ordering = ["sort_order", "public_model"]
        verbose_name = "AI model"

    def __str__(self):
        return self.public_model

    @property
    def base_cost_micro(self) -> int:
        """The cost of a run with the schema's defaults, as listed in the catalog."""
        return self.cost_micro(_schema_defaults(self.input_schema))

    def cost_micro(self, validated_input: dict) -> int:
        if not self.price_unit:
            return max(self.price_min_micro, self.price_micro)
        field = self.price_unit.removeprefix("len:")
        value = validated_input.get(field)
        if self.price_unit.startswith("len:"):
            units = len(value) if isinstance(value, str | list) else 0
        else:
            units = value if isinstance(value, int | float) and not isinstance(value, bool) else 1
        units_micro = money.credits_to_micro(units)  # exact even for fractional units such as 2.5 seconds
        cost = money.units_cost_micro(units_micro, price_micro=self.price_micro, unit_size=self.price_unit_size)
        return max(self.price_min_micro, cost)


class ModelRoute(models.Model):
    """One way to serve a model: a provider, its upstream model id and parameter mapping, in priority order."""

    model = models.ForeignKey(AIModel, on_delete=models.CASCADE, related_name="routes")
    provider = models.CharField(max_length=40, help_text="A key of the provider registry, e.g. local, fal, openai.")
    upstream_model = models.CharField(max_length=200, help_text="The provider's id for this model (or engine).")
    params = models.JSONField(default=dict, blank=True, help_text="Parameter mapping and fixed options.")
    priority = models.PositiveSmallIntegerField(default=10, help_text="Lower goes first.")
    enabled = models.BooleanField(default=True)
    seeded = models.BooleanField(
        default=False, editable=False, help_text="Comes from the catalog file: removed when the file drops it."
    )

    class Meta:
        ordering = ["priority", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["model", "provider", "upstream_model"], name="route_unique_per_model")
        ]

    def __str__(self):
        return f"{self.model} → {self.provider}:{self.upstream_model}"


def _schema_defaults(schema: dict) -> dict:
    return {
        name: prop["default"]
        for name, prop in (schema.get("properties") or {}).items()
        if isinstance(prop, dict) and "default" in prop
    }


class ProviderAccount(models.Model):
    """An upstream service this instance may call: its adapter kind, where it is and the credentials to use.

    Routes name an account by `slug` (several accounts may share a kind: `openai` and `ollama` are both
    OpenAI-compatible). The API key is stored encrypted and never shown back.
    """

    slug = models.SlugField(max_length=40, unique=True, help_text="What routes call it, e.g. fal, openai, ollama.")
    kind = models.CharField(max_length=40, help_text="The adapter that speaks its protocol (the provider registry).")
    label = models.CharField(max_length=100, blank=True)
    enabled = models.BooleanField(default=False)
    base_url = models.URLField(blank=True, help_text="Empty: the provider's public API. Set it for self-hosted ones.")
    api_key_encrypted = models.TextField(blank=True, editable=False)
    options = models.JSONField(default=dict, blank=True, help_text="Adapter options, e.g. ComfyUI workflows.")
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.label or self.slug

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)

    @property
    def api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted) if self.api_key_encrypted else ""

    def set_api_key(self, raw: str) -> None:
        self.api_key_encrypted = crypto.encrypt(raw) if raw else ""

    @property
    def healthy(self) -> bool:
        return not self.last_error_at or bool(self.last_success_at and self.last_success_at > self.last_error_at)
