"""OpenAI request fields → a model's `input`, by the rules kept in the catalog (`AIModel.openai`, catalog.json).

A model's block says which OpenAI endpoint serves it and, per OpenAI field it honours, a rule:

- `{"to": "prompt"}`: the value goes to that input field as it is;
- `{"to": "image_size", "values": {"1024x1024": "square_hd"}}`: through a table; a table entry that is an object
  is merged into the input (`"alloy": {"voice": "en-us", "variant": "female"}`); with `"passthrough": true`
  a value the input field itself accepts (its enum) goes through unchanged;
- `{"to": "speed", "scale": 175}`: multiplied, then rounded to an integer;
- `{"kind": "size", "to": ["width", "height"]}`: `"1024x768"` split into two integers (`"auto"`: the defaults);
- `{"kind": "file", "to": "image_url"}`: an uploaded file, passed as a `data:` URL;
- `{"kind": "messages", "prompt": "prompt", "system": "system"}`: chat messages, the system ones to `system`
  (when the model has it), the conversation to `prompt`;
- `{"accept": [1]}`: only these values, which need nothing from the model (e.g. `n: 1`).

Any other field is refused with `unsupported_parameter`, and any value a rule cannot carry with
`unsupported_value`: nothing the caller asked for is silently dropped. The input is then validated against the
model's JSON Schema by generate.php, as any other input.
"""

import base64

from apps.catalog.models import AIModel


class UnsupportedParameter(Exception):
    def __init__(self, message: str, *, param: str, code: str = "unsupported_parameter"):
        super().__init__(message)
        self.param = param
        self.code = code


class UploadedFile:
    """A multipart file as the view received it: its bytes and content type."""

    def __init__(self, *, content: bytes, content_type: str, name: str = ""):
        self.content = content
        self.content_type = content_type or "application/octet-stream"
        self.name = name

    def data_url(self) -> str:
        return f"data:{self.content_type};base64,{base64.b64encode(self.content).decode()}"


def openai_input(*, model: AIModel, fields: dict) -> dict:
    """The generate input for these OpenAI request fields (those the view handles itself already removed)."""
    params = (model.openai or {}).get("params") or {}
    result: dict = {}
    for name, value in fields.items():
        if value is None:
            continue  # an explicit null is the same as leaving the field out
        rule = params.get(name)
        if rule is None:
            honoured = ", ".join(sorted(params)) or "none"
            raise UnsupportedParameter(
                f"`{name}` is not supported by {model.public_model} (the fields it honours: {honoured}).", param=name
            )
        _apply(model, name, rule, value, result)
    return result


def _apply(model: AIModel, name: str, rule: dict, value, result: dict) -> None:
    kind = rule.get("kind", "value")
    if "accept" in rule:
        if value not in rule["accept"]:
            accepted = ", ".join(repr(v) for v in rule["accept"])
            raise _unsupported_value(model, name, value, f"only {accepted}")
        return
    if kind == "messages":
        result.update(_messages(model, rule, value))
    elif kind == "size":
        result.update(_size(model, name, rule, value))
    elif kind == "file":
        if not isinstance(value, UploadedFile):
            raise UnsupportedParameter(
                f"`{name}` must be an uploaded file (multipart).", param=name, code="invalid_value"
            )
        result[rule["to"]] = value.data_url()
    else:
        result.update(_value(model, name, rule, value))


def _value(model: AIModel, name: str, rule: dict, value) -> dict:
    target = rule["to"]
    table = rule.get("values")
    if table is not None:
        if isinstance(value, str) and value in table:
            mapped = table[value]
            return dict(mapped) if isinstance(mapped, dict) else {target: mapped}
        if rule.get("passthrough") and value in _enum(model, target):
            return {target: value}
        accepted = sorted(table) + (sorted(_enum(model, target)) if rule.get("passthrough") else [])
        raise _unsupported_value(model, name, value, "one of " + ", ".join(accepted))
    if "scale" in rule:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UnsupportedParameter(f"`{name}` must be a number.", param=name, code="invalid_value")
        return {target: round(value * rule["scale"])}
    enum = _enum(model, target)
    if enum and value not in enum:
        raise _unsupported_value(model, name, value, "one of " + ", ".join(map(str, enum)), rule.get("note", ""))
    return {target: value}


def _size(model: AIModel, name: str, rule: dict, value) -> dict:
    if value == "auto":
        return {}
    width_field, height_field = rule["to"]
    width, sep, height = str(value).partition("x")
    if not (sep and width.isdigit() and height.isdigit()):
        raise UnsupportedParameter(f"`{name}` must look like 1024x768 (or auto).", param=name, code="invalid_value")
    return {width_field: int(width), height_field: int(height)}


def _messages(model: AIModel, rule: dict, messages) -> dict:
    if not isinstance(messages, list) or not messages:
        raise UnsupportedParameter("`messages` must be a non-empty list.", param="messages", code="invalid_value")
    system, turns = [], []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise UnsupportedParameter(
                "Each message must be an object.", param=f"messages.{index}", code="invalid_value"
            )
        role = message.get("role")
        extra = sorted(set(message) - {"role", "content", "name"})
        if extra:
            raise UnsupportedParameter(
                f"`{extra[0]}` in a message is not supported by {model.public_model}.",
                param=f"messages.{index}.{extra[0]}",
            )
        text = _content_text(model, message.get("content"), index)
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            turns.append((role, text))
        else:
            raise UnsupportedParameter(
                f"Messages of role {role!r} are not supported by {model.public_model}.",
                param=f"messages.{index}.role",
                code="unsupported_value",
            )
    if not turns:
        raise UnsupportedParameter("Send at least one user message.", param="messages", code="invalid_value")
    result = {}
    if len(turns) == 1 and turns[0][0] == "user":
        result[rule["prompt"]] = turns[0][1]
    else:
        # The model takes one prompt: an earlier conversation is given to it as a transcript.
        result[rule["prompt"]] = "\n\n".join(f"{role.capitalize()}: {text}" for role, text in turns)
    if system:
        if not rule.get("system"):
            raise UnsupportedParameter(
                f"{model.public_model} takes no system message.", param="messages", code="unsupported_value"
            )
        result[rule["system"]] = "\n\n".join(system)
    return result


def _content_text(model: AIModel, content, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise UnsupportedParameter(
                    f"Content parts of type {kind!r} are not supported by {model.public_model} (text only).",
                    param=f"messages.{index}.content",
                    code="unsupported_value",
                )
            texts.append(part["text"])
        return "".join(texts)
    raise UnsupportedParameter(
        "A message's content must be text.", param=f"messages.{index}.content", code="invalid_value"
    )


def _enum(model: AIModel, field: str) -> list:
    prop = ((model.input_schema or {}).get("properties") or {}).get(field) or {}
    return prop.get("enum") or []


def _unsupported_value(model: AIModel, name: str, value, accepted: str, note: str = "") -> UnsupportedParameter:
    message = f"{name}={value!r} is not supported by {model.public_model}: {accepted}."
    return UnsupportedParameter(f"{message} {note}".strip(), param=name, code="unsupported_value")
