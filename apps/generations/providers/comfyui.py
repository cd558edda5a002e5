"""A self-hosted ComfyUI: submit a stored workflow with the job's inputs bound into it, poll it, fetch its files.

The account's `options["workflows"]` holds named workflows in ComfyUI's API format (what "Save (API format)"
exports: node id → {"class_type", "inputs"}). A route names one (`params["workflow"]`, else its upstream model
id) and says where each input goes: `params["bind"]` = {our input field: [node id, input name]} or a list of such
pairs, e.g. {"prompt": ["6", "text"], "seed": ["3", "seed"], "width": ["5", "width"]}. A bound `seed` the job
did not send gets a random one (ComfyUI caches identical prompts). `params["output_nodes"]` may limit which
nodes' files are kept; otherwise every saved ("output") file is, or the previews when nothing was saved.

Protocol: POST /prompt {"prompt", "client_id", "prompt_id"} → {"prompt_id", "number", "node_errors"} (an invalid
workflow is a 400: final); the prompt id is ours, so a submit whose answer was lost (a timeout, a dropped
connection) is looked up in GET /queue and GET /history/{id} and adopted when there, never sent twice.
GET /history/{prompt_id} is {} until the run ends, then carries its status and outputs; files come from
GET /view?filename=&subfolder=&type=; cancel is POST /queue {"delete": [id]} while queued and POST /interrupt while
running. Options: `poll_seconds`, `timeout_seconds`; an API key, when set, is sent as
`Authorization: Bearer` (for an instance behind an authenticating proxy).
"""

import copy
import io
import json
import mimetypes
import secrets
import uuid
from urllib.parse import urlencode

from PIL import Image

from apps.generations.providers import OutputData, Pending, Provider, ProviderError, RunResult
from apps.generations.providers.http import UpstreamClient, UpstreamUnknownOutcome

NAME = "ComfyUI"
FILE_KEYS = ("images", "gifs", "videos", "audio")
SEED_MAX = 2**31 - 1


