"""The one outbound guard: every request to a user-supplied or upstream URL, without letting it reach inside our
network (SSRF), within size and time caps.

How it guards, whatever the caller:
- Only http(s) (and, for `fetch`, data:) URLs; no credentials in the URL; no proxy from the environment (a proxy
  would resolve the name again, out of the check's sight).
- The address is pinned: the connection is opened by our own network backend (`GuardedTransport`), which
  resolves the host name once, refuses it unless every address is public, and connects to the checked address.
  TLS (SNI and certificate) and the Host header keep the name. No second DNS resolution happens anywhere.
- Redirects: `fetch` follows them by hand, each hop checked again (scheme, address); a redirect to a data: URL is
  refused. `safe_request` does not follow them; an httpx client built on `GuardedTransport` checks every hop's
  address in the transport.
- One wall-clock deadline (`deadline`) covers connecting, the TLS handshake, the headers and the body: every
  socket read and write gets at most the time left, so a server dribbling its headers a byte at a time is cut
  off at the deadline, not after one read timeout per byte. Bodies are read up to `max_bytes`.
- Every failure is a `FetchError` whose message is safe to show.

Private addresses: refused, except
- everywhere when `FETCH_ALLOW_PRIVATE_ADDRESSES` is on (tests with loopback servers only: it opens SSRF);
- for a `trusted_host` named in `FETCH_PRIVATE_HOST_ALLOWLIST` (host names, IP addresses or networks such as
  `10.0.0.0/8`): self-hosted engines an admin points a provider account at (ComfyUI, Ollama on the LAN). Only the
  provider adapters pass a trusted host, the host of the account's base URL; URLs that users or upstream answers
  supply never get one, so they cannot reach the LAN host even when it is allowlisted.

The API:
- `fetch(url, *, max_bytes, timeout) -> Fetched`: GET a file (http(s) or data:), 200 only; media inputs, uploads.
- `safe_request(method, url, *, headers, content, timeout, max_bytes) -> SafeResponse(status, headers, content)`:
  any method with a body (e.g. a signed JSON webhook: `content=json.dumps(body).encode()` and a
  `Content-Type: application/json` header); returns whatever status the server answered, redirects not followed;
  raises FetchError for a refused address, a timeout, a body over `max_bytes` or a network failure.
- `GuardedTransport(trusted_host=…)` and `deadline(seconds)`: for an httpx client of our own (the upstream
  provider client, `apps/generations/providers/http.py`).
"""

import base64
import binascii
import contextlib
import contextvars
import ipaddress
import json as jsonlib
import re
import socket
import time
from dataclasses import dataclass
from urllib.parse import unquote, unquote_to_bytes, urljoin, urlsplit

import httpcore
import httpx
from django.conf import settings

MAX_REDIRECTS = 5
_REDIRECT_CODES = {301, 302, 303, 307, 308}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_DATA_URL = re.compile(
    r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w-]+=[^;,]*)*)(?P<b64>;base64)?,(?P<data>.*)$", re.S
)
_USER_AGENT = "KiwiWhale-fetch/1"
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("safe_fetch_deadline", default=None)


class FetchError(Exception):
    """The URL cannot be fetched; the message is safe to show the user."""


class FetchRefused(FetchError):
    """The URL is not allowed here (scheme, credentials, a non-public address): trying again will not help."""


class AddressRefused(FetchRefused):
    """The host resolves to a private, loopback or reserved address that this request may not reach."""


@dataclass
class Fetched:
    content: bytes
    content_type: str
    file_name: str


@dataclass
class SafeResponse:
    status: int
    headers: httpx.Headers
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300


# --- The public functions ----------------------------------------------------------------------------------


