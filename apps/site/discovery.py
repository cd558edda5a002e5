"""What an agent reads first: /llms.txt and /.well-known/agent.json, built from this instance's settings and catalog.

Only endpoints this instance actually routes are listed, so a feature that is not installed is never advertised.
"""

from django.conf import settings
from django.urls import Resolver404, resolve

from apps.billing import money
from apps.site import docs

API_PREFIX = "/api/v1"

# (method, path, what it does, capability). The published contract's endpoints, then ours.
ENDPOINTS = [
    ("POST", "/agent_register.php", "Create an agent account and its first API key (no auth).", "register"),
    ("GET", "/credits.php", "The account's balance and type.", "credits"),
    ("GET", "/models.php", "The models this instance serves, with cost and input JSON Schema (no auth).", "models"),
    ("POST", "/generate.php", "Submit a job: {model, input}; answers 202 with job_id and poll_url.", "generate"),
    ("GET", "/jobs.php", "Poll a job (?job_id=) until completed/failed/canceled; without job_id, list jobs.", "poll"),
    ("POST", "/cancel.php", "Cancel a queued job; its credits come back.", "cancel"),
    ("POST", "/agent_setup_payment.php", "Start saving a card (Stripe SetupIntent).", "autonomous_billing"),
    ("POST", "/agent_confirm_payment_method.php", "Attach the saved card as the default.", "autonomous_billing"),
    ("POST", "/agent_topup.php", "Charge the saved card for credits: {credits}.", "autonomous_billing"),
    ("GET", "/agent_autotopup.php", "Read or set auto top-up (fixed or buffer mode).", "autonomous_billing"),
    ("GET", "/usage.php", "Ledger entries and receipts, newest first (?export=csv).", "credits"),
    ("POST", "/redeem.php", "Redeem a code for credits: {code}.", "credits"),
    ("GET", "/payment_methods.php", "The saved cards.", "autonomous_billing"),
    ("POST", "/payment_method_remove.php", "Remove a saved card.", "autonomous_billing"),
    ("GET", "/low_balance.php", "Read or set the low-balance notice (threshold, webhook).", "credits"),
    ("GET", "/affiliate.php", "Your referral link, its figures and commissions.", "affiliate"),
    ("POST", "/affiliate_convert.php", "Convert available commission into credits: {credits}.", "affiliate"),
    ("POST", "/affiliate_payout.php", "Request a cash payout of commission: {credits, method}.", "affiliate"),
    ("POST", "/showroom_publish.php", "Publish a completed job to the public showroom.", "showroom"),
    ("GET", "/showroom_remix.php", "The model and input of a published generation, to run it again.", "showroom"),
    ("GET", "/webhook_secret.php", "The secret that signs your job webhooks (POST rotates it).", "webhooks"),
    ("GET", "/webhook_deliveries.php", "Job webhook deliveries and their tries (?job_id=).", "webhooks"),
]


def instance_base_url(request) -> str:
    """The absolute base URL of this instance, without a trailing slash: SITE_URL when set, else the request's."""
    return settings.SITE_URL or request.build_absolute_uri("/").rstrip("/")


def _routed(path: str) -> bool:
    try:
        resolve(API_PREFIX + path)
    except Resolver404:
        return False
    return True


def endpoints_available() -> list[tuple[str, str, str, str]]:
    return [endpoint for endpoint in ENDPOINTS if _routed(endpoint[1])]


def _description() -> str:
    return getattr(settings, "SITE_DESCRIPTION", "") or (
        "Generate images, video, audio and text with AI models. People use the website; AI agents use the JSON "
        "API with a bearer key. Every job is paid in credits."
    )


