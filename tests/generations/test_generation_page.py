"""/generation.php?id=…: one generation's page, its live status, and its actions."""

import base64
import math
import struct
import wave

import pytest
from django.test import Client

from apps.billing.models import Wallet
from apps.catalog.models import AIModel
from apps.generations.models import Job
from apps.generations.services import job_create, job_run
from apps.showroom.models import Publication
from apps.showroom.services import publication_publish
from tests.site.helpers import elements, forms

pytestmark = pytest.mark.django_db


def _job(user, public_model="local/procedural-image", *, run=True, **input) -> Job:
    model = AIModel.objects.get(public_model=public_model)
    input = input or {"prompt": "a quiet harbour at dawn", "width": 64, "height": 64}
    job = job_create(user=user, model=model, input=input)
    if run:
        job_run(job_id=job.pk)  # in this process: the test needs its outputs, not the worker
    return Job.objects.get(pk=job.pk)


def _page(client, job_id):
    return client.get("/generation.php", {"id": job_id})


def _form_actions(html) -> list[str]:
    return [form.get("action") for form in forms(html)]


def test_it_shows_the_owner_the_input_outputs_cost_timings_and_actions(client, catalog, alice):
    job = _job(alice)
    client.force_login(alice)
    response = _page(client, job.pk)
    assert response.status_code == 200
    html = response.content.decode()
    output_url = job.outputs.get().file.url
    assert output_url in [img["src"] for img in elements(html, "img")]
    assert "a quiet harbour at dawn" in html and "0.01 credits" in html and "Ran" in html
    actions = _form_actions(html)
    assert "/generations/rerun/" in actions and "/generations/delete/" in actions
    assert "/showroom/publish/" in actions
    assert "/generations/cancel/" not in actions  # finished: nothing to cancel
    remix = [a["href"] for a in elements(html, "a") if "rerun=" in a.get("href", "")]
    assert remix == [f"/model-playground.php?model=local/procedural-image&rerun={job.pk}"]


def test_another_account_and_a_visitor_never_see_an_unpublished_generation(client, catalog, alice, charlie):
    job = _job(alice)
    client.force_login(charlie)
    assert _page(client, job.pk).status_code == 404
    assert _page(client, "job_does_not_exist").status_code == 404
    visitor = Client()
    response = _page(visitor, job.pk)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert _page(visitor, "").status_code == 404


def test_a_published_generation_sends_others_to_its_showroom_page_which_keeps_the_prompt_private(
    client, catalog, alice, charlie
):
    job = _job(alice)
    publication = publication_publish(job=job, title="Harbour")  # show_prompt defaults to off
    for viewer in (Client(), client):
        if viewer is client:
            client.force_login(charlie)
        response = _page(viewer, job.pk)
        assert response.status_code == 302 and response["Location"] == publication.get_absolute_url()
        shown = viewer.get(response["Location"]).content.decode()
        assert "a quiet harbour at dawn" not in shown
    Publication.objects.filter(pk=publication.pk).update(is_published=False)
    assert _page(Client(), job.pk).status_code == 302 and "/accounts/login/" in _page(Client(), job.pk)["Location"]
    assert _page(client, job.pk).status_code == 404


def test_its_json_reports_the_queue_position_while_queued_and_the_page_offers_cancel(client, catalog, alice):
    first = _job(alice, run=False)
    second = _job(alice, run=False)
    client.force_login(alice)
    live = client.get("/generation.php", {"id": second.pk, "format": "json"}).json()
    assert live["status"] == "queued" and live["queue_position"] == 2 and live["cancelable"] is True
    assert live["terminal"] is False
    assert client.get("/generation.php", {"id": first.pk, "format": "json"}).json()["queue_position"] == 1
    html = _page(client, second.pk).content.decode()
    assert "number 2 in the queue" in html and "/generations/cancel/" in _form_actions(html)
    assert "/showroom/publish/" not in _form_actions(html)  # not finished: not publishable yet

    balance = Wallet.objects.get(user=alice).balance_micro
    response = client.post("/generations/cancel/", {"job_id": second.pk, "next": f"/generation.php?id={second.pk}"})
    assert response.status_code == 302 and response["Location"] == f"/generation.php?id={second.pk}"
    assert Job.objects.get(pk=second.pk).status == "canceled"
    assert Wallet.objects.get(user=alice).balance_micro == balance + second.cost_micro
    assert client.get("/generation.php", {"id": second.pk, "format": "json"}).json()["terminal"] is True
    job_run(job_id=first.pk)


