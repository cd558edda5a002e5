"""Local fakes of upstream providers for the adapter tests: real HTTP servers on 127.0.0.1, in a thread.

`HTTPFake` is the plumbing they share: it records every request it gets (`requests`, filtered by `seen`), hands it
to the fake's `respond`, and sends the answer back. `FakeServer` (fal.ai, Replicate below) and `FakeAPI` (OpenAI,
ComfyUI in their own modules) add the two ways a test makes a fake misbehave; each fake then only speaks its
provider's protocol.

The fal.ai and Replicate fakes speak their provider's protocol as the provider documents it (see each class), check
the credentials, play the documented status flow, and serve the output files they name under /files/. A test can
make one misbehave: `script(method, *answers)` answers the next requests of that method with canned (status,
headers, body), and `delays[method]` holds every answer of that method for that many seconds (past the client's
timeout) *after* doing the work, as a real upstream does: a submit that times out on our side has created its job
all the same.
"""

import io
import json
import math
import re
import socket
import struct
import threading
import uuid
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import SplitResult, parse_qs, urlsplit

from PIL import Image

HANG = "hang"  # what `respond` returns (and a `FakeAPI.script` entry) to never answer, until the server stops
HANG_AFTER = "hang-after"  # a `FakeAPI.script` entry: do the work the request asks for, then never answer
DROP = object()  # in a streamed body (a generator): close the connection there, mid-answer


@dataclass
class Seen:
    method: str
    path: str
    query: dict
    headers: dict  # lower-cased names
    raw: bytes

    @property
    def json(self):
        return json.loads(self.raw) if self.raw else None


