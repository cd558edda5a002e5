"""docs/agents.md lists every error code and job error code the code emits, and only those.

The code's codes are read from the source: `ApiError(<status>, "<code>"`, `error_response(<status>, "<code>"`, the
`code = "…"` of the billing errors, and every `code="…"` (ProviderError, job_fail, job_cancel, RedemptionRefused),
with `code=NAME` resolved through the module's `NAME = "…"`.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATTERNS = [
    re.compile(r'ApiError\(\s*\d{3},\s*"([a-z_]+)"'),
    re.compile(r'error_response\(\s*\d{3},\s*"([a-z_]+)"'),
    re.compile(r'^\s+code = "([a-z_]+)"', re.MULTILINE),
    re.compile(r'\bcode="([a-z_]+)"'),
    re.compile(r'\bcode="[a-z_]+" if [^,\n]+ else "([a-z_]+)"'),
    re.compile(r'KeyRefused\(\s*"([a-z_]+)"'),
]
CONSTANT = re.compile(r"\bcode=([A-Z][A-Z_]+)\b")
NOT_API = {"card_declined"}  # Stripe's decline code, shown as `decline_code`, never as `error`


def codes_in_code() -> set[str]:
    found = set()
    for path in (ROOT / "apps").rglob("*.py"):
        if "migrations" in path.parts or "tests" in path.parts:
            continue
        if {"openai_api", "mcp_server"} & set(path.parts):
            continue  # the facades speak OpenAI's and MCP's error shapes, documented in docs/openai.md and mcp.md
        source = path.read_text()
        for pattern in PATTERNS:
            found |= set(pattern.findall(source))
        for name in CONSTANT.findall(source):
            found |= set(re.findall(rf'^{name} = "([a-z_]+)"', source, re.MULTILINE))
    return found - NOT_API


def codes_in_docs() -> set[str]:
    text = (ROOT / "docs" / "agents.md").read_text()
    errors = text[text.index("## Errors") : text.index("## Discovery")]
    codes = set()
    for line in errors.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2:
            continue
        cell = cells[1] if cells[0].isdigit() else cells[0]
        codes |= set(re.findall(r"`([a-z_]+)`", cell))
    return codes


def test_the_agent_guide_lists_every_code_the_code_emits_and_no_other():
    code, docs = codes_in_code(), codes_in_docs()
    assert {"over_max_cost", "deadline_exceeded", "insufficient_credits", "upstream_error", "ffmpeg_failed"} <= code
    assert code - docs == set(), "emitted but not documented in docs/agents.md"
    assert docs - code == set(), "documented in docs/agents.md but never emitted"
