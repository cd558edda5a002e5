"""Serves local media files (outputs, uploads) with HTTP ranges and long-lived caching.

Django's `django.views.static.serve` is a development helper: no `Range` support, so a browser's video player
cannot seek and a download cannot resume. Output files never change once written (each lives under a random,
unguessable folder), so a URL is its own access token and its bytes can be cached for a year as immutable.

One `Range: bytes=a-b` (or `a-` / `-n`) is answered 206 with `Content-Range`; several ranges, or one outside
the file, fall back to the whole file (200) or 416, as RFC 9110 allows.
"""

import mimetypes
import os
import re
from pathlib import Path

from django.http import FileResponse, Http404, HttpResponse, HttpResponseNotModified
from django.utils._os import safe_join
from django.utils.http import http_date, parse_http_date_safe
from django.views.decorators.http import require_safe

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CACHE_CONTROL = "public, max-age=31536000, immutable"


class _RangeFile:
    """A file object that reads at most `length` bytes from `start`, for FileResponse to stream."""

    def __init__(self, path: Path, start: int, length: int):
        self._file = open(path, "rb")  # noqa: SIM115 - FileResponse closes it when the response is done
        self._file.seek(start)
        self._left = length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size < 0 else min(size, self._left)
        chunk = self._file.read(size)
        self._left -= len(chunk)
        return chunk

    def close(self) -> None:
        self._file.close()


def byte_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """(start, end inclusive) for one satisfiable range; None for no usable header; False when unsatisfiable."""
    match = _RANGE.match(header.strip()) if header else None
    if not match or not (match[1] or match[2]):
        return None
    if not match[1]:  # the last n bytes
        length = int(match[2])
        if length == 0:
            return False
        return max(0, size - length), size - 1
    start = int(match[1])
    end = int(match[2]) if match[2] else size - 1
    if start >= size or end < start:
        return False
    return start, min(end, size - 1)


@require_safe
def media_serve(request, path: str, document_root: str):
    try:
        full = Path(safe_join(document_root, path))
    except (ValueError, Exception) as exc:  # SuspiciousFileOperation: a path that leaves the media folder
        raise Http404("No such file.") from exc
    try:
        stat = full.stat()
    except (OSError, ValueError) as exc:
        raise Http404("No such file.") from exc
    if not full.is_file():
        raise Http404("No such file.")

    etag = f'"{stat.st_size:x}-{int(stat.st_mtime):x}"'
    if request.headers.get("If-None-Match") == etag:
        return _headers(HttpResponseNotModified(), etag, stat)
    since = parse_http_date_safe(request.headers.get("If-Modified-Since", ""))
    if since is not None and int(stat.st_mtime) <= since and "If-None-Match" not in request.headers:
        return _headers(HttpResponseNotModified(), etag, stat)

    content_type, encoding = mimetypes.guess_type(full.name)
    content_type = content_type or "application/octet-stream"
    wanted = byte_range(request.headers.get("Range", ""), stat.st_size)
    if wanted and request.headers.get("If-Range") not in (None, etag):
        wanted = None  # the client's copy is of another version: send the whole file
    if wanted is False:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{stat.st_size}"
        return _headers(response, etag, stat)
    if wanted:
        start, end = wanted
        response = FileResponse(_RangeFile(full, start, end - start + 1), status=206, content_type=content_type)
        response["Content-Length"] = str(end - start + 1)
        response["Content-Range"] = f"bytes {start}-{end}/{stat.st_size}"
    else:
        response = FileResponse(open(full, "rb"), content_type=content_type)  # noqa: SIM115 - closed by Django
        response["Content-Length"] = str(stat.st_size)
    if encoding:
        response["Content-Encoding"] = encoding
    return _headers(response, etag, stat)


def _headers(response, etag: str, stat: os.stat_result):
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    response["Last-Modified"] = http_date(stat.st_mtime)
    response["Cache-Control"] = CACHE_CONTROL
    # Outputs are user content: never let a browser sniff a text file into HTML.
    response["X-Content-Type-Options"] = "nosniff"
    return response
