"""The one HTTP client every upstream adapter uses: timeouts, retries with backoff, errors mapped to ProviderError.

429, 5xx and timeouts are retried (honouring Retry-After, bounded) and then raised as retryable; 401/403 and
other 4xx are not retryable. Messages are safe to show users: no credentials, no raw upstream bodies beyond a
short excerpt of the upstream's own error message.
"""

import logging
import time

import httpx
from django.conf import settings

from apps.generations.providers import ProviderError

logger = logging.getLogger(__name__)
MAX_RETRY_AFTER_SECONDS = 30.0


class UpstreamClient:
    def __init__(self, *, base_url: str, headers: dict | None = None, provider: str, timeout: float | None = None):
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"User-Agent": "KiwiWhale/1", **(headers or {})},
            timeout=timeout or settings.UPSTREAM_TIMEOUT_SECONDS,
            follow_redirects=True,
            trust_env=False,
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._client.close()

    def close(self):
        self._client.close()

    def request(self, method: str, url: str, *, retries: int | None = None, **kwargs) -> httpx.Response:
        """Sends, retrying what may pass on a second try; returns a 2xx response or raises ProviderError."""
        retries = settings.UPSTREAM_RETRIES if retries is None else retries
        for attempt in range(retries + 1):
            last = attempt == retries
            try:
                response = self._client.request(method, url, **kwargs)
            except httpx.TimeoutException as exc:
                if last:
                    raise ProviderError(
                        f"{self.provider} did not answer in time.", retryable=True, code="upstream_timeout"
                    ) from exc
                self._sleep(attempt, None)
                continue
            except httpx.TransportError as exc:
                if last:
                    raise ProviderError(
                        f"{self.provider} could not be reached.", retryable=True, code="upstream_unreachable"
                    ) from exc
                self._sleep(attempt, None)
                continue
            if response.is_success:
                return response
            if response.status_code == 429 or response.status_code >= 500:
                if last:
                    raise ProviderError(
                        f"{self.provider} is busy or failing (HTTP {response.status_code}); try again later.",
                        retryable=True,
                        code="upstream_rate_limited" if response.status_code == 429 else "upstream_error",
                    )
                self._sleep(attempt, response.headers.get("retry-after"))
                continue
            if response.status_code in (401, 403):
                raise ProviderError(
                    f"{self.provider} rejected this instance's credentials.", retryable=False, code="upstream_auth"
                )
            raise ProviderError(
                f"{self.provider} refused the request (HTTP {response.status_code}): {_excerpt(response)}",
                retryable=False,
                code="upstream_rejected",
            )
        raise AssertionError("unreachable")

    def json(self, method: str, url: str, **kwargs):
        response = self.request(method, url, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderError(
                f"{self.provider} answered with a malformed body.", retryable=True, code="upstream_malformed"
            ) from exc

    def download(self, url: str, *, max_bytes: int | None = None) -> tuple[bytes, str]:
        """An output file from the upstream (its URLs expire, so we keep a copy): (content, content type)."""
        max_bytes = max_bytes or settings.UPSTREAM_MAX_DOWNLOAD_BYTES
        try:
            with self._client.stream("GET", url) as response:
                if not response.is_success:
                    raise ProviderError(
                        f"{self.provider}'s output could not be downloaded (HTTP {response.status_code}).",
                        retryable=response.status_code >= 500,
                        code="upstream_download",
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
        except httpx.HTTPError as exc:
            raise ProviderError(
                f"{self.provider}'s output could not be downloaded.", retryable=True, code="upstream_download"
            ) from exc

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = settings.UPSTREAM_RETRY_BASE_SECONDS * (2**attempt)
        if retry_after and retry_after.replace(".", "", 1).isdigit():  # seconds; an HTTP date keeps our backoff
            delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER_SECONDS))
        logger.info("%s: retrying in %.2f s", self.provider, delay)
        time.sleep(delay)


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
