"""What an agent reads first: /llms.txt and /.well-known/agent.json, built from this instance's settings and catalog.

Only endpoints this instance actually routes are listed, so a feature that is not installed is never advertised.
"""

from django.conf import settings

from apps.billing import money
from apps.site import docs

API_PREFIX = "/api/v1"

# Path → (what it does, capability). Every `.php` route of the API is listed (see `endpoints_available`), with
# the methods its view answers; a route missing here is listed with its view's summary.
ENDPOINTS = {
    "/agent_register.php": ("Create an agent account and its first API key (no auth).", "register"),
    "/credits.php": ("The account's balance and type.", "credits"),
    "/models.php": ("The models this instance serves, with cost and input JSON Schema (no auth).", "models"),
    "/quote.php": ("The exact cost of {model, input} and the input with defaults applied (no auth).", "generate"),
    "/generate.php": (
        "Submit a job: {model, input, max_cost_credits?}; 202 with job_id and poll_url. Headers: Prefer: wait[=N] "
        "(N <= 60: answer when the job ends), Cancel-After: 30s|5m|1h30m, Idempotency-Key.",
        "generate",
    ),
    "/jobs.php": (
        "Poll a job (?job_id=, &wait=N to hold until it ends) until completed/failed/canceled; without job_id, "
        "list jobs.",
        "poll",
    ),
    "/cancel.php": ("Cancel a queued or processing job: {job_id}; every credit comes back.", "cancel"),
    "/agent_setup_payment.php": ("Start saving a card (Stripe SetupIntent).", "autonomous_billing"),
    "/agent_confirm_payment_method.php": ("Attach the saved card as the default.", "autonomous_billing"),
    "/agent_topup.php": (
        "GET: quote a top-up (?credits=); POST: charge the saved card: {credits}.",
        "autonomous_billing",
    ),
    "/agent_autotopup.php": ("Read (GET) or set (POST) auto top-up (fixed or buffer mode).", "autonomous_billing"),
    "/usage.php": ("Ledger entries and receipts, newest first (?export=csv, ?key= for one key).", "credits"),
    "/redeem.php": ("Redeem a code for credits: {code}.", "credits"),
    "/payment_methods.php": ("The saved cards.", "autonomous_billing"),
    "/payment_method_remove.php": ("Remove a saved card.", "autonomous_billing"),
    "/low_balance.php": ("Read (GET) or set (POST) the low-balance notice (threshold, webhook).", "credits"),
    "/affiliate.php": ("Your referral link, its figures and commissions.", "affiliate"),
    "/affiliate_convert.php": ("Convert available commission into credits: {credits}.", "affiliate"),
    "/affiliate_payout.php": ("Request a cash payout of commission: {credits, method}.", "affiliate"),
    "/showroom_publish.php": ("Publish a completed job to the public showroom.", "showroom"),
    "/showroom_unpublish.php": ("Take a generation off the showroom.", "showroom"),
    "/showroom_remix.php": ("The model and input of a published generation, to run it again.", "showroom"),
    "/webhook_secret.php": ("The secret that signs your job webhooks (POST rotates it).", "webhooks"),
    "/webhook_deliveries.php": ("Job webhook deliveries and their tries (?job_id=).", "webhooks"),
    "/keys.php": (
        "List your API keys with limits and spend (GET), or create one with limits and scopes (POST; shown once).",
        "keys",
    ),
    "/key_update.php": ("Change a key's name, limits, scopes or expiry: {key_id, ...}.", "keys"),
    "/key_revoke.php": ("Revoke a key and the keys it made: {key_id}.", "keys"),
    "/key_rotate.php": ("Replace a key (same limits); the old one revoked now or after grace_seconds.", "keys"),
}
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def _methods(view_class) -> list[str]:
    return [method.upper() for method in HTTP_METHODS if hasattr(view_class, method)]


def endpoints_available() -> list[tuple[str, str, str, str]]:
    """(method, path, what it does, capability) for every `.php` route of /api/v1 this instance serves now:
    the card endpoints only when Stripe billing is configured."""
    from apps.api.urls import urlpatterns

    endpoints = []
    for pattern in urlpatterns:
        path = "/" + str(pattern.pattern)
        view_class = getattr(pattern.callback, "cls", None)
        if not path.endswith(".php") or view_class is None:
            continue
        doc = (view_class.__doc__ or "").strip().split("\n")[0] or path
        text, capability = ENDPOINTS.get(path, (doc, "other"))
        if capability == "autonomous_billing" and not settings.STRIPE_ENABLED:
            continue
        endpoints += [(method, path, text, capability) for method in _methods(view_class)]
    return endpoints


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
        "   Add `Prefer: wait=30` to get the finished job in the same answer (200) when it ends within 30 s.",
        "3. GET /api/v1/jobs.php?job_id=<job_id>&wait=30 until status is completed, failed or canceled.",
        "4. Download outputs[].url (no auth header needed).",
        "",
        "Before paying: POST /api/v1/quote.php {model, input} gives the exact cost; `max_cost_credits` on "
        "generate.php refuses (402 over_max_cost) a dearer job. `Cancel-After: 5m` cancels a job not done by "
        "then, credits back.",
        "",
        "## Credits on this instance",
        "",
        *(
            [
                f"- Card billing is on: save a card (POST {base_url}{API_PREFIX}/agent_setup_payment.php) and top up "
                f"(POST {base_url}{API_PREFIX}/agent_topup.php), or set auto top-up.",
            ]
            if settings.STRIPE_ENABLED
            else ["- Card billing is off on this instance: credits come from codes or the operator."]
        ),
        f"- Redeem a code: POST {base_url}{API_PREFIX}/redeem.php.",
        f"- The billing page for the account's human: {base_url}/billing.php.",
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
        "billing": {
            "card_topups": settings.STRIPE_ENABLED,
            "redeem": {"method": "POST", "url": f"{base_url}{API_PREFIX}/redeem.php"},
            "billing_page": f"{base_url}/billing.php",
        },
        "features": {
            "prefer_wait_max_seconds": 60,
            "cancel_after": True,
            "quote": {"method": "POST", "url": f"{base_url}{API_PREFIX}/quote.php"},
            "max_cost_credits": True,
            "idempotency_key": True,
        },
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
