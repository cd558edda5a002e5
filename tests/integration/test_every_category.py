"""A fresh install makes every media kind: one job of every local model, over HTTP, through the real worker.

Media inputs are uploads (`kiwiwhale/upload` with a data: URL) or earlier outputs, referred to by the URL the
API gave (absolute) or by its path (relative); the worker reads them from storage, never over the network.
Every output is downloaded like any client would and read back with PyAV or Pillow.
"""

import io
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from PIL import Image
from rest_framework.test import APIClient

from apps.billing import money
from apps.billing.services import wallet_get
from apps.catalog.models import AIModel, Category
from tests.conftest import wait_for_job
from tests.generations.media_samples import bars_video, data_url, decode, gap_wav, png

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SUMMARY_TEXT = (
    "Kiwis are flightless birds from New Zealand. The weather was nice on Tuesday. Kiwis lay very large eggs "
    "for birds of their size. My neighbour owns a red bicycle."
)


def _submit(client, model: str, input: dict) -> str:
    response = client.post("/api/v1/generate.php", {"model": model, "input": input}, format="json")
    assert response.status_code == 202, (model, response.json())
    return response.json()["job_id"]


def _finish(client, job_ids: dict[str, str]) -> dict[str, dict]:
    jobs = {}
    for model, job_id in job_ids.items():
        job = wait_for_job(client, job_id, timeout=120)
        assert job["status"] == "completed", (model, job)
        jobs[model] = job
    return jobs


def _download(output: dict) -> bytes:
    response = APIClient().get(output["url"])  # no credentials: the URL is the capability
    assert response.status_code == 200, output
    return b"".join(response.streaming_content)


def _relative(url: str) -> str:
    return urlsplit(url).path


def test_a_job_of_every_local_category_completes_through_the_worker(celery_worker_process, catalog, alice, alice_api):
    served = {m["public_model"]: m for m in alice_api.get("/api/v1/models.php").json()["models"]}
    local = dict(AIModel.objects.filter(routes__provider="local").values_list("public_model", "category"))
    hidden = set(settings.CATALOG_HIDDEN_MODELS)  # low-accuracy engines: runnable, not listed by default
    assert set(local) - hidden <= set(served), "every local model is listed on a fresh install"
    assert not hidden & set(served)
    assert set(local.values()) == set(Category.values), "the local engines cover every category"

    # 1. Uploads: a picture, a clip with sound, a sound with a silence in the middle.
    uploads = _finish(
        alice_api,
        {
            "image": _submit(
                alice_api,
                "kiwiwhale/upload",
                {"file_url": data_url("image/png", png(160, 120)), "file_name": "pic.png"},
            ),
            "clip": _submit(
                alice_api,
                "kiwiwhale/upload",
                {"file_url": data_url("video/mp4", bars_video()), "file_name": "clip.mp4"},
            ),
            "sound": _submit(
                alice_api, "kiwiwhale/upload", {"file_url": data_url("audio/wav", gap_wav()), "file_name": "gap.wav"}
            ),
        },
    )
    image, clip, sound = (uploads[name]["outputs"][0]["url"] for name in ("image", "clip", "sound"))

    # 2. Everything that needs no earlier output but the uploads.
    first = {
        "local/procedural-image": {"prompt": "a kiwi and a whale", "width": 160, "height": 120, "seed": 1},
        "local/image-filter": {"image_url": image, "filter": "grayscale"},
        "local/text-to-video": {"prompt": "a kiwi and a whale", "width": 160, "height": 120, "duration": 1, "fps": 12},
        "local/image-to-video": {"image_url": _relative(image), "duration": 1, "fps": 12, "motion": "pan-right"},
        "local/text-to-speech": {"text": "one two three four five", "speed": 140},
        "local/echo-chat": {"prompt": "Hello there. Whales are big and kiwis are small."},
        "local/text-summary": {"text": SUMMARY_TEXT, "max_sentences": 2},
        "ffmpeg/merge-videos": {"video_urls": [clip, _relative(clip)]},
        "ffmpeg-api/merge-audio-video": {"video_url": clip, "audio_url": sound},
        "ffmpeg/normalize-compose": {"video_url": clip, "audio_url": sound, "width": 160, "height": 90},
        "kiwiwhale/audio-analysis": {"audio_url": sound},
    }
    jobs = _finish(alice_api, {model: _submit(alice_api, model, input) for model, input in first.items()})

    # 3. On earlier outputs: a frame of the generated video, the words of the generated speech.
    video_url = jobs["local/text-to-video"]["outputs"][0]["url"]
    speech_url = jobs["local/text-to-speech"]["outputs"][0]["url"]
    second = {
        "ffmpeg/extract-frame": {"video_url": video_url, "frame": "last"},
        "local/speech-to-text": {"audio_url": speech_url},
    }
    jobs |= _finish(alice_api, {model: _submit(alice_api, model, input) for model, input in second.items()})
    jobs |= uploads

    assert set(local) <= {job["public_model"] for job in jobs.values()}, "a job of every local model"
    assert {job["category"] for job in jobs.values()} == set(Category.values)

    def output(model):
        [out] = jobs[model]["outputs"]
        return out

    def picture(model) -> Image.Image:
        return Image.open(io.BytesIO(_download(output(model))))

    assert picture("local/procedural-image").size == (160, 120)
    filtered = picture("local/image-filter")
    assert (filtered.format, filtered.size) == ("PNG", (160, 120))
    frame = picture("ffmpeg/extract-frame")
    assert (frame.format, frame.size) == ("PNG", (160, 120))

    for model, size, seconds, audio in [
        ("local/text-to-video", (160, 120), 1.0, ""),
        ("local/image-to-video", (160, 120), 1.0, ""),
        ("ffmpeg/merge-videos", (160, 120), 4.0, "aac"),
        ("ffmpeg-api/merge-audio-video", (160, 120), 2.0, "aac"),
        ("ffmpeg/normalize-compose", (160, 90), 2.0, "aac"),
    ]:
        out = output(model)
        decoded = decode(_download(out))
        assert (decoded.video_codec, decoded.pix_fmt, decoded.audio_codec) == ("h264", "yuv420p", audio), model
        assert (decoded.width, decoded.height) == size == (out["width"], out["height"]), model
        assert decoded.duration == pytest.approx(seconds, abs=0.1), model
        assert out["duration_seconds"] == pytest.approx(decoded.duration, abs=0.01), model
        assert out["content_type"] == "video/mp4"

    speech = output("local/text-to-speech")
    decoded = decode(_download(speech))
    assert (speech["content_type"], decoded.audio_codec) == ("audio/mpeg", "mp3")
    assert decoded.duration == pytest.approx(speech["duration_seconds"], abs=0.01)
    heard = output("local/speech-to-text")
    assert heard["type"] == "text" and {"two", "three", "four", "five"} & set(heard["text"].split())

    analysis = output("kiwiwhale/audio-analysis")
    assert analysis["type"] == "json"
    assert analysis["data"]["duration_seconds"] == pytest.approx(3.0, abs=0.01)
    assert [round(s["start"]) for s in analysis["data"]["silences"]] == [1]

    assert "not an AI model" in output("local/echo-chat")["text"]
    assert "bicycle" not in output("local/text-summary")["text"]

    charged = sum(money.credits_to_micro(str(job["cost_credits"])) for job in jobs.values())
    assert wallet_get(user=alice).balance_micro == 10_000_000 - charged
