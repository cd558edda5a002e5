"""OpenAI, and any server that speaks its API (Ollama, vLLM, LocalAI, OpenRouter…): chat, images, speech.

Two kinds share this adapter:
- `openai`: needs an API key; the base URL defaults to https://api.openai.com/v1.
- `openai_compatible`: for self-hosted servers; the key is optional (sent when set) and the base URL required,
  e.g. http://ollama:11434/v1. Keyless accounts of this kind count as usable once enabled.

A route's `params["operation"]` picks the endpoint: `chat` (the default) → POST /chat/completions,
`image_generation` → POST /images/generations, `image_edit` → POST /images/edits (multipart),
`tts` → POST /audio/speech. Our input names map to OpenAI's (`num_images` → `n`, `text` → `input`,
`image_url` → the `image` file); `rename`/`drop`/`fixed` in the params adjust the rest (input_for_upstream).
Account options: `organization` (OpenAI-Organization header), `project` (OpenAI-Project), `headers` (extra
headers, e.g. OpenRouter's HTTP-Referer / X-Title), `timeout_seconds`.
Chat streams when the job wants its text as it comes (`on_text`, a streamed /v1 chat completion): the request
carries `stream: true` (and `stream_options.include_usage`), the server-sent deltas go to `on_text` as they
arrive, and the assembled text is the job's output as without streaming. A route with `params["stream"] = false`
never streams (a server that cannot). A stream that breaks after it began is `upstream_unknown_outcome`: the
upstream did (and may bill) the work.
Every call is synchronous. Errors come from UpstreamClient: 401/403 and other 4xx (content-policy rejections among
them) are final, 429/503 and unreachable servers retryable; OpenAI's `{"error": {"message"}}` gives the
user's excerpt. At most once: OpenAI documents no idempotency key for these endpoints and no way to look a lost
answer up, so a POST that may have been received (a read timeout, a dropped connection, a 5xx other than 503) is
never sent again — an image may already have been made and paid for — and fails the route with
`upstream_unknown_outcome`.
"""

import base64
import binascii
import io
import json
from urllib.parse import urlsplit

from PIL import Image

from apps.generations.media import media_load
from apps.generations.providers import OutputData, Provider, ProviderError, RunResult, input_for_upstream
from apps.generations.providers.http import UpstreamClient

# Per operation, our conventional input names → the names OpenAI's endpoint uses (a route's `rename` wins).
OPENAI_NAMES = {"image_generation": {"num_images": "n"}, "image_edit": {"num_images": "n"}, "tts": {"text": "input"}}
AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
IMAGE_TYPES = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg"), "WEBP": ("image/webp", "webp")}


