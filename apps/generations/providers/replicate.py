"""Replicate through its predictions API: create, follow, cancel.

The protocol as Replicate documents it ("HTTP API" reference):
- `POST {api}/models/{owner}/{name}/predictions` with `{"input": {...}}` runs an official model's latest version;
  `POST {api}/predictions` with `{"version": "<id>", "input": {...}}` runs a given version (a route's upstream
  model `owner/name:<version id>`). `Authorization: Bearer <token>`; `Prefer: wait=N` (1 to 60) holds the answer up
  to N seconds for the prediction to finish (a route's `wait_seconds`, for fast models).
- A prediction: `{"id", "status": "starting" | "processing" | "succeeded" | "failed" | "canceled" | "aborted",
  "output", "error", "urls": {"get", "cancel"}, "metrics": {"predict_time"}}`.
- `GET urls.get` (`/predictions/{id}`) reads it again; `POST urls.cancel` (`/predictions/{id}/cancel`) stops it.
- `GET {api}/predictions` lists the account's predictions, newest first, each with its `model`, `version`, `input`,
  `source` and `created_at`. Replicate takes no idempotency key, so a create whose answer was lost (a timeout, a
  dropped connection, a 5xx other than 503) is not sent again: the list is read and the one prediction with our
  model, our input and a creation time after the submit is adopted; none, or several alike, fail the route with
  `upstream_unknown_outcome`.
`output` is a file URL, a list of them, a string or list of strings (text models stream tokens: joined), or an
object. Its URLs expire, so the files are downloaded.
"""

import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from apps.generations.providers import OutputData, Pending, Provider, ProviderError, RunResult
from apps.generations.providers.hosted import error_excerpt, files_download, is_file_url, same_origin, upstream_input
from apps.generations.providers.http import UpstreamClient, UpstreamUnknownOutcome

logger = logging.getLogger(__name__)

LABEL = "Replicate"
RUNNING = {"starting", "processing"}
MAX_WAIT_SECONDS = 60
CLOCK_SKEW = timedelta(minutes=2)  # between our clock and Replicate's, when matching a lost submit's prediction


class ReplicateProvider(Provider):
    kind = "replicate"
    default_base_url = "https://api.replicate.com/v1"

    def run(self, *, upstream_model: str, params: dict, input: dict) -> RunResult | Pending:
        model, _, version = upstream_model.strip("/").partition(":")
        body = {"input": upstream_input(input, params)}
        if version:
            path = "/predictions"
            body["version"] = version
        else:
            path = f"/models/{model}/predictions"
        headers = {}
        wait = params.get("wait_seconds")
        if isinstance(wait, int) and not isinstance(wait, bool) and wait > 0:
            headers["Prefer"] = f"wait={min(wait, MAX_WAIT_SECONDS)}"
        sent_at = datetime.now(UTC)
        with self._client() as client:
            try:
                prediction = client.json("POST", path, json=body, headers=headers)
            except UpstreamUnknownOutcome:
                # Replicate takes no idempotency key: ask it what it created before deciding anything.
                prediction = self._find(client, model=model, version=version, input=body["input"], since=sent_at)
                if prediction is None:
                    raise
        return self._outcome(prediction)

    def _find(self, client: UpstreamClient, *, model: str, version: str, input: dict, since: datetime):
        """The one prediction this submit created, from the account's newest predictions, or None (none, or
        several that cannot be told apart). Matched by model or version, our input (its inline files aside:
        Replicate may store them under its own URLs) and a creation time after the submit (minus clock skew)."""
        try:
            page = client.json("GET", "/predictions")
        except ProviderError:
            return None
        results = page.get("results") if isinstance(page, dict) else None
        earliest = since - CLOCK_SKEW
        matches = [
            p
            for p in results or []
            if isinstance(p, dict)
            and p.get("source", "api") == "api"
            and (p.get("version") == version if version else p.get("model") == model)
            and _created_at(p) is not None
            and _created_at(p) >= earliest
            and _same_input(input, p.get("input"))
        ]
        return matches[0] if len(matches) == 1 else None

    def poll(self, *, upstream_model: str, params: dict, input: dict, state: dict) -> RunResult | Pending:
        with self._client() as client:
            prediction = client.json("GET", state["get_url"])
        return self._outcome(prediction)

    def cancel(self, *, upstream_model: str, params: dict, state: dict) -> None:
        url = state.get("cancel_url")
        if not url:
            return
        try:
            with self._client() as client:
                client.request("POST", url, retries=0)
        except ProviderError as exc:
            logger.info("Replicate prediction %s not canceled: %s", state.get("id"), exc.message)

    def _outcome(self, prediction) -> RunResult | Pending:
        if not isinstance(prediction, dict) or not isinstance(prediction.get("id"), str) or not prediction["id"]:
            raise _malformed()
        prediction_id, status = prediction["id"], prediction.get("status")
        if status in RUNNING:
            urls = prediction.get("urls") if isinstance(prediction.get("urls"), dict) else {}
            own = f"{self.base_url}/predictions/{quote(prediction_id, safe='')}"
            state = {
                "id": prediction_id,
                "get_url": self._own_url(urls.get("get")) or own,
                "cancel_url": self._own_url(urls.get("cancel")) or f"{own}/cancel",
            }
            return Pending(state=state, upstream_id=prediction_id)
        if status == "failed":
            reason = error_excerpt(prediction.get("error")) or "no reason given"
            raise ProviderError(f"{LABEL}: the model failed: {reason}", code="upstream_failed")
        if status in ("canceled", "aborted"):
            raise ProviderError(f"{LABEL} stopped the prediction ({status}).", code="upstream_canceled")
        if status != "succeeded":
            raise _malformed()
        usage = {"prediction_id": prediction_id}
        metrics = prediction.get("metrics")
        if isinstance(metrics, dict) and isinstance(metrics.get("predict_time"), int | float):
            usage["predict_time"] = metrics["predict_time"]
        return RunResult(outputs=_outputs(prediction.get("output"), self.base_url), usage=usage)

    def _client(self) -> UpstreamClient:
        return UpstreamClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.config.api_key}"}, provider=LABEL
        )

    def _own_url(self, url) -> str:
        return url if same_origin(url, self.base_url) else ""


def _outputs(output, base_url: str) -> list[OutputData]:
    if output is None:
        raise ProviderError(f"{LABEL} returned no output.", retryable=True, code="upstream_malformed")
    items = output if isinstance(output, list) else [output]
    if items and all(is_file_url(item) for item in items):
        return files_download([{"url": item} for item in items], provider=LABEL, base_url=base_url)
    if items and all(isinstance(item, str) for item in items):
        text = "".join(items)
        return [OutputData(type="text", content_type="text/plain", file_name="output.txt", text=text)]
    if isinstance(output, dict):
        urls = [value for value in output.values() if is_file_url(value)]
        urls += [item for value in output.values() if isinstance(value, list) for item in value if is_file_url(item)]
        if urls:
            return files_download([{"url": url} for url in urls], provider=LABEL, base_url=base_url)
    data = output if isinstance(output, dict | list) else {"output": output}
    return [OutputData(type="json", content_type="application/json", file_name="output.json", data=data)]


def _created_at(prediction: dict) -> datetime | None:
    value = prediction.get("created_at")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _same_input(sent: dict, got) -> bool:
    if not isinstance(got, dict):
        return False
    return all(
        got.get(key) == value
        for key, value in sent.items()
        if not (isinstance(value, str) and value.startswith("data:"))
    )


def _malformed() -> ProviderError:
    return ProviderError(f"{LABEL} answered with a malformed body.", retryable=True, code="upstream_malformed")
