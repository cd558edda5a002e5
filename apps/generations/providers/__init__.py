"""Provider adapters: an explicit registry `key → "dotted.path.Class"`, imported lazily.

An adapter converts a job's validated input into outputs through one engine or upstream API. It never touches
the ledger or the database: the generations services do that with what it returns.
Adding a provider: a module here, a line in PROVIDERS, catalog routes, its settings, a protocol test.
"""

from dataclasses import dataclass, field
from functools import cache

from django.utils.module_loading import import_string

PROVIDERS = {
    "local": "apps.generations.providers.local.LocalProvider",
}


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


class Provider:
    key = ""

    def is_available(self) -> bool:
        return True

    def run(self, *, upstream_model: str, params: dict, input: dict) -> RunResult:
        raise NotImplementedError


@cache
def provider_get(key: str) -> Provider:
    return import_string(PROVIDERS[key])()


def provider_keys_available() -> list[str]:
    return [key for key in PROVIDERS if provider_get(key).is_available()]
