"""Fetch a user-supplied URL without letting it reach inside our network (SSRF), within size and time caps.

Only http(s) and data: URLs. The host name is resolved once, every address must be public, and the connection
goes to the checked address (Host header and TLS SNI keep the name), so a DNS answer that changes between the
check and the connection cannot redirect it. Redirects are followed by hand, each hop checked again.
"""

import base64
import binascii
import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from urllib.parse import unquote, unquote_to_bytes, urljoin, urlsplit, urlunsplit

import httpx
from django.conf import settings

MAX_REDIRECTS = 5
_REDIRECT_CODES = {301, 302, 303, 307, 308}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_DATA_URL = re.compile(
    r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w-]+=[^;,]*)*)(?P<b64>;base64)?,(?P<data>.*)$", re.S
)


class FetchError(Exception):
    """The URL cannot be fetched; the message is safe to show the user."""


class FetchRefused(FetchError):
    """The URL is not allowed here (scheme, credentials, a non-public address): trying again will not help."""


@dataclass
class Fetched:
    content: bytes
    content_type: str
    file_name: str


def fetch(url: str, *, max_bytes: int | None = None, timeout: float | None = None) -> Fetched:
    max_bytes = max_bytes or settings.FETCH_MAX_BYTES
    timeout = timeout or settings.FETCH_TIMEOUT_SECONDS
    if url.startswith("data:"):
        return _data_url(url, max_bytes)
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        response_or_location = _fetch_once(url, max_bytes=max_bytes, deadline=deadline)
        if isinstance(response_or_location, Fetched):
            return response_or_location
        url = urljoin(url, response_or_location)
    raise FetchError("Too many redirects.")


def address_is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return False
        # IPv6 forms that carry an IPv4 address (mapped, 6to4, NAT64, the old IPv4-compatible ::a.b.c.d) can
        # reach that IPv4 address through a gateway or tunnel: judge them by it.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and (ip in _NAT64 or int(ip) >> 32 == 0):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        ip = embedded or ip
    return ip.is_global and not ip.is_multicast


def _fetch_once(url: str, *, max_bytes: int, deadline: float) -> Fetched | str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a bad port or an unclosed IPv6 bracket
        raise FetchError("Malformed URL.") from exc
    if parts.scheme not in ("http", "https"):
        raise FetchError("Only http, https and data: URLs can be fetched.")
    if not parts.hostname:
        raise FetchError("The URL has no host.")
    if parts.username or parts.password:
        raise FetchError("URLs with credentials are not accepted.")
    address = _resolve_public(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    host_in_url = f"[{address}]" if ":" in address else address
    netloc = f"{host_in_url}:{port}" if port else host_in_url
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    host_header = f"{host_name}:{port}" if port else host_name
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchError("Timed out fetching the URL.")
    try:
        # trust_env=False: an HTTP(S)_PROXY in the environment would resolve the name again, past the check.
        with (
            httpx.Client(timeout=remaining, follow_redirects=False, trust_env=False) as client,
            client.stream(
                "GET",
                pinned,
                headers={"Host": host_header, "User-Agent": "KiwiWhale-fetch/1", "Accept-Encoding": "identity"},
                extensions={"sni_hostname": parts.hostname},
            ) as response,
        ):
            if response.status_code in _REDIRECT_CODES:  # httpx's is_redirect is any 3xx, 304 too
                location = response.headers.get("location")
                if not location:
                    raise FetchError("A redirect without a Location header.")
                return location
            if response.status_code != 200:
                raise FetchError(f"The URL answered HTTP {response.status_code}.")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"The file is larger than {max_bytes} bytes.")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError(f"The file is larger than {max_bytes} bytes.")
                if time.monotonic() > deadline:
                    raise FetchError("Timed out fetching the URL.")
            content_type = response.headers.get("content-type", "application/octet-stream").split(";")[0].strip()
    except httpx.TimeoutException as exc:
        raise FetchError("Timed out fetching the URL.") from exc
    except httpx.HTTPError as exc:
        raise FetchError("The URL could not be fetched.") from exc
    name = unquote(parts.path).rsplit("/", 1)[-1] or "file"
    return Fetched(content=bytes(body), content_type=content_type.lower(), file_name=name)


def _resolve_public(host: str, port: int) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"The host {host!r} could not be resolved.") from exc
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise FetchError(f"The host {host!r} could not be resolved.")
    if not settings.FETCH_ALLOW_PRIVATE_ADDRESSES and not all(address_is_public(a) for a in addresses):
        raise FetchRefused("The URL points to a private, loopback or reserved address.")
    return addresses[0]


def _data_url(url: str, max_bytes: int) -> Fetched:
    match = _DATA_URL.match(url)
    if not match:
        raise FetchError("Malformed data: URL.")
    payload = match["data"]
    if match["b64"]:
        # Base64 is 4/3 the size of its bytes: refuse before decoding anything too large.
        if len(payload) > (max_bytes * 4) // 3 + 4:
            raise FetchError(f"The file is larger than {max_bytes} bytes.")
        try:
            content = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FetchError("The data: URL is not valid base64.") from exc
    else:
        # Each byte takes one to three characters (%XX): refuse before decoding what must be too large.
        if len(payload) > 3 * max_bytes:
            raise FetchError(f"The file is larger than {max_bytes} bytes.")
        content = unquote_to_bytes(payload)
    if len(content) > max_bytes:
        raise FetchError(f"The file is larger than {max_bytes} bytes.")
    return Fetched(content=content, content_type=(match["type"] or "text/plain").lower(), file_name="upload")


# --- POST (job webhooks) ---------------------------------------------------------------------------------------
# The smallest POST the webhooks need, with the same rules as fetch(): public addresses only (unless
# FETCH_ALLOW_PRIVATE_ADDRESSES), connection pinned to the checked address, no proxy from the environment.
# Redirects are not followed: a webhook receiver answers where it was registered.


@dataclass
class Posted:
    status_code: int
    body_excerpt: str  # the start of the answer, for the delivery log


def post(url: str, *, content: bytes, headers: dict[str, str], timeout: float, excerpt_bytes: int = 500) -> Posted:
    """POSTs `content` to `url` and returns the answer's status, whatever it is; FetchError when none came."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchRefused("Malformed URL.") from exc
    if parts.scheme not in ("http", "https"):
        raise FetchRefused("Only http and https URLs can be called.")
    if not parts.hostname:
        raise FetchRefused("The URL has no host.")
    if parts.username or parts.password:
        raise FetchRefused("URLs with credentials are not accepted.")
    address = _resolve_public(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    host_in_url = f"[{address}]" if ":" in address else address
    netloc = f"{host_in_url}:{port}" if port else host_in_url
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    host_header = f"{host_name}:{port}" if port else host_name
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream(
                "POST",
                pinned,
                content=content,
                headers={"User-Agent": "KiwiWhale-webhooks/1", **headers, "Host": host_header},
                extensions={"sni_hostname": parts.hostname},
            ) as response,
        ):
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) >= excerpt_bytes:
                    break  # the rest is not ours to read
            return Posted(
                status_code=response.status_code,
                body_excerpt=bytes(body[:excerpt_bytes]).decode("utf-8", "replace"),
            )
    except httpx.TimeoutException as exc:
        raise FetchError(f"No answer within {timeout:g} s.") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"The connection failed ({type(exc).__name__}).") from exc
