"""Publishing, visibility, likes, reports, moderation and remix, at the service level."""

import threading

import pytest
from django.db import connection

from apps.accounts.services import account_deactivate
from apps.generations.models import Job
from apps.generations.services import job_delete
from apps.showroom.models import Like, Publication, Report
from apps.showroom.services import (
    NotPublishable,
    PublicationNotFound,
    publication_get,
    publication_like,
    publication_moderate,
    publication_publish,
    publication_remix,
    publication_remix_input,
    publication_report,
    publication_unpublish,
    publications_gallery,
    report_resolve,
    title_clean,
)
from tests.showroom.conftest import SECRET_PROMPT

pytestmark = pytest.mark.django_db


def _job(job):
    return Job.objects.select_related("model").get(pk=job.pk)


def test_it_publishes_a_completed_job_with_its_model_and_category_copied(alice, job_factory):
    job = job_factory(alice)
    publication = publication_publish(job=_job(job), title="  My   whale \n", show_prompt=True)
    assert publication.owner == alice
    assert publication.title == "My whale"
    assert publication.model.public_model == "local/procedural-image"
    assert publication.category == "text-to-image"
    assert publication.cover == job.outputs.get()
    assert publication.is_public and publication.show_prompt


def test_it_names_an_untitled_publication_after_its_model(alice, job_factory):
    publication = publication_publish(job=_job(job_factory(alice)), title="   ")
    assert publication.title == "Procedural Image (local engine)"


@pytest.mark.parametrize("status", [Job.Status.QUEUED, Job.Status.PROCESSING, Job.Status.FAILED, Job.Status.CANCELED])
def test_it_refuses_a_job_that_is_not_completed(alice, job_factory, status):
    with pytest.raises(NotPublishable, match=status):
        publication_publish(job=_job(job_factory(alice, status=status)))
    assert not Publication.objects.exists()


def test_it_refuses_tool_runs_and_deleted_jobs(alice, job_factory):
    with pytest.raises(NotPublishable, match="Tool runs"):
        publication_publish(job=_job(job_factory(alice, public_model="kiwiwhale/upload", input={"file_url": "x"})))
    job = job_factory(alice)
    job_delete(job=job)
    with pytest.raises(NotPublishable, match="deleted"):
        publication_publish(job=_job(job))


def test_publishing_twice_updates_the_one_publication(alice, job_factory):
    job = _job(job_factory(alice))
    first = publication_publish(job=job, title="One")
    second = publication_publish(job=job, title="Two", show_prompt=True)
    assert first.pk == second.pk and Publication.objects.count() == 1
    second.refresh_from_db()
    assert second.title == "Two" and second.show_prompt


def test_republishing_keeps_a_moderators_hide(alice, publish_factory):
    publication = publish_factory(alice)
    publication_moderate(publication=publication, hidden=True)
    publication_unpublish(publication=publication)
    again = publication_publish(job=_job(publication.job), title="Sneaky")
    assert again.is_published and again.is_hidden
    assert not Publication.objects.public().filter(pk=again.pk).exists()


def test_the_public_never_sees_hidden_unpublished_deleted_or_closed_accounts_work(alice, bob, publish_factory):
    visible = publish_factory(alice, title="visible")
    hidden = publish_factory(alice, title="hidden")
    publication_moderate(publication=hidden, hidden=True)
    unpublished = publish_factory(alice, title="unpublished")
    publication_unpublish(publication=unpublished)
    deleted = publish_factory(alice, title="deleted")
    job_delete(job=deleted.job)
    closed = publish_factory(bob, title="closed")
    account_deactivate(user=bob)

    assert set(Publication.objects.public()) == {visible}
    from django.contrib.auth.models import AnonymousUser

    page = publications_gallery(viewer=AnonymousUser())
    assert page.publications == [visible]
    for publication in (hidden, unpublished, deleted, closed):
        with pytest.raises(PublicationNotFound):
            publication_get(viewer=AnonymousUser(), publication_id=publication.pk)


def test_an_owner_sees_their_own_hidden_and_unpublished_work_but_others_do_not(alice, charlie, publish_factory):
    hidden = publish_factory(alice)
    publication_moderate(publication=hidden, hidden=True)
    unpublished = publish_factory(alice)
    publication_unpublish(publication=unpublished)
    for publication in (hidden, unpublished):
        assert publication_get(viewer=alice, publication_id=publication.pk) == publication
        with pytest.raises(PublicationNotFound):
            publication_get(viewer=charlie, publication_id=publication.pk)
    mine = publications_gallery(viewer=alice, mine=True).publications
    assert set(mine) == {hidden, unpublished}
    assert publications_gallery(viewer=alice).publications == []


