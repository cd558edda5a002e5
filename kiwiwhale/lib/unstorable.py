"""Input PostgreSQL cannot store, found at the edge so it never reaches the ORM (where it would be a 500).

PostgreSQL `text` and `jsonb` refuse NUL (`\\u0000`); `jsonb` and UTF-8 itself refuse lone surrogates (`\\ud800`,
which JSON can spell but no encoder can write); `jsonb` has no Infinity or NaN. Deep nesting costs recursion in
every layer that walks the value (validation, hashing, the database), so it is capped here too.
"""

import math

JSON_MAX_DEPTH = 64  # levels of objects and arrays in one JSON body; the published inputs use 3 at most


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored, or None."""
    if "\x00" in value:
        return "must not contain NUL (\\u0000) characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain lone surrogates (\\ud800-\\udfff)"
    return None


def data_problem(data, *, root: str = "body", max_depth: int = JSON_MAX_DEPTH) -> tuple[str, str] | None:
    """(field path such as "input.images.0", why) for the first value in parsed JSON that cannot be stored."""
    stack = [(data, "", 1)]  # iterative: the value may be deeper than Python's recursion limit allows
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                return path or root, f"is nested deeper than {max_depth} levels"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and (problem := text_problem(key)):
                    return path or root, f"has a key that {problem}"
                stack.append((item, f"{path}.{key}" if path else str(key), depth + 1))
        elif isinstance(value, str):
            if problem := text_problem(value):
                return path or root, problem
        elif isinstance(value, float) and not math.isfinite(value):
            return path or root, "must be a finite number"
    return None


def field_label(name: str) -> str:
    """A field name that is safe to echo in an error message (the name itself may hold the bad characters)."""
    return name.encode("ascii", "backslashreplace").decode().replace("\x00", "\\x00")
