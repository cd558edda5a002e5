"""A local stand-in for a ComfyUI server's HTTP API, for adapter tests.

It listens on 127.0.0.1 and speaks what ComfyUI's server does: POST /prompt validates an API-format workflow
(unknown node classes, missing checkpoints, no output node → 400 with `error` and `node_errors`) and queues it;
GET /queue lists running and pending prompts; GET /history/{id} is {} until the prompt ends; GET /view serves the
saved files; POST /queue {"delete"} and POST /interrupt stop work. A `prompt_id` in the POST /prompt body names the
prompt (ComfyUI keeps the client's id). The test drives execution with `start`,
`finish` and `fail`, reads what was sent in `requests`, and can force answers (or a HANG) through `script`.
An `api_key` makes it behave like an instance behind an authenticating proxy (Bearer token or 401).
"""

import io
import json
import mimetypes
import time
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs

from PIL import Image

from tests.providers.fakes import HANG as HANG  # a `script` entry: never answer (until the server stops)
from tests.providers.fakes import HANG_AFTER as HANG_AFTER  # a `script` entry: do the work, then never answer
from tests.providers.fakes import FakeAPI

# ComfyUI's default text-to-image graph as "Save (API format)" exports it.
DEFAULT_WORKFLOW = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 156680208700286,
            "steps": 20,
            "cfg": 8,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "6": {
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "beautiful scenery nature glass bottle landscape", "clip": ["4", 1]},
    },
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}
NODE_CLASSES = {
    "KSampler",
    "CheckpointLoaderSimple",
    "EmptyLatentImage",
    "CLIPTextEncode",
    "VAEDecode",
    "SaveImage",
    "PreviewImage",
}
OUTPUT_CLASSES = {"SaveImage", "PreviewImage"}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    headers: dict
    json: dict | list | None = None