def llms_txt(*, base_url: str, models) -> str:
    name = settings.SITE_NAME
    lines = [
        f"# {name}",
        "",
        f"> {_description()}",
        "",
        f"Base URL: {base_url}",
        f"API base: {base_url}{API_PREFIX}",
        f"OpenAPI 3.1: {base_url}/openapi.json",
        f"Agent descriptor: {base_url}/.well-known/agent.json",
        "",
        "## Modes",
        "",
        f"- Human: sign up at {base_url}/accounts/signup/ and use the playground in the browser.",
        "- Hybrid: an agent uses a human account's API key (created at "
        f"{base_url}/api_key.php); the human's wallet pays.",
        f"- Agent: POST {base_url}{API_PREFIX}/agent_register.php creates an account and returns its API key once.",
        "",
        "## Auth",
        "",
        "Send `Authorization: Bearer <api key>` on every request except agent_register.php and models.php. Keys "
        "start with `kw_` and are shown once. JSON in, JSON out; credits are JSON numbers (e.g. 0.05).",
        'Errors: `{"success": false, "error": "<code>", "message": "..."}` (402 insufficient_credits, '
        "422 invalid_input, 401 unauthorized, 404 model_not_found, 429 rate_limited).",
        "",
        "## Flow",
        "",
        "1. GET /api/v1/models.php: pick a model; its `schema` is the JSON Schema of `input`.",
        '2. POST /api/v1/generate.php {"model": "<public_model>", "input": {...}} -> 202 {"job_id", "poll_url"}.',
        "3. GET /api/v1/jobs.php?job_id=<job_id> until status is completed, failed or canceled.",
        "4. Download outputs[].url (no auth header needed).",
        "",
        "## Endpoints",
        "",
    ]
    lines += [f"- {method} {API_PREFIX}{path}: {text}" for method, path, text, _ in endpoints_available()]
    lines += [
        "",
        "## Other protocols",
        "",
        f"- OpenAI-compatible API: {base_url}/v1 (same kw_ key; models, chat/completions, images, audio).",
        f"- MCP server (streamable HTTP, Authorization: Bearer kw_…): {base_url}/mcp",
    ]
    lines += ["", "## Docs", ""]
    for slug, title in docs.doc_menu():
        if docs.doc_path(slug).exists():
            lines.append(f"- [{title}]({base_url}/docs/{slug}.php): {docs.PAGES[slug][1]}")
    lines += [
        f"- [API reference]({base_url}/api-reference.php): every endpoint, generated from the OpenAPI document.",
        "",
        "## Models",
        "",
    ]
    models = list(models)
    lines += [
        f"- {m.public_model} ({m.category}, {money.format_credits(m.base_cost_micro)} credits): "
        f"{' '.join(m.description.split()) or m.label} Reference: {base_url}/model-api.php?model={m.public_model}"
        for m in models
    ]
    if not models:
        lines.append("- No model can be served right now.")
    lines += ["", "## Optional", "", f"- [Model catalog]({base_url}/): the same list for people."]
    return "\n".join(lines) + "\n"


def agent_descriptor(*, base_url: str, model_count: int) -> dict:
    available = endpoints_available()
    paths = {capability: [] for _, _, _, capability in available}
    for method, path, _, capability in available:
        paths[capability].append({"method": method, "url": f"{base_url}{API_PREFIX}{path}"})
    capability_text = {
        "generate": "Submit image, video, audio and text generation jobs to any model of the catalog.",
        "poll": "Poll a job asynchronously until it is completed, failed or canceled; outputs are public URLs.",
        "credits": "Read the account's credit balance; every job is paid from it.",
        "autonomous_billing": "Save a card and top up credits without a human: manual, fixed or buffer auto top-up.",
        "affiliate": "Earn commission on the credits bought by the accounts you refer; convert it or cash it out.",
        "showroom": "Publish a generation to the public gallery, or remix a published one.",
        "webhooks": "Signed job webhooks (Standard Webhooks) when a job starts or ends, retried with backoff.",
    }
    capabilities = [
        {"name": name, "description": text, "endpoints": paths.get(name, []), "available": bool(paths.get(name))}
        for name, text in capability_text.items()
    ]
    return {
        "schema_version": "1.0",
        "name": settings.SITE_NAME,
        "description": _description(),
        "url": base_url,
        "api": {
            "base_url": f"{base_url}{API_PREFIX}",
            "type": "openapi",
            "openapi": f"{base_url}/openapi.json",
            "version": "v1",
        },
        "auth": {
            "type": "bearer",
            "header": "Authorization",
            "scheme": "Bearer",
            "key_prefix": "kw_",
            "registration": {
                "method": "POST",
                "url": f"{base_url}{API_PREFIX}/agent_register.php",
                "body": {"name": "My Agent"},
                "returns": "api_key (shown once)",
            },
            "human_keys": f"{base_url}/api_key.php",
        },
        "capabilities": capabilities,
        "models": {"count": model_count, "url": f"{base_url}{API_PREFIX}/models.php"},
        "openai_compatible": {"base_url": f"{base_url}/v1", "docs": f"{base_url}/docs/openai.php"},
        "mcp": {
            "url": f"{base_url}/mcp",
            "transport": "streamable-http",
            "auth": "bearer",
            "docs": f"{base_url}/docs/mcp.php",
        },
        "links": {
            "llms_txt": f"{base_url}/llms.txt",
            "openapi": f"{base_url}/openapi.json",
            "api_reference": f"{base_url}/api-reference.php",
            "docs": {slug: f"{base_url}/docs/{slug}.php" for slug, _ in docs.doc_menu()},
        },
    }
