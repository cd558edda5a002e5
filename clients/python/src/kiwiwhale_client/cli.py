"""The `kiwiwhale` command: the client's operations for a shell. Results go to stdout (`--json` for the raw JSON),
progress and errors to stderr; the exit status is 0 on success, 1 on an API error, 2 on a usage error."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NoReturn

from kiwiwhale_client import _core, errors
from kiwiwhale_client.client import KiwiWhale
from kiwiwhale_client.config import config_load, config_path, config_save
from kiwiwhale_client.types import TERMINAL_STATUSES


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(type(value).__name__)


def _usage_error(message: str) -> NoReturn:
    print(f"kiwiwhale: {message}", file=sys.stderr)
    raise SystemExit(2)


def _client(args: argparse.Namespace, *, api_key: str | None = None) -> KiwiWhale:
    return KiwiWhale(api_key or args.api_key, base_url=args.base_url)


# --- -i name=value ---------------------------------------------------------------------------------------------


def input_parse(pairs: Sequence[str], schema: dict[str, Any] | None) -> dict[str, Any]:
    """`-i name=value` pairs → the job's input. Each value takes the type the model's schema gives the field
    (`width=512` an integer, `prompt=42` still a string); a field the schema does not type is read as JSON when it
    parses, else kept as text."""
    properties = (schema or {}).get("properties") or {}
    data: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            _usage_error(f"-i takes name=value, not {pair!r}")
        data[name] = _typed(text, properties.get(name) or {})
    return data


def _typed(text: str, field: dict[str, Any]) -> Any:
    kinds = field.get("type")
    kinds = set(kinds) if isinstance(kinds, list) else {kinds} if kinds else set()
    if kinds == {"string"} or (not kinds and ("enum" in field and all(isinstance(v, str) for v in field["enum"]))):
        return text
    try:
        value = json.loads(text, parse_float=Decimal)
    except ValueError:
        return text
    if kinds and "string" in kinds and not isinstance(value, bool | int | Decimal):
        return text
    return value


# --- progress --------------------------------------------------------------------------------------------------


class Progress:
    """One line on stderr: the job's id, status and time so far; redrawn in place on a terminal (with a spinner
    while a request is held), a new line per status change otherwise."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.job_id = ""
        self.status = "submitting"
        self.printed = ""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True) if self.tty else None

    def __enter__(self) -> Progress:
        if self.thread:
            self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        if self.thread:
            self.thread.join(1)
            self._draw(final=True)
            self.stream.write("\n")
            self.stream.flush()

    def update(self, job: Any) -> None:
        self.job_id = job.get("job_id", self.job_id)
        self.status = job.get("status", self.status)
        if not self.tty and self.status != self.printed:
            self.printed = self.status
            print(f"{self.job_id} {self.status} {time.monotonic() - self.started:.1f}s", file=self.stream, flush=True)

    def _spin(self) -> None:
        frame = 0
        while not self.stop.wait(0.1):
            self._draw(frame=frame)
            frame += 1

    def _draw(self, *, frame: int = 0, final: bool = False) -> None:
        mark = "✓" if self.status == "completed" else "✗" if self.status in TERMINAL_STATUSES else None
        mark = mark if final or self.status in TERMINAL_STATUSES else self.FRAMES[frame % len(self.FRAMES)]
        elapsed = time.monotonic() - self.started
        self.stream.write(f"\r\x1b[2K{mark} {self.job_id or 'job'} {self.status} {elapsed:.1f}s")
        self.stream.flush()


# --- commands --------------------------------------------------------------------------------------------------


def cmd_login(args: argparse.Namespace) -> int:
    stored = config_load()
    base_url = (args.base_url or stored.get("base_url") or _core.DEFAULT_BASE_URL).rstrip("/")
    key = args.api_key or (getpass.getpass("API key (kw_…): ") if sys.stdin.isatty() else sys.stdin.readline())
    key = key.strip()
    if not key:
        _usage_error("no API key given")
    with KiwiWhale(key, base_url=base_url) as client:
        credits = client.credits()  # the key works before it is stored
    path = config_save(base_url=base_url, api_key=key)
    print(f"Logged in to {base_url} ({credits['account_type']}, {credits['credits']} credits); saved in {path}.")
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    with _client(args) as client:
        registration = client.register(name=args.name, email=args.email, referral_code=args.referral_code)
        base_url = client.base_url
    if args.json:
        _print_json(registration)
    else:
        print(f"Registered account {registration['user_id']} ({registration['credits']} credits).")
        print(f"API key (shown once): {registration['api_key']}")
    if not args.no_save:
        path = config_save(base_url=base_url, api_key=registration["api_key"])
        print(f"Saved in {path}.", file=sys.stderr)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    with _client(args) as client:
        models = client.models(category=args.category)
    if args.json:
        _print_json(models)
        return 0
    width = max((len(m["public_model"]) for m in models), default=5)
    for model in models:
        print(f"{model['public_model']:<{width}}  {model['category']:<16}  {model['cost_credits']:>10} credits")
    return 0