class FakeComfyUI(FakeAPI):
    def __init__(self, *, api_key: str | None = None, checkpoints=("v1-5-pruned-emaonly.safetensors",)):
        super().__init__()
        self.api_key = api_key
        self.checkpoints = set(checkpoints)
        self.prompts: dict[str, dict] = {}  # prompt id → {"number", "prompt", "client_id", "state"}
        self.history: dict[str, dict] = {}
        self.files: dict[tuple[str, str, str], bytes] = {}  # (type, subfolder, filename) → bytes
        self.interrupted: list[str | None] = []
        self.deleted: list[str] = []
        self._number = 0
        self._counter = 0

    @property
    def base_url(self) -> str:
        return self.url

    def start_server(self) -> "FakeComfyUI":
        return super().start()  # `start` itself starts running a prompt, as ComfyUI's queue does

    def calls(self, method: str, path: str) -> list[Recorded]:
        return self.seen(method, path)

    def record(self, method, target, headers, raw) -> Recorded:
        request = Recorded(
            method=method,
            path=target.path,
            query={k: v[0] for k, v in parse_qs(target.query, keep_blank_values=True).items()},
            headers=headers,
        )
        if raw:
            try:
                request.json = json.loads(raw)
            except ValueError:
                request.json = None
        return request

    # --- driving execution --------------------------------------------------------------------------------
    def start(self, prompt_id: str) -> None:
        self.prompts[prompt_id]["state"] = "running"

    def finish(self, prompt_id: str) -> None:
        """Runs the prompt: each SaveImage writes PNGs of the EmptyLatentImage size, PreviewImage temp ones."""
        entry = self.prompts.pop(prompt_id)
        prompt = entry["prompt"]
        latent = next((n["inputs"] for n in prompt.values() if n["class_type"] == "EmptyLatentImage"), {})
        width, height, batch = latent.get("width", 512), latent.get("height", 512), latent.get("batch_size", 1)
        outputs = {}
        for node_id, node in prompt.items():
            if node["class_type"] not in OUTPUT_CLASSES:
                continue
            images = []
            for _ in range(batch):
                self._counter += 1
                if node["class_type"] == "SaveImage":
                    subfolder, _, prefix = node["inputs"].get("filename_prefix", "ComfyUI").rpartition("/")
                    item = {"filename": f"{prefix}_{self._counter:05}_.png", "subfolder": subfolder, "type": "output"}
                else:
                    item = {"filename": f"ComfyUI_temp_abcde_{self._counter:05}_.png", "subfolder": "", "type": "temp"}
                self.files[(item["type"], item["subfolder"], item["filename"])] = _png(width, height)
                images.append(item)
            outputs[node_id] = {"images": images}
        self._record(prompt_id, entry, outputs, "success", [["execution_success", {"prompt_id": prompt_id}]])

    def finish_with(self, prompt_id: str, outputs: dict, files: dict) -> None:
        """Ends the prompt with the given history outputs and files ((type, subfolder, filename) → bytes)."""
        entry = self.prompts.pop(prompt_id)
        self.files.update(files)
        self._record(prompt_id, entry, outputs, "success", [["execution_success", {"prompt_id": prompt_id}]])

    def fail(self, prompt_id: str, *, node_id: str, message: str) -> None:
        entry = self.prompts.pop(prompt_id)
        node_type = entry["prompt"][node_id]["class_type"]
        error = {
            "prompt_id": prompt_id,
            "node_id": node_id,
            "node_type": node_type,
            "executed": ["4", "5", "6", "7"],
            "exception_message": message,
            "exception_type": "torch.OutOfMemoryError",
            "traceback": ['  File "/ComfyUI/execution.py", line 327, in execute\n'],
            "current_inputs": {},
            "current_outputs": {},
            "timestamp": int(time.time() * 1000),
        }
        self._record(prompt_id, entry, {}, "error", [["execution_error", error]])

    def _record(self, prompt_id, entry, outputs, status_str, messages):
        start = ["execution_start", {"prompt_id": prompt_id, "timestamp": int(time.time() * 1000)}]
        self.history[prompt_id] = {
            "prompt": [entry["number"], prompt_id, entry["prompt"], {"client_id": entry["client_id"]}, list(outputs)],
            "outputs": outputs,
            "status": {"status_str": status_str, "completed": status_str == "success", "messages": [start, *messages]},
            "meta": {node_id: {"node_id": node_id, "display_node": node_id} for node_id in outputs},
        }

    # --- the endpoints ------------------------------------------------------------------------------------
    def handle(self, request: Recorded) -> tuple[int, dict, bytes | dict]:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"Content-Type": "text/plain"}, b"401: Unauthorized"
        if request.method == "POST" and request.path == "/prompt":
            return self._prompt(request.json)
        if request.method == "GET" and request.path == "/queue":
            return 200, {}, self._queue()
        if request.method == "POST" and request.path == "/queue":
            for prompt_id in (request.json or {}).get("delete", []):
                if self.prompts.get(prompt_id, {}).get("state") == "pending":
                    del self.prompts[prompt_id]
                    self.deleted.append(prompt_id)
            return 200, {}, b""
        if request.method == "POST" and request.path == "/interrupt":
            wanted = (request.json or {}).get("prompt_id")
            for prompt_id, entry in list(self.prompts.items()):
                if entry["state"] == "running" and wanted in (None, prompt_id):
                    self.interrupted.append(prompt_id)
                    del self.prompts[prompt_id]
                    self._record(prompt_id, entry, {}, "error", [["execution_interrupted", {"prompt_id": prompt_id}]])
            return 200, {}, b""
        if request.method == "GET" and request.path.startswith("/history/"):
            prompt_id = request.path.removeprefix("/history/")
            return 200, {}, ({prompt_id: self.history[prompt_id]} if prompt_id in self.history else {})
        if request.method == "GET" and request.path == "/view":
            key = (request.query.get("type", "output"), request.query.get("subfolder", ""), request.query["filename"])
            if key not in self.files:
                return 404, {}, b"404: Not Found"
            content_type = mimetypes.guess_type(key[2])[0] or "application/octet-stream"
            return 200, {"Content-Type": content_type}, self.files[key]
        return 404, {"Content-Type": "text/plain"}, b"404: Not Found"

    def _prompt(self, body):
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), dict):
            return 400, {}, _error("invalid_prompt", "Invalid prompt: the prompt must be an object")
        prompt = body["prompt"]
        for node_id, node in prompt.items():
            if not isinstance(node, dict) or "class_type" not in node:
                return (
                    400,
                    {},
                    _error(
                        "invalid_prompt",
                        "Cannot execute because a node is missing the class_type property.",
                        f"Node ID '#{node_id}'",
                    ),
                )
            if node["class_type"] not in NODE_CLASSES:
                return (
                    400,
                    {},
                    _error(
                        "invalid_prompt",
                        f"Cannot execute because node {node['class_type']} does not exist.",
                        f"Node ID '#{node_id}'",
                    ),
                )
        outputs = [node_id for node_id, node in prompt.items() if node["class_type"] in OUTPUT_CLASSES]
        if not outputs:
            return 400, {}, _error("prompt_no_outputs", "Prompt has no outputs")
        node_errors = {}
        for node_id, node in prompt.items():
            errors = self._node_errors(prompt, node)
            if errors:
                node_errors[node_id] = {
                    "errors": errors,
                    "dependent_outputs": outputs,
                    "class_type": node["class_type"],
                }
        if node_errors:
            return 400, {}, {**_error("prompt_outputs_failed_validation", "Prompt outputs failed validation"),
                             "node_errors": node_errors}  # fmt: skip
        with self._lock:
            self._number += 1
            prompt_id = str(body.get("prompt_id") or uuid.uuid4())  # ComfyUI takes the client's id when given
            self.prompts[prompt_id] = {
                "number": self._number,
                "prompt": prompt,
                "client_id": body.get("client_id"),
                "state": "pending",
            }
        return 200, {}, {"prompt_id": prompt_id, "number": self._number, "node_errors": {}}

    def _node_errors(self, prompt: dict, node: dict) -> list[dict]:
        inputs, errors = node.get("inputs", {}), []
        for name, value in inputs.items():
            if isinstance(value, list) and (len(value) != 2 or str(value[0]) not in prompt):
                errors.append(_node_error("bad_linked_input", "Bad linked input", name))
        kind = node["class_type"]
        if kind == "CheckpointLoaderSimple" and inputs.get("ckpt_name") not in self.checkpoints:
            errors.append(
                _node_error("value_not_in_list", "Value not in list", f"ckpt_name: {inputs.get('ckpt_name')!r}")
            )
        if kind == "KSampler":
            for name in ("seed", "steps"):
                if not isinstance(inputs.get(name), int) or inputs[name] < (1 if name == "steps" else 0):
                    errors.append(_node_error("invalid_input_type", "Failed to convert an input value", name))
        if kind == "EmptyLatentImage":
            for name in ("width", "height"):
                if not isinstance(inputs.get(name), int) or inputs[name] < 16 or inputs[name] % 8:
                    errors.append(_node_error("value_not_valid", "Value not valid", name))
        if kind == "CLIPTextEncode" and not isinstance(inputs.get("text"), str):
            errors.append(_node_error("invalid_input_type", "Failed to convert an input value", "text"))
        return errors

    def _queue(self) -> dict:
        def items(state):
            return [
                [entry["number"], prompt_id, entry["prompt"], {"client_id": entry["client_id"]}, []]
                for prompt_id, entry in self.prompts.items()
                if entry["state"] == state
            ]

        return {"queue_running": items("running"), "queue_pending": items("pending")}


def _error(type: str, message: str, details: str = "") -> dict:
    return {"error": {"type": type, "message": message, "details": details, "extra_info": {}}, "node_errors": {}}


def _node_error(type: str, message: str, details: str) -> dict:
    return {"type": type, "message": message, "details": details, "extra_info": {}}


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 90, 40)).save(buffer, "PNG")
    return buffer.getvalue()
