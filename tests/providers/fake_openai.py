"""A local stand-in for OpenAI's REST API (and OpenAI-compatible servers such as Ollama), for adapter tests.

It listens on 127.0.0.1, serves the documented endpoints under /v1 — POST /chat/completions,
/images/generations, /images/edits (multipart/form-data), /audio/speech — checks the bearer key the way OpenAI
does (401 with its error body), validates the request fields, answers in OpenAI's shapes, and records every
request for the test to inspect. `script` forces the next answers (errors, Retry-After, malformed bodies, a hang, or
HANG_AFTER: the work done — an image generated and paid for — and then no answer). `generated` counts the images
and answers it produced, delivered or not. A chat with `stream: true` is answered as server-sent chunks, as vLLM and
Ollama send them; `stream_pause` holds it after its first token and `stream_drop_after` breaks it off.
"""

import base64
import io
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP

from PIL import Image

from tests.providers.fakes import DROP, FakeAPI
from tests.providers.fakes import HANG as HANG  # a `script` entry: never answer (until the server stops)
from tests.providers.fakes import HANG_AFTER as HANG_AFTER  # a `script` entry: do the work, then never answer

SPEECH_BYTES = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xf3\x14\xc4" + bytes(400)  # an MP3-looking body
VOICES = {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict
    json: dict | None = None
    form: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)  # field name → list of (file name, content type, bytes)


