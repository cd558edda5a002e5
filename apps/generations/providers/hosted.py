"""What the adapters of hosted APIs (fal.ai, Replicate) share: the input as the upstream takes it, and the files
it returns as our outputs.

The input: the route's mapping (`input_for_upstream`'s rename/drop/fixed, plus `values` and `max`, below) and
media inputs (`image_url`, `video_url`, `audio_url`…) that point at this instance's own outputs sent inline as
data: URIs, because a hosted API cannot reach a private instance (fal and Replicate both accept data: URIs).

The outputs: each upstream file is downloaded (its URL expires) with a client that carries no credentials, then
typed from its content type and measured: Pillow for image sizes, PyAV for video and audio durations.
"""

import base64
import io
import json
import logging
import mimetypes
import re
from urllib.parse import unquote, urlsplit

from django.conf import settings
from PIL import Image

from apps.generations.media import media_load, own_storage_name
from apps.generations.providers import OutputData, ProviderError, input_for_upstream
from apps.generations.providers.http import UpstreamClient
from kiwiwhale.lib.safe_fetch import FetchError, fetch

logger = logging.getLogger(__name__)

MAX_OUTPUT_FILES = 16
_MEDIA_KINDS = ("image", "video", "audio")
_SAFE_STEM = re.compile(r"[^A-Za-z0-9_-]+")
# Outputs are served from our own origin: a type a browser runs scripts in would be stored XSS.
_ACTIVE_TYPES = {"text/html", "application/xhtml+xml", "text/xml", "application/xml", "image/svg+xml", "text/xsl"}
_EXTENSIONS = {"image/jpeg": ".jpg", "audio/mpeg": ".mp3", "audio/wav": ".wav", "audio/x-wav": ".wav"}


def upstream_input(input: dict, params: dict) -> dict:
    """The job's input as the route's upstream names it, with our own media inlined.

    Besides rename/drop/fixed, a route's `params` may hold `max` ({our field: the largest value this upstream
    serves}; larger inputs are refused, so another route may serve them) and `values` ({our field: {our value:
    {their field: value, …}}}: a value replaced by the upstream's fields, e.g. an image size preset by a width
    and a height; values not listed pass through renamed).
    """
    for field, limit in params.get("max", {}).items():
        value = input.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > limit:
            raise ProviderError(
                f"This provider serves at most {limit} for {field}.", retryable=True, code="route_unsuitable"
            )
    values, expanded, rest = params.get("values", {}), {}, {}
    for field, value in input.items():
        table = values.get(field)
        if isinstance(table, dict) and isinstance(value, str | int) and str(value) in table:
            expanded.update(table[str(value)])
        else:
            rest[field] = _inlined(field, value)
    mapped = input_for_upstream(rest, {**params, "fixed": {}})
    return {**mapped, **expanded, **params.get("fixed", {})}


def _inlined(field: str, value):
    if field.endswith("_urls") and isinstance(value, list):
        return [_inlined(field[:-1], item) for item in value]
    if not field.endswith("_url") or not isinstance(value, str):
        return value
    try:
        own = own_storage_name(value) is not None
    except Exception:  # a path into our media that is not an output: media_load says why
        own = True
    if not own:
        return value  # a public URL: the upstream fetches it itself
    kinds = tuple(kind for kind in _MEDIA_KINDS if kind in field) or _MEDIA_KINDS  # end_image_url: an image
    media = media_load(value, kinds=kinds, field=field)
    return f"data:{media.content_type};base64,{base64.b64encode(media.content).decode('ascii')}"


def same_origin(url, base_url: str) -> bool:
    """Whether `url` is on the API's own origin: only there may a request carry the account's key."""
    if not isinstance(url, str) or not url:
        return False
    try:
        parts, base = urlsplit(url), urlsplit(base_url)
    except ValueError:
        return False
    return (parts.scheme, parts.netloc.lower()) == (base.scheme, base.netloc.lower()) and not parts.username


def _host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname if url else None
    except ValueError:
        return None


def is_file_url(value) -> bool:
    return isinstance(value, str) and (value.startswith(("https://", "http://")) or value.startswith("data:"))


def error_excerpt(error, limit: int = 300) -> str:
    """An upstream's own error message, on one line and short: safe to show the user."""
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or error.get("msg") or json.dumps(error)
    elif isinstance(error, list) and error:
        return error_excerpt(error[0], limit)
    text = " ".join(str(error or "").split())
    return text[: limit - 1] + "…" if len(text) > limit else text


