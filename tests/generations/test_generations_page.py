import os
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.catalog.models import AIModel
from apps.generations.models import Job
from apps.generations.services import job_create, job_run
from tests.site.helpers import elements

pytestmark = pytest.mark.django_db


def _image_job(user, prompt="a dog", *, run=True) -> Job:
    model = AIModel.objects.get(public_model="local/procedural-image")
    job = job_create(user=user, model=model, input={"prompt": prompt, "width": 64, "height": 64})
    if run:
        job_run(job_id=job.pk)  # in this process: the test needs its outputs, not the worker
    return Job.objects.get(pk=job.pk)


def _job_ids(html) -> list[str]:
    return [li["id"] for li in elements(html, "li") if li.get("id", "").startswith("job_")]


def _image_urls(html) -> list[str]:
    return [img["src"] for img in elements(html, "img") if "/media/" in img.get("src", "")]


def test_it_lists_the_accounts_jobs_newest_first_with_outputs_cost_and_status(client, catalog, alice):
    first = _image_job(alice, "first")
    second = _image_job(alice, "second")
    client.force_login(alice)
    html = client.get("/generations.php").content
    assert _job_ids(html) == [second.pk, first.pk]
    assert _image_urls(html) == [second.outputs.get().file.url, first.outputs.get().file.url]
    text = html.decode()
    assert "0.01 credits" in text and "Completed" in text and "second" in text


def test_it_never_shows_another_accounts_jobs_or_outputs(client, catalog, alice, charlie):
    job = _image_job(alice, "alice's secret prompt")
    output_url = job.outputs.get().file.url
    client.force_login(charlie)
    html = client.get("/generations.php").content.decode()
    assert job.pk not in html and output_url not in html and "secret prompt" not in html
    assert "You have not generated anything yet" in html
    for path in ("/", "/model.php?model=local/procedural-image", "/model-playground.php?model=local/procedural-image"):
        page = Client().get(path).content.decode()
        assert output_url not in page and job.pk not in page


def test_a_visitor_is_sent_to_log_in(client, catalog, alice):
    _image_job(alice)
    response = client.get("/generations.php")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_it_shows_a_failed_jobs_error_and_that_its_credits_came_back(client, catalog, alice):
    model = AIModel.objects.get(public_model="kiwiwhale/upload")
    job = job_create(user=alice, model=model, input={"file_url": "http://127.0.0.1:9/secret"})
    job_run(job_id=job.pk)
    client.force_login(alice)
    html = client.get("/generations.php").content.decode()
    assert Job.objects.get(pk=job.pk).status == "failed"
    assert "Failed" in html and "fetch_failed" in html and "(returned)" in html


def test_it_filters_by_status_category_and_model(client, catalog, alice):
    image = _image_job(alice)
    queued = _image_job(alice, run=False)
    chat = job_create(user=alice, model=AIModel.objects.get(public_model="local/echo-chat"), input={"prompt": "hi"})
    client.force_login(alice)
    assert _job_ids(client.get("/generations.php", {"status": "completed"}).content) == [image.pk]
    assert _job_ids(client.get("/generations.php", {"status": "queued"}).content) == [chat.pk, queued.pk]
    assert _job_ids(client.get("/generations.php", {"category": "chat"}).content) == [chat.pk]
    assert _job_ids(client.get("/generations.php", {"model": "local/procedural-image"}).content) == [
        queued.pk,
        image.pk,
    ]
    empty = client.get("/generations.php", {"category": "text-to-audio"}).content
    assert _job_ids(empty) == [] and b"No generation matches" in empty


def test_it_pages_with_a_cursor_and_no_offset(client, catalog, alice, settings):
    model = AIModel.objects.get(public_model="local/echo-chat")
    jobs = [job_create(user=alice, model=model, input={"prompt": f"p{i}"}) for i in range(45)]
    # Several jobs share one timestamp: the id breaks the tie, so no row is skipped or repeated.
    moment = timezone.now() - timedelta(hours=1)
    Job.objects.filter(pk__in=[job.pk for job in jobs[10:30]]).update(created_at=moment)
    expected = list(Job.objects.filter(user=alice).order_by("-created_at", "-id").values_list("pk", flat=True))
    client.force_login(alice)
    seen, url, pages = [], "/generations.php", 0
    while url:
        with CaptureQueriesContext(connection) as captured:
            html = client.get(url).content
        assert not any(" OFFSET " in q["sql"].upper() for q in captured.captured_queries)
        seen += _job_ids(html)
        older = [a["href"] for a in elements(html, "a") if a.get("rel") == "next"]
        url = f"/generations.php{older[0]}" if older else ""
        pages += 1
    assert seen == expected and pages == 3


