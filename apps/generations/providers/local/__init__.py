"""Engines that run on the instance itself, with no key and no network: a fresh install can serve them."""

from django.utils.module_loading import import_string

from apps.generations.providers import Provider, ProviderError, RunResult

ENGINES = {
    "upload": "apps.generations.providers.local.upload.run",
    "procedural-image": "apps.generations.providers.local.image.run",
}


class LocalProvider(Provider):
    key = "local"

    def run(self, *, upstream_model: str, params: dict, input: dict) -> RunResult:
        if upstream_model not in ENGINES:
            raise ProviderError(f"The local engine {upstream_model!r} does not exist.", code="engine_missing")
        return import_string(ENGINES[upstream_model])({**params, **input})
