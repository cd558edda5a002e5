"""POST /api/v1/showroom_publish.php, showroom_unpublish.php and GET showroom_remix.php."""

import pytest

from apps.generations.models import Job
from apps.showroom.models import Publication
from apps.showroom.services import publication_moderate
from tests.showroom.conftest import SECRET_PROMPT

pytestmark = pytest.mark.django_db


def test_an_owner_publishes_a_completed_job_through_the_api(alice_api, alice, job_factory):
    job = job_factory(alice)
    response = alice_api.post(
        "/api/v1/showroom_publish.php", {"job_id": job.pk, "title": "API whale", "show_prompt": True}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    publication = Publication.objects.get()
    assert body == {
        "success": True,
        "id": publication.pk,
        "url": f"http://testserver/showroom.php?id={publication.pk}",
        "job_id": job.pk,
        "title": "API whale",
        "show_prompt": True,
        "published": True,
        "hidden": False,
        "featured": False,
        "like_count": 0,
        "remix_url": f"http://testserver/model-playground.php?model=local%2Fprocedural-image&remix={publication.pk}",
    }


def test_publishing_defaults_to_a_private_prompt_and_is_idempotent(alice_api, alice, job_factory):
    job = job_factory(alice)
    first = alice_api.post("/api/v1/showroom_publish.php", {"job_id": job.pk}, format="json").json()
    second = alice_api.post("/api/v1/showroom_publish", {"job_id": job.pk}, format="json").json()
    assert first["id"] == second["id"] and first["show_prompt"] is False
    assert Publication.objects.count() == 1


def test_only_the_owner_of_a_completed_job_can_publish_it(alice, charlie_api, alice_api, anon_api, job_factory):
    job = job_factory(alice)
    other = charlie_api.post("/api/v1/showroom_publish.php", {"job_id": job.pk}, format="json")
    assert other.status_code == 404 and other.json()["error"] == "not_found"
    assert anon_api.post("/api/v1/showroom_publish.php", {"job_id": job.pk}, format="json").status_code == 401
    running = job_factory(alice, status=Job.Status.QUEUED)
    conflict = alice_api.post("/api/v1/showroom_publish.php", {"job_id": running.pk}, format="json")
    assert conflict.status_code == 409 and conflict.json()["error"] == "not_publishable"
    bad = alice_api.post("/api/v1/showroom_publish.php", {"job_id": job.pk, "colour": "red"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
    assert not Publication.objects.exists()


def test_a_session_must_send_the_csrf_token(alice, job_factory):
    from rest_framework.test import APIClient

    job = job_factory(alice)
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(alice)
    response = browser.post("/api/v1/showroom_publish.php", {"job_id": job.pk}, format="json")
    assert response.status_code == 403 and not Publication.objects.exists()


def test_the_owner_unpublishes_through_the_api(alice_api, charlie_api, alice, job_factory):
    job = job_factory(alice)
    alice_api.post("/api/v1/showroom_publish.php", {"job_id": job.pk}, format="json")
    assert charlie_api.post("/api/v1/showroom_unpublish.php", {"job_id": job.pk}, format="json").status_code == 404
    response = alice_api.post("/api/v1/showroom_unpublish.php", {"job_id": job.pk}, format="json")
    assert response.status_code == 200 and response.json()["published"] is False
    never = job_factory(alice)
    assert alice_api.post("/api/v1/showroom_unpublish.php", {"job_id": never.pk}, format="json").status_code == 404


def test_remix_returns_the_model_and_input_without_a_private_prompt(anon_api, alice, publish_factory):
    private = publish_factory(alice, show_prompt=False)
    response = anon_api.get("/api/v1/showroom_remix.php", {"id": private.pk})
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "id": private.pk,
        "model": "local/procedural-image",
        "input": {"width": 64, "height": 64, "seed": 7},
    }
    shared = publish_factory(alice, show_prompt=True)
    assert anon_api.get("/api/v1/showroom_remix", {"id": shared.pk}).json()["input"]["prompt"] == SECRET_PROMPT


def test_remix_of_a_hidden_publication_is_only_for_its_owner(anon_api, alice_api, alice, publish_factory):
    publication = publish_factory(alice)
    publication_moderate(publication=publication, hidden=True)
    assert anon_api.get("/api/v1/showroom_remix.php", {"id": publication.pk}).json()["error"] == "not_found"
    assert alice_api.get("/api/v1/showroom_remix.php", {"id": publication.pk}).status_code == 200
    assert anon_api.get("/api/v1/showroom_remix.php").status_code == 400


def test_the_openapi_document_describes_the_showroom_endpoints(anon_api):
    schema = anon_api.get("/openapi.json").json()
    assert "post" in schema["paths"]["/api/v1/showroom_publish.php"]
    assert "post" in schema["paths"]["/api/v1/showroom_unpublish.php"]
    assert "get" in schema["paths"]["/api/v1/showroom_remix.php"]
    assert {"job_id", "title", "show_prompt"} <= set(
        schema["components"]["schemas"]["ShowroomPublishRequest"]["properties"]
    )
