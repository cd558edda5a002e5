from pathlib import Path

import pytest

from apps.catalog.models import AIModel, ProviderAccount
from apps.generations import providers
from apps.generations.providers import OutputData, Provider, ProviderError, RunResult
from apps.generations.services import job_create


@pytest.fixture
def media_root(settings, tmp_path) -> Path:
    """A media folder of this test's own, so it can see every file a run left behind."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def stored_files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


class BrokenProvider(Provider):
    """A provider whose upstream always answers 5xx (retryable) — a stand-in for an outage."""

    kind = "broken"
    needs_api_key = False
    calls = 0

    def run(self, *, upstream_model, params, input):
        BrokenProvider.calls += 1
        raise ProviderError("Upstream answered 503.", retryable=upstream_model == "retryable")


class EchoProvider(Provider):
    kind = "echo"
    needs_api_key = False

    def run(self, *, upstream_model, params, input):
        return RunResult(
            outputs=[
                OutputData(
                    type="text",
                    content_type="text/plain",
                    file_name="out.txt",
                    content=input["prompt"].encode(),
                    text=input["prompt"],
                )
            ]
        )


@pytest.fixture
def test_providers(monkeypatch, db):
    monkeypatch.setitem(providers.PROVIDERS, "broken", f"{__name__}.BrokenProvider")
    monkeypatch.setitem(providers.PROVIDERS, "echo", f"{__name__}.EchoProvider")
    for slug in ("broken", "echo"):
        ProviderAccount.objects.create(slug=slug, kind=slug, enabled=True)
    BrokenProvider.calls = 0


@pytest.fixture
def text_model(db):
    return AIModel.objects.create(
        public_model="test/echo",
        product_id="test/echo",
        label="Echo",
        category="text-to-text",
        input_schema={"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]},
        price_micro=500_000,
    )


def submit(user, model, prompt="hello"):
    return job_create(user=user, model=model, input={"prompt": prompt})
