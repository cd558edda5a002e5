"""A generation's own page in a browser: live status and cancel, the playground keeping its result across a
reload, and publishing from the history."""

import re
import uuid

import pytest
from playwright.sync_api import expect

from apps.catalog.models import AIModel
from apps.generations.models import Job
from apps.generations.services import job_cancel, job_create
from apps.showroom.models import Publication
from tests.browser.conftest import PHONE, log_in, screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_queued_job_shows_its_place_in_the_queue_live_and_can_be_canceled(new_context, live_server, catalog, alice):
    # Their messages go to a queue no worker reads (the session's worker may be up): they stay queued, as behind
    # a busy queue.
    from kiwiwhale.celery import app

    model = AIModel.objects.get(public_model="local/procedural-image")
    queue, app.conf.task_default_queue = app.conf.task_default_queue, f"nobody-reads-{uuid.uuid4().hex[:8]}"
    try:
        ahead = job_create(user=alice, model=model, input={"prompt": "first in line"})
        job = job_create(user=alice, model=model, input={"prompt": "second in line"})
    finally:
        app.conf.task_default_queue = queue
    page = new_context().new_page()
    log_in(page, "alice@example.com")
    page.goto(f"/generation.php?id={job.pk}")
    status = page.locator("[data-gen-progress-text]")
    expect(status).to_contain_text("number 2 in the queue")
    # Live: the job ahead leaves the queue and the page follows without a reload.
    assert job_cancel(job=ahead)
    expect(status).to_contain_text("number 1 in the queue", timeout=10_000)
    screenshot(page, "generation-queued")
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("[data-gen-status]")).to_have_text("Canceled")
    expect(page.get_by_text("Canceled; its credits were returned.")).to_be_visible()
    assert Job.objects.get(pk=job.pk).status == "canceled"


@pytest.mark.worker
def test_the_playground_keeps_its_result_across_a_reload_and_the_history_publishes_it(
    new_context, live_server, celery_worker_process, catalog, alice
):
    page = new_context().new_page()
    log_in(page, "alice@example.com")
    page.goto("/model-playground.php?model=local/procedural-image")
    page.get_by_role("textbox", name="Prompt", exact=True).fill("a lighthouse in fog")
    page.get_by_label("Width").fill("96")
    page.get_by_label("Height").fill("64")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("[data-outputs] img")).to_be_visible(timeout=60_000)
    job = Job.objects.get(user=alice)
    expect(page).to_have_url(re.compile(rf"[?&]job={job.pk}"))

    page.reload()
    expect(page.locator("[data-outputs] img")).to_be_visible(timeout=15_000)
    expect(page.locator("[data-job-status]")).to_have_text("completed")
    expect(page.get_by_role("textbox", name="Prompt", exact=True)).to_have_value("a lighthouse in fog")

    page.get_by_role("link", name="Open its page").click()
    expect(page).to_have_url(re.compile(rf"/generation\.php\?id={job.pk}"))
    expect(page.locator(".outputs img")).to_be_visible()
    screenshot(page, "generation-completed")
    phone = new_context(viewport=PHONE).new_page()
    log_in(phone, "alice@example.com")
    phone.goto(f"/generation.php?id={job.pk}")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(phone, "generation-completed-390")

    page.goto("/generations.php")
    row = page.locator(f"li#{job.pk}")
    row.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("Published to the showroom.")).to_be_visible()
    publication = Publication.objects.get(job=job)
    assert publication.is_published and not publication.show_prompt
    page.goto("/generations.php")
    expect(page.locator(f"li#{job.pk}").get_by_role("link", name="In the showroom")).to_be_visible()
    expect(page.locator(f"li#{job.pk}").get_by_role("button", name="Publish")).to_have_count(0)
