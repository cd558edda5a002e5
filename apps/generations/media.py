"""Media inputs of jobs (`image_url`, `video_url`, `audio_url`…): load, check and probe them.

A URL of one of this instance's own outputs or uploads (under MEDIA_URL, relative or on a host the instance
answers to) is read straight from storage, and only under `outputs/`. Any other URL goes through the SSRF-safe
fetcher (public addresses only); data: URLs are decoded. The bytes are then identified by decoding them, never
by the name or the declared type: Pillow for images, PyAV (FFmpeg's libraries) for video and audio, and only
through an allowlist of container formats, so a playlist or other format that opens further URLs never loads.
Size, kind and duration are capped; every refusal is a ProviderError with code "invalid_media", and every
URL that could not be fetched one with code "fetch_failed".
"""

import io
import logging
import math
import posixpath
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.files.storage import default_storage
from django.http.request import validate_host
from PIL import Image

from apps.generations.providers import ProviderError
from kiwiwhale.lib.safe_fetch import FetchError, fetch

logger = logging.getLogger(__name__)

OUTPUTS_DIR = "outputs/"
INVALID = "invalid_media"
FETCH_FAILED = "fetch_failed"
IMAGE_MAX_PIXELS = 50_000_000  # refuse larger images before decoding them (decompression bombs)
IMAGE_FORMATS = {"PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"}
# Container formats (FFmpeg demuxers) accepted for audio and video. Others (playlists such as HLS, concat
# lists, image sequences…) can make the demuxer open further files or URLs, so they never load.
CONTAINER_FORMATS = ("mov", "matroska", "webm", "avi", "mpegts", "flv", "mp3", "wav", "ogg", "flac", "aac", "w64")
CONTAINER_WHITELIST = ",".join(CONTAINER_FORMATS)
_CONTENT_TYPES = {
    ("video", "mov"): "video/mp4",
    ("audio", "mov"): "audio/mp4",
    ("video", "matroska"): "video/webm",
    ("audio", "matroska"): "audio/webm",
    ("video", "avi"): "video/x-msvideo",
    ("video", "mpegts"): "video/mp2t",
    ("video", "flv"): "video/x-flv",
    ("audio", "mp3"): "audio/mpeg",
    ("audio", "wav"): "audio/wav",
    ("audio", "w64"): "audio/wav",
    ("audio", "ogg"): "audio/ogg",
    ("video", "ogg"): "video/ogg",
    ("audio", "flac"): "audio/flac",
    ("audio", "aac"): "audio/aac",
}
_EXTENSIONS = {"mov": ".mp4", "matroska": ".mkv", "avi": ".avi", "mpegts": ".ts", "flv": ".flv", "mp3": ".mp3",
               "wav": ".wav", "w64": ".w64", "ogg": ".ogg", "flac": ".flac", "aac": ".aac"}  # fmt: skip


@dataclass
class Media:
    """A checked media file: its bytes, what it really is, and what a probe measured."""

    content: bytes
    content_type: str
    file_name: str
    kind: str  # image | video | audio
    format: str  # Pillow format (PNG, JPEG…) or FFmpeg demuxer (mov, matroska, wav…)
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    fps: float | None = None
    has_video: bool = False
    has_audio: bool = False
    video_codec: str = ""
    audio_codec: str = ""
    sample_rate: int | None = None
    channels: int | None = None

    @property
    def extension(self) -> str:
        if self.kind == "image":
            return "." + ("jpg" if self.format == "JPEG" else self.format.lower())
        return _EXTENSIONS.get(self.format, ".bin")

    def save_to(self, directory: Path | str, stem: str) -> Path:
        """Writes the bytes into `directory` under a name of ours (never the user's) and returns the path."""
        path = Path(directory) / f"{stem}{self.extension}"
        path.write_bytes(self.content)
        return path

    def ffmpeg_input(self, path: Path | str) -> list[str]:
        """ffmpeg arguments that read `path` with the demuxer the probe found, nothing but local files, and
        no more than the duration cap whatever the headers claimed."""
        limit = f"{settings.MEDIA_MAX_SECONDS + 1:g}"
        return ["-protocol_whitelist", "file", "-f", self.format, "-t", limit, "-i", str(path)]