class ComfyUIProvider(Provider):
    kind = "comfyui"
    needs_api_key = False
    default_base_url = "http://127.0.0.1:8188"

    @classmethod
    def account_ready(cls, account) -> bool:
        # Without a stored workflow there is nothing to run: keep its models hidden until the admin adds one.
        return bool((account.options or {}).get("workflows"))

    def run(self, *, upstream_model: str, params: dict, input: dict) -> Pending:
        workflow = self._workflow(params.get("workflow") or upstream_model)
        bind = params.get("bind") or {}
        values = dict(input)
        if "seed" in bind and values.get("seed") is None:
            values["seed"] = secrets.randbelow(SEED_MAX)
        prompt = workflow_bind(workflow, bind, values)
        # Our own ids: ComfyUI keeps the prompt id it is given (older versions make one up; the client id is kept
        # by all), so a submit whose answer was lost can be found in its queue or history instead of sent twice.
        our_prompt_id, client_id = str(uuid.uuid4()), uuid.uuid4().hex
        body = {"prompt": prompt, "client_id": client_id, "prompt_id": our_prompt_id}
        with self._client() as client:
            try:
                data = client.json("POST", "/prompt", json=body)
            except UpstreamUnknownOutcome:
                found = self._find(client, our_prompt_id, client_id)
                if found is None:
                    raise
                data = {"prompt_id": found}
        prompt_id = data.get("prompt_id") if isinstance(data, dict) else None
        if not isinstance(prompt_id, str) or not prompt_id:
            raise _malformed()
        state = {"prompt_id": prompt_id, "client_id": client_id, "number": data.get("number")}
        if "seed" in bind:
            state["seed"] = values["seed"]
        return Pending(state=state, upstream_id=prompt_id, retry_after=self._poll_seconds())

    def poll(self, *, upstream_model: str, params: dict, input: dict, state: dict) -> RunResult | Pending:
        prompt_id = state["prompt_id"]
        with self._client() as client:
            entry = self._history(client, prompt_id)
            if entry is None:
                if _queued_or_running(client.json("GET", "/queue"), prompt_id):
                    return Pending(state=state, retry_after=self._poll_seconds())
                entry = self._history(client, prompt_id)  # it may have finished between the two reads
                if entry is None:
                    raise ProviderError(
                        f"{NAME} no longer knows this job (was it restarted?).", retryable=True, code="upstream_lost"
                    )
            _raise_for_status(entry)
            files = _output_files(entry.get("outputs"), params.get("output_nodes"))
            if not files:
                raise ProviderError(f"{NAME} finished the workflow without saving any file.", code="upstream_empty")
            outputs = [self._fetch(client, item, position) for position, item in enumerate(files, start=1)]
        usage = {"files": len(outputs)}
        if "seed" in state:
            usage["seed"] = state["seed"]
        return RunResult(outputs=outputs, usage=usage)

    def cancel(self, *, upstream_model: str, params: dict, state: dict) -> None:
        prompt_id = state.get("prompt_id")
        if not prompt_id:
            return
        with self._client() as client:
            queue = client.json("GET", "/queue", retries=0)
            if _queued_or_running(queue, prompt_id, pending=False):
                # Newer ComfyUI stops only the named prompt; an older one stops whatever runs, which is ours.
                client.request("POST", "/interrupt", json={"prompt_id": prompt_id}, retries=0)
            else:
                client.request("POST", "/queue", json={"delete": [prompt_id]}, retries=0)

    def _find(self, client: UpstreamClient, prompt_id: str, client_id: str) -> str | None:
        """The id of our prompt if ComfyUI has it (queued, running or finished), else None."""
        try:
            queue = client.json("GET", "/queue")
            if not isinstance(queue, dict):
                return None
            # Each entry is [number, prompt_id, prompt, extra_data, outputs_to_execute].
            for item in (queue.get("queue_running") or []) + (queue.get("queue_pending") or []):
                if not isinstance(item, list) or len(item) < 4 or not isinstance(item[3], dict):
                    continue
                if item[1] == prompt_id or item[3].get("client_id") == client_id:
                    return str(item[1])
            return prompt_id if self._history(client, prompt_id) is not None else None
        except ProviderError:
            return None

    def _client(self) -> UpstreamClient:
        if not self.base_url:
            raise ProviderError(f"{NAME} has no base URL configured.", code="provider_misconfigured")
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        timeout = (self.config.options or {}).get("timeout_seconds")
        return UpstreamClient(
            base_url=self.base_url, headers=headers, provider=NAME, timeout=float(timeout) if timeout else None
        )

    def _poll_seconds(self) -> float | None:
        seconds = (self.config.options or {}).get("poll_seconds")
        return float(seconds) if seconds is not None else None

    def _workflow(self, name) -> dict:
        if isinstance(name, dict):  # a workflow written into the route itself
            workflow = name
        else:
            workflow = ((self.config.options or {}).get("workflows") or {}).get(name)
            if workflow is None:
                raise ProviderError(
                    f"The {NAME} account has no workflow named {name!r}.", code="provider_misconfigured"
                )
        if isinstance(workflow, str):  # pasted into the admin as text
            try:
                workflow = json.loads(workflow)
            except ValueError:
                raise ProviderError(f"The {NAME} workflow is not valid JSON.", code="provider_misconfigured") from None
        if isinstance(workflow, dict) and "nodes" in workflow and "links" in workflow:
            raise ProviderError(
                f"The {NAME} workflow is in the UI format: export it with “Save (API format)”.",
                code="provider_misconfigured",
            )
        if not isinstance(workflow, dict) or not workflow or not all(_is_node(node) for node in workflow.values()):
            raise ProviderError(
                f"The {NAME} workflow is not in the API format (node id → class_type, inputs).",
                code="provider_misconfigured",
            )
        return workflow

    def _history(self, client: UpstreamClient, prompt_id: str) -> dict | None:
        history = client.json("GET", f"/history/{prompt_id}")
        if not isinstance(history, dict):
            raise _malformed()
        entry = history.get(prompt_id)
        if entry is None:
            return None
        if not isinstance(entry, dict):
            raise _malformed()
        return entry

    def _fetch(self, client: UpstreamClient, item: dict, position: int) -> OutputData:
        query = urlencode(
            {"filename": item["filename"], "subfolder": item.get("subfolder", ""), "type": item.get("type", "output")}
        )
        content, _ = client.download(f"/view?{query}")
        content_type = _media_type(item["filename"])
        output = OutputData(
            type=content_type.split("/")[0],
            content_type=content_type,
            file_name=_safe_name(item["filename"], position),
            content=content,
        )
        if output.type == "image":
            try:
                with Image.open(io.BytesIO(content)) as image:
                    output.width, output.height = image.size
            except (OSError, Image.DecompressionBombError):
                raise ProviderError(
                    f"{NAME} returned an image that cannot be read.", retryable=True, code="upstream_malformed"
                ) from None
        return output


