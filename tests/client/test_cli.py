"""The `kiwiwhale` command, run as a user runs it (a subprocess), against the live server and worker."""

import json
import os
import stat
import subprocess

import pytest
from PIL import Image

from apps.billing import money
from apps.billing.services import wallet_get
from apps.generations.models import Job
from tests.client.conftest import KIWIWHALE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def kiwiwhale(*args: str, env: dict, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(KIWIWHALE), *args], env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def test_it_logs_in_lists_models_and_generates_a_png_into_a_folder(web_server, agent, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIWIWHALE_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")

    login = kiwiwhale("login", "--base-url", web_server, env=env, stdin=agent.raw_key + "\n")
    assert login.returncode == 0, login.stderr
    config = tmp_path / "config" / "kiwiwhale" / "config.json"
    assert json.loads(config.read_text()) == {"base_url": web_server, "api_key": agent.raw_key}
    assert stat.S_IMODE(config.stat().st_mode) == 0o600

    models = kiwiwhale("models", "--category", "text-to-image", "--json", env=env)  # from the config file
    assert models.returncode == 0, models.stderr
    assert "local/procedural-image" in {model["public_model"] for model in json.loads(models.stdout)}

    out = tmp_path / "out"
    generated = kiwiwhale(
        "generate", "local/procedural-image", "-i", "prompt=a kiwi, 42", "-i", "width=64", "-i", "height=64",
        "--wait", "-o", str(out), env=env,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    job = Job.objects.get(user=agent)
    assert job.input["prompt"] == "a kiwi, 42" and job.input["width"] == 64  # typed by the model's schema
    assert f"{job.pk} completed" in generated.stderr  # the progress line
    (png,) = out.iterdir()
    assert str(png) in generated.stdout
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (64, 64)
    assert money.credits_to_micro("5") - wallet_get(user=agent).balance_micro == job.cost_micro

    credits = kiwiwhale("credits", env={**env, "KIWIWHALE_API_KEY": "kw_not-a-key"})  # the environment wins
    assert credits.returncode == 1 and "401 unauthorized" in credits.stderr
    jobs = kiwiwhale("jobs", "--json", env=env)
    assert [listed["job_id"] for listed in json.loads(jobs.stdout)["jobs"]] == [job.pk]

    registered = kiwiwhale("register", "--name", "CLI agent", "--json", env=env)
    assert registered.returncode == 0, registered.stderr
    new_key = json.loads(registered.stdout)["api_key"]
    assert json.loads(config.read_text()) == {"base_url": web_server, "api_key": new_key}  # the new account's now
    assert kiwiwhale("credits", env=env).stdout.strip() == "0"
