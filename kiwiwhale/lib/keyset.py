"""Keyset ("seek") pagination: each page starts after the last row of the previous one, never with OFFSET.

A page of `limit` rows costs the same at page 1 and page 1,000 when an index matches the ordering. The cursor is
an opaque URL-safe string holding the ordering values of the last row shown. The ordering must end with a unique
field (the primary key) and its fields must not be null.
"""

import base64
import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from kiwiwhale.lib.unstorable import data_problem


class InvalidCursor(ValueError):
    pass


def keyset_page(queryset: QuerySet, *, ordering: Sequence[str], cursor: str = "", limit: int) -> tuple[list, str]:
    """(rows of the page, the cursor of the next page or "" when this is the last one)."""
    fields = [(name.lstrip("-"), name.startswith("-")) for name in ordering]
    queryset = queryset.order_by(*ordering)
    if cursor:
        queryset = queryset.filter(_after(queryset, fields, _decode(queryset, fields, cursor)))
    rows = list(queryset[: limit + 1])
    if len(rows) <= limit:
        return rows, ""
    rows = rows[:limit]
    return rows, _encode([getattr(rows[-1], name) for name, _ in fields])


def page_url(request, *, cursor: str) -> str | None:
    """The absolute URL of the page that starts at `cursor` (this request's other parameters kept); None at the end."""
    if not cursor:
        return None
    params = request.GET.copy()
    params["cursor"] = cursor
    return request.build_absolute_uri(f"{request.path}?{params.urlencode()}")


def _after(queryset, fields, values) -> Q:
    # (a, b, c) after (x, y, z) in the ordering: a beyond x, or a = x and b beyond y, or a = x, b = y and c beyond z.
    condition = Q()
    for index, (name, descending) in enumerate(fields):
        equal = {prior: values[i] for i, (prior, _) in enumerate(fields[:index])}
        beyond = {f"{name}__{'lt' if descending else 'gt'}": values[index]}
        condition |= Q(**equal, **beyond)
    return condition


def _encode(values: list) -> str:
    raw = json.dumps(values, default=_json_value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _json_value(value):
    # Full precision: DjangoJSONEncoder drops microseconds, which would skip or repeat rows on a page boundary.
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"Cannot put {type(value).__name__} in a cursor.")


def _decode(queryset, fields, cursor: str) -> list:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(fields):
            raise InvalidCursor("This page link is not valid.")
        if data_problem(values) or not all(isinstance(value, str | int | float | bool) for value in values):
            raise InvalidCursor("This page link is not valid.")  # a forged cursor: nested, NUL, Infinity…
        model_fields = [queryset.model._meta.get_field(name) for name, _ in fields]
        decoded = [field.to_python(value) for field, value in zip(model_fields, values, strict=True)]
    except (ValueError, TypeError, OverflowError, RecursionError, ValidationError) as exc:
        raise InvalidCursor("This page link is not valid.") from exc
    if any(value is None for value in decoded):
        raise InvalidCursor("This page link is not valid.")
    return decoded
