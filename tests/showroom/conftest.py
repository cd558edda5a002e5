"""Completed jobs to publish, made directly (no engine run): the showroom only reads jobs and outputs."""

import io

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from apps.catalog.models import AIModel
from apps.generations.models import Job, Output
from apps.showroom.services import publication_publish


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (20, 120, 60)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = png_bytes()
SECRET_PROMPT = "my very private prompt about a purple whale"


def completed_job(user, *, public_model="local/procedural-image", input=None, status=Job.Status.COMPLETED) -> Job:
    model = AIModel.objects.get(public_model=public_model)
    job = Job.objects.create(
        user=user,
        model=model,
        input=input if input is not None else {"prompt": SECRET_PROMPT, "width": 64, "height": 64, "seed": 7},
        status=status,
        cost_micro=10_000,
        completed_at=timezone.now() if status == Job.Status.COMPLETED else None,
    )
    if status == Job.Status.COMPLETED:
        output = Output(job=job, type="image", content_type="image/png", file_name="out.png", width=8, height=8)
        output.file.save("out.png", ContentFile(PNG), save=False)
        output.file_size = len(PNG)
        output.save()
    return job


def publish(user, *, title="A whale", show_prompt=False, **job_kwargs):
    job = completed_job(user, **job_kwargs)
    return publication_publish(
        job=Job.objects.select_related("model").get(pk=job.pk), title=title, show_prompt=show_prompt
    )


@pytest.fixture
def job_factory(catalog):
    return completed_job


@pytest.fixture
def publish_factory(catalog):
    return publish
