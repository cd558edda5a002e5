"""`kiwiwhale/upload`: stores a file given as a data: URL or a public http(s) URL, so later jobs can use it."""

import io
import mimetypes
import re

from PIL import Image, UnidentifiedImageError

from apps.generations.providers import OutputData, ProviderError, RunResult
from kiwiwhale.lib.safe_fetch import FetchError, fetch

_TYPES = {"image": "image", "video": "video", "audio": "audio", "text": "text"}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def run(input: dict) -> RunResult:
    try:
        fetched = fetch(input["file_url"])
    except FetchError as exc:
        raise ProviderError(str(exc), code="fetch_failed") from exc
    content_type = fetched.content_type
    kind = content_type.split("/")[0]
    if content_type == "application/json":
        kind = "json"
    elif kind not in _TYPES:
        raise ProviderError(f"Files of type {content_type} cannot be uploaded; send an image, video, audio or text.")
    name = _file_name(input.get("file_name") or fetched.file_name, content_type)
    output = OutputData(
        type=_TYPES.get(kind, kind), content_type=content_type, file_name=name, content=fetched.content
    )
    if kind == "image":
        try:
            with Image.open(io.BytesIO(fetched.content)) as image:
                output.width, output.height = image.size
        except UnidentifiedImageError as exc:
            raise ProviderError("The file says it is an image but is not one Pillow can read.") from exc
    elif kind == "text":
        output.text = fetched.content.decode("utf-8", errors="replace")
    return RunResult(outputs=[output], usage={"bytes": len(fetched.content)})


def _file_name(name: str, content_type: str) -> str:
    name = _SAFE_NAME.sub("_", name).strip("._")[:100] or "upload"
    if "." not in name:
        name += mimetypes.guess_extension(content_type) or ""
    return name
