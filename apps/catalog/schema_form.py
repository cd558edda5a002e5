"""A model's input JSON Schema turned into what the pages show: form controls, an example input, the price rule.

Presentation only: the API validates every input against the schema itself (apps.catalog.services.input_validate).
"""

import json
from dataclasses import dataclass, field
from typing import Any

from apps.billing import money
from apps.catalog.models import AIModel

# The icon (static/icons) that stands for each category on the catalog and the model pages.
CATEGORY_ICONS = {
    "text-to-image": "image",
    "image-to-image": "image-edit",
    "text-to-video": "video",
    "image-to-video": "video",
    "text-to-audio": "audio",
    "audio-to-text": "transcribe",
    "text-to-text": "text",
    "chat": "chat",
    "tools": "tool",
}


# Free-text fields that deserve a multi-line box whatever their length limit.
TEXTAREA_NAMES = {"prompt", "negative_prompt", "text", "system", "lyrics", "instructions", "message"}
TEXTAREA_MIN_LENGTH = 256  # a string allowed to be longer than this gets a textarea
UPLOAD_MODEL = "kiwiwhale/upload"

# Where a control goes in the form: what to write first, tuning last. Ties keep the schema's order.
_CONTROL_RANK = {"textarea": 0, "url": 1, "urls": 1, "text": 2, "select": 3, "number": 4, "checkbox": 5, "json": 6}
_SEED_RANK = 9


@dataclass
class FormField:
    name: str
    label: str
    control: str  # textarea | text | url | urls | select | number | checkbox | json
    json_type: str  # what the API expects: string, integer, number, boolean, array, object
    required: bool
    help: str = ""
    value: Any = None  # the initial value: a prefill, else the schema's default
    minimum: Any = None
    maximum: Any = None
    step: str = ""
    min_length: int | None = None
    max_length: int | None = None
    options: list[tuple[str, str]] = field(default_factory=list)  # (JSON-encoded value, label)
    is_seed: bool = False
    upload: bool = False  # a file picker that stores the file through the upload model
    upload_direct: bool = False  # on the upload model itself: the picked file becomes the data: URL to send

    @property
    def value_text(self) -> str:
        """The initial value as the control's text."""
        if self.value is None:
            return ""
        if self.control == "urls":
            return "\n".join(str(v) for v in self.value) if isinstance(self.value, list) else str(self.value)
        if self.control == "json":
            return json.dumps(self.value, indent=2)
        if self.control == "select":
            return json.dumps(self.value)
        return str(self.value)

    @property
    def checked(self) -> bool:
        return self.value is True

    @property
    def help_id(self) -> str:
        return f"f-{self.name}-help"


def field_label(name: str, prop: dict) -> str:
    if prop.get("title"):
        return str(prop["title"])
    words = name.split("_")
    if words[0] == "num" and len(words) > 1:
        words = ["number", "of", *words[1:]]
    words = [{"url": "URL", "urls": "URLs", "id": "ID", "fps": "FPS", "tts": "TTS"}.get(w, w) for w in words]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def _json_type(prop: dict) -> str:
    kind = prop.get("type")
    if isinstance(kind, list):  # ["string", "null"]: the first non-null type
        kind = next((k for k in kind if k != "null"), "string")
    if kind:
        return kind
    if prop.get("enum"):
        first = prop["enum"][0]
        return {bool: "boolean", int: "integer", float: "number"}.get(type(first), "string")
    return "string"


def _control(name: str, prop: dict, json_type: str) -> str:
    if prop.get("enum"):
        return "select"
    if json_type == "boolean":
        return "checkbox"
    if json_type in ("integer", "number"):
        return "number"
    if json_type == "string":
        if name.endswith("_url") or prop.get("format") in ("uri", "url", "iri"):
            return "url"
        max_length = prop.get("maxLength")
        if name in TEXTAREA_NAMES or (max_length is not None and max_length > TEXTAREA_MIN_LENGTH):
            return "textarea"
        return "text"
    if json_type == "array" and name.endswith("_urls") and (prop.get("items") or {}).get("type", "string") == "string":
        return "urls"
    return "json"