def media_load(
    url: str,
    *,
    kinds: set[str] | frozenset[str] | tuple[str, ...],
    max_bytes: int | None = None,
    max_seconds: float | None = None,
    field: str = "",
) -> Media:
    """Loads the media at `url`, refused unless it decodes as one of `kinds` within the caps.

    `max_seconds` caps audio and video (default MEDIA_MAX_SECONDS); `field` names the input in messages.
    """
    max_bytes = max_bytes or settings.FETCH_MAX_BYTES
    max_seconds = max_seconds or settings.MEDIA_MAX_SECONDS
    label = f"{field}: " if field else ""
    if not isinstance(url, str) or not url.strip():
        raise ProviderError(f"{label}a media URL is required.", code=INVALID)
    url = url.strip()
    try:
        name = own_storage_name(url)
        if name is not None:
            content, file_name = _storage_read(name, max_bytes)
            declared = ""
        else:
            fetched = fetch(url, max_bytes=max_bytes)
            content, file_name, declared = fetched.content, fetched.file_name, fetched.content_type
    except FetchError as exc:  # refused (private, too large), unreachable or timed out: one code for every fetch
        raise ProviderError(f"{label}{exc}", code=FETCH_FAILED) from exc
    except _Refused as exc:
        raise ProviderError(f"{label}{exc}", code=INVALID) from exc
    media = _identify(content, file_name=file_name, declared=declared, label=label)
    if media.kind not in kinds:
        wanted = " or ".join(sorted(kinds))
        raise ProviderError(f"{label}expected {_article(wanted)} {wanted} file, got {_article(media.kind)} "
                            f"{media.kind}.", code=INVALID)  # fmt: skip
    if media.kind in ("video", "audio"):
        if media.duration_seconds is None or media.duration_seconds <= 0:
            raise ProviderError(f"{label}the {media.kind} has no measurable duration.", code=INVALID)
        if media.duration_seconds > max_seconds:
            raise ProviderError(
                f"{label}the {media.kind} lasts {media.duration_seconds:.1f} s; at most {max_seconds:g} s is accepted.",
                code=INVALID,
            )
    return media


class _Refused(Exception):
    pass


# --- Our own outputs -------------------------------------------------------------------------------------


def own_storage_name(url: str) -> str | None:
    """The storage name of `url` when it points into this instance's media, else None (a foreign URL).

    Raises _Refused for a URL into our media that is not a readable output (outside outputs/, or with `..`).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("", "http", "https") or (not parts.scheme and not url.startswith("/")):
        return None
    base = _storage_base()
    base_parts = urlsplit(base)
    if base_parts.scheme:  # the storage serves its own URLs (a bucket, a CDN): match them exactly
        if not parts.scheme or (parts.scheme, parts.netloc.lower()) != (base_parts.scheme, base_parts.netloc.lower()):
            return None
    elif (parts.scheme and not _is_own_host(parts)) or (not parts.scheme and parts.netloc):  # "//host/…"
        return None
    prefix = base_parts.path if base_parts.path.endswith("/") else base_parts.path + "/"
    if not parts.path.startswith(prefix):
        return None
    name = unquote(parts.path[len(prefix) :])
    segments = name.split("/")
    if "\\" in name or "\x00" in name or any(s in ("", ".", "..") for s in segments) or ".." in name:
        raise _Refused("this media path is not allowed.")
    if not name.startswith(OUTPUTS_DIR) or posixpath.normpath(name) != name:
        raise _Refused("only outputs and uploads of this instance can be read.")
    return name


def _storage_base() -> str:
    """The URL prefix of stored files: MEDIA_URL on a file system, the bucket's URL on S3."""
    try:
        probe = "outputs/x"
        url = default_storage.url(probe)
        if url.endswith(probe):
            return url[: -len(probe)]
    except Exception:  # a storage that cannot build URLs without a call: fall back to MEDIA_URL
        logger.warning("Could not ask the storage for its base URL", exc_info=True)
    return settings.MEDIA_URL


def _is_own_host(parts) -> bool:
    host = parts.hostname
    if not host or parts.username or parts.password:
        return False
    if ":" in host:
        host = f"[{host}]"
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    site = urlsplit(settings.SITE_URL).hostname if settings.SITE_URL else None
    return validate_host(host, hosts) or (site is not None and host == site)


