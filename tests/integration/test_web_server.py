"""What `make run` serves, on the real server (scripts/web: uvicorn, ASGI, DEBUG off) with a real worker.

These are the figures a self-hoster sees on a fresh instance: 64 agents submitting at once on a wallet funded
for 10 get exactly 10 accepted and 54 clean 402s with no connection error; 128 simultaneous polls all answer 200;
an unknown address shows the project's 404; an output answers a byte range.
"""

import collections
import concurrent.futures

import httpx
import pytest

from apps.billing.models import LedgerEntry
from apps.billing.services import wallet_get
from apps.generations.models import Job
from tests.conftest import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

CHEAP = {"model": "local/procedural-image", "input": {"prompt": "a kiwi", "width": 64, "height": 64}}


def _call(method, url, **kwargs):
    try:
        return httpx.request(method, url, timeout=60, **kwargs).status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__


def test_it_takes_64_simultaneous_submits_on_a_wallet_funded_for_10_without_a_connection_error(
    web_server, celery_worker_process, catalog
):
    from apps.accounts.services import api_key_create

    user = make_user("racer", credits="0.1")  # ten jobs at 0.01
    _, key = api_key_create(user=user, name="race")
    headers = {"Authorization": f"Bearer {key}"}
    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        codes = collections.Counter(
            pool.map(
                lambda _: _call("POST", f"{web_server}/api/v1/generate.php", json=CHEAP, headers=headers), range(64)
            )
        )
    assert codes == {202: 10, 402: 54}
    assert wallet_get(user=user).balance_micro >= 0
    assert LedgerEntry.objects.filter(wallet__user=user, kind=LedgerEntry.Kind.DEBIT).count() == 10

    job = Job.objects.filter(user=user).first()
    with concurrent.futures.ThreadPoolExecutor(128) as pool:
        polls = collections.Counter(
            pool.map(
                lambda _: _call("GET", f"{web_server}/api/v1/jobs.php", params={"job_id": job.pk}, headers=headers),
                range(128),
            )
        )
    assert polls == {200: 128}


def test_it_serves_the_projects_404_static_files_and_output_ranges(web_server, celery_worker_process, catalog):
    page = httpx.get(f"{web_server}/no/such/page")
    assert page.status_code == 404
    assert "There is nothing at this address." in page.text and "URLconf" not in page.text
    assert httpx.get(f"{web_server}/api/v1/nope").json()["error"] == "not_found"

    home = httpx.get(f"{web_server}/")
    assert home.status_code == 200
    stylesheet = next(part.split('"')[1] for part in home.text.split("href=") if "site." in part.split('"')[1])
    assert ".css" in stylesheet and stylesheet != "/static/css/site.css"  # whitenoise's hashed, cacheable name
    css = httpx.get(f"{web_server}{stylesheet}")
    assert css.status_code == 200 and "max-age=315360000" in css.headers["cache-control"]

    from apps.accounts.services import api_key_create

    user = make_user("viewer", credits="1")
    _, key = api_key_create(user=user, name="range")
    headers = {"Authorization": f"Bearer {key}"}
    job_id = httpx.post(f"{web_server}/api/v1/generate.php", json=CHEAP, headers=headers).json()["job_id"]
    for _ in range(300):
        job = httpx.get(f"{web_server}/api/v1/jobs.php", params={"job_id": job_id}, headers=headers).json()
        if job["status"] == "completed":
            break
        import time

        time.sleep(0.1)
    url = job["outputs"][0]["url"]
    part = httpx.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    assert part.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert part.headers["content-range"].startswith("bytes 0-99/")