def test_staff_see_everything_to_moderate_it(alice, charlie, publish_factory):
    hidden = publish_factory(alice)
    publication_moderate(publication=hidden, hidden=True)
    charlie.is_staff = True
    assert publication_get(viewer=charlie, publication_id=hidden.pk) == hidden


def test_featured_publications_come_first_then_the_newest(alice, publish_factory):
    from django.contrib.auth.models import AnonymousUser

    old = publish_factory(alice, title="old")
    publish_factory(alice, title="middle")
    publish_factory(alice, title="new")
    publication_moderate(publication=old, featured=True)
    assert [p.title for p in publications_gallery(viewer=AnonymousUser()).publications] == ["old", "new", "middle"]


def test_the_gallery_pages_by_keyset_without_repeating_or_skipping(alice, publish_factory):
    from django.contrib.auth.models import AnonymousUser

    created = [publish_factory(alice, title=f"p{i}") for i in range(7)]
    publication_moderate(publication=created[3], featured=True)
    seen, cursor = [], ""
    while True:
        page = publications_gallery(viewer=AnonymousUser(), cursor=cursor, limit=3)
        seen += [p.title for p in page.publications]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == ["p3", "p6", "p5", "p4", "p2", "p1", "p0"]


def test_the_gallery_query_has_no_offset(alice, publish_factory):
    from django.contrib.auth.models import AnonymousUser
    from django.test.utils import CaptureQueriesContext

    for i in range(3):
        publish_factory(alice, title=f"p{i}")
    first = publications_gallery(viewer=AnonymousUser(), limit=1)
    with CaptureQueriesContext(connection) as queries:
        publications_gallery(viewer=AnonymousUser(), cursor=first.next_cursor, limit=1)
    assert not any("OFFSET" in query["sql"].upper() for query in queries.captured_queries)


def test_the_gallery_filters_by_category_and_model(alice, publish_factory):
    from django.contrib.auth.models import AnonymousUser

    image = publish_factory(alice)
    speech = publish_factory(alice, public_model="kiwiwhale/s2-pro/tts", input={"text": "hello", "voice": "alloy"})
    anon = AnonymousUser()
    assert publications_gallery(viewer=anon, category="text-to-audio").publications == [speech]
    assert publications_gallery(viewer=anon, public_model="local/procedural-image").publications == [image]
    assert publications_gallery(viewer=anon, public_model="nope").publications == []


def test_a_like_is_unique_per_person_and_counted_once(alice, bob, publish_factory):
    publication = publish_factory(alice)
    assert publication_like(user=bob, publication=publication, liked=True) == 1
    assert publication_like(user=bob, publication=publication, liked=True) == 1  # a double click
    assert publication_like(user=alice, publication=publication, liked=True) == 2
    assert Like.objects.filter(publication=publication).count() == 2
    assert publication_like(user=bob, publication=publication, liked=False) == 1
    assert publication_like(user=bob, publication=publication, liked=False) == 1
    publication.refresh_from_db()
    assert publication.like_count == Like.objects.filter(publication=publication).count() == 1


def test_the_database_refuses_a_second_like_row(alice, bob, publish_factory):
    from django.db import IntegrityError, transaction

    publication = publish_factory(alice)
    Like.objects.create(user=bob, publication=publication)
    with pytest.raises(IntegrityError), transaction.atomic():
        Like.objects.create(user=bob, publication=publication)


