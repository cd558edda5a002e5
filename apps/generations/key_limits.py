"""API key limits that count jobs: spend per UTC day / month / total and concurrent jobs (docs/auth.md#key-limits).

A key's spend is what its lineage's jobs hold or were charged (a refunded, released or canceled job gives its credits
back), so a sub-key spends out of its creator's budget too and a rotated key carries its predecessor's spend.
"""

from datetime import UTC, datetime, timedelta

from django.db.models import Case, Count, F, Q, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.accounts.models import ApiKey
from apps.accounts.services import KeyRefused
from apps.billing import money
from apps.billing.models import Hold
from apps.generations.models import Job

ACTIVE = (Job.Status.QUEUED, Job.Status.PROCESSING)


def period_starts(now: datetime) -> tuple[datetime, datetime]:
    """The start of the UTC day and of the UTC calendar month `now` is in."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day, day.replace(day=1)


def _spend():
    return Case(
        When(hold__status=Hold.Status.HELD, then=F("hold__amount_micro")),
        When(hold__status=Hold.Status.SETTLED, then=Coalesce(F("hold__charged_micro"), F("hold__amount_micro"))),
        default=Value(0),
    )


def lineage_usage(*, lineages: list[str], now: datetime | None = None) -> dict[str, dict]:
    """For each lineage: its spend today, this month, in total (micro-credits) and its queued + processing jobs,
    counting every key below it. One query, grouped by the keys' own lineages and summed here."""
    day_start, month_start = period_starts(now or timezone.now())
    roots = sorted(set(lineages), key=len)
    covering = [lineage for lineage in roots if not any(lineage.startswith(o) and lineage != o for o in roots)]
    condition = Q()
    for lineage in covering:
        condition |= Q(api_key__lineage__startswith=lineage)
    rows = (
        Job.objects.filter(condition)
        .values("api_key__lineage")
        .annotate(
            day=Coalesce(Sum(_spend(), filter=Q(created_at__gte=day_start)), 0),
            month=Coalesce(Sum(_spend(), filter=Q(created_at__gte=month_start)), 0),
            total=Coalesce(Sum(_spend()), 0),
            active=Count("pk", filter=Q(status__in=ACTIVE)),
        )
        .order_by()
    )
    usage = {lineage: {"day": 0, "month": 0, "total": 0, "active": 0} for lineage in lineages}
    for row in rows if covering else ():
        for lineage, sums in usage.items():
            if row["api_key__lineage"].startswith(lineage):
                for name in sums:
                    sums[name] += row[name]
    return usage


LIMITS = (("day", "spend_limit_day_micro"), ("month", "spend_limit_month_micro"), ("total", "spend_limit_total_micro"))


def job_key_limits_check(*, api_key: ApiKey | None, model, cost_micro: int) -> None:
    """Inside job_create's transaction, before the hold: refuses a job the key may not submit; nothing is charged.

    A key without budget limits and no creator costs no query. Otherwise the rows of the key and of every key above
    it are locked (FOR UPDATE, in id order) until the job is committed, so simultaneous submits on one budget are
    counted one after the other and exactly as many as fit are accepted."""
    if api_key is None:
        return
    if not api_key.model_allowed(model.public_model):
        raise KeyRefused(
            "forbidden_model", f"This API key may not use {model.public_model!r}.", public_model=model.public_model
        )
    if not api_key.has_budget_limits and len(api_key.lineage_ids) <= 1:
        return
    prefixes = [f"/{'/'.join(map(str, api_key.lineage_ids[: n + 1]))}/" for n in range(len(api_key.lineage_ids))]
    holders = [
        key
        for key in ApiKey.objects.select_for_update().filter(lineage__in=prefixes).order_by("pk")
        if key.has_budget_limits and key.revoked_at is None
    ]
    if not holders:
        return
    now = timezone.now()
    usage = lineage_usage(lineages=[key.lineage for key in holders], now=now)
    day_start, month_start = period_starts(now)
    for key in holders:
        used = usage[key.lineage]
        whose = "This key's" if key.lineage == api_key.lineage else f"The limit of its parent key {key.prefix}…:"
        if key.concurrency_limit is not None and used["active"] + 1 > key.concurrency_limit:
            raise KeyRefused(
                "key_limit_reached",
                f"{whose} {key.concurrency_limit} concurrent jobs are running; retry when one ends.",
                retry_after=5,
                limit="concurrency",
                limit_value=key.concurrency_limit,
                key_prefix=key.prefix,
            )
        for period, field in LIMITS:
            limit_micro = getattr(key, field)
            if limit_micro is not None and used[period] + cost_micro > limit_micro:
                resets = {"day": _next_day(day_start), "month": _next_month(month_start), "total": None}[period]
                raise KeyRefused(
                    "key_limit_reached",
                    f"{whose} spend limit per {period} ({money.format_credits(limit_micro)} credits) leaves "
                    f"{money.format_credits(max(limit_micro - used[period], 0))}; this job costs "
                    f"{money.format_credits(cost_micro)}. Nothing was charged.",
                    limit=period,
                    limit_credits=money.micro_to_json(limit_micro),
                    spent_credits=money.micro_to_json(used[period]),
                    key_prefix=key.prefix,
                    resets_at=resets.isoformat().replace("+00:00", "Z") if resets else None,
                )


def _next_day(day_start: datetime) -> datetime:
    return day_start + timedelta(days=1)


def _next_month(month_start: datetime) -> datetime:
    return (
        month_start.replace(year=month_start.year + 1, month=1)
        if month_start.month == 12
        else (month_start.replace(month=month_start.month + 1))
    )


def keys_with_spend(keys) -> list[ApiKey]:
    """The keys, each with `.spend` ({"day", "month", "total", "active"}, micro-credits), in one query."""
    keys = list(keys)
    usage = lineage_usage(lineages=[key.lineage for key in keys])
    for key in keys:
        key.spend = usage[key.lineage]
    return keys
