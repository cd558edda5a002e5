"""Streaming chat: time to first token through the /v1 facade, against calling the engine directly.

    python bench/ttft.py --base-url http://127.0.0.1:8000 --key kw_... [--runs 30] [--model local/echo-chat]
                         [--direct-url http://127.0.0.1:11434/v1 --direct-model llama3.2]

Through the facade, with the official `openai` SDK and `stream=True`: the time to the first chunk (the role chunk,
sent as soon as the job is accepted), to the first content chunk (the first token), and to `[DONE]`. Each run is
a real job: submitted through generate.php, run by a worker, paid from the key's wallet.

Directly: the same local engine called in this process (what the worker runs), or, with --direct-url, any
OpenAI-compatible server streaming on its own (Ollama, vLLM), which is what a relayed upstream stream would add to.
Prints the median and the 95th percentile of each, in milliseconds. Runs are sequential and bounded (--runs).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

PROMPT = "Tell me about the kiwi, a flightless bird of New Zealand, in a few sentences."


def _figures(name: str, values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"{name:<46} median {statistics.median(values) * 1000:9.2f} ms   p95 {p95 * 1000:9.2f} ms"


def facade(base_url: str, key: str, model: str, runs: int) -> dict[str, list[float]]:
    from openai import OpenAI

    client = OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=120)
    times = {"first chunk": [], "first token": [], "whole answer": []}
    for _ in range(runs):
        started = time.perf_counter()
        first_chunk = first_token = None
        for chunk in client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPT}], stream=True
        ):
            now = time.perf_counter()
            first_chunk = first_chunk or now
            if chunk.choices and chunk.choices[0].delta.content and first_token is None:
                first_token = now
        times["first chunk"].append(first_chunk - started)
        times["first token"].append(first_token - started)
        times["whole answer"].append(time.perf_counter() - started)
    return times


def engine_local(model: str, runs: int) -> dict[str, list[float]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kiwiwhale.settings")
    import django

    django.setup()
    from apps.generations.providers import provider_for

    engine = model.removeprefix("local/")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        provider_for("local").run(upstream_model=engine, params={}, input={"prompt": PROMPT})
        times.append(time.perf_counter() - started)
    return {"first token (= whole answer)": times}


def engine_upstream(url: str, model: str, key: str, runs: int) -> dict[str, list[float]]:
    from openai import OpenAI

    client = OpenAI(base_url=url, api_key=key or "none", max_retries=0, timeout=120)
    times = {"first token": [], "whole answer": []}
    for _ in range(runs):
        started = time.perf_counter()
        first_token = None
        for chunk in client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPT}], stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content and first_token is None:
                first_token = time.perf_counter()
        times["first token"].append(first_token - started)
        times["whole answer"].append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--key", required=True, help="A kw_ key whose wallet pays for the runs.")
    parser.add_argument("--model", default="local/echo-chat")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--direct-url", help="An OpenAI-compatible server to stream from directly.")
    parser.add_argument("--direct-model")
    parser.add_argument("--direct-key", default="")
    args = parser.parse_args()
    runs = max(1, min(args.runs, 500))

    print(f"{runs} sequential streaming chats of {args.model!r}")
    for name, values in facade(args.base_url, args.key, args.model, runs).items():
        print(_figures(f"facade /v1: {name}", values))
    if args.direct_url:
        results = engine_upstream(args.direct_url, args.direct_model or args.model, args.direct_key, runs)
    else:
        results = engine_local(args.model, runs)
    for name, values in results.items():
        print(_figures(f"engine directly: {name}", values))


if __name__ == "__main__":
    main()
