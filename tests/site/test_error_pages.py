"""With DEBUG off (as `make run` serves), errors get the project's own pages, never Django's debug pages."""

import pytest
from django.test import Client
from django.urls import path

from apps.site.views import server_error


def _boom(request):
    raise RuntimeError("boom")


urlpatterns = [path("boom", _boom), path("api/v1/boom", _boom)]
handler500 = server_error


@pytest.mark.django_db
def test_an_unknown_page_shows_the_projects_404():
    response = Client().get("/no/such/page")
    assert response.status_code == 404
    assert b"There is nothing at this address." in response.content
    assert b"URLconf" not in response.content


@pytest.mark.django_db
@pytest.mark.urls("tests.site.test_error_pages")
def test_a_crash_shows_the_projects_500_page_and_the_api_its_error_shape():
    client = Client(raise_request_exception=False)
    page = client.get("/boom")
    assert page.status_code == 500
    assert b"Something went wrong" in page.content and b"Traceback" not in page.content
    api = client.get("/api/v1/boom")
    assert api.status_code == 500
    assert api.json() == {
        "success": False,
        "error": "internal_error",
        "message": "The server could not finish this request.",
    }
