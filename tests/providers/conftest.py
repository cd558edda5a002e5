"""Fake upstream servers, provider accounts pointed at them, and polls collected instead of enqueued."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from apps.catalog.models import ProviderAccount
from apps.catalog.services import provider_account_save
from tests.providers.fakes import FakeFal, FakeReplicate


@pytest.fixture(autouse=True)
def _quick_retries(settings):
    settings.UPSTREAM_RETRY_BASE_SECONDS = 0.01


@pytest.fixture
def fal_fake():
    fake = FakeFal().start()
    yield fake
    fake.stop()


@pytest.fixture
def replicate_fake():
    fake = FakeReplicate().start()
    yield fake
    fake.stop()


def account_connect(slug: str, *, base_url: str, api_key: str) -> ProviderAccount:
    """What an admin does: the seeded account gets its key and (for tests only) a base URL, and is enabled."""
    account = ProviderAccount.objects.get(slug=slug)
    account.enabled = True
    account.base_url = base_url
    return provider_account_save(account=account, api_key=api_key)


@pytest.fixture
def fal_account(catalog, fal_fake):
    return account_connect("fal", base_url=fal_fake.url, api_key=fal_fake.key)


@pytest.fixture
def replicate_account(catalog, replicate_fake):
    return account_connect("replicate", base_url=f"{replicate_fake.url}/v1", api_key=replicate_fake.key)


@pytest.fixture
def polls(monkeypatch):
    """The job ids whose poll the services enqueued; tests call job_poll themselves."""
    enqueued = []
    monkeypatch.setattr(
        "apps.generations.services.job_poll_enqueue", lambda *, job_id, delay=0: enqueued.append(job_id)
    )
    return enqueued


@pytest.fixture
def own_output():
    """Stores a file as one of this instance's outputs; returns its public URL (as jobs.php shows it)."""
    names = []

    def store(content: bytes, file_name: str) -> str:
        name = default_storage.save(f"outputs/2025/01/test-{len(names)}-token/{file_name}", ContentFile(content))
        names.append(name)
        return f"http://testserver{default_storage.url(name)}"

    yield store
    for name in names:
        default_storage.delete(name)
