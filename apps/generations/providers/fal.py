"""fal.ai through its Queue API: submit, follow the status, fetch the result, cancel.

The protocol as fal documents it ("Queue", "Inference API"):
- `POST {queue}/{model_id}` with the input as the JSON body and `Authorization: Key <key>` answers
  `{"request_id", "status_url", "response_url", "cancel_url", "queue_position"}`.
- `GET {status_url}` answers `{"status": "IN_QUEUE" | "IN_PROGRESS" | "COMPLETED", "queue_position", "logs"}`
  (202 while waiting, 200 once completed).
- `GET {response_url}` answers the model's output JSON (`images`, `video`, `audio`… as File objects with a `url`),
  or an error with `detail` when the model failed.
- `PUT {cancel_url}` answers 202 `CANCELLATION_REQUESTED`, or 400 `ALREADY_COMPLETED`.
At most once: fal documents no idempotency key for the submit, and no way to find a queued request by an id of
ours (it assigns the request id; its platform request history lists requests by endpoint and time), so a submit
whose answer was lost (a timeout, a dropped connection, a 5xx other than 503) is not sent again and fails the route
with `upstream_unknown_outcome` (UpstreamClient); 429 and 503 are refusals and are sent again.
Status, result and cancel URLs name the app (`owner/app`) without a model's sub-path (`fal-ai/z-image` for
`fal-ai/z-image/turbo`). The URLs of the submit answer are used when they are on the queue's origin (one elsewhere
would receive our key); otherwise they are built from the app id.
"""

import logging
from urllib.parse import quote

from apps.generations.providers import OutputData, Pending, Provider, ProviderError, RunResult
from apps.generations.providers.hosted import error_excerpt, files_download, same_origin, upstream_input
from apps.generations.providers.http import UpstreamClient

logger = logging.getLogger(__name__)

LABEL = "fal.ai"
WAITING = {"IN_QUEUE", "IN_PROGRESS"}
# Keys of fal's output JSON and the kind of file they hold, for files whose content type says nothing.
_KIND_HINTS = {
    "images": "image",
    "image": "image",
    "video": "video",
    "videos": "video",
    "audio": "audio",
    "audio_file": "audio",
    "audio_url": "audio",
}


class FalProvider(Provider):
    kind = "fal"
    default_base_url = "https://queue.fal.run"

    def run(self, *, upstream_model: str, params: dict, input: dict) -> Pending:
        model_id = upstream_model.strip("/")
        body = upstream_input(input, params)
        with self._client() as client:
            answer = client.json("POST", f"/{model_id}", json=body)
        request_id = answer.get("request_id") if isinstance(answer, dict) else None
        if not isinstance(request_id, str) or not request_id:
            raise _malformed()
        app_id = "/".join(model_id.split("/")[:2])
        request_url = f"{self.base_url}/{app_id}/requests/{quote(request_id, safe='')}"
        state = {
            "request_id": request_id,
            "status_url": self._own_url(answer.get("status_url")) or f"{request_url}/status",
            "response_url": self._own_url(answer.get("response_url")) or request_url,
            "cancel_url": self._own_url(answer.get("cancel_url")) or f"{request_url}/cancel",
        }
        return Pending(state=state, upstream_id=request_id)

    def poll(self, *, upstream_model: str, params: dict, input: dict, state: dict) -> RunResult | Pending:
        with self._client() as client:
            status = client.json("GET", state["status_url"])
            name = status.get("status") if isinstance(status, dict) else None
            if not isinstance(name, str):
                raise _malformed()
            if name in WAITING:
                return Pending(state={**state, "status": name})
            if name != "COMPLETED":
                raise ProviderError(f"{LABEL} reports the request as {name.lower()}.", code="upstream_failed")
            try:
                result = client.json("GET", state["response_url"])
            except ProviderError as exc:
                if status.get("error"):  # the model failed: its error is on the status as well as the result
                    raise ProviderError(
                        f"{LABEL}: the model failed: {error_excerpt(status['error'])}", code="upstream_failed"
                    ) from exc
                raise
        if not isinstance(result, dict):
            raise _malformed()
        usage = {"request_id": state["request_id"]}
        metrics = status.get("metrics")
        if isinstance(metrics, dict) and isinstance(metrics.get("inference_time"), int | float):
            usage["inference_seconds"] = metrics["inference_time"]
        if isinstance(result.get("seed"), int):
            usage["seed"] = result["seed"]
        return RunResult(outputs=_outputs(result, self.base_url), usage=usage)

    def cancel(self, *, upstream_model: str, params: dict, state: dict) -> None:
        url = state.get("cancel_url")
        if not url:
            return
        try:
            with self._client() as client:
                client.request("PUT", url, retries=0)
        except ProviderError as exc:  # 400 ALREADY_COMPLETED among others: nothing left to stop
            logger.info("fal.ai request %s not canceled: %s", state.get("request_id"), exc.message)

    def _client(self) -> UpstreamClient:
        return UpstreamClient(
            base_url=self.base_url, headers={"Authorization": f"Key {self.config.api_key}"}, provider=LABEL
        )

    def _own_url(self, url) -> str:
        return url if same_origin(url, self.base_url) else ""


def _outputs(result: dict, base_url: str) -> list[OutputData]:
    files = []
    _collect_files(result, "", files)
    if files:
        return files_download(files, provider=LABEL, base_url=base_url)
    for key in ("output", "text"):
        if isinstance(result.get(key), str):
            return [OutputData(type="text", content_type="text/plain", file_name="output.txt", text=result[key])]
    return [OutputData(type="json", content_type="application/json", file_name="output.json", data=result)]


def _collect_files(value, hint: str, files: list[dict]) -> None:
    """fal's File objects (`{"url", "content_type"?, "file_name"?, "width"?, "height"?}`) in answer order."""
    if isinstance(value, dict):
        if isinstance(value.get("url"), str) and value["url"]:
            files.append({**value, "hint": hint})
            return
        for key, item in value.items():
            _collect_files(item, _KIND_HINTS.get(key, hint), files)
    elif isinstance(value, list):
        for item in value:
            _collect_files(item, hint, files)


def _malformed() -> ProviderError:
    return ProviderError(f"{LABEL} answered with a malformed body.", retryable=True, code="upstream_malformed")
