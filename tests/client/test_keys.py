"""Keys with limits through the Python client (sync and async) and the `kiwiwhale keys` command, on the live server."""

import os
import subprocess
from decimal import Decimal

import kiwiwhale_client
import pytest
from kiwiwhale_client import AsyncKiwiWhale, KiwiWhale

from apps.accounts.models import ApiKey
from apps.accounts.services import api_key_create
from apps.generations.models import Job
from tests.client.conftest import KIWIWHALE, run_async
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def owner(web_server, catalog):
    user = make_user("key-owner", credits="5", account_type="agent")
    _, user.raw_key = api_key_create(user=user, name="main")
    return user


def test_the_client_creates_lists_updates_rotates_and_revokes_keys(web_server, owner):
    with KiwiWhale(owner.raw_key, base_url=web_server, max_retries=0) as client:
        created = client.key_create(
            "sub-agent",
            scopes=["generate"],
            spend_limit_total_credits="0",
            allowed_models=["local/*"],
            concurrency_limit=2,
        )
        sub = created["key"]
        assert created["api_key"].startswith(sub["prefix"]) and sub["scopes"] == ["generate"]
        assert sub["spend_limit_total_credits"] == 0 and sub["spend"]["total"] == 0
        assert {key["name"] for key in client.key_list()} == {"main", "sub-agent"}  # its own lineage
        # The sub-agent's key is refused over its budget, as a typed error, and cannot top up.
        with KiwiWhale(created["api_key"], base_url=web_server, max_retries=0) as sub_client:
            with pytest.raises(kiwiwhale_client.KeyLimitReached) as caught:
                sub_client.generate("local/procedural-image", {"prompt": "a kiwi", "width": 64})
            assert caught.value.limit == "total" and caught.value.status == 403
            with pytest.raises(kiwiwhale_client.InsufficientScope) as refused:
                sub_client.topup(10)
            assert refused.value.scope == "billing"
        updated = client.key_update(sub["id"], spend_limit_total_credits=Decimal("1.5"), concurrency_limit=None)
        assert updated["spend_limit_total_credits"] == Decimal("1.5") and updated["concurrency_limit"] is None
        assert updated["allowed_models"] == ["local/*"]  # left out: unchanged
        manager = client.key_create("manager", scopes=["generate", "keys"], spend_limit_day_credits=1)
        with KiwiWhale(manager["api_key"], base_url=web_server, max_retries=0) as manager_client:
            with pytest.raises(kiwiwhale_client.KeyEscalation) as escalation:
                manager_client.key_create("unbounded")  # no day limit: looser than its own
            assert escalation.value.field == "spend_limit_day_credits" and escalation.value.status == 403
            assert (
                manager_client.key_create("bounded", spend_limit_day_credits="0.5")["key"]["parent_id"]
                == (manager["key"]["id"])
            )
        rotated = client.key_rotate(sub["prefix"], grace_seconds=30)
        assert rotated["key"]["name"] == "sub-agent" and rotated["old_key"]["expires_at"] is not None
        revoked = client.key_revoke(rotated["key"]["id"])
        assert revoked["active"] is False
        assert client.usage(key=sub["id"])["key"]["prefix"] == sub["prefix"]
    assert not Job.objects.exists()


def test_the_async_client_manages_keys_too(web_server, owner):
    async def flow():
        async with AsyncKiwiWhale(owner.raw_key, base_url=web_server, max_retries=0) as client:
            created = await client.key_create("async", rpm_limit=10, expires_at="2099-01-01T00:00:00Z")
            listed = await client.key_list()
            updated = await client.key_update(created["key"]["id"], name="renamed", rpm_limit=None)
            rotated = await client.key_rotate(created["key"]["id"])
            revoked = await client.key_revoke(rotated["key"]["id"])
            return created, listed, updated, rotated, revoked

    created, listed, updated, rotated, revoked = run_async(flow)
    assert created["key"]["rpm_limit"] == 10 and created["key"]["expires_at"].startswith("2099-01-01")
    assert created["key"]["id"] in {key["id"] for key in listed}
    assert updated["name"] == "renamed" and updated["rpm_limit"] is None
    assert rotated["old_key"]["active"] is False and rotated["key"]["name"] == "renamed"
    assert revoked["active"] is False
    assert not ApiKey.objects.filter(name="renamed", revoked_at__isnull=True).exists()


def test_the_command_manages_keys(web_server, owner, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIWIWHALE_")}
    env |= {"XDG_CONFIG_HOME": str(tmp_path), "KIWIWHALE_BASE_URL": web_server, "KIWIWHALE_API_KEY": owner.raw_key}

    def kiwiwhale(*args):
        return subprocess.run([str(KIWIWHALE), *args], env=env, capture_output=True, text=True, timeout=60, check=False)

    made = kiwiwhale("keys", "create", "--name", "cli", "--scope", "generate", "--day", "2", "--model", "z-image")
    assert made.returncode == 0, made.stderr
    raw = made.stdout.strip()
    key = ApiKey.objects.get(name="cli")
    assert raw.startswith(key.prefix) and key.spend_limit_day_micro == 2_000_000 and key.allowed_models == ["z-image"]
    listing = kiwiwhale("keys")
    assert listing.returncode == 0 and f"{key.prefix}…" in listing.stdout and "day ≤ 2" in listing.stdout
    assert raw not in listing.stdout
    changed = kiwiwhale("keys", "update", key.prefix, "--day", "none", "--rpm", "30")
    assert changed.returncode == 0, changed.stderr
    key.refresh_from_db()
    assert key.spend_limit_day_micro is None and key.rpm_limit == 30 and key.allowed_models == ["z-image"]
    rotated = kiwiwhale("keys", "rotate", str(key.pk), "--grace", "60")
    assert rotated.returncode == 0 and rotated.stdout.strip().startswith("kw_")
    new_key = ApiKey.objects.get(name="cli", expires_at__isnull=True)
    assert kiwiwhale("keys", "revoke", str(new_key.pk)).returncode == 0
    assert not ApiKey.objects.get(pk=new_key.pk).is_active
    missing = kiwiwhale("keys", "revoke")
    assert missing.returncode == 2 and "needs the key" in missing.stderr
    refused = kiwiwhale("keys", "create", "--ip", "nope")
    assert refused.returncode == 1 and "allowed_ips" in refused.stderr