def error_body(message: str, *, type: str = "invalid_request_error", code: str | None = None, param=None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class FakeOpenAI(FakeAPI):
    def __init__(self, *, api_key: str | None = "sk-test-0123456789", images_as_url: bool = False):
        super().__init__()
        self.api_key = api_key  # None: a keyless server (Ollama); it then expects no Authorization header
        self.images_as_url = images_as_url  # answer image requests with links (dall-e style) instead of base64
        self.files: dict[str, bytes] = {}
        self.generated = 0  # answers (chat) and images made, whether or not the client got them
        self.models = ["llama3.2", "qwen2.5:0.5b"]  # what GET /v1/models lists (OpenAI's list shape)
        # A streamed chat (`stream: true`): held this long after its first token; DROP'ed after this many tokens.
        self.stream_pause = 0.0
        self.stream_first_token_seconds = 0.0  # before the first token, as a model reads the prompt (bench/ttft.py)
        self.stream_token_seconds = 0.0  # between two tokens, as a model generates them (bench/ttft.py)
        self.stream_drop_after: int | None = None
        self.stream_finished_at: float | None = None  # time.monotonic() when the last streamed byte was written

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def calls(self, path: str) -> list[Recorded]:
        return self.seen(path=path)

    def record(self, method, target, headers, raw) -> Recorded:
        request = Recorded(method=method, path=target.path, headers=headers)
        content_type = headers.get("content-type", "")
        if content_type.startswith("application/json"):
            try:
                request.json = json.loads(raw)
            except ValueError:
                request.json = None
        elif content_type.startswith("multipart/form-data"):
            request.form, request.files = _multipart(content_type, raw)
        return request

    # --- the endpoints ------------------------------------------------------------------------------------
    def handle(self, request: Recorded) -> tuple[int, dict, bytes | dict]:
        if request.path.startswith("/files/"):  # the links of url-format images; no auth, like a storage host
            name = request.path.removeprefix("/files/")
            if name not in self.files:
                return 404, {}, b"not found"
            return 200, {"Content-Type": "image/png"}, self.files[name]
        auth = request.headers.get("authorization")
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            shown = (auth or "").removeprefix("Bearer ")[:6]
            return (
                401,
                {},
                error_body(
                    f"Incorrect API key provided: {shown}***. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    code="invalid_api_key",
                ),
            )
        routes = {
            ("GET", "/v1/models"): self._models,
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/v1/images/generations"): self._images_generations,
            ("POST", "/v1/images/edits"): self._images_edits,
            ("POST", "/v1/audio/speech"): self._speech,
        }
        handler = routes.get((request.method, request.path))
        if handler is None:
            return 404, {}, error_body(f"Invalid URL ({request.method} {request.path})")
        return handler(request)

    def _models(self, request: Recorded):
        data = [{"id": name, "object": "model", "created": 1700000000, "owned_by": "fake"} for name in self.models]
        return 200, {}, {"object": "list", "data": data}

    def _chat(self, request: Recorded):
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return 400, {}, error_body("you must provide a model parameter", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return 400, {}, error_body("'messages' is a required property", param="messages")
        for message in messages:
            if message.get("role") not in ("system", "developer", "user", "assistant") or not isinstance(
                message.get("content"), str
            ):
                return 400, {}, error_body("Invalid message.", param="messages")
        question = messages[-1]["content"]
        self.generated += 1
        answer = f"You said: {question}"
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        if body.get("stream"):
            options = body.get("stream_options") or {}
            return (
                200,
                {"Content-Type": "text/event-stream"},
                self._chat_stream(body["model"], answer, prompt_tokens, options),
            )
        return (
            200,
            {},
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer, "refusal": None},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(answer.split()),
                    "total_tokens": prompt_tokens + len(answer.split()),
                },
            },
        )

    def _chat_stream(self, model: str, answer: str, prompt_tokens: int, options: dict):
        """The answer as vLLM and Ollama stream it: a role chunk, one chunk per token (word), a finish chunk, the
        usage chunk (with `stream_options.include_usage`), `data: [DONE]`."""
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion.chunk", "model": model}

        def event(choices, **extra) -> bytes:
            return (
                f"data: {json.dumps({**base, 'created': int(time.time()), 'choices': choices, **extra})}\n\n".encode()
            )

        tokens = re.findall(r"\S+\s*", answer)
        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        for position, token in enumerate(tokens):
            time.sleep(self.stream_token_seconds if position else self.stream_first_token_seconds)
            if position == self.stream_drop_after:
                yield DROP
                return
            yield event([{"index": 0, "delta": {"content": token}, "finish_reason": None}])
            if position == 0 and self.stream_pause:
                time.sleep(self.stream_pause)
        yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if options.get("include_usage"):
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens)}
            yield event([], usage={**usage, "total_tokens": prompt_tokens + len(tokens)})
        yield b"data: [DONE]\n\n"
        self.stream_finished_at = time.monotonic()

    def _images_generations(self, request: Recorded):
        body = request.json
        if not isinstance(body, dict) or not body.get("prompt"):
            return 400, {}, error_body("Missing required parameter: 'prompt'.", param="prompt")
        model = body.get("model", "dall-e-2")
        if model.startswith("gpt-image") and "response_format" in body:
            return 400, {}, error_body("Unknown parameter: 'response_format'.", param="response_format")
        unknown = set(body) - {"model", "prompt", "n", "size", "quality", "background", "output_format", "style"}
        if unknown - {"response_format", "user"}:
            return 400, {}, error_body(f"Unknown parameter: '{sorted(unknown)[0]}'.")
        width, height = _size(body.get("size", "1024x1024"))
        return 200, {}, self._image_answer(int(body.get("n", 1)), width, height, model)

    def _images_edits(self, request: Recorded):
        if request.json is not None:
            return 400, {}, error_body("Invalid Content-Type header (application/json), expected multipart/form-data.")
        if not request.form.get("prompt") or not request.form.get("model"):
            return 400, {}, error_body("Missing required parameter: 'prompt'.", param="prompt")
        images = request.files.get("image") or request.files.get("image[]")
        if not images:
            return 400, {}, error_body("Missing required parameter: 'image'.", param="image")
        for _, content_type, content in images:
            if content_type not in ("image/png", "image/jpeg", "image/webp"):
                return 400, {}, error_body(f"Invalid file type {content_type}.", param="image")
            try:
                Image.open(io.BytesIO(content)).verify()
            except Exception:
                return 400, {}, error_body("Invalid image file.", param="image")
        with Image.open(io.BytesIO(images[0][2])) as first:
            width, height = first.size
        if request.form.get("size") and request.form["size"] != "auto":
            width, height = _size(request.form["size"])
        return 200, {}, self._image_answer(int(request.form.get("n", 1)), width, height, request.form["model"])

    def _image_answer(self, n: int, width: int, height: int, model: str) -> dict:
        self.generated += n
        data = []
        for index in range(n):
            buffer = io.BytesIO()
            Image.new("RGB", (width, height), (30 * index, 120, 200)).save(buffer, "PNG")
            content = buffer.getvalue()
            if self.images_as_url and not model.startswith("gpt-image"):
                name = f"{uuid.uuid4().hex}.png"
                self.files[name] = content
                data.append({"url": f"{self.url}/files/{name}", "revised_prompt": "a revised prompt"})
            else:
                data.append({"b64_json": base64.b64encode(content).decode()})
        answer = {"created": int(time.time()), "data": data}
        if model.startswith("gpt-image"):
            answer["usage"] = {"total_tokens": 100 + n, "input_tokens": 50, "output_tokens": 50 + n}
        return answer

    def _speech(self, request: Recorded):
        body = request.json
        if not isinstance(body, dict) or not body.get("input") or not body.get("model"):
            return 400, {}, error_body("Missing required parameter: 'input'.", param="input")
        if body.get("voice") not in VOICES:
            return 400, {}, error_body("Invalid value for 'voice'.", param="voice")
        formats = {"mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac", "opus": "audio/ogg"}
        response_format = body.get("response_format", "mp3")
        if response_format not in formats:
            return 400, {}, error_body("Invalid value for 'response_format'.", param="response_format")
        return 200, {"Content-Type": formats[response_format]}, SPEECH_BYTES


def _size(size: str) -> tuple[int, int]:
    width, _, height = size.partition("x")
    return int(width), int(height)


def _multipart(content_type: str, raw: bytes) -> tuple[dict, dict]:
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    form, files = {}, {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            files.setdefault(name, []).append((part.get_filename(), part.get_content_type(), payload))
        else:
            form[name] = payload.decode()
    return form, files