class OpenAIProvider(Provider):
    kind = "openai"
    needs_api_key = True
    default_base_url = "https://api.openai.com/v1"
    streams_text = True

    @property
    def name(self) -> str:
        return "OpenAI"

    def run(self, *, upstream_model: str, params: dict, input: dict, on_text=None) -> RunResult:
        operation = params.get("operation", "chat")
        handlers = {
            "chat": self._chat,
            "image_generation": self._image_generation,
            "image_edit": self._image_edit,
            "tts": self._speech,
        }
        if operation not in handlers:
            raise ProviderError(
                f"The route asks for an unknown operation {operation!r}.", code="provider_misconfigured"
            )
        body = _openai_names(input_for_upstream(input, params), params, OPENAI_NAMES.get(operation, {}))
        with self._client() as client:
            if operation == "chat" and on_text is not None and params.get("stream", True):
                return self._chat_streamed(client, upstream_model, body, on_text)
            return handlers[operation](client, upstream_model, body)

    def _client(self) -> UpstreamClient:
        if not self.base_url:
            raise ProviderError(f"{self.name} has no base URL configured.", code="provider_misconfigured")
        options = self.config.options or {}
        headers = {str(k): str(v) for k, v in (options.get("headers") or {}).items()}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        elif self.needs_api_key:
            raise ProviderError(f"{self.name} has no API key configured.", code="provider_misconfigured")
        if options.get("organization"):
            headers["OpenAI-Organization"] = str(options["organization"])
        if options.get("project"):
            headers["OpenAI-Project"] = str(options["project"])
        timeout = options.get("timeout_seconds")
        return UpstreamClient(
            base_url=self.base_url, headers=headers, provider=self.name, timeout=float(timeout) if timeout else None
        )

    # --- chat ---------------------------------------------------------------------------------------------
    def _chat(self, client: UpstreamClient, model: str, body: dict) -> RunResult:
        data = client.json("POST", "/chat/completions", json=_chat_body(model, body))
        try:
            choice = data["choices"][0]
            message = choice["message"]
            content = message.get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise self._malformed() from None
        if isinstance(content, list):  # some compatible servers answer with content parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if not isinstance(content, str | None):
            raise self._malformed()
        return self._chat_result(content, message.get("refusal"), choice.get("finish_reason"), data)

    def _chat_streamed(self, client: UpstreamClient, model: str, body: dict, on_text) -> RunResult:
        """The same answer read as server-sent chunks (OpenAI, vLLM, Ollama: `data: {chunk}` lines, then
        `data: [DONE]`), each piece of text handed to `on_text` as it arrives."""
        request = {**_chat_body(model, body), "stream": True, "stream_options": {"include_usage": True}}
        pieces, refusal, finish_reason, usage, done = [], "", None, {}, False
        with client.stream("POST", "/chat/completions", json=request) as lines:
            for line in lines:
                if not line.startswith("data:"):
                    continue  # blank separators, comments, `event:` names
                payload = line.removeprefix("data:").strip()
                if payload == "[DONE]":
                    done = True
                    break
                try:
                    chunk = json.loads(payload)
                except ValueError:
                    raise self._broken("sent a chunk that is not JSON") from None
                if not isinstance(chunk, dict):
                    raise self._broken("sent a chunk that is not an object")
                if chunk.get("error"):  # vLLM and others report a failure inside the stream
                    error = chunk["error"]
                    message = error.get("message") if isinstance(error, dict) else error
                    raise ProviderError(
                        f"{self.name} failed in the middle of its answer: {str(message)[:200]}", code="upstream_failed"
                    )
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") if isinstance(choice, dict) else None
                    if not isinstance(delta, dict):
                        continue
                    text = delta.get("content")
                    if isinstance(text, str) and text:
                        pieces.append(text)
                        on_text(text)
                    if isinstance(delta.get("refusal"), str):
                        refusal += delta["refusal"]
                    finish_reason = choice.get("finish_reason") or finish_reason
        if not done and finish_reason is None:
            raise self._broken("ended its answer before the end")
        return self._chat_result("".join(pieces), refusal, finish_reason, usage)

    def _chat_result(self, content: str | None, refusal, finish_reason, data: dict) -> RunResult:
        if not content:
            if refusal:
                raise ProviderError(f"{self.name} declined: {str(refusal)[:200]}", code="content_policy")
            if finish_reason == "content_filter":
                raise ProviderError(f"{self.name}'s content filter blocked the answer.", code="content_policy")
            raise ProviderError(
                f"{self.name} returned no text (finish reason: {finish_reason or 'none'}).", code="upstream_empty"
            )
        output = OutputData(
            type="text", content_type="text/plain", file_name="response.txt", text=content, content=content.encode()
        )
        return RunResult(outputs=[output], usage=_usage(data, ("prompt_tokens", "completion_tokens", "total_tokens")))

    # --- images -------------------------------------------------------------------------------------------
    def _image_generation(self, client: UpstreamClient, model: str, body: dict) -> RunResult:
        data = client.json("POST", "/images/generations", json={**body, "model": model})
        return self._image_result(data)

    def _image_edit(self, client: UpstreamClient, model: str, body: dict) -> RunResult:
        urls = body.pop("image_urls", None) or [body.pop("image_url", None)]
        body.pop("image_url", None)
        mask_url = body.pop("mask_url", None)
        if not all(isinstance(url, str) and url for url in urls):
            raise ProviderError("An image to edit is required.", code="invalid_input")
        field = "image" if len(urls) == 1 else "image[]"  # gpt-image models take several images as image[]
        files = [(field, _image_file(url, "image_url")) for url in urls]
        if mask_url:
            files.append(("mask", _image_file(mask_url, "mask_url")))
        form = {name: value if isinstance(value, str) else json.dumps(value) for name, value in body.items()}
        data = client.json("POST", "/images/edits", data={**form, "model": model}, files=files)
        return self._image_result(data)

    def _image_result(self, data) -> RunResult:
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or not items:
            raise self._malformed()
        outputs = []
        for position, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                raise self._malformed()
            if item.get("b64_json"):  # what gpt-image models always return
                try:
                    content = base64.b64decode(item["b64_json"], validate=True)
                except (binascii.Error, ValueError, TypeError):
                    raise self._malformed() from None
            elif item.get("url"):  # dall-e and some compatible servers; the link expires, so keep a copy
                content = self._download(item["url"])
            else:
                raise self._malformed()
            outputs.append(self._image_output(content, position))
        usage = {"images": len(outputs), **_usage(data, ("input_tokens", "output_tokens", "total_tokens"))}
        return RunResult(outputs=outputs, usage=usage)

    def _download(self, url: str) -> bytes:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self._malformed()
        # A client without our key: the file lives on a storage host that must not see the credentials.
        # Its host may be private only if it is the account's own, allowlisted one (LocalAI serves its files there).
        with UpstreamClient(
            base_url=f"{parts.scheme}://{parts.netloc}",
            provider=self.name,
            trusted_host=urlsplit(self.base_url).hostname,
        ) as client:
            content, _ = client.download(url)
        return content

    def _image_output(self, content: bytes, position: int) -> OutputData:
        try:
            with Image.open(io.BytesIO(content)) as image:
                size, image_format = image.size, image.format
        except (OSError, Image.DecompressionBombError):
            raise ProviderError(
                f"{self.name} returned an image that cannot be read.", retryable=True, code="upstream_malformed"
            ) from None
        content_type, extension = IMAGE_TYPES.get(image_format, ("image/png", "png"))
        return OutputData(
            type="image",
            content_type=content_type,
            file_name=f"image-{position}.{extension}",
            content=content,
            width=size[0],
            height=size[1],
        )

    # --- speech -------------------------------------------------------------------------------------------
    def _speech(self, client: UpstreamClient, model: str, body: dict) -> RunResult:
        body.setdefault("response_format", "mp3")
        response = client.request("POST", "/audio/speech", json={**body, "model": model})
        if not response.content:
            raise self._malformed()
        audio_format = str(body["response_format"])
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not content_type.startswith("audio/"):
            content_type = AUDIO_TYPES.get(audio_format, "application/octet-stream")
        output = OutputData(
            type="audio", content_type=content_type, file_name=f"speech.{audio_format}", content=response.content
        )
        return RunResult(outputs=[output], usage={"characters": len(str(body.get("input", "")))})

    def _broken(self, what: str) -> ProviderError:
        # Final: the upstream received the request and worked on it; running it again elsewhere pays twice.
        return ProviderError(f"{self.name} {what}; it was not sent again.", code="upstream_unknown_outcome")

    def _malformed(self) -> ProviderError:
        return ProviderError(f"{self.name} answered with a malformed body.", retryable=True, code="upstream_malformed")