@pytest.mark.django_db(transaction=True)
def test_simultaneous_likes_by_one_person_count_once(catalog):
    from tests.conftest import make_user
    from tests.showroom.conftest import publish

    owner, fan = make_user("owner"), make_user("fan")
    publication = publish(owner)
    barrier = threading.Barrier(6)

    def like():
        barrier.wait()
        try:
            publication_like(user=fan, publication=publication, liked=True)
        finally:
            connection.close()

    threads = [threading.Thread(target=like) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    publication.refresh_from_db()
    assert publication.like_count == 1 == Like.objects.count()


def test_a_persons_second_open_report_updates_the_first(alice, bob, publish_factory):
    publication = publish_factory(alice)
    first = publication_report(publication=publication, reason="spam", reporter=bob, ip="10.0.0.1")
    second = publication_report(publication=publication, reason="sexual", details="nsfw", reporter=bob)
    assert first.pk == second.pk and Report.objects.count() == 1
    assert Report.objects.get().reason == "sexual"
    from django.contrib.auth.models import AnonymousUser

    publication_report(publication=publication, reason="spam", reporter=AnonymousUser(), ip="10.0.0.2")
    publication_report(publication=publication, reason="spam", reporter=None, ip="10.0.0.2")
    assert Report.objects.filter(reporter__isnull=True).count() == 2


def test_hiding_resolves_the_open_reports_and_resolve_is_once(alice, bob, charlie, publish_factory):
    publication = publish_factory(alice)
    report = publication_report(publication=publication, reason="spam", reporter=bob)
    other = publication_report(publication=publication, reason="hate", reporter=charlie)
    assert report_resolve(report=report, resolved_by=charlie) is True
    assert report_resolve(report=report, resolved_by=charlie) is False
    publication_moderate(publication=publication, hidden=True, resolved_by=charlie)
    other.refresh_from_db()
    assert other.resolved_at is not None and other.resolved_by == charlie


def test_remix_input_drops_the_prompt_and_free_text_when_the_prompt_is_private(alice, publish_factory):
    private = publish_factory(alice, show_prompt=False)
    assert publication_remix_input(private) == {"width": 64, "height": 64, "seed": 7}
    shared = publish_factory(alice, show_prompt=True)
    assert publication_remix_input(shared) == {"prompt": SECRET_PROMPT, "width": 64, "height": 64, "seed": 7}
    tts = publish_factory(alice, public_model="kiwiwhale/s2-pro/tts", input={"text": "secret words", "voice": "nova"})
    assert publication_remix_input(tts) == {}


def test_remix_keeps_enum_choices_and_drops_input_urls(alice, publish_factory):
    publication = publish_factory(
        alice,
        public_model="z-image",
        input={"prompt": "p", "image_size": "square", "num_images": 2, "seed": 1},
    )
    assert publication_remix_input(publication) == {"image_size": "square", "num_images": 2, "seed": 1}
    edit = publish_factory(
        alice, public_model="gpt-image-2/image-edit", input={"prompt": "p", "image_url": "https://x/y.png"}
    )
    assert publication_remix_input(edit) == {}


def test_remix_answers_only_for_what_the_viewer_may_see(alice, charlie, publish_factory):
    publication = publish_factory(alice)
    remix = publication_remix(viewer=charlie, publication_id=str(publication.pk))
    assert remix.public_model == "local/procedural-image" and "prompt" not in remix.input
    publication_unpublish(publication=publication)
    with pytest.raises(PublicationNotFound):
        publication_remix(viewer=charlie, publication_id=publication.pk)
    with pytest.raises(PublicationNotFound):
        publication_remix(viewer=charlie, publication_id="not-a-number")


def test_titles_are_one_clean_line(alice):
    assert title_clean("a\x00b\tc\n\rd" + "x" * 200) == ("a b c d" + "x" * 200)[:120]
    assert title_clean('<script>alert("x")</script>') == '<script>alert("x")</script>'  # kept; escaped on output


def test_the_gallery_menus_follow_a_new_publication_at_once(alice, publish_factory, django_capture_on_commit_callbacks):
    from apps.showroom.services import gallery_filters, publication_moderate, publication_unpublish

    with django_capture_on_commit_callbacks(execute=True):
        image = publish_factory(alice)
    assert [m["public_model"] for m in gallery_filters()["models"]] == ["local/procedural-image"]  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        speech = publish_factory(alice, public_model="kiwiwhale/s2-pro/tts", input={"text": "hi", "voice": "alloy"})
    models = {m["public_model"] for m in gallery_filters()["models"]}
    assert models == {"local/procedural-image", "kiwiwhale/s2-pro/tts"}
    publication_unpublish(publication=speech)
    assert [m["public_model"] for m in gallery_filters()["models"]] == ["local/procedural-image"]
    with django_capture_on_commit_callbacks(execute=True):
        publication_moderate(publication=image, hidden=True)
    assert gallery_filters()["models"] == []
