"""Streaming chat: time to first token through the /v1 facade, against calling the upstream or engine directly.

    .venv/bin/python bench/ttft.py [--runs 20] [--database-url postgres://…/kw_bench_ttft] [--redis-url redis://…]
                                   [--port 8000] [--token-ms 20] [--first-token-ms 200]

Self-contained: it migrates and seeds a database of its own (re-created each run), starts a local OpenAI-compatible
server that streams as vLLM and Ollama do (tests/providers/fake_openai.py: `first-token-ms` before the first token,
`token-ms` between tokens), points the `openai` account at it, and starts `scripts/web` and `scripts/worker` on
that database and Redis. Then, with the official `openai` SDK and `stream=True`, sequential runs of:

- facade, upstream route: `gpt-5-mini/chat` through /v1 — a job submitted through generate.php, run by the worker,
  which streams from the upstream and relays each delta (Redis Stream) to the SSE answer;
- the same upstream directly (what the facade adds to);
- facade, local engine: `local/echo-chat` (the engine answers at once; its text is sent in chunks at the end);
- the local engine called directly in this process (what the worker runs).
For each: the median and 95th percentile of the time to the first content chunk and to the whole answer, in ms.
Without Redis (`--redis-url ""`) the facade falls back to sending the text when the job ends: the first token
then comes after the whole upstream answer.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PROMPT = "Tell me about the kiwi, a flightless bird of New Zealand, in a few sentences please."


def figures(name: str, values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"{name:<58} median {statistics.median(values) * 1000:8.1f} ms   p95 {p95 * 1000:8.1f} ms"


def stream_times(client, model: str) -> tuple[float, float]:
    """(time to the first content chunk, time to the end of the stream) of one streamed chat, in seconds."""
    started = time.perf_counter()
    first = None
    for chunk in client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}], stream=True
    ):
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    return first, time.perf_counter() - started


def series(name: str, runs: int, measure) -> list[str]:
    measure()  # warm-up, not counted
    first, whole = zip(*(measure() for _ in range(runs)), strict=True)
    return [figures(f"{name}: first token", list(first)), figures(f"{name}: whole answer", list(whole))]


def database_prepare(url: str, env: dict) -> None:
    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    for command in (["migrate", "--noinput", "-v0"], ["seed_catalog"]):
        subprocess.run([PYTHON, "manage.py", *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/kw_bench_ttft")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--port", type=int, default=8000, help="the web server's port")
    parser.add_argument("--token-ms", type=float, default=20.0, help="the upstream's time between two tokens")
    parser.add_argument("--first-token-ms", type=float, default=200.0, help="the upstream's time to its first token")
    args = parser.parse_args()
    runs = max(1, min(args.runs, 200))
    queue = f"ttft-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "SECRET_KEY": "bench-only-secret-key",
        "DEBUG": "0",
        "SERVE_PLAIN_HTTP": "1",
        "LOG_LEVEL": "WARNING",
        "CELERY_QUEUE": queue,
        "FETCH_PRIVATE_HOST_ALLOWLIST": "127.0.0.1",  # the local upstream
        "PATH": f"{Path(PYTHON).parent}:{os.environ.get('PATH', '')}",
    }
    print("Preparing the bench database…", flush=True)
    database_prepare(args.database_url, env)
    os.environ.update({k: v for k, v in env.items() if k != "PATH"})
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kiwiwhale.settings")
    import django

    django.setup()
    from openai import OpenAI

    from apps.accounts.services import api_key_create
    from apps.catalog.models import ProviderAccount
    from apps.catalog.services import provider_account_save
    from apps.generations.providers import provider_for
    from tests.conftest import make_user
    from tests.providers.fake_openai import FakeOpenAI

    upstream = FakeOpenAI().start()
    upstream.stream_first_token_seconds = args.first_token_ms / 1000  # a model reading the prompt
    upstream.stream_token_seconds = args.token_ms / 1000  # then generating at a steady rate
    account = ProviderAccount.objects.get(slug="openai")
    account.enabled, account.base_url = True, upstream.base_url
    provider_account_save(account=account, api_key=upstream.api_key)
    user = make_user(f"ttft-{uuid.uuid4().hex[:6]}", credits="1000")
    key = api_key_create(user=user, name="ttft")[1]

    processes = []
    try:
        for command in (["web"], ["worker", "--pool=threads"]):
            processes.append(
                subprocess.Popen(
                    [str(ROOT / "scripts" / command[0]), *command[1:]],
                    cwd=ROOT,
                    env={**env, "PORT": str(args.port), "HOST": "127.0.0.1", "WEB_CONCURRENCY": "2"},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        base = f"http://127.0.0.1:{args.port}"
        for _ in range(300):
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        time.sleep(5)  # the worker's start
        facade = OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120)
        direct = OpenAI(base_url=upstream.base_url, api_key=upstream.api_key, max_retries=0, timeout=120)

        def engine_direct():
            started = time.perf_counter()
            provider_for("local").run(upstream_model="echo-chat", params={}, input={"prompt": PROMPT})
            elapsed = time.perf_counter() - started
            return elapsed, elapsed

        print(f"{runs} sequential streamed chats each (upstream: {args.first_token_ms:g} ms to the first token, "
              f"{args.token_ms:g} ms a token; Redis: {args.redis_url or 'none'})")  # fmt: skip
        lines = series(
            "facade /v1, upstream route (gpt-5-mini/chat)", runs, lambda: stream_times(facade, "gpt-5-mini/chat")
        )
        lines += series("upstream directly", runs, lambda: stream_times(direct, "gpt-5-mini"))
        lines += series(
            "facade /v1, local engine (local/echo-chat)", runs, lambda: stream_times(facade, "local/echo-chat")
        )
        lines += series("local engine directly (in process)", runs, engine_direct)
        print("\n".join(lines))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        upstream.stop()


if __name__ == "__main__":
    main()