def test_re_run_starts_a_new_charged_job_and_opens_its_page(client, catalog, alice):
    job = _job(alice)
    client.force_login(alice)
    balance = Wallet.objects.get(user=alice).balance_micro
    response = client.post("/generations/rerun/", {"job_id": job.pk})
    new_job = Job.objects.exclude(pk=job.pk).get(user=alice)
    assert response.status_code == 302 and response["Location"] == f"/generation.php?id={new_job.pk}"
    assert new_job.input == job.input and new_job.status == "queued"
    assert Wallet.objects.get(user=alice).balance_micro == balance - new_job.cost_micro
    job_run(job_id=new_job.pk)


def test_re_run_without_credits_says_so_and_creates_nothing(client, catalog, alice, bob):
    job = _job(alice)
    job.user = bob
    Job.objects.filter(pk=job.pk).update(user=bob)  # bob owns a finished job but has no credits
    client.force_login(bob)
    response = client.post("/generations/rerun/", {"job_id": job.pk}, follow=True)
    assert "Not enough credits" in response.content.decode()
    assert Job.objects.filter(user=bob).count() == 1


def test_a_tool_run_offers_no_publish_anywhere(client, catalog, alice):
    job = _job(alice, "kiwiwhale/upload", file_url="data:text/plain;base64,aGVsbG8=", file_name="hello.txt")
    assert job.status == "completed"
    client.force_login(alice)
    html = _page(client, job.pk).content.decode()
    assert "/showroom/publish/" not in _form_actions(html) and "cannot be published" in html
    history = client.get("/generations.php").content.decode()
    assert "/showroom/publish/" not in _form_actions(history)
    playground = client.get("/model-playground.php", {"model": "kiwiwhale/upload"}).content.decode()
    assert 'data-publishable="false"' in playground


def test_history_rows_link_to_their_page_and_publish_what_can_be_published(client, catalog, alice):
    job = _job(alice)
    client.force_login(alice)
    history = client.get("/generations.php").content.decode()
    assert f"/generation.php?id={job.pk}" in [a["href"] for a in elements(history, "a")]
    response = client.post("/showroom/publish/", {"job_id": job.pk, "next": "/generations.php"})
    publication = Publication.objects.get(job=job)
    assert response.status_code == 302 and publication.is_published and not publication.show_prompt
    history = client.get("/generations.php").content.decode()
    assert "/showroom/publish/" not in _form_actions(history)
    assert publication.get_absolute_url() in [a["href"] for a in elements(history, "a")]
    page = _page(client, job.pk).content.decode()
    assert f"/showroom/{publication.pk}/unpublish/" in _form_actions(page)


def test_the_playground_url_carries_the_last_job_of_its_own_model_only(client, catalog, alice, charlie):
    job = _job(alice)
    client.force_login(alice)
    path = "/model-playground.php"
    html = client.get(path, {"model": "local/procedural-image", "job": job.pk}).content.decode()
    assert f'data-resume-job="{job.pk}"' in html and "a quiet harbour at dawn" in html  # the form keeps its input
    other_model = client.get(path, {"model": "local/echo-chat", "job": job.pk}).content.decode()
    assert 'data-resume-job=""' in other_model
    client.force_login(charlie)
    stranger = client.get(path, {"model": "local/procedural-image", "job": job.pk}).content.decode()
    assert 'data-resume-job=""' in stranger and "a quiet harbour at dawn" not in stranger


def test_deleting_from_its_page_returns_to_the_history(client, catalog, alice):
    job = _job(alice)
    client.force_login(alice)
    response = client.post("/generations/delete/", {"job_id": job.pk, "next": f"/generation.php?id={job.pk}"})
    assert response.status_code == 302 and response["Location"] == "/generations.php"
    assert _page(client, job.pk).status_code == 404


def test_a_json_output_is_shown_formatted(client, catalog, alice, tmp_path):
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 5))) for i in range(8000)))
    url = "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode()
    job = _job(alice, "kiwiwhale/audio-analysis", audio_url=url)
    assert job.status == "completed", job.error_message
    client.force_login(alice)
    for html in (_page(client, job.pk).content.decode(), client.get("/generations.php").content.decode()):
        assert "{\n  &quot;" in html and "{&#x27;" not in html  # indented JSON, not a Python repr
