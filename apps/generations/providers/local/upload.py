"""`kiwiwhale/upload`: stores a file given as a data: URL or a public http(s) URL, so later jobs can use it."""

import io
import json
import mimetypes
import re

from PIL import Image

from apps.generations.providers import OutputData, ProviderError, RunResult
from kiwiwhale.lib.safe_fetch import FetchError, fetch

_TYPES = {"image": "image", "video": "video", "audio": "audio", "text": "text"}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_DOTS = re.compile(r"\.{2,}")
# Local media is served from our own origin: a type a browser runs scripts in would be stored XSS.
_ACTIVE_TYPES = {"text/html", "text/xml", "text/xsl", "image/svg+xml"}


def run(input: dict) -> RunResult:
    try:
        fetched = fetch(input["file_url"])
    except FetchError as exc:
        raise ProviderError(str(exc), code="fetch_failed") from exc
    content_type = fetched.content_type
    kind = content_type.split("/")[0]
    if content_type == "application/json":
        kind = "json"
    elif kind not in _TYPES or _is_active(content_type):
        raise ProviderError(f"Files of type {content_type} cannot be uploaded; send an image, video, audio or text.")
    name = _file_name(input.get("file_name") or fetched.file_name, content_type)
    output = OutputData(type=_TYPES.get(kind, kind), content_type=content_type, file_name=name, content=fetched.content)
    if kind == "image":
        try:
            with Image.open(io.BytesIO(fetched.content)) as image:
                output.width, output.height = image.size
        except (OSError, Image.DecompressionBombError) as exc:  # UnidentifiedImageError is an OSError
            raise ProviderError("The file says it is an image but is not one Pillow can read.") from exc
    elif kind == "text":
        output.text = fetched.content.decode("utf-8", errors="replace")
    elif kind == "json":
        try:
            output.data = json.loads(fetched.content)
        except ValueError as exc:
            raise ProviderError("The file says it is JSON but does not parse.") from exc
    return RunResult(outputs=[output], usage={"bytes": len(fetched.content)})


def _file_name(name: str, content_type: str) -> str:
    name = _DOTS.sub(".", _SAFE_NAME.sub("_", name)).strip("._")[:100] or "upload"
    # Local media is served with the type its extension implies: "x.html" holding text/plain must not be
    # served as HTML. Give it the checked type's extension; lacking one, neutralise a misleading extension.
    guessed = mimetypes.guess_type(name)[0]
    if guessed != content_type:
        extension = mimetypes.guess_extension(content_type)
        if extension:
            name += extension
        elif guessed and (_is_active(guessed) or guessed.split("/")[0] != content_type.split("/")[0]):
            name += ".bin"
    return name


def _is_active(content_type: str) -> bool:
    return content_type in _ACTIVE_TYPES or content_type.endswith("+xml")
