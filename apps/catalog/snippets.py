"""Copy-paste code for one model: curl, Python and JavaScript, the KiwiWhale client (clients/python) and its
`kiwiwhale` command, against this instance, with a key placeholder.

A real key never appears: the raw key exists only in the response that created it. A signed-in user sees the
prefix of their newest key, so they know which key to paste.
"""

import json
import pprint
import shlex

KEY_ENV = "KIWIWHALE_API_KEY"
ANONYMOUS_KEY_PLACEHOLDER = "kw_your_api_key"


def key_placeholder(prefix: str | None) -> str:
    return f"{prefix}…rest-of-your-key" if prefix else ANONYMOUS_KEY_PLACEHOLDER


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line else line for line in text.splitlines())


def code_samples(*, base_url: str, public_model: str, example: dict, key_prefix: str | None) -> dict[str, str]:
    body = {"model": public_model, "input": example}
    body_json = json.dumps(body, indent=2, ensure_ascii=False)
    placeholder = key_placeholder(key_prefix)
    shell_body = json.dumps(body, ensure_ascii=False).replace("'", "'\\''")
    curl = f"""export {KEY_ENV}='{placeholder}'
BASE={base_url}

# What it costs, before paying (no key needed): the exact cost and the input with its defaults.
curl -s -X POST "$BASE/api/v1/quote.php" -H 'Content-Type: application/json' -d '{shell_body}'

# Submit the job and wait up to 30 s for it: the cost is taken now and returned if the job fails.
# Ended in time: 200 with the finished job (outputs[].url). Still running: 202 with poll_url.
curl -s -X POST "$BASE/api/v1/generate.php" \\
  -H "Authorization: Bearer ${KEY_ENV}" \\
  -H 'Content-Type: application/json' \\
  -H 'Prefer: wait=30' \\
  -d '{shell_body}'
# → {{"success": true, "job_id": "job_…", "status": "completed", "outputs": [{{"url": "…", …}}], …}}

# Still running? Poll (each poll may wait up to 60 s for the end); then download outputs[].url (no key needed).
curl -s "$BASE/api/v1/jobs.php?job_id=job_…&wait=30" -H "Authorization: Bearer ${KEY_ENV}"

# Or skip polling: add "webhook_url": "https://you.example.com/hook" beside "model", and the finished job is
# POSTed there, signed with the secret below (Standard Webhooks; see /docs/agents.php#webhooks).
curl -s "$BASE/api/v1/webhook_secret.php" -H "Authorization: Bearer ${KEY_ENV}"
"""
    python = f"""# pip install requests; export {KEY_ENV}='{placeholder}'
import os
import time

import requests

BASE = "{base_url}"
HEADERS = {{"Authorization": f"Bearer {{os.environ['{KEY_ENV}']}}"}}

body = {_indent(body_json, 0)}
quote = requests.post(f"{{BASE}}/api/v1/quote.php", json=body, timeout=30).json()
print("cost:", quote["cost_credits"], "credits")

# Prefer: wait=30 answers with the finished job when it ends within 30 s (else 202 and we poll).
wait = {{**HEADERS, "Prefer": "wait=30"}}
job = requests.post(f"{{BASE}}/api/v1/generate.php", json=body, headers=wait, timeout=90).json()
if not job.get("success"):
    raise SystemExit(f"{{job['error']}}: {{job['message']}}")

while job["status"] not in ("completed", "failed", "canceled"):
    time.sleep(1)
    poll = {{"job_id": job["job_id"], "wait": 30}}
    job = requests.get(f"{{BASE}}/api/v1/jobs.php", params=poll, headers=HEADERS, timeout=90).json()

if job["status"] != "completed":
    raise SystemExit(f"Job {{job['status']}}: {{job['error']}}")
for output in job["outputs"]:
    print(output["type"], output.get("url") or output.get("text"))
"""
    javascript = f"""// Node 18+ or a browser; export {KEY_ENV}='{placeholder}'
const BASE = "{base_url}";
const headers = {{
  "Authorization": `Bearer ${{process.env.{KEY_ENV}}}`,
  "Content-Type": "application/json",
}};

const body = {_indent(body_json, 0)};
const quote = await (await fetch(`${{BASE}}/api/v1/quote.php`, {{
  method: "POST", headers: {{ "Content-Type": "application/json" }}, body: JSON.stringify(body),
}})).json();
console.log("cost:", quote.cost_credits, "credits");

// Prefer: wait=30 answers with the finished job when it ends within 30 s (else 202 and we poll).
let job = await (await fetch(`${{BASE}}/api/v1/generate.php`, {{
  method: "POST", headers: {{ ...headers, "Prefer": "wait=30" }}, body: JSON.stringify(body),
}})).json();
if (!job.success) throw new Error(`${{job.error}}: ${{job.message}}`);

while (!["completed", "failed", "canceled"].includes(job.status)) {{
  await new Promise((resolve) => setTimeout(resolve, 1000));
  job = await (await fetch(`${{BASE}}/api/v1/jobs.php?job_id=${{job.job_id}}&wait=30`, {{ headers }})).json();
}}
if (job.status !== "completed") throw new Error(`Job ${{job.status}}: ${{JSON.stringify(job.error)}}`);
for (const output of job.outputs) console.log(output.type, output.url ?? output.text);
"""
    return {
        "curl": curl,
        "python": python,
        "javascript": javascript,
        "client": _client_sample(base_url, public_model, example, placeholder),
        "cli": _cli_sample(base_url, public_model, example, placeholder),
    }


def _client_sample(base_url: str, public_model: str, example: dict, placeholder: str) -> str:
    """The Python client (clients/python/README.md): quote, generate and wait, download."""
    literal = pprint.pformat(example, width=100, sort_dicts=False)
    return f"""# pip install ./clients/python (in a KiwiWhale checkout); export {KEY_ENV}='{placeholder}'
from kiwiwhale_client import KiwiWhale

client = KiwiWhale(base_url="{base_url}")  # the key from {KEY_ENV}
model = "{public_model}"
input = {_indent(literal, 0)}

print("cost:", client.quote(model, input)["cost_credits"], "credits")
job = client.generate(model, input, wait=True)  # waits up to 10 minutes; errors are exceptions (exc.code)
if job["status"] != "completed":
    raise SystemExit(f"Job {{job['status']}}: {{job['error']}}")
for path in client.download(job, "out/"):  # each output into out/ (text as .txt)
    print(path)
"""


def _cli_sample(base_url: str, public_model: str, example: dict, placeholder: str) -> str:
    """The `kiwiwhale` command: one `-i name=value` per input field (the command types each by the schema)."""
    fields = " ".join(
        "-i " + shlex.quote(f"{name}={value if isinstance(value, str) else json.dumps(value)}")
        for name, value in example.items()
    )
    model = shlex.quote(public_model)
    return f"""# pip install ./clients/python (in a KiwiWhale checkout)
export KIWIWHALE_BASE_URL={base_url}
export {KEY_ENV}='{placeholder}'

# What it costs, before paying: the exact cost and the input with its defaults.
kiwiwhale quote {model} {fields}

# Run it, wait for it, and download its outputs into out/ (prints each path).
kiwiwhale generate {model} {fields} --wait -o out/
"""