def fetch(url: str, *, max_bytes: int | None = None, timeout: float | None = None) -> Fetched:
    """GETs a file: an http(s) URL (redirects followed, each hop checked) or a data: URL. 200 only."""
    max_bytes = max_bytes or settings.FETCH_MAX_BYTES
    timeout = timeout or settings.FETCH_TIMEOUT_SECONDS
    if url.startswith("data:"):
        return _data_url(url, max_bytes)
    with deadline(timeout), _client(timeout) as client:
        for _ in range(MAX_REDIRECTS + 1):
            with _open(client, "GET", url, headers={"Accept-Encoding": "identity"}) as response:
                if response.status_code in _REDIRECT_CODES:  # httpx's is_redirect is any 3xx, 304 too
                    url = _redirect_target(url, response)
                    continue
                if response.status_code != 200:
                    raise FetchError(f"The URL answered HTTP {response.status_code}.")
                content = _read(response, max_bytes)
                content_type = response.headers.get("content-type", "application/octet-stream")
            name = unquote(urlsplit(url).path).rsplit("/", 1)[-1] or "file"
            return Fetched(content=content, content_type=content_type.split(";")[0].strip().lower(), file_name=name)
    raise FetchError("Too many redirects.")


def safe_request(
    method: str,
    url: str,
    *,
    headers: dict | None = None,
    content: bytes | None = None,
    json=None,
    timeout: float | None = None,
    max_bytes: int = 1024 * 1024,
    truncate: bool = False,
) -> SafeResponse:
    """Sends one request to a user-supplied URL and returns the answer, whatever its status (a 3xx included:
    redirects are not followed). `json` is a shortcut for a JSON body. A body over `max_bytes` is an error, or
    with `truncate` only its first `max_bytes` are read. Raises FetchError (FetchRefused: never worth a retry)."""
    timeout = timeout or settings.FETCH_TIMEOUT_SECONDS
    headers = dict(headers or {})
    if json is not None:
        content = jsonlib.dumps(json).encode()
        headers.setdefault("Content-Type", "application/json")
    with (
        deadline(timeout),
        _client(timeout) as client,
        _open(client, method, url, headers=headers, content=content) as r,
    ):
        return SafeResponse(status=r.status_code, headers=r.headers, content=_read(r, max_bytes, truncate=truncate))


@contextlib.contextmanager
def deadline(seconds: float):
    """Every guarded socket operation inside ends by `seconds` from now (or an earlier deadline already set)."""
    end = time.monotonic() + seconds
    current = _DEADLINE.get()
    token = _DEADLINE.set(end if current is None else min(current, end))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


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


def host_allowlisted(host: str, addresses: list[str] | None = None) -> bool:
    """Whether FETCH_PRIVATE_HOST_ALLOWLIST names `host`, or (given its addresses) a network holding all of them."""
    host = host.strip("[]").lower()
    networks = []
    for entry in settings.FETCH_PRIVATE_HOST_ALLOWLIST:
        entry = entry.strip().strip("[]").lower()
        if entry == host:
            return True
        with contextlib.suppress(ValueError):
            networks.append(ipaddress.ip_network(entry, strict=False))
    if not networks or not addresses:
        return False
    return all(any(ipaddress.ip_address(a) in network for network in networks) for a in addresses)


# --- The guarded transport ---------------------------------------------------------------------------------


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport whose connections are opened by `_GuardedBackend`: address checked and pinned,
    socket operations bound by the current `deadline`. `trusted_host` may be private if allowlisted."""

    def __init__(self, *, trusted_host: str | None = None):
        super().__init__(trust_env=False)
        # httpx has no parameter for httpcore's network backend: the pool is rebuilt with ours (httpx 0.28).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=_GuardedBackend(trusted_host=trusted_host),
            keepalive_expiry=5.0,
        )


class _GuardedBackend(httpcore.NetworkBackend):
    def __init__(self, *, trusted_host: str | None):
        self._inner = httpcore.SyncBackend()
        self._trusted_host = (trusted_host or "").strip("[]").lower() or None

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        address = _checked_address(host, port, trusted=self._trusted_host)
        stream = self._inner.connect_tcp(
            address, port, _bounded(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise FetchError("Unix sockets cannot be fetched.")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose reads and writes never outlast the current deadline."""

    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        inner = self._inner.start_tls(ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str):
        return self._inner.get_extra_info(info)


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    end = _DEADLINE.get()
    if end is None:
        return timeout
    remaining = end - time.monotonic()
    if remaining <= 0:
        raise error("The deadline has passed.")
    return remaining if timeout is None else min(timeout, remaining)


