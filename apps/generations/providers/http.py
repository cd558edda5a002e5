"""The one HTTP client every upstream adapter uses: timeouts, retries with backoff, errors mapped to ProviderError,
and every connection through the outbound guard (kiwiwhale/lib/safe_fetch.GuardedTransport).

At most once: a request that may have reached the upstream is never sent again blindly.
- Sent again (with backoff, honouring Retry-After, bounded): any request when the connection could not be opened
  (refused, connect timeout: nothing was sent) or the upstream answered 429 or 503 (it refused the request before
  doing any of it); reads and other idempotent methods (GET, PUT, DELETE…) also after a read timeout, a dropped
  connection or another 5xx.
- Not sent again: a POST (or a request marked `idempotent=False`) that may have been received — a read or write
  timeout, a connection dropped after sending, a 5xx other than 503. It raises `UpstreamUnknownOutcome` (code
  `upstream_unknown_outcome`, final). An adapter whose upstream can be asked what happened catches it and looks
  the job up (Replicate's prediction list, ComfyUI's queue by our prompt id) before deciding; otherwise the route
  fails with it, and so does the job: another route would run (and be paid for) the same work a second time.
- 401/403 and other 4xx are final (`upstream_auth`, `upstream_rejected`).
Each attempt, connecting and reading included, ends within the client's timeout (one wall-clock deadline).
Messages are safe to show users: no credentials, no raw upstream bodies beyond a short excerpt of the upstream's own
error message.

Addresses: a provider's base URL is admin-configured. It may be on a private network only when its host is in
FETCH_PRIVATE_HOST_ALLOWLIST (self-hosted ComfyUI, Ollama…); any other host, output file URLs included, must be
public. `trusted_host` names the one host that may use the allowlist (default "": the base URL's; None: no host).
"""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from apps.generations.providers import ProviderError
from kiwiwhale.lib.safe_fetch import FetchError, GuardedTransport, deadline

logger = logging.getLogger(__name__)
MAX_RETRY_AFTER_SECONDS = 30.0
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
REFUSED_STATUSES = frozenset({429, 503})  # answered before any work was done: safe to send again
# Raised before a byte of the request was written: safe to send again, whatever the method.
NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class UpstreamUnknownOutcome(ProviderError):
    """A request that may have reached the upstream got no usable answer; it was not sent again."""

    def __init__(self, provider: str, reason: str):
        super().__init__(
            f"{provider} may have received the request but {reason}; it was not sent again, so that the work "
            "cannot run (and be paid for) twice.",
            retryable=False,
            code="upstream_unknown_outcome",
        )


