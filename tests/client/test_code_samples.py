"""The model page's client and command-line samples, copied from the live page and run as a user runs them."""

import html
import os
import re
import subprocess
import sys

import httpx
import pytest
from PIL import Image

from apps.billing.services import wallet_get
from apps.catalog.snippets import ANONYMOUS_KEY_PLACEHOLDER
from apps.generations.models import Job
from tests.client.conftest import KIWIWHALE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
MODEL = "local/procedural-image"


def _sample(web_server: str, name: str) -> str:
    page = httpx.get(f"{web_server}/model-code.php", params={"model": MODEL}, timeout=30).text
    return html.unescape(re.search(rf'<pre id="code-{name}"[^>]*>(.*?)</pre>', page, re.S).group(1))


def _env(tmp_path, key: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIWIWHALE_")}
    return {**env, "XDG_CONFIG_HOME": str(tmp_path / "config"), "KIWIWHALE_API_KEY": key,
            "PATH": f"{KIWIWHALE.parent}:{env.get('PATH', '')}"}  # fmt: skip


def _one_png(folder) -> None:
    (path,) = list(folder.iterdir())
    with Image.open(path) as image:
        assert image.format == "PNG"


def test_the_client_sample_runs_as_copied_and_pays_for_one_job(web_server, agent, tmp_path):
    before = wallet_get(user=agent).balance_micro
    script = tmp_path / "sample.py"
    script.write_text(_sample(web_server, "client"))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=_env(tmp_path, agent.raw_key), capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (job,) = Job.objects.filter(user=agent)
    assert job.status == Job.Status.COMPLETED
    assert f"cost: {job.cost_micro / 1_000_000:g} credits" in done.stdout
    _one_png(tmp_path / "out")
    assert before - wallet_get(user=agent).balance_micro == job.cost_micro


def test_the_command_line_sample_runs_as_copied_with_the_key_pasted(web_server, agent, tmp_path):
    before = wallet_get(user=agent).balance_micro
    sample = _sample(web_server, "cli")
    assert ANONYMOUS_KEY_PLACEHOLDER in sample
    pasted = sample.replace(ANONYMOUS_KEY_PLACEHOLDER, agent.raw_key)
    done = subprocess.run(
        ["bash", "-e", "-c", pasted], cwd=tmp_path, env=_env(tmp_path, "kw_not-the-pasted-one"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (job,) = Job.objects.filter(user=agent)
    assert job.status == Job.Status.COMPLETED and job.pk in done.stdout
    _one_png(tmp_path / "out")
    assert before - wallet_get(user=agent).balance_micro == job.cost_micro
