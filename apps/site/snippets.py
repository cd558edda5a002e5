"""Copy-paste code for one model: curl, Python and JavaScript, against this instance, with a key placeholder.

A real key never appears: the raw key exists only in the response that created it. A signed-in user sees the
prefix of their newest key, so they know which key to paste.
"""

import json

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

# Submit the job: the cost is taken now and returned if the job fails.
curl -s -X POST "$BASE/api/v1/generate.php" \\
  -H "Authorization: Bearer ${KEY_ENV}" \\
  -H 'Content-Type: application/json' \\
  -d '{shell_body}'
# → {{"success": true, "job_id": "job_…", "status": "queued", "poll_url": "/api/v1/jobs.php?job_id=job_…", …}}

# Poll until "status" is completed, failed or canceled; then download outputs[].url (no key needed).
curl -s "$BASE/api/v1/jobs.php?job_id=job_…" -H "Authorization: Bearer ${KEY_ENV}"

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
job = requests.post(f"{{BASE}}/api/v1/generate.php", json=body, headers=HEADERS, timeout=30).json()
if not job.get("success"):
    raise SystemExit(f"{{job['error']}}: {{job['message']}}")

while job["status"] not in ("completed", "failed", "canceled"):
    time.sleep(2)
    poll = {{"job_id": job["job_id"]}}
    job = requests.get(f"{{BASE}}/api/v1/jobs.php", params=poll, headers=HEADERS, timeout=30).json()

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
let job = await (await fetch(`${{BASE}}/api/v1/generate.php`, {{
  method: "POST", headers, body: JSON.stringify(body),
}})).json();
if (!job.success) throw new Error(`${{job.error}}: ${{job.message}}`);

while (!["completed", "failed", "canceled"].includes(job.status)) {{
  await new Promise((resolve) => setTimeout(resolve, 2000));
  job = await (await fetch(`${{BASE}}/api/v1/jobs.php?job_id=${{job.job_id}}`, {{ headers }})).json();
}}
if (job.status !== "completed") throw new Error(`Job ${{job.status}}: ${{JSON.stringify(job.error)}}`);
for (const output of job.outputs) console.log(output.type, output.url ?? output.text);
"""
    return {"curl": curl, "python": python, "javascript": javascript}
