"""The JSON bodies of /api/v1, as TypedDicts: what the server sends, unchanged (see the instance's /openapi.json).

Credit amounts (and every other JSON number with a fraction) are `decimal.Decimal`: parsed exactly, never floats.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal, NotRequired, TypedDict

JobStatus = Literal["queued", "processing", "completed", "failed", "canceled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "canceled"})


class Registration(TypedDict):
    success: bool
    account_type: str
    user_id: int
    api_key: str  # shown once
    credits: Decimal | int


class Model(TypedDict):
    product_id: str
    label: str
    public_model: str
    category: str
    cost_credits: Decimal | int
    description: str
    schema: dict[str, Any]  # JSON Schema of `input`


class ModelList(TypedDict):
    success: bool
    count: int
    models: list[Model]


class Quote(TypedDict):
    success: bool
    public_model: str
    cost_credits: Decimal | int
    input: dict[str, Any]


class JobOutput(TypedDict):
    url: str | None
    type: Literal["image", "video", "audio", "text", "json"]
    content_type: str
    file_name: str
    file_size: int
    width: int | None
    height: int | None
    duration_seconds: Decimal | int | None
    text: NotRequired[str]
    data: NotRequired[Any]


class JobError(TypedDict):
    code: str
    message: str


class Job(TypedDict):
    """A job as jobs.php shows it."""

    success: bool
    job_id: str
    status: JobStatus
    public_model: str
    category: str
    cost_credits: Decimal | int
    created_at: str
    started_at: str | None
    completed_at: str | None
    outputs: list[JobOutput]
    error: JobError | None
    deadline_at: str | None  # Cancel-After: canceled if not ended by then


class Submission(TypedDict):
    """generate.php's 202: the job is queued (or still running after a wait)."""

    success: bool
    job_id: str
    status: JobStatus
    public_model: str
    cost_credits: Decimal | int
    credits: Decimal | int  # the balance after the cost was taken
    poll_url: str


class JobList(TypedDict):
    success: bool
    jobs: list[Job]
    next: str | None


class Credits(TypedDict):
    success: bool
    credits: Decimal | int
    account_type: Literal["agent", "human"]


class Money(TypedDict):
    amount: Decimal | int
    currency: str


class LedgerEntry(TypedDict):
    id: int
    created_at: str
    kind: str
    credits: Decimal | int
    balance_after: Decimal | int
    reference: str
    description: str


class Receipt(TypedDict):
    id: int
    created_at: str
    kind: str
    status: str
    credits: Decimal | int
    price: Money
    fee: Money
    charged: Money
    refunded: Money
    card: str
    payment_intent_id: str | None
    failure_message: str


class Usage(TypedDict):  # with usage(key=…): also `key`, that key and its spend
    success: bool
    credits: Decimal | int
    entries: list[LedgerEntry]
    next_cursor: str | None
    payments: list[Receipt]


class TopupQuote(TypedDict):
    success: bool
    credits: Decimal | int
    price: Money
    fee: Money
    charge: Money
    min_credits: Decimal | int
    max_credits: Decimal | int


class Topup(TypedDict):
    success: bool
    credits_added: Decimal | int
    credits: Decimal | int
    charged: Money
    fee: Money
    payment_intent_id: str
    payment_id: int
    status: str


class PaymentSetup(TypedDict):
    success: bool
    setup_intent_id: str
    client_secret: str
    publishable_key: str
    setup_url: str


class Card(TypedDict):
    id: str
    brand: str
    last4: str
    exp_month: int | None
    exp_year: int | None
    is_default: bool


class AutoTopupEvent(TypedDict):
    kind: str
    message: str
    payment_id: int | None
    created_at: str


class AutoTopup(TypedDict):
    success: bool
    enabled: bool
    mode: Literal["fixed", "buffer"]
    trigger_credits: Decimal | int
    amount_credits: Decimal | int
    target_credits: Decimal | int
    daily_cap_credits: Decimal | int | None
    monthly_cap_credits: Decimal | int | None
    declines_in_a_row: int
    disabled_reason: str
    events: list[AutoTopupEvent]


class WebhookSecret(TypedDict):
    success: bool
    secret: str


class WebhookEvent(TypedDict):
    type: Literal["job.started", "job.completed", "job.failed", "job.canceled"]
    timestamp: str
    data: Job


class KeySpend(TypedDict):
    day: Decimal | int  # today (UTC), credits
    month: Decimal | int  # this calendar month (UTC)
    total: Decimal | int
    active: int  # jobs queued or processing


class ApiKey(TypedDict):
    id: int
    name: str
    prefix: str  # the key itself is never shown again
    created_at: str
    last_used_at: str | None
    revoked_at: str | None
    expires_at: str | None
    active: bool
    parent_id: int | None
    scopes: list[Literal["generate", "billing", "keys"]]
    spend_limit_day_credits: Decimal | int | None
    spend_limit_month_credits: Decimal | int | None
    spend_limit_total_credits: Decimal | int | None
    allowed_models: list[str]
    allowed_ips: list[str]
    rpm_limit: int | None
    concurrency_limit: int | None
    spend: KeySpend


class KeyCreated(TypedDict):
    success: bool
    api_key: str  # shown once
    key: ApiKey


class KeyRotated(KeyCreated):
    old_key: ApiKey