def _checked_address(host: str, port: int, *, trusted: str | None) -> str:
    """The address to connect to: `host` resolved once, refused unless every address may be reached."""
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"The host {host!r} could not be resolved.") from exc
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise FetchError(f"The host {host!r} could not be resolved.")
    if settings.FETCH_ALLOW_PRIVATE_ADDRESSES or all(address_is_public(a) for a in addresses):
        return addresses[0]
    if trusted is not None and host.lower() == trusted:
        if host_allowlisted(host, addresses):
            return addresses[0]
        raise AddressRefused(
            f"The host {host!r} is on a private network; an admin may allow it in FETCH_PRIVATE_HOST_ALLOWLIST."
        )
    raise AddressRefused("The URL points to a private, loopback or reserved address.")


# --- Plumbing ----------------------------------------------------------------------------------------------


def _client(timeout: float) -> httpx.Client:
    # trust_env=False: an HTTP(S)_PROXY in the environment would resolve the name again, past the check.
    return httpx.Client(transport=GuardedTransport(), timeout=timeout, follow_redirects=False, trust_env=False)


@contextlib.contextmanager
def _open(client: httpx.Client, method: str, url: str, *, headers: dict, content: bytes | None = None):
    _check_url(url)
    try:
        request = client.build_request(method, url, headers={"User-Agent": _USER_AGENT, **headers}, content=content)
    except httpx.InvalidURL as exc:
        raise FetchError("Malformed URL.") from exc
    try:
        response = client.send(request, stream=True)
    except httpx.TimeoutException as exc:
        raise FetchError("Timed out fetching the URL.") from exc
    except httpx.InvalidURL as exc:
        # httpx builds the next request of any redirect, followed or not: a Location it cannot parse (a data:
        # URL, a malformed one) fails here, past the status line.
        raise FetchError("A redirect to a data: URL or a malformed URL is not followed.") from exc
    except httpx.HTTPError as exc:
        raise FetchError("The URL could not be fetched.") from exc
    try:
        yield response
    except httpx.TimeoutException as exc:
        raise FetchError("Timed out fetching the URL.") from exc
    except httpx.HTTPError as exc:
        raise FetchError("The URL could not be fetched.") from exc
    finally:
        response.close()


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port or an unclosed IPv6 bracket raises here
    except ValueError as exc:
        raise FetchRefused("Malformed URL.") from exc
    if parts.scheme not in ("http", "https"):
        raise FetchRefused("Only http, https and data: URLs can be fetched.")
    if not parts.hostname:
        raise FetchRefused("The URL has no host.")
    if parts.username or parts.password:
        raise FetchRefused("URLs with credentials are not accepted.")


def _redirect_target(url: str, response: httpx.Response) -> str:
    location = response.headers.get("location")
    if not location:
        raise FetchError("A redirect without a Location header.")
    try:
        target = urljoin(url, location.strip())
    except ValueError as exc:
        raise FetchError("A redirect to a malformed URL.") from exc
    if target[:5].lower() == "data:":
        raise FetchError("A redirect to a data: URL or a malformed URL is not followed.")
    return target


def _read(response: httpx.Response, max_bytes: int, *, truncate: bool = False) -> bytes:
    """The body, at most `max_bytes`: longer is an error, or with `truncate` cut there (the rest is left unread)."""
    declared = response.headers.get("content-length")
    if not truncate and declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"The file is larger than {max_bytes} bytes.")
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            if truncate:
                return bytes(body[:max_bytes])
            raise FetchError(f"The file is larger than {max_bytes} bytes.")
    return bytes(body)


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
