"""Media inputs of jobs: own outputs read from storage, everything else through the SSRF-safe fetcher, with caps."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import override_settings

from apps.generations import media as media_module
from apps.generations.media import media_load, own_storage_name
from apps.generations.providers import ProviderError
from kiwiwhale.lib.safe_fetch import Fetched
from tests.generations.media_samples import bars_video, data_url, gap_wav, png, silent_video, tone_mp3

IMAGE = {"image"}
VIDEO = {"video"}
AUDIO = {"audio"}


@pytest.fixture
def stored():
    """Saves a file under outputs/ as an output would be, and removes it afterwards."""
    names = []

    def save(content: bytes, name: str = "picture.png") -> str:
        saved = default_storage.save(f"outputs/2026/01/tok3n{len(names)}/{name}", ContentFile(content))
        names.append(saved)
        return saved

    yield save
    for name in names:
        default_storage.delete(name)


@pytest.fixture
def no_network(monkeypatch):
    """Fails the test if anything tries the fetcher (own outputs must never go over the network)."""

    def refuse(url, **kwargs):
        raise AssertionError(f"fetched {url}")

    monkeypatch.setattr(media_module, "fetch", refuse)


def _refused(url: str, kinds=IMAGE, *, code: str = "invalid_media", **caps) -> str:
    with pytest.raises(ProviderError) as raised:
        media_load(url, kinds=kinds, **caps)
    assert raised.value.code == code
    assert not raised.value.retryable
    return raised.value.message


# --- own outputs, from storage ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "http://testserver",
        "https://testserver",
        "http://localhost:8000",
        "http://127.0.0.1:8000",
        "http://TestServer",
    ],
)
def test_it_reads_an_own_output_from_storage_by_relative_or_absolute_url(stored, no_network, prefix):
    name = stored(png(64, 48))
    media = media_load(f"{prefix}/media/{name}", kinds=IMAGE)
    assert (media.kind, media.format, media.content_type) == ("image", "PNG", "image/png")
    assert (media.width, media.height) == (64, 48)
    assert media.content == default_storage.open(name).read()
    assert media.file_name == name.rsplit("/", 1)[-1]


def test_it_reads_the_url_the_api_gives_for_an_output(stored, no_network):
    # FileField.url percent-encodes the name; the loader decodes it back to the storage name.
    name = stored(tone_mp3(), "my song (take 2).mp3")
    url = "http://testserver" + default_storage.url(name)
    assert "%20" in url
    media = media_load(url, kinds=AUDIO)
    assert (media.kind, media.format, media.content_type, media.audio_codec) == ("audio", "mp3", "audio/mpeg", "mp3")
    assert media.duration_seconds == pytest.approx(2.0, abs=0.1)


def test_it_measures_a_video_from_storage(stored, no_network):
    name = stored(bars_video(), "bars.mp4")
    media = media_load(f"/media/{name}", kinds=VIDEO)
    assert (media.kind, media.format, media.content_type) == ("video", "mov", "video/mp4")
    assert (media.width, media.height, media.fps) == (160, 120, 24.0)
    assert media.has_video and media.has_audio
    assert (media.video_codec, media.audio_codec) == ("h264", "aac")
    assert media.duration_seconds == pytest.approx(2.0, abs=0.1)


@override_settings(SITE_URL="https://kiwi.example")
def test_it_counts_the_site_url_host_as_its_own(stored, no_network):
    name = stored(png(10, 10))
    assert media_load(f"https://kiwi.example/media/{name}", kinds=IMAGE).width == 10


@override_settings(MEDIA_URL="https://cdn.example.com/files/")
def test_it_follows_an_absolute_media_url(stored, no_network):
    name = stored(png(12, 10))
    assert own_storage_name(f"https://cdn.example.com/files/{name}") == name
    assert media_load(f"https://cdn.example.com/files/{name}", kinds=IMAGE).width == 12
    assert own_storage_name(f"https://other.example.com/files/{name}") is None
    assert own_storage_name(f"/media/{name}") is None


def test_a_missing_output_is_refused_without_fetching(no_network):
    assert "no such output" in _refused("/media/outputs/2026/01/nothing/here.png")
    assert "no such output" in _refused("http://testserver/media/outputs/2026/01/nothing/here.png")


@pytest.mark.parametrize(
    "path",
    [
        "/media/outputs/../../etc/passwd",
        "/media/outputs/2026/../../kiwiwhale/settings.py",
        "/media/outputs/%2e%2e/%2e%2e/etc/passwd",
        "/media/outputs/a/..%2f..%2fsecret",
        "/media/outputs/a/./b.png",
        "/media/outputs//etc/passwd",
        "/media/outputs/a\\..\\b.png",
        "/media/outputs/a%00.png",
        "http://testserver/media/outputs/../secret.png",
    ],
)
def test_it_refuses_paths_that_climb_out_and_never_fetches_them(no_network, path):
    assert "not allowed" in _refused(path)


@pytest.mark.parametrize("path", ["/media/private/key.png", "/media/a.png", "/media/outputsx/a.png", "/media/"])
def test_it_reads_nothing_of_its_own_media_outside_outputs(stored, no_network, path):
    assert "only outputs" in _refused(path) or "not allowed" in _refused(path)


def test_it_refuses_an_own_output_larger_than_the_cap(stored, no_network):
    name = stored(png(400, 300))
    size = default_storage.size(name)
    assert media_load(f"/media/{name}", kinds=IMAGE, max_bytes=size).width == 400
    assert "larger than" in _refused(f"/media/{name}", max_bytes=size - 1)


# --- anything else: the SSRF-safe fetcher -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/secret.png",
        "http://127.0.0.1:9/static/logo.png",  # our host, but not our media: fetched, and loopback is refused
        "http://[::1]:9/x.png",
        "http://10.0.0.1/x.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/media/x.png",
    ],
)
def test_it_refuses_private_and_loopback_urls_that_are_not_its_own(url):
    assert "private, loopback or reserved" in _refused(url, code="fetch_failed")


def test_it_fetches_a_foreign_url_through_the_safe_fetcher(monkeypatch):
    calls = []

    def fake_fetch(url, *, max_bytes):
        calls.append((url, max_bytes))
        return Fetched(content=png(30, 20), content_type="application/octet-stream", file_name="p")

    monkeypatch.setattr(media_module, "fetch", fake_fetch)
    # A path like ours on a host that is not ours is someone else's file: fetched, never read from storage.
    media = media_load("https://images.example.org/media/outputs/x/p", kinds=IMAGE, max_bytes=12345)
    assert calls == [("https://images.example.org/media/outputs/x/p", 12345)]
    assert (media.kind, media.content_type, media.width) == ("image", "image/png", 30)


@pytest.mark.parametrize("url", ["ftp://example.com/x.png", "file:///etc/passwd", "gopher://x/", "javascript:1"])
def test_it_refuses_other_schemes(url):
    _refused(url, code="fetch_failed")


def test_it_refuses_credentials_in_a_url_even_on_its_own_host(no_network, monkeypatch):
    monkeypatch.setattr(media_module, "fetch", lambda url, **kw: (_ for _ in ()).throw(AssertionError("fetched")))
    assert own_storage_name("http://user:pw@testserver/media/outputs/x.png") is None


# --- data: URLs, kinds, caps ------------------------------------------------------------------------------


def test_it_decodes_data_urls_and_trusts_the_bytes_not_the_declared_type():
    media = media_load(data_url("video/mp4", png(20, 10)), kinds=IMAGE)  # says video, is a PNG
    assert (media.kind, media.content_type, media.width) == ("image", "image/png", 20)
    audio = media_load(data_url("application/octet-stream", gap_wav()), kinds=AUDIO)
    assert (audio.kind, audio.format, audio.sample_rate, audio.channels) == ("audio", "wav", 44100, 1)
    assert audio.duration_seconds == pytest.approx(3.0, abs=0.01)


def test_it_refuses_a_data_url_larger_than_the_cap():
    content = png(300, 300)
    assert "larger than" in _refused(data_url("image/png", content), code="fetch_failed", max_bytes=len(content) - 1)


@pytest.mark.parametrize(
    ("content", "kinds", "expected"),
    [
        (png(), VIDEO, "expected a video file, got an image"),
        (bars_video(), IMAGE, "expected an image file, got a video"),
        (silent_video(), AUDIO, "expected an audio file, got a video"),
        (gap_wav(), VIDEO, "expected a video file, got an audio"),
    ],
)
def test_it_refuses_the_wrong_kind(content, kinds, expected):
    assert expected in _refused(data_url("application/octet-stream", content), kinds=kinds)


def test_audio_or_video_accepts_both():
    assert media_load(data_url("video/mp4", bars_video()), kinds={"audio", "video"}).kind == "video"
    assert media_load(data_url("audio/wav", gap_wav()), kinds={"audio", "video"}).kind == "audio"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"hello, I am text",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:9/segment.ts\n#EXT-X-ENDLIST\n",
        b"ffconcat version 1.0\nfile '/etc/passwd'\n",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,  # a PNG signature with nothing behind it
        bars_video()[: len(bars_video()) // 3],  # a cut-off MP4 (its index is at the end)
    ],
)
def test_it_refuses_what_does_not_decode_as_media(content):
    _refused(data_url("video/mp4", content), kinds={"image", "video", "audio"})


def test_it_refuses_audio_or_video_longer_than_the_duration_cap():
    assert media_load(data_url("audio/wav", gap_wav()), kinds=AUDIO, max_seconds=3.5).kind == "audio"
    message = _refused(data_url("audio/wav", gap_wav()), kinds=AUDIO, max_seconds=2)
    assert "lasts 3.0 s" in message and "at most 2 s" in message


@override_settings(MEDIA_MAX_SECONDS=1.5)
def test_the_default_duration_cap_is_the_setting():
    assert "at most 1.5 s" in _refused(data_url("video/mp4", bars_video()), kinds=VIDEO)


def test_it_refuses_an_image_with_too_many_pixels(monkeypatch):
    monkeypatch.setattr(media_module, "IMAGE_MAX_PIXELS", 100 * 100)
    assert media_load(data_url("image/png", png(100, 100)), kinds=IMAGE).width == 100
    assert "too large" in _refused(data_url("image/png", png(101, 100)))


def test_messages_name_the_field():
    with pytest.raises(ProviderError) as raised:
        media_load("http://127.0.0.1:9/x", kinds=VIDEO, field="video_urls.1")
    assert raised.value.message.startswith("video_urls.1: ")
