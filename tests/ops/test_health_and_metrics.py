"""/healthz, /readyz and /metrics; request ids from the web request into the worker's log lines."""

import logging

import httpx
import pytest
from django.test import Client, override_settings

from apps.generations.models import Job
from tests.conftest import client_for, wait_for_job


def test_healthz_answers_without_touching_anything():
    assert Client().get("/healthz").json() == {"ok": True}


@pytest.mark.django_db
def test_readyz_checks_database_broker_cache_and_storage():
    response = Client().get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "ok": True,
        "checks": {"database": "ok", "broker": "ok", "cache": "ok", "storage": "ok"},
    }


@pytest.mark.django_db
def test_readyz_answers_503_naming_what_is_down(settings):
    from kiwiwhale.celery import app

    previous = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens there
    try:
        response = Client().get("/readyz")
    finally:
        app.conf.broker_url = previous
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False and body["checks"]["broker"].startswith("error:")
    assert body["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_metrics_are_for_staff_or_the_token_only(alice):
    assert Client().get("/metrics").status_code == 403
    client = Client()
    client.force_login(alice)
    assert client.get("/metrics").status_code == 403
    alice.is_staff = True
    alice.save()
    assert client.get("/metrics").status_code == 200
    with override_settings(METRICS_TOKEN="s3cret-token"):
        assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
        assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403


@pytest.mark.django_db
def test_metrics_report_jobs_queue_ledger_and_request_latency(catalog, alice, settings):
    settings.METRICS_TOKEN = "t"
    api = client_for(alice)
    body = {"model": "local/procedural-image", "input": {"prompt": "a kiwi", "width": 64, "height": 64}}
    assert api.post("/api/v1/generate.php", body, format="json").status_code == 202
    text = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer t").content.decode()
    assert 'kiwiwhale_jobs{model="local/procedural-image",status="queued"} 1.0' in text
    assert "kiwiwhale_queue_depth 1.0" in text
    assert 'kiwiwhale_ledger_micro_credits{kind="grant"} 1e+07' in text
    assert 'kiwiwhale_http_request_duration_seconds_count{method="POST",route="api:generate",status="2xx"}' in text
    assert "kiwiwhale_job_duration_seconds_bucket" in text
    job = Job.objects.get(user=alice)
    from apps.generations.services import job_cancel

    job_cancel(job=job)


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_request_id_is_answered_and_carried_into_the_workers_log_lines(celery_worker_process, catalog, alice):
    from tests.conftest import ROOT

    api = client_for(alice)
    body = {"model": "local/procedural-image", "input": {"prompt": "a kiwi", "width": 64, "height": 64}}
    response = api.post("/api/v1/generate.php", body, format="json", HTTP_X_REQUEST_ID="trace-kiwi-42")
    assert response["X-Request-ID"] == "trace-kiwi-42"
    assert wait_for_job(api, response.json()["job_id"])["status"] == "completed"
    log = (ROOT / "var" / "test-worker.log").read_text()
    assert any("[trace-kiwi-42]" in line and "job_run" in line for line in log.splitlines()), "no worker line"
    generated = api.get("/api/v1/credits.php")["X-Request-ID"]
    assert len(generated) == 32 and generated != "trace-kiwi-42"
    hostile = api.get("/api/v1/credits.php", HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]
    assert "\n" not in hostile and " " not in hostile


@pytest.mark.django_db(transaction=True)
def test_the_real_server_serves_health_and_metrics_across_its_processes(web_server, settings):
    assert httpx.get(f"{web_server}/healthz").json() == {"ok": True}
    ready = httpx.get(f"{web_server}/readyz")
    assert ready.status_code == 200, ready.text
    logging.getLogger(__name__).info("ready: %s", ready.json())