class UpstreamClient:
    def __init__(
        self,
        *,
        base_url: str,
        headers: dict | None = None,
        provider: str,
        timeout: float | None = None,
        trusted_host: str | None = "",
    ):
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout or settings.UPSTREAM_TIMEOUT_SECONDS
        if trusted_host == "":  # the default: the base URL's own host
            trusted_host = _host(base_url)
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"User-Agent": "KiwiWhale/1", **(headers or {})},
            timeout=self.timeout,
            follow_redirects=True,  # every hop goes through the guarded transport, checked again
            trust_env=False,
            transport=GuardedTransport(trusted_host=trusted_host),
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._client.close()

    def close(self):
        self._client.close()

    def request(
        self, method: str, url: str, *, retries: int | None = None, idempotent: bool | None = None, **kwargs
    ) -> httpx.Response:
        """Sends, retrying what may pass on a second try and cannot run twice; returns a 2xx response or raises
        ProviderError (UpstreamUnknownOutcome when a non-idempotent request may have been received)."""
        response, _ = self._send(method, url, retries=retries, idempotent=idempotent, stream=False, **kwargs)
        return response

    @contextmanager
    def stream(self, method: str, url: str, **kwargs) -> Iterator[Iterator[str]]:
        """Sends as `request` does (the same retries, before any answer) and yields the lines of a 2xx answer as
        they arrive: a server-sent event stream. Once the answer has begun the request was received, so a failure
        while reading (a dropped connection, the deadline) is UpstreamUnknownOutcome, never sent again."""
        response, started = self._send(method, url, retries=None, idempotent=False, stream=True, **kwargs)

        def lines() -> Iterator[str]:
            # The attempt that opened the stream has the client's timeout, reading included.
            try:
                with deadline(max(0.0, started + self.timeout - time.monotonic())):
                    yield from response.iter_lines()
            except (httpx.TransportError, FetchError) as exc:
                reason = "stopped in the middle of its answer"
                if isinstance(exc, httpx.TimeoutException):
                    reason = "did not finish its answer in time"
                raise UpstreamUnknownOutcome(self.provider, reason) from exc

        try:
            yield lines()
        finally:
            response.close()

    def _send(
        self, method: str, url: str, *, retries: int | None, idempotent: bool | None, stream: bool, **kwargs
    ) -> tuple[httpx.Response, float]:
        """The retry loop of `request` and `stream`: a 2xx response and when its attempt started (monotonic)."""
        retries = settings.UPSTREAM_RETRIES if retries is None else retries
        idempotent = method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent
        for attempt in range(retries + 1):
            retry_after = None
            started = time.monotonic()
            try:
                with deadline(self.timeout):
                    request = self._client.build_request(method, url, **kwargs)
                    response = self._client.send(request, stream=stream)
                    if stream and not response.is_success:
                        response.read()  # the error body, for the message; then the connection is released
                        response.close()
            except FetchError as exc:  # the guard refused the address
                raise ProviderError(f"{self.provider}: {exc}", code="upstream_address_refused") from exc
            except httpx.InvalidURL as exc:  # a redirect to a URL httpx cannot parse (a data: URL…)
                if not idempotent:
                    raise UpstreamUnknownOutcome(self.provider, "answered with an unusable redirect") from exc
                raise ProviderError(
                    f"{self.provider} redirected to an unusable URL.", code="upstream_malformed"
                ) from exc
            except NOTHING_SENT as exc:
                error = self._transport_error(exc)
            except httpx.TransportError as exc:  # timeouts among them: the request may have been received
                if not idempotent:
                    reason = (
                        "did not answer in time"
                        if isinstance(exc, httpx.TimeoutException)
                        else "dropped the connection"
                    )
                    raise UpstreamUnknownOutcome(self.provider, reason) from exc
                error = self._transport_error(exc)
            else:
                if response.is_success:
                    return response, started
                error = self._status_error(response, idempotent=idempotent)
                retry_after = response.headers.get("retry-after")
            if attempt == retries:
                raise error
            self._sleep(attempt, retry_after)
        raise AssertionError("unreachable")

    def _transport_error(self, exc: httpx.TransportError) -> ProviderError:
        if isinstance(exc, httpx.TimeoutException):
            return ProviderError(f"{self.provider} did not answer in time.", retryable=True, code="upstream_timeout")
        return ProviderError(f"{self.provider} could not be reached.", retryable=True, code="upstream_unreachable")

    def _status_error(self, response: httpx.Response, *, idempotent: bool) -> ProviderError:
        """The error for a non-2xx answer: returned when another try may pass, raised when it is final."""
        status = response.status_code
        if status in REFUSED_STATUSES or (status >= 500 and idempotent):
            return ProviderError(
                f"{self.provider} is busy or failing (HTTP {status}); try again later.",
                retryable=True,
                code="upstream_rate_limited" if status == 429 else "upstream_error",
            )
        if status >= 500:
            raise UpstreamUnknownOutcome(self.provider, f"failed while handling it (HTTP {status})")
        if status in (401, 403):
            raise ProviderError(
                f"{self.provider} rejected this instance's credentials.", retryable=False, code="upstream_auth"
            )
        raise ProviderError(
            f"{self.provider} refused the request (HTTP {status}): {_excerpt(response)}",
            retryable=False,
            code="upstream_rejected",
        )

    def json(self, method: str, url: str, **kwargs):
        response = self.request(method, url, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderError(
                f"{self.provider} answered with a malformed body.", retryable=True, code="upstream_malformed"
            ) from exc

    def download(self, url: str, *, max_bytes: int | None = None) -> tuple[bytes, str]:
        """An output file from the upstream (its URLs expire, so we keep a copy): (content, content type).

        Size capped (UPSTREAM_MAX_DOWNLOAD_BYTES) and time capped (UPSTREAM_DOWNLOAD_TIMEOUT_SECONDS, the whole
        download); every hop of a redirect is checked by the guard."""
        max_bytes = max_bytes or settings.UPSTREAM_MAX_DOWNLOAD_BYTES
        try:
            with (
                deadline(settings.UPSTREAM_DOWNLOAD_TIMEOUT_SECONDS),
                self._client.stream("GET", url, timeout=self.timeout) as response,
            ):
                if not response.is_success:
                    raise ProviderError(
                        f"{self.provider}'s output could not be downloaded (HTTP {response.status_code}).",
                        retryable=response.status_code >= 500,
                        code="upstream_download",
                    )
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise ProviderError(
                        f"{self.provider}'s output is larger than {max_bytes} bytes.", code="upstream_download"
                    )
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise ProviderError(
                            f"{self.provider}'s output is larger than {max_bytes} bytes.", code="upstream_download"
                        )
                content_type = response.headers.get("content-type", "application/octet-stream").split(";")[0]
                return bytes(body), content_type.strip().lower()
        except FetchError as exc:
            raise ProviderError(
                f"{self.provider}'s output could not be downloaded: {exc}", code="upstream_download"
            ) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ProviderError(
                f"{self.provider}'s output could not be downloaded.", retryable=True, code="upstream_download"
            ) from exc

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = settings.UPSTREAM_RETRY_BASE_SECONDS * (2**attempt)
        if retry_after and retry_after.replace(".", "", 1).isdigit():  # seconds; an HTTP date keeps our backoff
            delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER_SECONDS))
        logger.info("%s: retrying in %.2f s", self.provider, delay)
        time.sleep(delay)


def _host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname if url else None
    except ValueError:
        return None


def _excerpt(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("detail", "error", "message"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("msg")
            if isinstance(value, str) and value:
                return value[:200]
            if isinstance(value, list) and value:
                return str(value[0])[:200]
    return str(body)[:200]