def answer(status: int, body, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """A JSON answer (a bytes body is sent as it is)."""
    if isinstance(body, bytes):
        return status, {"Content-Type": "text/html", **(headers or {})}, body
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode()


class HTTPFake:
    """A real HTTP server on 127.0.0.1, in a thread. A fake builds what it records of a request in `record` and
    answers it in `respond`: (status, headers, body), a dict or list body sent as JSON, a generator of bytes sent
    chunked as it yields them, or HANG."""

    protocol_version = "HTTP/1.0"

    def __init__(self):
        self.requests: list = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def start(self):
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()  # wakes the answers held back
        self.server.shutdown()
        self.server.server_close()

    def seen(self, method: str | None = None, path: str | None = None) -> list:
        return [r for r in self.requests if (method is None or r.method == method) and (path is None or r.path == path)]

    def record(self, method: str, target: SplitResult, headers: dict, raw: bytes):
        """What `requests` keeps of a request (headers with lower-cased names), and what `respond` gets."""
        return Seen(method=method, path=target.path, query=parse_qs(target.query), headers=headers, raw=raw)

    def respond(self, request) -> tuple[int, dict, bytes | dict | list] | str:
        raise NotImplementedError

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = fake.protocol_version

            def do_GET(self):
                self._dispatch()

            def do_POST(self):
                self._dispatch()

            def do_PUT(self):
                self._dispatch()

            def _dispatch(self):
                length = int(self.headers.get("Content-Length") or 0)
                request = fake.record(
                    self.command,
                    urlsplit(self.path),
                    {name.lower(): value for name, value in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                fake.requests.append(request)
                reply = fake.respond(request)
                if reply == HANG:
                    fake._stopped.wait(10)
                    return
                status, headers, body = reply
                if isinstance(body, Iterator):
                    self._stream(status, headers, body)
                    return
                if isinstance(body, dict | list):
                    body = json.dumps(body).encode()
                    headers = {"Content-Type": "application/json", **headers}
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def _stream(self, status, headers, pieces):
                """A body sent as it is made (chunked): a generator's pieces, each flushed at once; DROP in it
                closes the connection mid-answer, without the final chunk."""
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for piece in pieces:
                        if piece is DROP:
                            self.close_connection = True
                            self.wfile.flush()
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up

            def log_message(self, *args):
                pass

        return Handler


class FakeAPI(HTTPFake):
    """A fake whose next answers a test forces by filling `script` with (status, headers, body) or HANG entries;
    the rest go to `handle`. It keeps connections alive (HTTP/1.1), as the servers it stands in for do."""

    protocol_version = "HTTP/1.1"

    def __init__(self):
        super().__init__()
        self.script: list = []

    def handle(self, request) -> tuple[int, dict, bytes | dict | list]:
        raise NotImplementedError

    def respond(self, request):
        if not self.script:
            return self.handle(request)
        entry = self.script.pop(0)
        if entry == HANG_AFTER:
            self.handle(request)  # the upstream did it; only its answer is lost
            return HANG
        return entry


class FakeServer(HTTPFake):
    """The fal.ai and Replicate fakes: canned answers per method (`script`), `delays`, files served under /files/."""

    def __init__(self):
        super().__init__()
        self.scripted: dict[str, list[tuple[int, dict, bytes]]] = {}
        self.delays: dict[str, float] = {}
        self.files: dict[str, tuple[bytes, str]] = {}

    def script(self, method: str, *answers: tuple[int, dict, bytes]) -> None:
        self.scripted.setdefault(method, []).extend(answers)

    def serve_file(self, name: str, content: bytes, content_type: str) -> str:
        self.files[name] = (content, content_type)
        return f"{self.url}/files/{name}"

    def handle(self, request: Seen) -> tuple[int, dict, bytes]:
        raise NotImplementedError

    def respond(self, request: Seen) -> tuple[int, dict, bytes]:
        reply = self._reply(request)
        if self.delays.get(request.method):  # the work is done; the answer comes too late
            self._stopped.wait(self.delays[request.method])
        return reply

    def _reply(self, request: Seen) -> tuple[int, dict, bytes]:
        with self._lock:
            canned = self.scripted.get(request.method)
            if canned:
                return canned.pop(0)
            if request.method == "GET" and request.path.startswith("/files/"):
                name = request.path.removeprefix("/files/")
                if name not in self.files:
                    return answer(404, {"detail": "Not found"})
                content, content_type = self.files[name]
                return 200, {"Content-Type": content_type}, content
            return self.handle(request)


class FakeFal(FakeServer):
    """fal.ai's Queue API, as fal documents it ("Queue", "Inference API"):

    - `POST /{model_id}` (a model id may have a sub-path: `fal-ai/z-image/turbo`): `Authorization: Key <key>`
      else 401 `{"detail"}`; a JSON object body else 422 `{"detail": [...]}`; answers `{"request_id",
      "response_url", "status_url", "cancel_url", "queue_position", "status": "IN_QUEUE"}`, the URLs under the
      app id (`owner/app`, never the sub-path).
    - `GET /{app}/requests/{id}/status`: `IN_QUEUE` (202, `queue_position`) → `IN_PROGRESS` (202, `logs`) →
      `COMPLETED` (200, `metrics.inference_time`), one step per call; 404 for an unknown id or under another path.
    - `GET /{app}/requests/{id}`: the model's output JSON once completed, its files served under /files/; 400
      before; `model_error` (status, body) instead, as fal answers when the model failed.
    - `PUT /{app}/requests/{id}/cancel`: 202 `CANCELLATION_REQUESTED` until completed, then 400 `ALREADY_COMPLETED`.
    `outputs[model_id]` builds a model's output from its input (default: one PNG in `images`).
    """

    key = "fal-test-key"

    def __init__(self):
        super().__init__()
        self.jobs: dict[str, dict] = {}
        self.outputs = {}
        self.model_error: tuple[int, dict] | None = None
        self.submit_urls_on: str | None = None  # another origin for the URLs of the submit answer

    def handle(self, request):
        if request.headers.get("authorization") != f"Key {self.key}":
            return answer(401, {"detail": "No user found for Key ID and Secret"})
        if request.method == "POST":
            return self._submit(request)
        match = re.fullmatch(r"/(?P<app>[^/]+/[^/]+)/requests/(?P<id>[^/]+)(?P<tail>/status|/cancel)?", request.path)
        job = self.jobs.get(match["id"]) if match else None
        if job is None or job["app"] != match["app"]:
            return answer(404, {"detail": "Request not found"})
        if request.method == "GET" and match["tail"] == "/status":
            return self._status(job)
        if request.method == "GET" and not match["tail"]:
            return self._result(job)
        if request.method == "PUT" and match["tail"] == "/cancel":
            if job["steps"] >= 2:
                return answer(400, {"status": "ALREADY_COMPLETED"})
            job["canceled"] = True
            return answer(202, {"status": "CANCELLATION_REQUESTED"})
        return answer(405, {"detail": "Method not allowed"})

    def _submit(self, request):
        try:
            body = request.json
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return answer(422, {"detail": [{"loc": ["body"], "msg": "Input should be an object", "type": "dict"}]})
        model_id = request.path.strip("/")
        request_id = str(uuid.uuid4())
        app = "/".join(model_id.split("/")[:2])
        self.jobs[request_id] = {
            "id": request_id,
            "app": app,
            "model": model_id,
            "input": body,
            "steps": 0,
            "canceled": False,
        }
        base = f"{self.submit_urls_on or self.url}/{app}/requests/{request_id}"
        return answer(
            200,
            {
                "status": "IN_QUEUE",
                "request_id": request_id,
                "response_url": base,
                "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel",
                "queue_position": 0,
            },
        )

    def _status(self, job):
        base = f"{self.url}/{job['app']}/requests/{job['id']}"
        step, job["steps"] = job["steps"], job["steps"] + 1
        if step == 0:
            return answer(202, {"status": "IN_QUEUE", "queue_position": 1, "response_url": base})
        if step == 1:
            return answer(202, {"status": "IN_PROGRESS", "logs": [], "response_url": base})
        body = {"status": "COMPLETED", "logs": None, "response_url": base, "metrics": {"inference_time": 0.42}}
        if self.model_error:
            body["error"] = self.model_error[1].get("detail")
        return answer(200, body)

    def _result(self, job):
        if job["steps"] < 3:
            return answer(400, {"detail": "Request is still in progress"})
        if self.model_error:
            return answer(*self.model_error)
        build = self.outputs.get(job["model"], default_fal_image)
        return answer(200, build(self, job["input"]))


def default_fal_image(fake: FakeServer, input: dict) -> dict:
    url = fake.serve_file("z.png", png_bytes(64, 48), "image/png")
    return {
        "images": [{"url": url, "width": 64, "height": 48, "content_type": "image/png"}],
        "seed": 1234,
        "has_nsfw_concepts": [False],
        "prompt": input.get("prompt", ""),
    }


class FakeReplicate(FakeServer):
    """Replicate's HTTP API, as Replicate documents it ("Create a prediction", "Get a prediction", "Cancel a
    prediction"), under /v1:

    - `POST /v1/models/{owner}/{name}/predictions` with `{"input": {...}}`, or `POST /v1/predictions` with
      `{"version", "input"}`: `Authorization: Bearer <token>` else 401 `{"title", "detail", "status"}`; 422 without
      an `input` object; 201 with the prediction `{"id", "model", "version", "input", "status": "starting",
      "output": null, "error": null, "logs", "metrics", "urls": {"get", "cancel", "stream"}}`. With `Prefer: wait`
      the prediction runs to its end before the answer.
    - `GET /v1/predictions/{id}`: `starting` → `processing` → `succeeded` (`output`, `metrics.predict_time`), one
      step per call; `failed` with `error` when `fail_with` is set; `canceled` when `cancel_on_its_own` is set.
    - `POST /v1/predictions/{id}/cancel`: the prediction, `canceled` unless it had finished.
    - `GET /v1/predictions`: `{"next", "previous", "results"}`, the account's predictions newest first (100 a page).
    `outputs[model]` builds a model's output from its input (default: the URL of one PNG).
    """

    key = "r8_test_token"

    def __init__(self):
        super().__init__()
        self.predictions: dict[str, dict] = {}
        self.outputs = {}
        self.fail_with: str | None = None
        self.cancel_on_its_own = False

    def handle(self, request):
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return answer(
                401,
                {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401},
            )
        model = re.fullmatch(r"/v1/models/(?P<owner>[^/]+)/(?P<name>[^/]+)/predictions", request.path)
        if request.method == "POST" and (model or request.path == "/v1/predictions"):
            return self._create(request, f"{model['owner']}/{model['name']}" if model else "")
        if request.method == "GET" and request.path == "/v1/predictions":
            newest_first = sorted(self.predictions.values(), key=lambda p: p["created_at"], reverse=True)
            return answer(200, {"next": None, "previous": None, "results": newest_first[:100]})
        match = re.fullmatch(r"/v1/predictions/(?P<id>[^/]+)(?P<cancel>/cancel)?", request.path)
        prediction = self.predictions.get(match["id"]) if match else None
        if prediction is None:
            return answer(
                404, {"title": "Not found", "detail": "The requested resource could not be found.", "status": 404}
            )
        if request.method == "GET" and not match["cancel"]:
            self._step(prediction)
            return answer(200, prediction)
        if request.method == "POST" and match["cancel"]:
            if prediction["status"] in ("starting", "processing"):
                prediction["status"] = "canceled"
            return answer(200, prediction)
        return answer(405, {"detail": "Method not allowed"})

    def _create(self, request, model: str):
        try:
            body = request.json
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return answer(422, {"title": "Input validation failed", "detail": "input is required", "status": 422})
        version = body.get("version", "")
        if not model and not version:
            return answer(422, {"title": "Invalid version", "detail": "version is required", "status": 422})
        prediction_id = uuid.uuid4().hex[:26]
        base = f"{self.url}/v1/predictions/{prediction_id}"
        prediction = {
            "id": prediction_id,
            "model": model or "owner/versioned",
            "version": version or "latest",
            "input": body["input"],
            "status": "starting",
            "output": None,
            "error": None,
            "logs": "",
            "metrics": {},
            "created_at": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "source": "api",
            "urls": {"get": base, "cancel": f"{base}/cancel", "stream": f"{self.url}/stream/{prediction_id}"},
        }
        self.predictions[prediction_id] = prediction
        if "wait" in request.headers.get("prefer", ""):
            while prediction["status"] in ("starting", "processing"):
                self._step(prediction)
        return answer(201, prediction)

    def _step(self, prediction):
        if prediction["status"] == "starting":
            prediction["status"] = "processing"
            prediction["logs"] = "Loading model…\n"
        elif prediction["status"] == "processing":
            if self.cancel_on_its_own:
                prediction["status"] = "canceled"
            elif self.fail_with:
                prediction["status"] = "failed"
                prediction["error"] = self.fail_with
            else:
                build = self.outputs.get(prediction["model"], default_replicate_image)
                prediction.update(status="succeeded", output=build(self, prediction["input"]))
                prediction["metrics"] = {"predict_time": 1.25, "total_time": 1.5}


def default_replicate_image(fake: FakeServer, input: dict) -> str:
    return fake.serve_file("out-0.png", png_bytes(input.get("width", 32), input.get("height", 24)), "image/png")


# --- Real media files ---------------------------------------------------------------------------------------


def png_bytes(width: int, height: int, color=(20, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def wav_bytes(seconds: float, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        samples = (int(8000 * math.sin(2 * math.pi * 440 * n / rate)) for n in range(int(seconds * rate)))
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return buffer.getvalue()


def mp4_bytes(seconds: float, width: int = 64, height: int = 48, fps: int = 10) -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(int(seconds * fps)):
            frame = av.VideoFrame.from_image(Image.new("RGB", (width, height), (index * 20 % 256, 80, 160)))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


# --- A proxy that drops connections ---------------------------------------------------------------------------


class DroppingProxy:
    """A real TCP proxy on 127.0.0.1 in front of a fake: it passes each request on, reads the whole answer, and
    for the requests `drop(method, path)` picks closes the client's connection instead of relaying it — the
    upstream did the work, the answer was lost on the way (a load balancer restart, a network cut)."""

    def __init__(self, upstream_url: str, drop):
        self.upstream = urlsplit(upstream_url)
        self.drop = drop
        self.dropped: list[tuple[str, str]] = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> "DroppingProxy":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._listener.close()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket):
        with client:
            request = _read_http_message(client)
            if not request:
                return
            method, path = request.split(b" ", 2)[:2]
            with socket.create_connection((self.upstream.hostname, self.upstream.port)) as upstream:
                upstream.sendall(request)
                answer = b"".join(iter(lambda: upstream.recv(65536), b""))  # the fakes close after answering
            if self.drop(method.decode(), path.decode()):
                self.dropped.append((method.decode(), path.decode()))
                return  # closed without a byte of the answer
            client.sendall(answer)


def _read_http_message(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    # The fakes answer HTTP/1.0 and close; ask for that so the answer's end is the connection's end.
    head = head.replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    return head + b"\r\n\r\n" + body