def workflow_bind(workflow: dict, bind: dict, values: dict) -> dict:
    """A copy of the workflow with each bound input field written into its node inputs."""
    bound = copy.deepcopy(workflow)
    for field, targets in bind.items():
        for node_id, input_name in _targets(field, targets):
            node = bound.get(str(node_id))
            if not _is_node(node):
                raise ProviderError(
                    f"The {NAME} binding of {field!r} names node {node_id!r}, which the workflow lacks.",
                    code="provider_misconfigured",
                )
            if field in values:
                node["inputs"][input_name] = values[field]
    return bound


def _targets(field: str, targets) -> list[tuple[str, str]]:
    pairs = targets if isinstance(targets, list) and targets and isinstance(targets[0], list) else [targets]
    if not all(isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair) for pair in pairs):
        raise ProviderError(
            f"The {NAME} binding of {field!r} must be [node id, input name] or a list of them.",
            code="provider_misconfigured",
        )
    return [tuple(pair) for pair in pairs]


def _is_node(node) -> bool:
    return isinstance(node, dict) and isinstance(node.get("class_type"), str) and isinstance(node.get("inputs"), dict)


def _queued_or_running(queue, prompt_id: str, *, pending: bool = True) -> bool:
    """Whether the prompt is running (or, with `pending`, waiting) in a GET /queue answer."""
    if not isinstance(queue, dict):
        raise _malformed()
    lists = ["queue_running"] + (["queue_pending"] if pending else [])
    # Each entry is [number, prompt_id, prompt, extra_data, outputs_to_execute].
    return any(
        isinstance(item, list) and len(item) > 1 and item[1] == prompt_id
        for key in lists
        for item in queue.get(key) or []
    )


def _raise_for_status(entry: dict) -> None:
    status = entry.get("status") or {}
    if not isinstance(status, dict):
        raise _malformed()
    if status.get("status_str") != "error":
        return
    for message in status.get("messages") or []:
        if not (isinstance(message, list) and len(message) == 2 and isinstance(message[1], dict)):
            continue
        event, detail = message
        if event == "execution_error":
            raise ProviderError(
                f"{NAME} failed at node {detail.get('node_id')} ({detail.get('node_type')}): "
                f"{str(detail.get('exception_message', '')).strip()[:200]}",
                code="upstream_execution_error",
            )
        if event == "execution_interrupted":
            raise ProviderError(f"{NAME} stopped this job before it finished.", code="upstream_interrupted")
    raise ProviderError(f"{NAME} could not run the workflow.", code="upstream_execution_error")


def _output_files(outputs, output_nodes) -> list[dict]:
    if not isinstance(outputs, dict):
        raise _malformed()
    files = [
        item
        for node_id, node_output in outputs.items()
        if isinstance(node_output, dict) and (not output_nodes or node_id in output_nodes)
        for key in FILE_KEYS
        for item in node_output.get(key) or []
        if isinstance(item, dict) and isinstance(item.get("filename"), str) and _media_type(item["filename"])
    ]
    saved = [item for item in files if item.get("type", "output") == "output"]
    return saved or files  # a workflow that only previews still gives its previews


def _media_type(filename: str) -> str:
    """The file's type when it is an image, video or audio we can serve as is; "" otherwise (not kept)."""
    content_type = mimetypes.guess_type(filename)[0] or ""
    if content_type.split("/")[0] not in ("image", "video", "audio") or content_type.endswith("+xml"):
        return ""
    return content_type


def _safe_name(filename: str, position: int) -> str:
    name = filename.rsplit("/", 1)[-1].replace("\\", "_").strip(". ")
    return name[:100] or f"output-{position}"


def _malformed() -> ProviderError:
    return ProviderError(f"{NAME} answered with a malformed body.", retryable=True, code="upstream_malformed")