def test_a_broken_cursor_goes_back_to_the_first_page(client, catalog, alice):
    client.force_login(alice)
    response = client.get("/generations.php", {"cursor": "not-a-cursor", "status": "queued"})
    assert response.status_code == 302 and response["Location"] == "/generations.php?status=queued"


def test_its_query_count_does_not_grow_with_the_list(client, catalog, alice):
    client.force_login(alice)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/generations.php").status_code == 200
        return len(captured)

    _image_job(alice)
    client.get("/generations.php")
    few = queries()
    for index in range(8):
        _image_job(alice, f"more {index}")
    assert queries() == few


def test_rerun_links_to_the_prefilled_playground(client, catalog, alice):
    job = _image_job(alice)
    client.force_login(alice)
    links = [a["href"] for a in elements(client.get("/generations.php").content, "a") if "rerun=" in a.get("href", "")]
    assert links == [f"/model-playground.php?model=local/procedural-image&rerun={job.pk}"]


def test_it_deletes_a_finished_job_and_its_files(client, catalog, alice):
    job = _image_job(alice)
    output = job.outputs.get()
    path = output.file.path
    client.force_login(alice)
    response = client.post("/generations/delete/", {"job_id": job.pk})
    assert response.status_code == 302 and response["Location"] == "/generations.php"
    page = client.get("/generations.php").content
    assert job.pk not in _job_ids(page)
    assert f"Deleted {job.pk}".encode() in page
    assert Job.objects.get(pk=job.pk).deleted_at is not None
    assert not os.path.exists(path)


def test_it_refuses_to_delete_an_unfinished_job_with_a_message(client, catalog, alice):
    job = _image_job(alice, run=False)
    client.force_login(alice)
    response = client.post("/generations/delete/", {"job_id": job.pk}, follow=True)
    assert "still queued" in response.content.decode()
    assert Job.objects.get(pk=job.pk).deleted_at is None


def test_it_cancels_a_queued_job_and_returns_the_credits(client, catalog, alice):
    job = _image_job(alice, run=False)
    client.force_login(alice)
    response = client.post("/generations/cancel/", {"job_id": job.pk, "next": "/generations.php?status=queued"})
    assert response["Location"] == "/generations.php?status=queued"
    assert Job.objects.get(pk=job.pk).status == "canceled"
    assert client.get("/api/v1/credits.php").json()["credits"] == 10


def test_nobody_can_delete_or_cancel_another_accounts_job(client, catalog, alice, charlie):
    done = _image_job(alice)
    queued = _image_job(alice, run=False)
    client.force_login(charlie)
    assert client.post("/generations/delete/", {"job_id": done.pk}).status_code == 404
    assert client.post("/generations/cancel/", {"job_id": queued.pk}).status_code == 404
    assert Job.objects.get(pk=done.pk).deleted_at is None and Job.objects.get(pk=queued.pk).status == "queued"


def test_the_delete_and_cancel_forms_need_the_csrf_token(catalog, alice):
    done = _image_job(alice)
    queued = _image_job(alice, run=False)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    html = browser.get("/generations.php").content
    post_forms = [f for f in elements(html, "form") if f.get("method") == "post"]
    assert {f["action"] for f in post_forms} >= {"/generations/delete/", "/generations/cancel/"}
    tokens = [i for i in elements(html, "input") if i.get("name") == "csrfmiddlewaretoken"]
    assert len(tokens) >= len(post_forms)
    assert browser.post("/generations/delete/", {"job_id": done.pk}).status_code == 403
    assert browser.post("/generations/cancel/", {"job_id": queued.pk}).status_code == 403
    assert Job.objects.get(pk=done.pk).deleted_at is None and Job.objects.get(pk=queued.pk).status == "queued"


def test_delete_and_cancel_answer_only_post(client, catalog, alice):
    client.force_login(alice)
    assert client.get("/generations/delete/").status_code == 405
    assert client.get("/generations/cancel/").status_code == 405


def test_it_ignores_an_outside_next_address(client, catalog, alice):
    job = _image_job(alice)
    client.force_login(alice)
    response = client.post("/generations/delete/", {"job_id": job.pk, "next": "https://evil.example/"})
    assert response["Location"] == "/generations.php"