def form_fields(model: AIModel, *, initial: dict | None = None, upload_available: bool = False) -> list[FormField]:
    """One control per input property, the required and the free-text ones first, the seed last."""
    schema = model.input_schema or {}
    required = set(schema.get("required") or [])
    initial = initial or {}
    fields = []
    for index, (name, prop) in enumerate((schema.get("properties") or {}).items()):
        if not isinstance(prop, dict):
            continue
        json_type = _json_type(prop)
        control = _control(name, prop, json_type)
        item = FormField(
            name=name,
            label=field_label(name, prop),
            control=control,
            json_type=json_type,
            required=name in required,
            help=str(prop.get("description") or ""),
            value=initial.get(name, prop.get("default")),
            minimum=prop.get("minimum", prop.get("exclusiveMinimum")),
            maximum=prop.get("maximum", prop.get("exclusiveMaximum")),
            step=str(prop.get("multipleOf") or ("1" if json_type == "integer" else "any")),
            min_length=prop.get("minLength"),
            max_length=prop.get("maxLength"),
            options=[(json.dumps(v), str(v)) for v in prop.get("enum") or []],
            is_seed=name == "seed" and json_type == "integer",
            upload=(upload_available or model.public_model == UPLOAD_MODEL) and control in ("url", "urls"),
            upload_direct=model.public_model == UPLOAD_MODEL,
        )
        rank = _SEED_RANK if item.is_seed else _CONTROL_RANK[control]
        order = prop.get("x-order", 1000)
        fields.append(((0 if item.required else 1, order, rank, index), item))
    return [item for _, item in sorted(fields, key=lambda pair: pair[0])]


_EXAMPLE_STRINGS = {
    "prompt": "a dog on a skateboard",
    "negative_prompt": "blurry",
    "text": "Hello from KiwiWhale!",
    "system": "You are a helpful assistant.",
}


def _example_url(name: str) -> str:
    if "video" in name:
        return "https://example.com/input.mp4"
    if "audio" in name:
        return "https://example.com/input.mp3"
    if "image" in name:
        return "https://example.com/input.png"
    return "https://example.com/input.bin"


def example_input(model: AIModel) -> dict:
    """A small valid-looking input for code samples: the required fields, each with a plausible value."""
    schema = model.input_schema or {}
    properties = schema.get("properties") or {}
    example = {}
    for name in schema.get("required") or []:
        prop = properties.get(name) or {}
        json_type = _json_type(prop)
        if "default" in prop:
            example[name] = prop["default"]
        elif prop.get("enum"):
            example[name] = prop["enum"][0]
        elif json_type == "string":
            example[name] = (
                _example_url(name) if _control(name, prop, json_type) == "url" else _EXAMPLE_STRINGS.get(name, "…")
            )
        elif json_type in ("integer", "number"):
            example[name] = prop.get("minimum", 1)
        elif json_type == "boolean":
            example[name] = False
        elif json_type == "array":
            count = max(1, prop.get("minItems", 1))
            example[name] = [_example_url(name)] * count if name.endswith("_urls") else []
        else:
            example[name] = {}
    return example


def price_descriptor(model: AIModel) -> dict:
    """The price rule as the playground's script applies it (the same arithmetic as AIModel.cost_micro)."""
    unit = model.price_unit
    defaults = {
        name: prop["default"]
        for name, prop in ((model.input_schema or {}).get("properties") or {}).items()
        if isinstance(prop, dict) and "default" in prop
    }
    return {
        "price_micro": model.price_micro,
        "unit_field": unit.removeprefix("len:"),
        "unit_is_length": unit.startswith("len:"),
        "unit_size": model.price_unit_size,
        "min_micro": model.price_min_micro,
        "defaults": defaults,
        "micro": money.MICRO,
    }


_UNIT_WORDS = {
    "num_images": ("image", "images"),
    "num_outputs": ("output", "outputs"),
    "duration": ("second", "seconds"),
    "seconds": ("second", "seconds"),
}


def price_label(model: AIModel) -> str:
    """How the price reads to a person: '0.05 credits per image', '0.01 credits per 1,000 characters of text'."""
    amount = f"{money.format_credits(model.price_micro)} credits"
    if not model.price_unit:
        text = "Free" if model.price_micro == 0 and model.price_min_micro == 0 else f"{amount} per run"
    elif model.price_unit.startswith("len:"):
        size = model.price_unit_size
        per = "character" if size == 1 else f"{size:,} characters"
        text = f"{amount} per {per} of {model.price_unit.removeprefix('len:').replace('_', ' ')}"
    else:
        singular, plural = _UNIT_WORDS.get(model.price_unit, (model.price_unit.replace("_", " "), None))
        size = model.price_unit_size
        text = f"{amount} per {singular}" if size == 1 else f"{amount} per {size:,} {plural or singular}"
    if model.price_min_micro and model.price_unit:
        text += f" (at least {money.format_credits(model.price_min_micro)})"
    return text