def cmd_quote(args: argparse.Namespace) -> int:
    with _client(args) as client:
        data = input_parse(args.input, client.model(args.model)["schema"])
        quote = client.quote(args.model, data)
    if args.json:
        _print_json(quote)
    else:
        print(f"{quote['public_model']}: {quote['cost_credits']} credits")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    with _client(args) as client:
        data = input_parse(args.input, client.model(args.model)["schema"])
        wait = args.timeout if args.wait or args.output else False
        with Progress() as progress:
            answer = client.generate(
                args.model,
                data,
                wait=wait,
                idempotency_key=args.idempotency_key,
                max_cost_credits=args.max_cost,
                on_update=progress.update,
                step_seconds=5,  # a held request at most this long, so the status on stderr stays current
            )
        job: dict[str, Any] = dict(answer)  # the finished job, or the submission when the wait ran out
        paths = client.download(job, args.output) if args.output and job["status"] == "completed" else []
    if args.json:
        _print_json(job)
    else:
        print(f"{job['job_id']} {job['status']} ({job['cost_credits']} credits)")
        for output in job.get("outputs") or []:
            print(output.get("url") or output.get("text") or json.dumps(output.get("data"), default=str))
    for path in paths:
        print(path)
    if job["status"] in ("failed", "canceled"):
        error = job.get("error") or {}
        print(f"kiwiwhale: the job {job['status']}: {error.get('code')}: {error.get('message')}", file=sys.stderr)
        return 1
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.job_id:
            job = client.wait(args.job_id, timeout=args.wait) if args.wait else client.job(args.job_id)
            _print_json(job)
            return 0
        page = client.jobs(status=args.status, limit=args.limit)
    if args.json:
        _print_json(page)
        return 0
    for job in page["jobs"]:
        print(f"{job['job_id']}  {job['status']:<10}  {job['public_model']:<28}  {job['created_at']}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.cancel(args.job_id)
    print(f"{job['job_id']} {job['status']}")
    return 0


def cmd_credits(args: argparse.Namespace) -> int:
    with _client(args) as client:
        credits = client.credits()
    if args.json:
        _print_json(credits)
    else:
        print(credits["credits"])
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    with _client(args) as client:
        usage = client.usage(limit=args.limit, kind=args.kind, key=args.key)
    if args.json:
        _print_json(usage)
        return 0
    print(f"balance: {usage['credits']} credits")
    for entry in usage["entries"]:
        print(f"{entry['created_at']}  {entry['kind']:<10}  {entry['credits']:>12}  {entry['reference']}")
    return 0


def cmd_topup(args: argparse.Namespace) -> int:
    with _client(args) as client:
        quote = client.topup_quote(args.credits)
        charge = quote["charge"]
        if args.quote:
            print(f"{quote['credits']} credits: {charge['amount']} {charge['currency']} (fee {quote['fee']['amount']})")
            return 0
        if not args.yes:
            answer = input(f"Charge {charge['amount']} {charge['currency']} to the saved card? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("Nothing charged.", file=sys.stderr)
                return 1
        topup = client.topup(args.credits, idempotency_key=args.idempotency_key)
    if args.json:
        _print_json(topup)
    else:
        charged = topup["charged"]
        print(f"Added {topup['credits_added']} credits; charged {charged['amount']} {charged['currency']}; ", end="")
        print(f"balance {topup['credits']}.")
    return 0


def cmd_autotopup(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.enable or args.disable:
            settings = client.set_autotopup(
                bool(args.enable),
                mode=args.mode,
                trigger_credits=args.trigger,
                amount_credits=args.amount,
                target_credits=args.target,
            )
        else:
            settings = client.autotopup()
    _print_json(settings)
    return 0


def _key_line(key: dict[str, Any]) -> str:
    state = "active" if key["active"] else ("revoked" if key["revoked_at"] else "expired")
    spend = key["spend"]
    limits = [
        f"{period} ≤ {key[f'spend_limit_{period}_credits']}"
        for period in ("day", "month", "total")
        if key[f"spend_limit_{period}_credits"] is not None
    ]
    limits += [f"{key['rpm_limit']}/min"] if key["rpm_limit"] else []
    limits += [f"{key['concurrency_limit']} at once"] if key["concurrency_limit"] else []
    limits += [f"models {','.join(key['allowed_models'])}"] if key["allowed_models"] else []
    limits += [f"from {','.join(key['allowed_ips'])}"] if key["allowed_ips"] else []
    limits += [f"expires {key['expires_at']}"] if key["expires_at"] else []
    return (
        f"{key['id']:>5}  {key['prefix']}…  {state:<7}  {key['name']}  [{','.join(key['scopes'])}]  "
        f"spent {spend['day']}/{spend['month']}/{spend['total']}" + (f"  ({'; '.join(limits)})" if limits else "")
    )


def _key_limits(args: argparse.Namespace, *, unset: Any) -> dict[str, Any]:
    """The limit options given; on update, `none` clears a limit and an option not given stays `unset`."""

    def value(given: Any, convert=lambda text: text) -> Any:
        if given is None:
            return unset
        return None if given == "none" else convert(given)

    return {
        "scopes": unset if args.scope is None else args.scope,
        "spend_limit_day_credits": value(args.day),
        "spend_limit_month_credits": value(args.month),
        "spend_limit_total_credits": value(args.total),
        "allowed_models": unset if args.model is None else [m for m in args.model if m != "none"],
        "allowed_ips": unset if args.ip is None else [ip for ip in args.ip if ip != "none"],
        "rpm_limit": value(args.rpm, int),
        "concurrency_limit": value(args.concurrency, int),
        "expires_at": value(args.expires),
    }


def cmd_keys(args: argparse.Namespace) -> int:
    with _client(args) as client:
        action = args.action or "list"
        if action == "list":
            keys = client.key_list()
            if args.json:
                _print_json(keys)
            for key in [] if args.json else keys:
                print(_key_line(key))
            return 0
        if action == "create":
            limits = {name: value for name, value in _key_limits(args, unset=None).items() if value is not None}
            created = client.key_create(args.name, **limits)
        elif action == "update":
            changes = _key_limits(args, unset=_core.UNSET)
            key = client.key_update(args.key, name=args.name if args.name is not None else _core.UNSET, **changes)
            _print_json(key) if args.json else print(_key_line(key))
            return 0
        elif action == "revoke":
            key = client.key_revoke(args.key)
            _print_json(key) if args.json else print(_key_line(key))
            return 0
        else:
            created = client.key_rotate(args.key, grace_seconds=args.grace)
    if args.json:
        _print_json(created)
    else:
        print(created["api_key"])  # stdout: the new key alone, shown this once
        print(_key_line(created["key"]), file=sys.stderr)
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    from kiwiwhale_client.mcp_bridge import bridge_main

    with _client(args) as client:
        base_url, api_key = client.base_url, client.api_key
    if not api_key:
        _usage_error("no API key: run `kiwiwhale login` or set KIWIWHALE_API_KEY")
    return bridge_main(base_url=base_url, api_key=api_key)


# --- parser ----------------------------------------------------------------------------------------------------


def parser_build() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--base-url", help="the instance (default: KIWIWHALE_BASE_URL, then the config file)")
    common.add_argument("--api-key", help="a kw_ key (default: KIWIWHALE_API_KEY, then the config file)")
    common.add_argument("--json", action="store_true", help="print the API's JSON")
    parser = argparse.ArgumentParser(prog="kiwiwhale", description=f"KiwiWhale from the shell. Config: {config_path()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler, help: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help, description=help, parents=[common])
        cmd.set_defaults(handler=handler)
        return cmd

    command("login", cmd_login, "check a key and store it with the base URL in the config file")
    register = command("register", cmd_register, "create an agent account and store its key")
    register.add_argument("--name")
    register.add_argument("--email")
    register.add_argument("--referral-code")
    register.add_argument("--no-save", action="store_true", help="print the key, do not store it")

    models = command("models", cmd_models, "the models this instance serves now")
    models.add_argument("--category", help="e.g. text-to-image")

    for name, handler, help in (
        ("quote", cmd_quote, "what a job would cost"),
        ("generate", cmd_generate, "run a job"),
    ):
        cmd = command(name, handler, help)
        cmd.add_argument("model")
        cmd.add_argument("-i", "--input", action="append", default=[], metavar="NAME=VALUE", help="an input field")
    generate = sub.choices["generate"]
    generate.add_argument("--wait", action="store_true", help="wait for the job to end")
    generate.add_argument("--timeout", type=float, default=_core.DEFAULT_WAIT_SECONDS, help="seconds to wait")
    generate.add_argument("-o", "--output", metavar="DIR", help="download the outputs here (implies --wait)")
    generate.add_argument("--max-cost", help="refuse a job that would cost more credits than this")
    generate.add_argument("--idempotency-key", help="default: a fresh one")

    jobs = command("jobs", cmd_jobs, "your jobs, newest first, or one job")
    jobs.add_argument("job_id", nargs="?")
    jobs.add_argument("--status", choices=["queued", "processing", "completed", "failed", "canceled"])
    jobs.add_argument("--limit", type=int)
    jobs.add_argument("--wait", type=float, help="with a job id: wait up to this many seconds for it to end")

    cancel = command("cancel", cmd_cancel, "cancel a job that has not ended (its credits come back)")
    cancel.add_argument("job_id")

    command("credits", cmd_credits, "the wallet's balance")
    usage = command("usage", cmd_usage, "ledger entries, newest first")
    usage.add_argument("--limit", type=int)
    usage.add_argument("--kind")
    usage.add_argument("--key", help="only this key's entries (its id or prefix)")

    keys = command("keys", cmd_keys, "list, create, update, revoke or rotate API keys (limits and scopes)")
    keys.add_argument("action", nargs="?", choices=["list", "create", "update", "revoke", "rotate"])
    keys.add_argument("key", nargs="?", help="update / revoke / rotate: the key's id or prefix")
    keys.add_argument("--name")
    keys.add_argument("--scope", action="append", choices=["generate", "billing", "keys"], help="repeat for more")
    keys.add_argument("--day", metavar="CREDITS", help="spend limit per UTC day ('none' on update: no limit)")
    keys.add_argument("--month", metavar="CREDITS", help="spend limit per UTC month")
    keys.add_argument("--total", metavar="CREDITS", help="spend limit in total")
    keys.add_argument("--model", action="append", help="an allowed model id or prefix/* (repeat; 'none': any)")
    keys.add_argument("--ip", action="append", help="an allowed CIDR range (repeat; 'none': any)")
    keys.add_argument("--rpm", help="requests per minute")
    keys.add_argument("--concurrency", help="jobs queued or processing at once")
    keys.add_argument("--expires", metavar="ISO8601", help="e.g. 2026-12-31T00:00:00Z")
    keys.add_argument("--grace", type=int, default=0, help="rotate: seconds the old key keeps working")

    topup = command("topup", cmd_topup, "buy credits with the saved card (charges real money)")
    topup.add_argument("credits")
    topup.add_argument("--quote", action="store_true", help="only show the price and the fee")
    topup.add_argument("--yes", action="store_true", help="do not ask before charging")
    topup.add_argument("--idempotency-key", help="default: a fresh one")

    auto = command("autotopup", cmd_autotopup, "show or set auto top-up (charges the saved card when low)")
    switch = auto.add_mutually_exclusive_group()
    switch.add_argument("--enable", action="store_true")
    switch.add_argument("--disable", action="store_true")
    auto.add_argument("--mode", choices=["fixed", "buffer"])
    auto.add_argument("--trigger", help="top up below this balance")
    auto.add_argument("--amount", help="fixed mode: credits added each time")
    auto.add_argument("--target", help="buffer mode: the balance to refill to")

    command("mcp", cmd_mcp, "a stdio MCP server bridged to the instance's /mcp (for stdio-only MCP hosts)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser_build().parse_args(argv)
    if args.command == "keys" and args.action in ("update", "revoke", "rotate") and not args.key:
        _usage_error(f"keys {args.action} needs the key's id or prefix")
    try:
        return args.handler(args)
    except errors.KiwiWhaleError as exc:
        print(f"kiwiwhale: {exc}", file=sys.stderr)
        for detail in getattr(exc, "details", []) or []:
            print(f"  {detail.get('field')}: {detail.get('message')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
