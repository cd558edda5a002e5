"""drf-spectacular hooks that keep /openapi.json equal to what the server does.

- `published_paths_only` (preprocessing): the primary `.php` paths are documented; each operation lists its clean
  aliases (`x-aliases`, and a line of its description), which answer the same way.
- `contract_postprocess`: a `servers` entry with this instance's base URL (SITE_URL, else the request's); no
  `default` that the schema itself refuses (a generated client sends defaults, and `""` for an email or URL field
  would be refused with 400); `Retry-After` on every 429; and a `default` error response, so a client can read any
  error status as the contract's error shape.
"""

import json

from django.conf import settings
from jsonschema import Draft202012Validator

ERROR_REF = {"$ref": "#/components/schemas/Error"}


def published_paths_only(endpoints):
    """drf-spectacular hook: document the primary `.php` paths; the clean aliases answer the same way."""
    return [
        endpoint for endpoint in endpoints if not endpoint[0].startswith("/api/v1/") or endpoint[0].endswith(".php")
    ]


def api_aliases() -> dict[str, list[str]]:
    """Primary `.php` path → the clean alias paths that reach the same view (OpenAPI path syntax)."""
    from apps.api.urls import urlpatterns

    primary: dict[type, str] = {}
    aliases: dict[type, list[str]] = {}
    for pattern in urlpatterns:
        view = getattr(pattern.callback, "cls", None)
        route = "/api/v1/" + str(pattern.pattern).replace("<str:job_id>", "{job_id}")
        if route.endswith(".php"):
            primary.setdefault(view, route)
        else:
            aliases.setdefault(view, []).append(route)
    return {path: aliases.get(view, []) for view, path in primary.items()}


def contract_postprocess(result, generator, request, public):
    base_url = settings.SITE_URL or (request.build_absolute_uri("/").rstrip("/") if request is not None else "")
    if base_url:
        result["servers"] = [{"url": base_url, "description": "This instance."}]
    aliases = api_aliases()
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if "429" in responses:
                responses["429"].setdefault("headers", {})["Retry-After"] = {
                    "description": "Seconds to wait before trying again.",
                    "schema": {"type": "integer"},
                }
            responses.setdefault(
                "default",
                {
                    "description": "Any other error, in the contract's error shape.",
                    "content": {"application/json": {"schema": ERROR_REF}},
                },
            )
            if aliases.get(path):
                operation["x-aliases"] = aliases[path]
                listed = ", ".join(f"`{alias}`" for alias in aliases[path])
                operation["description"] = (
                    operation.get("description", "")
                    + f"\n\nClean alias (same behaviour, not the primary path): {listed}."
                ).strip()
    for component in result.get("components", {}).get("schemas", {}).values():
        _defaults_refused_drop(component)
    return result


def _defaults_refused_drop(schema) -> None:
    """Removes every `default` that does not validate against the schema it sits in, recursively."""
    if isinstance(schema, list):
        for item in schema:
            _defaults_refused_drop(item)
        return
    if not isinstance(schema, dict):
        return
    if "default" in schema and "$ref" not in json.dumps(schema):  # an enum's $ref: its default is one of it
        rest = {key: value for key, value in schema.items() if key != "default"}
        validator = Draft202012Validator(rest, format_checker=Draft202012Validator.FORMAT_CHECKER)
        if not validator.is_valid(schema["default"]):
            del schema["default"]
    for value in schema.values():
        if isinstance(value, dict | list):
            _defaults_refused_drop(value)