def _storage_read(name: str, max_bytes: int) -> tuple[bytes, str]:
    try:
        if not default_storage.exists(name):
            raise _Refused("no such output on this instance.")
        if default_storage.size(name) > max_bytes:
            raise _Refused(f"the file is larger than {max_bytes} bytes.")
        with default_storage.open(name, "rb") as handle:
            content = handle.read(max_bytes + 1)
    except _Refused:
        raise
    except Exception as exc:  # SuspiciousFileOperation, a storage error: nothing to show the user
        logger.warning("Could not read %s from storage", name, exc_info=True)
        raise _Refused("the output could not be read.") from exc
    if len(content) > max_bytes:
        raise _Refused(f"the file is larger than {max_bytes} bytes.")
    return content, posixpath.basename(name)


# --- What the bytes really are --------------------------------------------------------------------------


def _identify(content: bytes, *, file_name: str, declared: str, label: str) -> Media:
    if not content:
        raise ProviderError(f"{label}the file is empty.", code=INVALID)
    image = _as_image(content, file_name, label)
    if image is not None:
        return image
    container = _as_container(content, file_name)
    if container is not None:
        return container
    what = f" ({declared})" if declared and declared != "application/octet-stream" else ""
    raise ProviderError(f"{label}the file{what} is not an image, video or audio file that can be read.", code=INVALID)


def _as_image(content: bytes, file_name: str, label: str) -> Media | None:
    try:
        with Image.open(io.BytesIO(content)) as image:
            format_, size = image.format, image.size
    except Image.DecompressionBombError as exc:
        raise ProviderError(f"{label}the image is too large.", code=INVALID) from exc
    except OSError:  # not an image Pillow knows (UnidentifiedImageError is an OSError)
        return None
    if format_ not in IMAGE_FORMATS:
        return None
    if size[0] * size[1] > IMAGE_MAX_PIXELS:
        raise ProviderError(f"{label}the image is too large ({size[0]}x{size[1]}).", code=INVALID)
    try:
        with Image.open(io.BytesIO(content)) as image:
            image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ProviderError(f"{label}the image is damaged and cannot be decoded.", code=INVALID) from exc
    return Media(
        content=content,
        content_type=Image.MIME.get(format_, "application/octet-stream"),
        file_name=file_name or "image",
        kind="image",
        format=format_,
        width=size[0],
        height=size[1],
    )


def _as_container(content: bytes, file_name: str) -> Media | None:
    import av

    try:
        container = av.open(io.BytesIO(content), options={"format_whitelist": CONTAINER_WHITELIST})
    except (av.FFmpegError, ValueError, OSError):
        return None
    try:
        demuxer = container.format.name.split(",")[0]
        video = next((s for s in container.streams.video if not _is_cover_art(s)), None)
        audio = next(iter(container.streams.audio), None)
        if video is None and audio is None:
            return None
        kind = "video" if video is not None else "audio"
        media = Media(
            content=content,
            content_type=_CONTENT_TYPES.get((kind, demuxer), f"{kind}/octet-stream"),
            file_name=file_name or kind,
            kind=kind,
            format=demuxer,
            has_video=video is not None,
            has_audio=audio is not None,
        )
        if video is not None:
            media.width, media.height = video.codec_context.width or None, video.codec_context.height or None
            media.video_codec = codec_name(video)
            rate = video.average_rate or video.guessed_rate
            media.fps = float(rate) if rate else None
        if audio is not None:
            media.audio_codec = codec_name(audio)
            media.sample_rate = audio.codec_context.sample_rate or None
            media.channels = audio.codec_context.channels or None
        media.duration_seconds = _duration(container)
        return media
    except (av.FFmpegError, ValueError, OSError):
        return None
    finally:
        container.close()


def codec_name(stream) -> str:
    """The codec's own name ("mp3", "h264"), not the decoder's ("mp3float")."""
    context = stream.codec_context
    return getattr(context.codec, "canonical_name", None) or context.name


def _is_cover_art(stream) -> bool:
    # An MP3 or M4A with an embedded picture shows it as a one-frame "video" stream.
    return bool(stream.disposition & 0x0400)  # AV_DISPOSITION_ATTACHED_PIC


def _duration(container) -> float | None:
    import av

    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    longest = 0.0
    for stream in container.streams:
        if stream.duration and stream.time_base:
            longest = max(longest, float(stream.duration * stream.time_base))
    if longest > 0:
        return longest
    # No header says: read the packets (bounded by the byte cap) and take the last timestamp.
    end = 0.0
    for packet in container.demux():
        if packet.pts is not None and packet.time_base:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return end if end > 0 and math.isfinite(end) else None


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
