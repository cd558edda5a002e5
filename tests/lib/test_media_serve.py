"""Local media: HTTP ranges (video seeking, resumed downloads), caching headers, and no way out of the folder."""

import pytest
from django.conf import settings
from django.test import Client


@pytest.fixture
def media_file():
    folder = settings.MEDIA_ROOT / "outputs" / "r4nd0mF0lder"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "clip.mp4"
    path.write_bytes(bytes(range(256)) * 4)  # 1,024 bytes
    return "/media/outputs/r4nd0mF0lder/clip.mp4"


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_it_answers_one_range_with_206_and_exactly_those_bytes(media_file):
    response = Client().get(media_file, HTTP_RANGE="bytes=0-99")
    assert response.status_code == 206
    assert _body(response) == bytes(range(100))
    assert response["Content-Range"] == "bytes 0-99/1024"
    assert response["Content-Length"] == "100"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "video/mp4"


@pytest.mark.parametrize(
    ("header", "expected"),
    [("bytes=1000-", (1000, 1023)), ("bytes=-24", (1000, 1023)), ("bytes=1020-5000", (1020, 1023))],
)
def test_it_answers_open_and_suffix_ranges(media_file, header, expected):
    response = Client().get(media_file, HTTP_RANGE=header)
    start, end = expected
    assert response.status_code == 206
    assert _body(response) == (bytes(range(256)) * 4)[start : end + 1]
    assert response["Content-Range"] == f"bytes {start}-{end}/1024"


def test_it_refuses_a_range_past_the_end_with_416(media_file):
    response = Client().get(media_file, HTTP_RANGE="bytes=5000-6000")
    assert response.status_code == 416
    assert response["Content-Range"] == "bytes */1024"


def test_it_sends_the_whole_file_for_no_range_or_one_it_does_not_understand(media_file):
    for headers in ({}, {"HTTP_RANGE": "bytes=0-1,5-9"}, {"HTTP_RANGE": "lines=1-2"}):
        response = Client().get(media_file, **headers)
        assert response.status_code == 200
        assert len(_body(response)) == 1024


def test_it_lets_browsers_cache_outputs_for_a_year_and_revalidate_by_etag(media_file):
    response = Client().get(media_file)
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response["X-Content-Type-Options"] == "nosniff"
    again = Client().get(media_file, HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    stale = Client().get(media_file, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"other-version"')
    assert stale.status_code == 200 and len(_body(stale)) == 1024


def test_it_never_serves_a_file_outside_the_media_folder(media_file):
    secret = settings.MEDIA_ROOT.parent / "outside.txt"
    secret.write_text("secret")
    for path in ("/media/../outside.txt", "/media/%2e%2e/outside.txt", "/media/outputs/", "/media/nothing.png"):
        assert Client().get(path).status_code == 404, path


def test_it_answers_only_reads(media_file):
    assert Client().post(media_file).status_code == 405
    assert Client().head(media_file).status_code == 200
