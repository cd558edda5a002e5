"""The showroom pages: gallery, detail, publish, like, report — visibility, CSRF, hostile titles, query counts."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.generations.models import Job
from apps.showroom.models import Like, Publication, Report
from apps.showroom.services import publication_moderate, publication_unpublish
from tests.showroom.conftest import SECRET_PROMPT

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert("t")</script><img src=x onerror=alert(1)>'


def browser_for(user=None) -> Client:
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    return client


def csrf_post(client: Client, url: str, data: dict, **extra):
    """A POST as a browser sends it: with the token of the CSRF cookie, which a GET of any form page sets."""
    token = client.cookies["csrftoken"].value if "csrftoken" in client.cookies else None
    if token is None:
        client.get("/contact.php")
        token = client.cookies["csrftoken"].value
    return client.post(url, {**data, "csrfmiddlewaretoken": token}, **extra)


def test_the_gallery_and_a_publication_answer_200_to_anybody(client, alice, publish_factory):
    publication = publish_factory(alice, title="Blue whale")
    gallery = client.get("/showroom.php")
    assert gallery.status_code == 200 and b"Blue whale" in gallery.content
    detail = client.get(f"/showroom.php?id={publication.pk}")
    assert detail.status_code == 200
    assert publication.job.outputs.get().file.url.encode() in detail.content
    assert f"/model-playground.php?model=local%2Fprocedural-image&amp;remix={publication.pk}".encode() in detail.content


def test_an_empty_gallery_says_so(client, db):
    response = client.get("/showroom.php")
    assert response.status_code == 200 and b"Nothing here yet" in response.content


def test_anonymous_visitors_never_see_hidden_or_unpublished_work(client, alice, publish_factory):
    hidden = publish_factory(alice, title="Hidden-one")
    publication_moderate(publication=hidden, hidden=True)
    gone = publish_factory(alice, title="Gone-one")
    publication_unpublish(publication=gone)
    gallery = client.get("/showroom.php").content
    assert b"Hidden-one" not in gallery and b"Gone-one" not in gallery
    for publication in (hidden, gone):
        assert client.get(f"/showroom.php?id={publication.pk}").status_code == 404
        assert client.get(f"/api/v1/showroom_remix.php?id={publication.pk}").status_code == 404
    assert client.get("/showroom.php?id=nonsense").status_code == 404
    assert client.get("/showroom.php?id=999999").status_code == 404


def test_the_owner_sees_a_notice_on_their_hidden_publication(alice, publish_factory):
    hidden = publish_factory(alice)
    publication_moderate(publication=hidden, hidden=True)
    response = browser_for(alice).get(f"/showroom.php?id={hidden.pk}")
    assert response.status_code == 200 and b"A moderator has hidden this publication" in response.content
    mine = browser_for(alice).get("/showroom.php?mine=1")
    assert b"Hidden by a moderator" in mine.content


def test_a_private_prompt_is_nowhere_in_the_page_or_the_remix(client, alice, publish_factory):
    publication = publish_factory(alice, show_prompt=False)
    for url in (
        f"/showroom.php?id={publication.pk}",
        "/showroom.php",
        f"/api/v1/showroom_remix.php?id={publication.pk}",
    ):
        response = client.get(url)
        assert response.status_code == 200
        assert SECRET_PROMPT.encode() not in response.content, url
    detail = client.get(f"/showroom.php?id={publication.pk}")
    assert b"kept the prompt private" in detail.content


def test_a_shared_prompt_is_shown_and_escaped(client, alice, publish_factory):
    publication = publish_factory(alice, show_prompt=True, input={"prompt": f"{SECRET_PROMPT} {HOSTILE}", "seed": 1})
    body = client.get(f"/showroom.php?id={publication.pk}").content.decode()
    assert SECRET_PROMPT in body
    assert "<script>alert" not in body and "onerror=alert" not in body.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt;" in body


def test_hostile_titles_are_rendered_inert(client, alice, publish_factory):
    publication = publish_factory(alice, title=HOSTILE)
    for url in ("/showroom.php", f"/showroom.php?id={publication.pk}", f"/showroom/{publication.pk}/report/"):
        body = client.get(url).content.decode()
        assert "<script>alert" not in body, url
        assert "<img src=x onerror" not in body, url
        assert "&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in body, url


def test_the_gallery_costs_the_same_queries_for_2_and_8_publications(client, alice, bob, publish_factory):
    def count(viewer_client):
        cache.clear()  # the filter menus are cached for a minute: count them every time
        with CaptureQueriesContext(connection) as queries:
            assert viewer_client.get("/showroom.php").status_code == 200
        return len(queries)

    for _ in range(2):
        publish_factory(alice)
    signed_in = browser_for(bob)
    few_anon, few_signed = count(client), count(signed_in)
    for _ in range(6):
        publication = publish_factory(alice)
        Like.objects.create(user=bob, publication=publication)
    assert count(client) == few_anon
    assert count(signed_in) == few_signed


def test_the_detail_page_costs_the_same_queries_for_1_and_4_outputs(client, alice, publish_factory):
    from django.core.files.base import ContentFile

    from apps.generations.models import Output
    from tests.showroom.conftest import PNG

    publication = publish_factory(alice)
    with CaptureQueriesContext(connection) as one:
        client.get(f"/showroom.php?id={publication.pk}")
    for position in range(1, 4):
        output = Output(
            job=publication.job, position=position, type="image", content_type="image/png", file_name="o.png"
        )
        output.file.save("o.png", ContentFile(PNG), save=False)
        output.save()
    with CaptureQueriesContext(connection) as four:
        response = client.get(f"/showroom.php?id={publication.pk}")
    assert response.content.count(b'<figure class="output"') == 4
    assert len(four) == len(one)


def test_the_gallery_filters_and_pages(client, alice, publish_factory, settings):
    settings.SHOWROOM_PAGE_SIZE = 2
    for index in range(3):
        publish_factory(alice, title=f"image-{index}")
    publish_factory(alice, title="speech-0", public_model="kiwiwhale/s2-pro/tts", input={"text": "hi"})
    audio = client.get("/showroom.php", {"category": "text-to-audio"}).content
    assert b"speech-0" in audio and b"image-" not in audio
    first = client.get("/showroom.php", {"model": "local/procedural-image"})
    assert first.content.count(b'class="sr-title"') == 2
    cursor = first.context["page"].next_cursor
    second = client.get("/showroom.php", {"model": "local/procedural-image", "cursor": cursor})
    assert second.content.count(b'class="sr-title"') == 1 and b"image-0" in second.content
    assert client.get("/showroom.php", {"cursor": "garbage!"}).status_code == 200
    assert client.get("/showroom.php", {"category": "<script>"}).status_code == 200


def test_an_owner_publishes_from_a_form_with_csrf(alice, job_factory):
    job = job_factory(alice)
    browser = browser_for(alice)
    response = csrf_post(browser, "/showroom/publish/", {"job_id": job.pk, "title": "Mine", "show_prompt": "on"})
    publication = Publication.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/showroom.php?id={publication.pk}"
    assert publication.title == "Mine" and publication.show_prompt and publication.owner == alice


def test_publishing_needs_csrf_a_session_and_ownership(alice, charlie, job_factory):
    job = job_factory(alice)
    assert browser_for(alice).post("/showroom/publish/", {"job_id": job.pk}).status_code == 403  # no token
    anonymous = csrf_post(browser_for(), "/showroom/publish/", {"job_id": job.pk})
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    assert csrf_post(browser_for(charlie), "/showroom/publish/", {"job_id": job.pk}).status_code == 404
    assert browser_for(alice).get("/showroom/publish/").status_code == 405
    assert not Publication.objects.exists()


def test_publishing_an_unfinished_job_explains_why(alice, job_factory):
    job = job_factory(alice, status=Job.Status.PROCESSING)
    browser = browser_for(alice)
    response = csrf_post(browser, "/showroom/publish/", {"job_id": job.pk, "next": "/generations.php"}, follow=False)
    assert response.status_code == 302 and response["Location"] == "/generations.php"
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("Only completed generations" in m for m in messages)
    evil = csrf_post(browser, "/showroom/publish/", {"job_id": job.pk, "next": "https://evil.example/"})
    assert evil["Location"] == "/generations.php"


def test_the_owner_unpublishes_and_others_cannot(alice, charlie, publish_factory):
    publication = publish_factory(alice)
    assert csrf_post(browser_for(charlie), f"/showroom/{publication.pk}/unpublish/", {}).status_code == 404
    assert browser_for(alice).post(f"/showroom/{publication.pk}/unpublish/").status_code == 403
    response = csrf_post(browser_for(alice), f"/showroom/{publication.pk}/unpublish/", {})
    assert response.status_code == 302
    publication.refresh_from_db()
    assert not publication.is_published


def test_likes_need_a_session_and_csrf_and_toggle_by_the_posted_state(alice, bob, publish_factory):
    publication = publish_factory(alice)
    url = f"/showroom/{publication.pk}/like/"
    anonymous = csrf_post(browser_for(), url, {"liked": "1"})
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    assert browser_for(bob).post(url, {"liked": "1"}).status_code == 403
    browser = browser_for(bob)
    assert csrf_post(browser, url, {"liked": "1"}).status_code == 302
    assert csrf_post(browser, url, {"liked": "1"}).status_code == 302
    as_json = csrf_post(browser, url, {"liked": "1"}, HTTP_ACCEPT="application/json")
    assert as_json.json() == {"success": True, "liked": True, "like_count": 1}
    page = browser.get(f"/showroom.php?id={publication.pk}").content
    assert b"Liked" in page and b'name="liked" value="0"' in page
    assert csrf_post(browser, url, {"liked": "0"}, HTTP_ACCEPT="application/json").json()["like_count"] == 0
    assert not Like.objects.exists()


def test_nobody_can_like_what_they_cannot_see(alice, bob, publish_factory):
    publication = publish_factory(alice)
    publication_moderate(publication=publication, hidden=True)
    assert csrf_post(browser_for(bob), f"/showroom/{publication.pk}/like/", {"liked": "1"}).status_code == 404


def test_anybody_reports_with_csrf_and_the_rate_limit_holds(client, alice, publish_factory, settings):
    settings.RATE_SHOWROOM_REPORT = "2/hour"
    publication = publish_factory(alice)
    url = f"/showroom/{publication.pk}/report/"
    assert client.get(url).status_code == 200
    anonymous = browser_for()
    assert anonymous.post(url, {"reason": "spam"}).status_code == 403
    assert csrf_post(anonymous, url, {"reason": "spam"}).status_code == 302
    assert csrf_post(anonymous, url, {"reason": "hate", "details": "x"}).status_code == 302
    limited = csrf_post(anonymous, url, {"reason": "spam"})
    assert limited.status_code == 429 and b"many reports" in limited.content
    assert Report.objects.count() == 2
    assert Report.objects.first().reporter_ip == "127.0.0.1"
    # Another address is not limited by the first one's reports.
    other = browser_for()
    assert csrf_post(other, url, {"reason": "spam"}, REMOTE_ADDR="192.0.2.7").status_code == 302


def test_signed_in_reports_are_limited_per_account(alice, bob, publish_factory, settings):
    settings.RATE_SHOWROOM_REPORT = "1/hour"
    first, second = publish_factory(alice), publish_factory(alice)
    browser = browser_for(bob)
    assert csrf_post(browser, f"/showroom/{first.pk}/report/", {"reason": "spam"}).status_code == 302
    assert (
        csrf_post(browser, f"/showroom/{second.pk}/report/", {"reason": "spam"}, REMOTE_ADDR="192.0.2.9").status_code
        == 429
    )
    assert Report.objects.get().reporter == bob


def test_a_report_needs_a_known_reason(client, alice, publish_factory):
    publication = publish_factory(alice)
    response = csrf_post(browser_for(), f"/showroom/{publication.pk}/report/", {"reason": "because"})
    assert response.status_code == 400 and not Report.objects.exists()


def test_the_admin_lists_and_moderates_publications(admin_client, alice, bob, publish_factory):
    publication = publish_factory(alice, title=HOSTILE)
    Report.objects.create(publication=publication, reason="spam", reporter=bob)
    listing = admin_client.get("/admin/showroom/publication/?reports=open")
    assert (
        listing.status_code == 200 and b"&lt;script&gt;" in listing.content and b"<script>alert" not in listing.content
    )
    assert admin_client.get(f"/admin/showroom/publication/{publication.pk}/change/").status_code == 200
    assert admin_client.get("/admin/showroom/report/").status_code == 200
    response = admin_client.post(
        "/admin/showroom/publication/", {"action": "hide", "_selected_action": [publication.pk]}
    )
    assert response.status_code == 302
    publication.refresh_from_db()
    assert publication.is_hidden and not Report.objects.filter(resolved_at__isnull=True).exists()
    admin_client.post("/admin/showroom/publication/", {"action": "feature", "_selected_action": [publication.pk]})
    publication.refresh_from_db()
    assert publication.is_featured