def files_download(files: list[dict], *, provider: str, base_url: str = "") -> list[OutputData]:
    """Our outputs from the upstream's files: `{"url", "content_type"?, "file_name"?, "width"?, "height"?,
    "hint"?}` each, `hint` being the kind the upstream's answer implies (image, video, audio).

    The download goes through the outbound guard: public addresses only, except the account's own host
    (`base_url`) when an admin allowlisted it (FETCH_PRIVATE_HOST_ALLOWLIST); size and time capped."""
    if len(files) > MAX_OUTPUT_FILES:
        files = files[:MAX_OUTPUT_FILES]
    outputs = []
    # A client of its own, without the account's key: output URLs are often on another host (a CDN).
    with UpstreamClient(base_url="", provider=provider, trusted_host=_host(base_url)) as client:
        for position, file in enumerate(files):
            content, content_type = _download(client, file["url"], provider=provider)
            outputs.append(output_from_file(file, content, content_type, position=position, provider=provider))
    return outputs


def _download(client: UpstreamClient, url: str, *, provider: str) -> tuple[bytes, str]:
    if url.startswith("data:"):
        try:
            fetched = fetch(url, max_bytes=settings.UPSTREAM_MAX_DOWNLOAD_BYTES)
        except FetchError as exc:
            raise ProviderError(f"{provider} returned an unreadable inline file.", code="upstream_malformed") from exc
        return fetched.content, fetched.content_type
    return client.download(url)


def output_from_file(file: dict, content: bytes, downloaded_type: str, *, position: int, provider: str) -> OutputData:
    url_path = unquote(urlsplit(file["url"]).path) if not file["url"].startswith("data:") else ""
    content_type = _content_type(file.get("content_type"), downloaded_type, url_path)
    if content_type in _ACTIVE_TYPES:
        raise ProviderError(f"{provider} returned a file of type {content_type}, which this instance does not serve.")
    kind = _kind(content_type) or file.get("hint", "")
    if not kind:
        raise ProviderError(f"{provider} returned a file of type {content_type}, which this instance does not serve.")
    output = OutputData(
        type=kind,
        content_type=content_type,
        file_name=_file_name(file.get("file_name") or url_path.rsplit("/", 1)[-1], content_type, position),
        content=content,
        width=_positive_int(file.get("width")),
        height=_positive_int(file.get("height")),
    )
    if kind == "image" and not (output.width and output.height):
        output.width, output.height = _image_size(content, provider)
    elif kind in ("video", "audio"):
        output.duration_seconds, width, height = _probe(content)
        if kind == "video" and not (output.width and output.height):
            output.width, output.height = width, height
    elif kind == "text":
        output.text = content.decode("utf-8", errors="replace")
    elif kind == "json":
        try:
            output.data = json.loads(content)
        except ValueError as exc:
            raise ProviderError(f"{provider} returned a JSON file that does not parse.") from exc
    return output


def _content_type(declared, downloaded: str, url_path: str) -> str:
    for candidate in (declared, downloaded):
        if isinstance(candidate, str) and "/" in candidate:
            value = candidate.split(";")[0].strip().lower()
            if value not in ("application/octet-stream", "binary/octet-stream"):
                return value
    return (mimetypes.guess_type(url_path)[0] or "application/octet-stream").lower()


def _kind(content_type: str) -> str:
    major = content_type.split("/")[0]
    if major in ("image", "video", "audio"):
        return major
    if content_type == "application/json":
        return "json"
    return "text" if major == "text" else ""


def _file_name(name: str, content_type: str, position: int) -> str:
    # Local media is served with the type its extension implies: the name's extension is always the checked type's.
    stem = _SAFE_STEM.sub("_", name.rsplit(".", 1)[0] if "." in name else name).strip("_")[:60] or f"output-{position}"
    extension = _EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type) or ".bin"
    return f"{stem}{extension}"


def _positive_int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _image_size(content: bytes, provider: str) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(content)) as image:
            return image.size
    except (OSError, Image.DecompressionBombError) as exc:  # UnidentifiedImageError is an OSError
        raise ProviderError(
            f"{provider} returned an image that cannot be read.", retryable=True, code="upstream_malformed"
        ) from exc


def _probe(content: bytes) -> tuple[float | None, int | None, int | None]:
    """(duration in seconds, width, height) of a video or audio file; None where PyAV cannot tell."""
    try:
        import av
    except ImportError:  # PyAV is optional for upstream outputs: they are stored unmeasured
        return None, None, None
    try:
        with av.open(io.BytesIO(content)) as container:
            duration = container.duration / av.time_base if container.duration and container.duration > 0 else None
            if duration is None:
                lengths = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
                duration = max(lengths, default=None)
            video = next(iter(container.streams.video), None)
            width = video.codec_context.width or None if video is not None else None
            height = video.codec_context.height or None if video is not None else None
            return (round(duration, 3) if duration else None), width, height
    except (av.FFmpegError, ValueError, OSError):
        logger.info("Could not probe an upstream output", exc_info=True)
        return None, None, None