class OpenAICompatibleProvider(OpenAIProvider):
    """A self-hosted or third-party server with OpenAI's API (Ollama, vLLM, LocalAI, OpenRouter): key optional."""

    kind = "openai_compatible"
    needs_api_key = False
    default_base_url = ""

    @property
    def name(self) -> str:
        return (self.config.options or {}).get("name") or self.config.slug or "The OpenAI-compatible server"


def _chat_body(model: str, body: dict) -> dict:
    """Our chat input (`prompt`, `system`, the rest as OpenAI names it) as a /chat/completions request."""
    body = dict(body)
    prompt, system = body.pop("prompt", ""), body.pop("system", "")
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return {**body, "model": model, "messages": messages}


def _openai_names(body: dict, params: dict, names: dict) -> dict:
    renamed = set(params.get("rename", {}))
    for ours, theirs in names.items():
        if ours in body and ours not in renamed and theirs not in body:
            body[theirs] = body.pop(ours)
    return body


def _usage(data: dict, keys: tuple[str, ...]) -> dict:
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return {}
    return {key: usage[key] for key in keys if isinstance(usage.get(key), int)}


def _image_file(url: str, field: str) -> tuple[str, bytes, str]:
    """An input image as a multipart file (name, bytes, content type), checked to really be an image."""
    media = media_load(url, kinds={"image"}, field=field)
    return f"{field.removesuffix('_url')}{media.extension}", media.content, media.content_type
