"""Outputs on S3 through django-storages, against a real S3-protocol server (moto's, on loopback).

The web server and the worker run as their own processes with the bucket configured, exactly as in production:
the worker writes the output to the bucket, the API answers the bucket's URL, and that URL serves the bytes.
"""

import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import httpx
import pytest
from django.conf import settings

from apps.accounts.services import api_key_create
from tests.conftest import ROOT, _free_port, make_user, service_env, wait_for_http

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3(tmp_path):
    port = _free_port()
    log = open(tmp_path / "moto.log", "w")  # noqa: SIM115 - closed at teardown
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_for_http(f"{endpoint}/", server, log.name)
    bucket = f"kiwiwhale-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=endpoint, **_boto(CREDENTIALS))
    client.create_bucket(Bucket=bucket)
    # As docs/operations.md says to set up a bucket: objects readable by anyone who has their (unguessable) URL.
    public_read = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
        ],
    }
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read))
    yield {"endpoint": endpoint, "bucket": bucket, "client": client}
    server.terminate()
    server.wait(timeout=10)
    log.close()


def _boto(credentials: dict) -> dict:
    return {
        "aws_access_key_id": credentials["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": credentials["AWS_SECRET_ACCESS_KEY"],
        "region_name": credentials["AWS_DEFAULT_REGION"],
    }


def test_the_worker_writes_outputs_to_the_bucket_and_the_api_answers_its_unguessable_url(
    s3, tmp_path, catalog, static_collected
):
    env = {
        "AWS_STORAGE_BUCKET_NAME": s3["bucket"],
        "AWS_S3_ENDPOINT_URL": s3["endpoint"],
        "CELERY_QUEUE": f"s3-{uuid.uuid4().hex[:8]}",  # only this test's worker takes these jobs
        "DEBUG": "0",
        **CREDENTIALS,
    }
    processes = []
    try:
        port = _free_port()
        web_log = open(tmp_path / "web.log", "w")  # noqa: SIM115 - closed below
        web = subprocess.Popen(
            [str(ROOT / "scripts" / "web")],
            cwd=ROOT,
            env=service_env(
                HOST="127.0.0.1", PORT=str(port), WEB_CONCURRENCY="1",
                PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"), **env,
            ),
            stdout=web_log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        processes.append(web)
        worker_log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
        processes.append(
            subprocess.Popen(
                [str(ROOT / "scripts" / "worker")],
                cwd=ROOT,
                env=service_env(WORKER_CONCURRENCY="1", **env),
                stdout=worker_log,
                stderr=subprocess.STDOUT,
            )
        )
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", web, web_log.name)
        assert httpx.get(f"{base}/readyz").json()["checks"]["storage"] == "ok"  # a real write to the bucket

        user = make_user("s3user", credits="1")
        _, key = api_key_create(user=user, name="s3")
        headers = {"Authorization": f"Bearer {key}"}
        body = {"model": "local/procedural-image", "input": {"prompt": "a kiwi", "width": 64, "height": 64}}
        urls = []
        for _ in range(2):
            submitted = httpx.post(f"{base}/api/v1/generate.php", json=body, headers=headers).json()
            job_id = submitted.get("job_id") or pytest.fail(str(submitted))
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                job = httpx.get(f"{base}/api/v1/jobs.php", params={"job_id": job_id}, headers=headers).json()
                if job["status"] in ("completed", "failed"):
                    break
                time.sleep(0.2)
            assert job["status"] == "completed", (job, worker_log.name)
            urls.append(job["outputs"][0]["url"])

        prefix = f"{s3['endpoint']}/{s3['bucket']}/outputs/"
        folders = []
        for url in urls:
            assert url.startswith(prefix), url
            match = re.fullmatch(re.escape(prefix) + r"\d{4}/\d{2}/([A-Za-z0-9_-]{22})/out\.png", url)
            assert match, url  # a random 128-bit folder per output: the URL cannot be guessed
            folders.append(match[1])
            image = httpx.get(url)  # served by the bucket itself, no credentials
            assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert folders[0] != folders[1]

        keys = {item["Key"] for item in s3["client"].list_objects_v2(Bucket=s3["bucket"])["Contents"]}
        assert {url.removeprefix(f"{s3['endpoint']}/{s3['bucket']}/") for url in urls} <= keys
        for url in urls:  # nothing of these outputs on the local disk
            assert not (Path(settings.MEDIA_ROOT) / url.removeprefix(f"{s3['endpoint']}/{s3['bucket']}/")).exists()
        assert httpx.get(f"{base}/media/{urls[0].removeprefix(prefix)}").status_code == 404  # no local route
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)
